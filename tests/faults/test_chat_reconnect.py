"""Chat services that go away and come back, with the real `newsbot run` process: Discord and
Slack down when the bot starts, or gone for a while as it runs. The bot must connect by itself
when they return, post what it owes them at once and exactly once, and say the truth on /healthz
all along; a refused token is the one thing it gives up on, saying so once.

The fakes listen on ports picked in advance, so that they can be absent (nothing listening) and
then appear at the address the bot was given. Backoff is shortened through [chat] in the config,
not by sleeping."""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from tests.fakes.discord_server import FakeDiscord
from tests.fakes.feed_server import FeedServer
from tests.fakes.slack_server import FakeSlack
from tests.faults.process import BotProcess, burst, free_port, story_numbers, write_config
from tests.feedgen import rss

pytestmark = pytest.mark.timeout(90)

DISCORD_CHANNEL = 1_400_000_000_000_000_001
SLACK_CHANNEL = "C0NEWSDESK"
PROXIES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


@dataclass
class Desk:
    """The bot process, both fakes (at fixed addresses, started or not) and the feed."""

    bot: BotProcess
    discord: FakeDiscord
    slack: FakeSlack
    feeds: FeedServer
    http_port: int
    db: Path

    async def health(self) -> tuple[int, dict] | None:
        try:
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"http://127.0.0.1:{self.http_port}/healthz") as response,
            ):
                return response.status, await response.json()
        except aiohttp.ClientError:
            return None  # not serving yet

    async def metrics(self) -> str:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{self.http_port}/metrics") as response,
        ):
            return await response.text()

    def deliveries(self) -> list[tuple[str, str, int]]:
        """(target, status, attempts) of every card, read as an operator would."""
        if not self.db.exists():
            return []
        with contextlib.closing(sqlite3.connect(self.db, timeout=10)) as db:
            try:
                return db.execute("SELECT target, status, attempts FROM deliveries").fetchall()
            except sqlite3.OperationalError:  # not migrated yet
                return []

    def postpone_retries(self) -> int:
        """Every pending card's retry an hour away, as after a long outage's backoff: only a
        reconnect can make them due before the test's deadline. Returns how many now wait."""
        with contextlib.closing(sqlite3.connect(self.db, timeout=10)) as db, db:
            db.execute(
                "UPDATE deliveries SET next_attempt_at = ? WHERE status = 'pending'",
                (time.time() + 3600,),
            )
            return db.execute(
                "SELECT count(*) FROM deliveries WHERE status = 'pending' AND next_attempt_at > ?",
                (time.time() + 600,),
            ).fetchone()[0]

    def posted(self) -> tuple[int, int]:
        return len(self.discord.messages_in(DISCORD_CHANNEL)), len(
            self.slack.messages_in(SLACK_CHANNEL)
        )

    async def wait_health(self, status: int, *words: str) -> dict:
        seen: dict = {}

        async def check() -> bool:
            answer = await self.health()
            if answer is None:
                return False
            code, body = answer
            seen.update(body)
            return code == status and all(w in (body.get("reason") or "") for w in words)

        await self.bot.wait_for(check, f"/healthz {status} {words}")
        return seen

    async def wait_polls(self, more: int) -> None:
        """`more` polls of the feed, each finished (the next one has begun)."""
        target = self.feeds.count("wire.xml") + more + 1
        await self.bot.wait_for(lambda: self.feeds.count("wire.xml") >= target, f"{more} polls")

    async def publish_while_down(self) -> None:
        """One story for both platforms, posted while neither is reachable: owed, tried, and
        waiting out its backoff."""
        self.feeds.set("wire.xml", burst(1))

        async def owed() -> bool:
            rows = self.deliveries()
            return (
                len(rows) == 2
                and all(status == "pending" and attempts >= 1 for _, status, attempts in rows)
                and self.postpone_retries() == 2
            )

        await self.bot.wait_for(owed, "both cards owed, tried, and waiting")

    async def wait_delivered_once(self) -> None:
        await self.bot.wait_for(lambda: self.posted() == (1, 1), "one card on each platform")

        async def recorded() -> bool:
            return sorted(s for _, s, _ in self.deliveries()) == ["sent", "sent"]

        await self.bot.wait_for(recorded, "both cards recorded as sent")
        await self.wait_polls(2)  # and nothing more comes of it
        discord_cards = [m.embeds[0]["title"] for m in self.discord.messages_in(DISCORD_CHANNEL)]
        assert story_numbers(discord_cards) == {1: 1}
        slack_cards = [m.text or "" for m in self.slack.messages_in(SLACK_CHANNEL)]
        assert story_numbers(slack_cards) == {1: 1}


