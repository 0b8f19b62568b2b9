"""The real bot as a child process, for tests that kill it, stop it and restart it."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from tests.feedgen import Item, minutes_ago, rss

REPO = Path(__file__).resolve().parents[2]


def write_config(tmp_path: Path, feed_url: str, channel: str, platform: str) -> Path:
    """One feed polled every second, one watchlist ("Pyongyang") posting to `channel`;
    `platform` is the config section pointing the platform at its fake."""
    path = tmp_path / "bot.toml"
    path.write_text(
        f"""
[storage]
path = "{tmp_path / "bot.db"}"
[alerts]
burst_limit = 100
[fetch]
min_interval = "1s"
[http]
enabled = false
{platform}
[[feeds]]
name = "Wire"
url = "{feed_url}"
interval = "1s"
[[watchlists]]
name = "Desk"
query = "Pyongyang"
channels = ["{channel}"]
""",
        "utf-8",
    )
    return path


class BotProcess:
    """`newsbot run` on a config, restartable; its log goes to a file beside the config."""

    def __init__(self, config: Path, env: dict[str, str]) -> None:
        self.config = config
        self.env = {**os.environ, **env}
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def log(self) -> str:
        path = self.config.with_suffix(".log")
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    async def start(self, *args: str) -> None:
        """`args`: more options for `newsbot run`, e.g. "--once"."""
        log = open(self.config.with_suffix(".log"), "ab")  # noqa: SIM115, ASYNC230 - the child owns it
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "run",
            "--config",
            str(self.config),
            *args,
            cwd=REPO,
            env=self.env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=log,
        )

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def stop(self, grace: float = 10) -> int:
        """SIGTERM, and the exit code within `grace` seconds."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(self.proc.wait(), grace)
        return self.proc.returncode or 0

    async def exited(self, timeout: float = 60) -> int:
        """The exit code of a bot that is expected to stop by itself (a refused start)."""
        assert self.proc is not None
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            await self.kill()
            pytest.fail(f"the bot was still running after {timeout} s; its log ends:\n{self.log}")
        return self.proc.returncode or 0

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def wait_for(self, predicate: Callable[[], bool], what: str, timeout: float = 30) -> None:
        try:
            async with asyncio.timeout(timeout):
                while not predicate():  # noqa: ASYNC110 - the condition lives in another process
                    await asyncio.sleep(0.005)
        except TimeoutError:
            if self.running:
                await self.kill()
            pytest.fail(f"timed out waiting for {what}; the bot's log ends:\n{self.log}")


def burst(count: int) -> bytes:
    return rss(
        [
            Item(
                f"Pyongyang report number {n}",
                f"Story {n} from Pyongyang.",
                f"https://w.example/{n}",
                f"g{n}",
                minutes_ago(1),
            )
            for n in range(1, count + 1)
        ]
    )


def story_numbers(texts: Iterable[str]) -> Counter[int]:
    """How many times each "Pyongyang report number N" was posted, as a card or a digest line."""
    import re

    return Counter(
        int(n) for text in texts for n in re.findall(r"Pyongyang report number (\d+)", text)
    )
