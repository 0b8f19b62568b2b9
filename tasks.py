#!/usr/bin/env python3
"""Set-up and everyday tasks, needing nothing but Python 3.11+:

    python3 tasks.py run     start the bot on its embedded defaults (SQLite, console output)
    python3 tasks.py test    run the whole test suite: ruff, import contracts, mypy, pytest
    python3 tasks.py demo    the offline tour
    python3 tasks.py bench   the benchmarks

The first call creates .venv/ and installs the project with its pinned dependencies
(constraints.txt); later calls reinstall only when pyproject.toml or constraints.txt changed.
Extra arguments go to the command: `python3 tasks.py test -k dedupe`, `python3 tasks.py run --once`.
Paths in them are taken from where you stand (`python3 ~/newsbot/tasks.py run --config my.toml`),
while the commands themselves run in the repository, so the default config and data/ are its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path
from typing import NoReturn

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
    """A step that is followed by others: Ctrl-C ends it (it gets the signal too) and the task."""
    try:
        return subprocess.run(command, cwd=ROOT).returncode
    except KeyboardInterrupt:
        return 130


def hand_over(*command: str) -> NoReturn:
    """The last step: this process becomes the command, so Ctrl-C and SIGTERM reach it alone and
    it stops gracefully; its exit code is the task's. Nothing is left behind to orphan it."""
    os.chdir(ROOT)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(command[0], list(command))


def from_caller(args: list[str]) -> list[str]:
    """Paths as the caller meant them: relative to where they stand, not to the repository."""
    here = Path.cwd()
    if here == ROOT:
        return args
    out: list[str] = []
    path_follows = False
    for arg in args:
        if path_follows:
            arg, path_follows = str(here / arg), False
        elif arg == "--config":
            path_follows = True
        elif arg.startswith("--config="):
            arg = "--config=" + str(here / arg.split("=", 1)[1])
        elif not arg.startswith("-") and (here / arg).exists():
            arg = str(here / arg)
        out.append(arg)
    return out


def main(argv: list[str]) -> int:
    task, args = (argv[0], from_caller(argv[1:])) if argv else ("help", [])
    if task not in ("run", "test", "demo", "bench"):
        print(__doc__, file=sys.stderr)
        return 0 if task in ("help", "-h", "--help") else 2
    ensure_environment()
    if task == "run":
        hand_over(str(BIN / "newsbot"), "run", *args)
    if task == "demo":
        hand_over(str(BIN / "newsbot"), "demo", *args)
    if task == "bench":
        hand_over(str(BIN / "python"), "-m", "bench", *args)
    for step in (
        [str(BIN / "ruff"), "check", "bot", "config", "storage", "tests", "bench", "tasks.py"],
        [str(BIN / "lint-imports")],
        [str(BIN / "mypy")],  # the files and the strictness per package: [tool.mypy]
    ):
        code = run(*step)
        if code:
            return code
    hand_over(str(BIN / "python"), "-m", "pytest", *args)


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:  # during the install: pip has said what it was doing
        sys.exit(130)
