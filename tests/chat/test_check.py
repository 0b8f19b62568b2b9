"""`newsbot check`, the real command in a child process, against the fake Discord, the fake
Slack and a local feed server: what a desk sees before news breaks."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fakes.discord_server import FakeDiscord
from tests.fakes.feed_server import FeedServer
from tests.fakes.slack_server import FakeSlack
from tests.feedgen import Item, minutes_ago, rss

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parents[2]
DESK = 1_400_000_000_000_000_001
WORLD = 1_400_000_000_000_000_002
NOWHERE = 1_400_000_000_000_000_404  # no such channel
SLACK_DESK = "C0NEWSDESK"
SLACK_OUTSIDE = "C0OUTSIDE"  # the bot was never invited
VIEW_CHANNEL, SEND_MESSAGES = 1 << 10, 1 << 11
CREATE_PUBLIC_THREADS = 1 << 35
PROXIES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


@dataclass
class Result:
    code: int
    out: str
    err: str

    def row(self, name: str) -> str:
        """The table's line for `name` and, for a failure, the line saying what to do."""
        lines = self.out.splitlines()
        for n, line in enumerate(lines):
            if f" {name} " in f" {line} ":
                fix = lines[n + 1] if n + 1 < len(lines) and "->" in lines[n + 1] else ""
                return f"{line}\n{fix}"
        raise AssertionError(f"no row for {name!r} in:\n{self.out}")