@pytest.fixture
async def desk(tmp_path, feed_server) -> AsyncIterator[Desk]:
    discord_port, slack_port, http_port = free_port(), free_port(), free_port()
    discord_fake = FakeDiscord(port=discord_port, text_channel_ids=(DISCORD_CHANNEL,))
    slack_fake = FakeSlack(port=slack_port)
    slack_fake.add_channel(SLACK_CHANNEL, name="newsdesk")
    feed_server.set("wire.xml", rss([]))
    config = write_config(
        tmp_path,
        feed_server.url("wire.xml"),
        f"discord:{DISCORD_CHANNEL}",
        f"""
[discord]
api_base = "{discord_fake.api_base}"
gateway_url = "{discord_fake.gateway_url}"
[slack]
api_base = "{slack_fake.api_base}"
[chat]
reconnect_min = "50ms"
reconnect_max = "500ms"
""",
        channels=[f"slack:{SLACK_CHANNEL}"],
        http_port=http_port,
    )
    env = {k: v for k, v in os.environ.items() if k not in PROXIES}
    env.update(
        DISCORD_TOKEN=discord_fake.token,
        SLACK_BOT_TOKEN=slack_fake.bot_token,
        SLACK_APP_TOKEN=slack_fake.app_token,
    )
    bot = BotProcess(config, env)
    bot.env = env  # without the proxies BotProcess would add back from os.environ
    desk = Desk(bot, discord_fake, slack_fake, feed_server, http_port, tmp_path / "bot.db")
    try:
        yield desk
    finally:
        if bot.running:
            await bot.stop()
        await slack_fake.close()
        await discord_fake.close()


async def test_chat_down_at_start_then_up_connects_and_delivers_once(desk: Desk) -> None:
    await desk.bot.start()
    down = await desk.wait_health(503, "discord is disconnected", "slack is disconnected")
    assert down["connections"] == {"discord": False, "slack": False}
    await desk.wait_polls(1)  # the first poll: a baseline, it alerts nothing
    await desk.publish_while_down()

    await desk.discord.start()
    await desk.slack.start()

    await desk.wait_delivered_once()
    up = await desk.wait_health(200)
    assert up["connections"] == {"discord": True, "slack": True}
    assert "Session is closed" not in desk.bot.log


async def test_chat_gone_while_running_comes_back_and_delivers_once(desk: Desk) -> None:
    await desk.discord.start()
    await desk.slack.start()
    await desk.bot.start()
    await desk.wait_health(200)
    await desk.wait_polls(1)

    await desk.discord.close()
    await desk.slack.close()
    await desk.wait_health(503, "discord is disconnected", "slack is disconnected")
    await desk.publish_while_down()
    assert desk.posted() == (0, 0)

    await desk.discord.start()
    await desk.slack.start()

    await desk.wait_delivered_once()
    await desk.wait_health(200)
    metrics = await desk.metrics()
    for platform in ("discord", "slack"):
        reconnects = re.search(
            rf'newsbot_chat_reconnects_total{{platform="{platform}"}} (\S+)', metrics
        )
        assert reconnects is not None and float(reconnects.group(1)) >= 1, metrics
        down = re.search(
            rf'newsbot_chat_disconnected_seconds_total{{platform="{platform}"}} (\S+)', metrics
        )
        assert down is not None and float(down.group(1)) > 0
        assert f'newsbot_chat_connected{{platform="{platform}"}} 1.0' in metrics


async def test_a_refused_token_stops_retrying_with_one_clear_line(desk: Desk) -> None:
    desk.bot.env.update(
        DISCORD_TOKEN="not-the-discord-token-0123456789", SLACK_BOT_TOKEN="xoxb-not-the-one-4567"
    )
    await desk.discord.start()
    await desk.slack.start()
    await desk.bot.start()

    await desk.bot.wait_for(
        lambda: "Discord login failed" in desk.bot.log and "Slack login failed" in desk.bot.log,
        "both logins refused",
    )
    health = await desk.wait_health(503, "discord is disconnected", "slack is disconnected")
    await desk.wait_polls(3)  # with a 50ms backoff, a bot still retrying would have by now

    assert desk.discord.requests.count(("GET", "/users/@me")) == 1
    assert len(desk.slack.calls_to("auth.test")) == 1
    log = desk.bot.config.with_suffix(".log").read_text()
    [discord_line] = [line for line in log.splitlines() if "Discord login failed" in line]
    assert "DISCORD_TOKEN" in discord_line
    [slack_line] = [line for line in log.splitlines() if "Slack login failed" in line]
    assert "SLACK_BOT_TOKEN was refused" in slack_line
    assert "not-the-discord-token" not in log and "xoxb-not-the-one" not in log
    assert "DISCORD_TOKEN" in health["chat"]["discord"]["reason"]
    assert "SLACK_BOT_TOKEN" in health["chat"]["slack"]["reason"]
