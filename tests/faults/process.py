"""The real bot as a child process, for tests that kill it, stop it and restart it."""

from __future__ import annotations

import asyncio
import inspect
import os
import signal
import socket
import sys
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path

import pytest

from tests.feedgen import Item, minutes_ago, rss

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A port nothing listens on now, for a fake that starts later (or a bot's /healthz)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_config(
    tmp_path: Path,
    feed_url: str,
    channel: str,
    platform: str,
    *,
    channels: Sequence[str] = (),
    http_port: int | None = None,
) -> Path:
    """One feed polled every second, one watchlist ("Pyongyang") posting to `channel` (and to
    `channels`); `platform` is the config section pointing the platform at its fake (any more
    TOML, really). `http_port`: serve /healthz and /metrics there."""
    targets = ", ".join(f'"{c}"' for c in (channel, *channels))
    http = f"enabled = true\nport = {http_port}" if http_port is not None else "enabled = false"
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
{http}
{platform}
[[feeds]]
name = "Wire"
url = "{feed_url}"
interval = "1s"
[[watchlists]]
name = "Desk"
query = "Pyongyang"
channels = [{targets}]
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

    async def wait_for(
        self,
        predicate: Callable[[], bool | Awaitable[bool]],
        what: str,
        timeout: float = 30,
    ) -> None:
        """Until `predicate` (a plain or an async function) is true; kills the bot and fails
        the test with its log after `timeout` seconds."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    result = predicate()
                    if inspect.isawaitable(result):
                        if await result:
                            return
                        await asyncio.sleep(0.05)  # an HTTP request or a query each time
                    elif result:
                        return
                    else:
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