@dataclass
class World:
    discord: FakeDiscord
    slack: FakeSlack
    feeds: FeedServer
    tmp_path: Path

    def config(
        self, discord_channels: list[int], slack_channels: list[str], *, updates: str = "edit"
    ) -> Path:
        channels = [f"discord:{c}" for c in discord_channels]
        channels += [f"slack:{c}" for c in slack_channels]
        path = self.tmp_path / "newsbot.toml"
        path.write_text(
            f"""
[storage]
path = "{self.tmp_path / "bot.db"}"
[http]
enabled = false
[discord]
api_base = "{self.discord.api_base}"
gateway_url = "{self.discord.gateway_url}"
[slack]
api_base = "{self.slack.api_base}"
[[feeds]]
name = "Wire"
url = "{self.feeds.url("wire.xml")}"
[[watchlists]]
name = "Desk"
query = "Pyongyang"
channels = {channels!r}
updates = "{updates}"
""".replace("'", '"'),
            "utf-8",
        )
        return path

    def env(self, **overrides: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in PROXIES}
        env.update(
            DISCORD_TOKEN=self.discord.token,
            SLACK_BOT_TOKEN=self.slack.bot_token,
            SLACK_APP_TOKEN=self.slack.app_token,
        )
        env.update(overrides)
        return env

    async def check(self, config: Path, *args: str, env: dict[str, str] | None = None) -> Result:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "check",
            "--config",
            str(config),
            *args,
            cwd=REPO,
            env=env or self.env(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        return Result(proc.returncode or 0, out.decode(), err.decode())


@pytest.fixture
async def world(tmp_path, feed_server) -> AsyncIterator[World]:
    feed_server.set(
        "wire.xml",
        rss([Item("Pyongyang story", "Lead.", "https://w.example/1", "g1", minutes_ago(5))]),
    )
    async with FakeDiscord(text_channel_ids=(DESK, WORLD)) as discord_fake, FakeSlack() as slack:
        slack.add_channel(SLACK_DESK, name="newsdesk")
        slack.add_channel(SLACK_OUTSIDE, name="outside", member=False)
        yield World(discord_fake, slack, feed_server, tmp_path)


async def test_a_config_whose_feeds_tokens_and_channels_all_work_passes(world: World) -> None:
    result = await world.check(world.config([DESK, WORLD], [SLACK_DESK]))

    assert result.code == 0, result.out + result.err
    assert "ok" in result.row("Wire") and "1 item, newest 5m" in result.row("Wire")
    assert "bot newsbot" in result.row("token")
    assert "@newsbot in Fake Newsroom (T0001)" in result.row("bot token")
    for channel in (f"discord:{DESK}", f"discord:{WORLD}", f"slack:{SLACK_DESK}"):
        assert "  ok  " in result.row(channel)
    assert "#news-1 in Newsroom" in result.row(f"discord:{DESK}")
    assert "all 8 checks passed" in result.out
    # A check posts nothing unless asked to.
    assert world.discord.messages == [] and world.slack.messages == []


async def test_a_missing_channel_or_one_the_bot_may_not_post_to_fails_and_is_named(
    world: World,
) -> None:
    world.discord.deny_permissions(WORLD, SEND_MESSAGES)
    world.feeds.set("wire.xml", "gone", status=404)
    config = world.config([DESK, NOWHERE, WORLD], [SLACK_DESK, SLACK_OUTSIDE, "C0NOSUCH"])

    result = await world.check(config)

    assert result.code == 1, result.out + result.err
    assert "FAIL" in result.row("Wire") and "404" in result.row("Wire")
    nowhere = result.row(f"discord:{NOWHERE}")
    assert "FAIL" in nowhere and "no such channel" in nowhere and "Copy Channel ID" in nowhere
    world_row = result.row(f"discord:{WORLD}")
    assert "FAIL" in world_row and "lacks Send Messages" in world_row
    assert "give the bot Send Messages in #news-2" in world_row
    outside = result.row(f"slack:{SLACK_OUTSIDE}")
    assert "FAIL" in outside and "not a member" in outside and "/invite @newsbot" in outside
    assert "FAIL" in result.row("slack:C0NOSUCH")
    for fine in (f"discord:{DESK}", f"slack:{SLACK_DESK}"):
        assert "  ok  " in result.row(fine)
    summary = result.out.strip().splitlines()[-1]
    assert summary.startswith("5 of 11 checks failed: feed Wire, discord:")
    for name in (str(NOWHERE), str(WORLD), SLACK_OUTSIDE, "C0NOSUCH"):
        assert name in summary


async def test_a_channel_the_bot_cannot_see_fails_and_says_so(world: World) -> None:
    world.discord.deny_permissions(WORLD, VIEW_CHANNEL)

    result = await world.check(world.config([WORLD], []))

    assert result.code == 1
    assert "cannot see this channel" in result.row(f"discord:{WORLD}")


async def test_a_channel_whose_watchlist_updates_in_threads_needs_to_start_threads(
    world: World,
) -> None:
    # With updates = "thread" every rewrite of an alerted story is a reply in a thread started
    # on its card: a channel where the bot may post but not start threads fails the check,
    # where before it passed and the first update failed hours later.
    world.discord.deny_permissions(WORLD, CREATE_PUBLIC_THREADS)

    threaded = await world.check(world.config([DESK, WORLD], [], updates="thread"))
    edited = await world.check(world.config([DESK, WORLD], []))

    assert threaded.code == 1, threaded.out + threaded.err
    world_row = threaded.row(f"discord:{WORLD}")
    assert "FAIL" in world_row and "lacks Create Public Threads" in world_row
    assert "Create Public Threads, Send Messages in Threads" in threaded.row(f"discord:{DESK}")
    assert "  ok  " in threaded.row(f"discord:{DESK}")
    assert edited.code == 0, edited.out + edited.err  # cards edited in place need no threads


async def test_refused_tokens_fail_without_printing_them(world: World) -> None:
    env = world.env(DISCORD_TOKEN="not-the-discord-token-1234", SLACK_BOT_TOKEN="xoxb-wrong-5678")

    result = await world.check(world.config([DESK], [SLACK_DESK]), env=env)

    assert result.code == 1
    assert "Discord refused DISCORD_TOKEN (401" in result.row("token")
    assert "Slack refused SLACK_BOT_TOKEN (invalid_auth)" in result.row("bot token")
    assert "not-the-discord-token-1234" not in result.out + result.err
    assert "xoxb-wrong-5678" not in result.out + result.err


async def test_send_posts_exactly_one_test_card_to_each_channel(world: World) -> None:
    result = await world.check(world.config([DESK, WORLD], [SLACK_DESK]), "--send")

    assert result.code == 0, result.out + result.err
    for channel in (DESK, WORLD):
        [card] = world.discord.messages_in(channel)
        assert card.embeds[0]["title"] == "newsbot check: test card"
    [card] = world.slack.messages_in(SLACK_DESK)
    assert "newsbot check: test card" in card.text
    assert "test card posted" in result.row(f"slack:{SLACK_DESK}")


async def test_a_config_that_does_not_load_is_named_with_its_problem(world: World) -> None:
    config = world.tmp_path / "broken.toml"
    config.write_text("[alerts]\nburst_limit = 0\n", "utf-8")

    result = await world.check(config)

    assert result.code == 2
    assert "alerts.burst_limit" in result.err
