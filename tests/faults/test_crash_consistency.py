"""Crash consistency: the real bot as a process, killed with SIGKILL while it posts a burst, then
restarted; at the fake every alert arrives exactly once.

The crash window that matters is between the platform accepting a message and the bot recording
it as sent: the restarted bot re-sends those deliveries with the same idempotency key, and the
platform (here the fakes, which behave as Discord's enforce_nonce and Slack's message metadata
do) shows the message is already there.

Discord: 60 stories and 3 kills by default; NEWSBOT_CRASH_BURST / NEWSBOT_CRASH_KILLS run a
bigger version. Slack takes one message a second per channel, so its burst is 8
(NEWSBOT_CRASH_SLACK_BURST)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterable

import pytest

from tests.fakes.discord_server import FakeDiscord
from tests.fakes.slack_server import FakeSlack
from tests.faults.process import BotProcess, burst, story_numbers, write_config
from tests.feedgen import Item, minutes_ago, rss

DISCORD_CHANNEL = 1_400_000_000_000_000_001
SLACK_CHANNEL = "C0CRASHDESK"
BURST = int(os.environ.get("NEWSBOT_CRASH_BURST", "60"))
KILLS = int(os.environ.get("NEWSBOT_CRASH_KILLS", "3"))
SLACK_BURST = int(os.environ.get("NEWSBOT_CRASH_SLACK_BURST", "8"))

pytestmark = pytest.mark.timeout(120)


async def kill_during_burst(
    bot: BotProcess,
    feed_server,
    size: int,
    kill_at: list[int],
    posted_texts: Callable[[], Iterable[str]],
) -> list[int]:
    """Start the bot, let its baseline poll pass, publish a burst of `size` matching stories,
    SIGKILL and restart it once the platform holds each count in `kill_at`, then let it finish.
    Returns how many messages had been posted at each kill."""
    feed_server.set(
        "wire.xml",
        rss([Item("Quiet start", "nothing", "https://w.example/0", "0", minutes_ago(5))]),
    )
    await bot.start()
    await bot.wait_for(lambda: feed_server.count("wire.xml") >= 2, "the baseline poll")
    feed_server.set("wire.xml", burst(size))

    def posted() -> int:
        return sum(story_numbers(posted_texts()).values())

    at_kill = []
    for target in kill_at:
        await bot.wait_for(lambda t=target: posted() >= t, f"{target} stories posted")
        await bot.kill()
        at_kill.append(posted())
        await bot.start()
    await bot.wait_for(
        lambda: len(story_numbers(posted_texts())) >= size, "the whole burst", timeout=60
    )
    await asyncio.sleep(1.5)  # a late duplicate would show up here
    assert await bot.stop() == 0, bot.log
    return at_kill


def assert_each_once(texts: Iterable[str], size: int) -> None:
    seen = story_numbers(texts)
    assert sorted(seen) == list(range(1, size + 1))
    assert set(seen.values()) == {1}, [n for n, count in seen.items() if count > 1]


async def test_sigkill_during_a_discord_burst_posts_every_alert_exactly_once(tmp_path, feed_server):
    async with FakeDiscord(text_channel_ids=(DISCORD_CHANNEL,)) as fake:
        platform = f'[discord]\napi_base = "{fake.api_base}"\ngateway_url = "{fake.gateway_url}"'
        config = write_config(
            tmp_path, feed_server.url("wire.xml"), f"discord:{DISCORD_CHANNEL}", platform
        )
        bot = BotProcess(config, {"DISCORD_TOKEN": fake.token})

        def texts() -> list[str]:  # a card, or a digest listing several
            return [str(m.embeds[0]) for m in fake.messages_in(DISCORD_CHANNEL)]

        # Kill at different depths of the burst: early, middle, late.
        kill_at = [max(1, min(BURST, 90) * k // (KILLS + 1)) for k in range(1, KILLS + 1)]
        at_kill = await kill_during_burst(bot, feed_server, BURST, kill_at, texts)
        assert at_kill[0] < BURST, at_kill  # the first kill landed mid-burst
        assert_each_once(texts(), BURST)


async def test_sigkill_while_posting_to_slack_posts_every_alert_exactly_once(
    tmp_path, feed_server, monkeypatch
):
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(var, raising=False)
    async with FakeSlack() as fake:
        fake.add_channel(SLACK_CHANNEL, name="desk")
        platform = f'[slack]\napi_base = "{fake.api_base}"'
        config = write_config(
            tmp_path, feed_server.url("wire.xml"), f"slack:{SLACK_CHANNEL}", platform
        )
        bot = BotProcess(
            config, {"SLACK_BOT_TOKEN": fake.bot_token, "SLACK_APP_TOKEN": fake.app_token}
        )

        def texts() -> list[str]:
            return [m.text or "" for m in fake.messages_in(SLACK_CHANNEL)]

        at_kill = await kill_during_burst(
            bot, feed_server, SLACK_BURST, [2, SLACK_BURST // 2 + 1], texts
        )
        assert at_kill[0] < SLACK_BURST, at_kill
        assert_each_once(texts(), SLACK_BURST)
