#!/usr/bin/env python3
"""Set-up and everyday tasks, needing nothing but Python 3.11+:

    python3 tasks.py run     start the bot on its embedded defaults (SQLite, console output)
    python3 tasks.py test    run the whole test suite: ruff, import contracts, pytest
    python3 tasks.py demo    the offline tour
    python3 tasks.py bench   the benchmarks

The first call creates .venv/ and installs the project with its pinned dependencies
(constraints.txt); later calls reinstall only when pyproject.toml or constraints.txt changed.
Extra arguments go to the command: `python3 tasks.py test -k dedupe`, `python3 tasks.py run --once`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".installed"
INPUTS = [ROOT / "pyproject.toml", ROOT / "constraints.txt"]


def ensure_environment() -> None:
    if sys.version_info < (3, 11):
        sys.exit(f"newsbot needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    fresh = STAMP.exists() and all(STAMP.stat().st_mtime >= p.stat().st_mtime for p in INPUTS)
    if fresh:
        return
    if not (BIN / "python").exists():
        print("creating .venv ...", file=sys.stderr)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print("installing newsbot and its dependencies into .venv ...", file=sys.stderr)
    pip = [str(BIN / "python"), "-m", "pip", "--disable-pip-version-check", "--quiet"]
    subprocess.run([*pip, "install", "--upgrade", "pip"], check=True)
    subprocess.run(
        [*pip, "install", "-c", "constraints.txt", "-e", ".[test]"], check=True, cwd=ROOT
    )
    STAMP.touch()


def run(*command: str) -> int:
    return subprocess.run(command, cwd=ROOT).returncode


def main(argv: list[str]) -> int:
    task, args = (argv[0], argv[1:]) if argv else ("help", [])
    if task not in ("run", "test", "demo", "bench"):
        print(__doc__, file=sys.stderr)
        return 0 if task in ("help", "-h", "--help") else 2
    ensure_environment()
    if task == "run":
        return run(str(BIN / "newsbot"), "run", *args)
    if task == "demo":
        return run(str(BIN / "newsbot"), "demo", *args)
    if task == "bench":
        return run(str(BIN / "python"), "-m", "bench", *args)
    for step in (
        [str(BIN / "ruff"), "check", "bot", "config", "storage", "tests", "bench", "tasks.py"],
        [str(BIN / "lint-imports")],
        [str(BIN / "python"), "-m", "pytest", *args],
    ):
        code = run(*step)
        if code:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
