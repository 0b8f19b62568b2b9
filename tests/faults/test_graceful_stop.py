"""SIGTERM lets the send in flight finish and be recorded, closes the database, and exits within
10 seconds: a card Discord accepted is never left 'pending' by a clean stop."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
from pathlib import Path

import pytest

from tests.fakes.discord_server import FakeDiscord
from tests.feedgen import Item, minutes_ago, rss

REPO = Path(__file__).resolve().parents[2]
CHANNEL = 1_400_000_000_000_000_001
pytestmark = pytest.mark.timeout(60)


async def until(predicate, what: str, timeout: float = 30) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not predicate():  # noqa: ASYNC110 - the condition lives in another process
                await asyncio.sleep(0.01)
    except TimeoutError:
        pytest.fail(f"timed out waiting for {what}")


async def test_sigterm_finishes_the_send_in_flight_and_exits(tmp_path, feed_server):
    feed_server.set("wire.xml", rss([]))
    async with FakeDiscord(text_channel_ids=(CHANNEL,)) as fake:
        config = tmp_path / "bot.toml"
        config.write_text(
            f"""
[storage]
path = "{tmp_path / "bot.db"}"
[fetch]
min_interval = "1s"
[http]
enabled = false
[discord]
api_base = "{fake.api_base}"
gateway_url = "{fake.gateway_url}"
[[feeds]]
name = "Wire"
url = "{feed_server.url("wire.xml")}"
interval = "1s"
[[watchlists]]
name = "Desk"
query = "Pyongyang"
channels = ["discord:{CHANNEL}"]
""",
            "utf-8",
        )
        bot = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "run",
            "--config",
            str(config),
            cwd=REPO,
            env={**os.environ, "DISCORD_TOKEN": fake.token},
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        await until(lambda: feed_server.count("wire.xml") >= 2, "the baseline poll")
        fake.set_down(True, mode="hang")  # Discord holds the next message POST
        feed_server.set(
            "wire.xml",
            rss([Item("Pyongyang story", "A lead.", "https://w.example/1", "1", minutes_ago(1))]),
        )
        await until(lambda: fake.hanging > 0, "a send in flight")

        bot.send_signal(signal.SIGTERM)
        await asyncio.sleep(1)
        assert bot.returncode is None, "the bot must wait for the send in flight"
        fake.set_down(False)  # Discord answers the held request
        _, err = await asyncio.wait_for(bot.communicate(), 10)
        assert bot.returncode == 0, err.decode()[-2000:]

    assert [m.embeds[0]["title"] for m in fake.messages_in(CHANNEL)] == ["Pyongyang story"]
    with sqlite3.connect(tmp_path / "bot.db") as db:
        assert db.execute("SELECT status, message_id IS NOT NULL FROM deliveries").fetchall() == [
            ("sent", 1)
        ]
