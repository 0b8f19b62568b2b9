"""Urgent pings, opt-in (issue 18), end to end: one real NewsBot posting to the fake Discord, the
fake Slack and the console at once, through real discord.py, slack_bolt and SQLite. What is
asserted is what each platform was sent: Discord's content line and `allowed_mentions`, Slack's
text and blocks, the console's jsonl.

How each is broken on purpose: a routine story must ping nobody; hostile feed text (@everyone,
<@&id>, <!here>) must ping nobody even on a card that pings; an edit must not ping again; the
other platform's ids must be left out, not sent (and not crash)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.app import NewsBot, build_platforms
from bot.chat.slack import SlackPlatform
from config.settings import settings_from_dict
from tests.fakes.discord_server import FakeDiscord, FakeMessage
from tests.fakes.slack_server import FakeSlack, FakeSlackMessage
from tests.feedgen import Item, minutes_ago, rss

pytestmark = pytest.mark.timeout(30)

DISCORD_CHANNEL = 1_400_000_000_000_000_001
SLACK_CHANNEL = "C0NEWSDESK"
ROLE = 3_100_000_000_000_000_001  # the desk's on-call role
EDITOR = 2_100_000_000_000_000_001  # one person on Discord
GROUP = "S0FLOODS"  # a Slack user group
ANN = "U0ANN"  # one person on Slack
NOBODY = {"parse": []}  # Discord's allowed_mentions that let nothing ping
# What feed text may never produce on Slack (ours are only <!subteam^S0FLOODS> and <@U0ANN>).
SLACK_BROADCASTS = ("<!here", "<!channel", "<!everyone", "<@U0EVIL", "<!subteam^S0EVIL")


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(var, raising=False)


class Newsroom:
    """A bot posting one watchlist (or more) to a Discord channel, a Slack channel and the
    console; `publish` puts items on top of the feed and runs one poll and delivery pass."""

    def __init__(self, tmp_path, feeds, discord: FakeDiscord, slack: FakeSlack) -> None:
        self.tmp_path = tmp_path
        self.feeds = feeds
        self.discord = discord
        self.slack = slack
        self.items: list[Item] = []
        self.out = io.StringIO()
        self.bot: NewsBot | None = None

    async def start(self, *watchlists: dict[str, Any], alerts: dict | None = None) -> NewsBot:
        channels = [f"discord:{DISCORD_CHANNEL}", f"slack:{SLACK_CHANNEL}", "console:desk"]
        settings = settings_from_dict(
            {
                "storage": {"path": str(self.tmp_path / "bot.db")},
                "console": {"format": "jsonl"},
                "http": {"enabled": False},
                "discord": {
                    "api_base": self.discord.api_base,
                    "gateway_url": self.discord.gateway_url,
                },
                "slack": {"api_base": self.slack.api_base},
                "alerts": alerts or {},
                "feeds": [{"name": "Wire", "url": self.feeds.url("wire.xml")}],
                "watchlists": [{"channels": channels, **w} for w in watchlists],
            },
            {
                "DISCORD_TOKEN": self.discord.token,
                "SLACK_BOT_TOKEN": self.slack.bot_token,
                "SLACK_APP_TOKEN": self.slack.app_token,
            },
        )
        self.feeds.set("wire.xml", rss([]))
        platforms = build_platforms(settings)
        for platform in platforms:
            if isinstance(platform, SlackPlatform):
                # One post per second per channel is Slack's rule, not the fake's: no waiting.
                platform.sender.pace = 0
        self.bot = NewsBot(settings, stdout=self.out, platforms=platforms)
        await self.bot.open()
        await self.bot.run_once()  # the baseline
        return self.bot

    async def publish(self, *items: Item) -> None:
        assert self.bot is not None
        self.items = [*items, *self.items]
        self.feeds.set("wire.xml", rss(self.items))
        await self.bot.run_once()

    def discord_card(self, title: str) -> FakeMessage:
        [found] = [
            m for m in self.discord.messages_in(DISCORD_CHANNEL) if title in m.embeds[0]["title"]
        ]
        return found

    def slack_card(self, title: str) -> FakeSlackMessage:
        [found] = [m for m in self.slack.messages_in(SLACK_CHANNEL) if title in (m.text or "")]
        return found

    def console_card(self, title: str) -> dict[str, Any]:
        cards = [json.loads(line) for line in self.out.getvalue().splitlines()]
        [found] = [c for c in cards if title in c.get("title", "")]
        return found


def story(title: str, guid: str, description: str = "") -> Item:
    return Item(
        title,
        description or f"Report: {title}.",
        f"https://wire.example/{guid}",
        guid,
        minutes_ago(2),
    )


@pytest.fixture
async def newsroom(tmp_path, feed_server) -> AsyncIterator[Newsroom]:
    async with FakeDiscord(text_channel_ids=(DISCORD_CHANNEL,)) as discord_fake, FakeSlack() as sf:
        sf.add_channel(SLACK_CHANNEL, name="newsdesk")
        room = Newsroom(tmp_path, feed_server, discord_fake, sf)
        try:
            yield room
        finally:
            if room.bot is not None:
                await room.bot.close()


def slack_mentions(message: FakeSlackMessage) -> str:
    """Everything of a Slack message that could mention someone: its text and every block."""
    return (message.text or "") + json.dumps(message.blocks)


FLOODS = {"name": "Floods", "query": "flood", "ping": [f"role:{ROLE}", f"usergroup:{GROUP}"]}


async def test_an_urgent_story_pings_exactly_the_configured_role_and_a_routine_one_nobody(
    newsroom: Newsroom, caplog: pytest.LogCaptureFixture
) -> None:
    await newsroom.start(FLOODS)  # ping_when left out: urgent stories only
    caplog.set_level(logging.INFO)
    await newsroom.publish(
        story("BREAKING: Carlisle flood wall fails", "u1"),
        story("Flood gauges steady on the Wye", "r1"),
    )

    urgent = newsroom.discord_card("Carlisle flood wall fails")
    assert urgent.content == f"<@&{ROLE}>"
    assert urgent.allowed_mentions == {"parse": [], "roles": [ROLE]}
    routine = newsroom.discord_card("Flood gauges steady")
    assert not routine.content
    assert routine.allowed_mentions == NOBODY

    slack_urgent = newsroom.slack_card("Carlisle flood wall fails")
    assert slack_urgent.text is not None and slack_urgent.text.startswith(f"<!subteam^{GROUP}> ")
    assert slack_urgent.blocks is not None
    assert slack_urgent.blocks[0]["text"]["text"] == f"<!subteam^{GROUP}>"
    assert str(ROLE) not in slack_mentions(slack_urgent)  # Discord's role is not Slack's
    slack_routine = newsroom.slack_card("Flood gauges steady")
    assert "<!subteam" not in slack_mentions(slack_routine)
    assert "<@" not in slack_mentions(slack_routine)

    # Each platform left the other's ping out, and said so.
    notes = [r.getMessage() for r in caplog.records if "not pinging" in r.getMessage()]
    assert any(f"usergroup:{GROUP}" in n and n.startswith("Discord") for n in notes), notes
    assert any(f"role:{ROLE}" in n and n.startswith("Slack") for n in notes), notes

    assert newsroom.console_card("Carlisle")["pings"] == [f"role:{ROLE}", f"usergroup:{GROUP}"]
    assert newsroom.console_card("Flood gauges")["pings"] == []


async def test_hostile_feed_text_pings_nobody_even_on_a_card_that_pings(
    newsroom: Newsroom,
) -> None:
    await newsroom.start(FLOODS)
    headline = f"BREAKING: flood @everyone @here <@&{ROLE + 1}> <@{EDITOR}> <!here> <!channel>"
    lead = "<@U0EVIL> <!subteam^S0EVIL> <!everyone> @everyone <#1400000000000000002>"
    await newsroom.publish(story(headline, "h1", lead))

    card = newsroom.discord_card("BREAKING: flood")
    assert card.content == f"<@&{ROLE}>"  # ours, and only ours
    assert card.allowed_mentions == {"parse": [], "roles": [ROLE]}
    embed = json.dumps(card.embeds)
    assert f"<@&{ROLE + 1}>" not in embed and f"<@{EDITOR}>" not in embed
    assert "@everyone" not in embed and "@here" not in embed

    slack = newsroom.slack_card("BREAKING: flood")
    text = slack_mentions(slack)
    assert [b for b in SLACK_BROADCASTS if b in text] == []
    assert text.count("<!subteam^") == 2  # ours: the first section and the notification text
    assert "<@" not in text


async def test_ping_when_always_pings_on_a_routine_story_and_several_watchlists_add_up(
    newsroom: Newsroom,
) -> None:
    await newsroom.start(
        FLOODS,
        {
            "name": "Rivers",
            "query": "Wye OR Severn",
            "ping": [f"user:{EDITOR}", f"user:{ANN}"],
            "ping_when": "always",
        },
    )
    await newsroom.publish(
        story("Flood gauges steady on the Wye", "r1"),  # both; routine: Rivers pings
        story("URGENT: Severn flood barrier breached", "u1"),  # both; urgent: both ping
    )

    routine = newsroom.discord_card("Flood gauges steady")
    assert routine.content == f"<@{EDITOR}>"
    assert routine.allowed_mentions == {"parse": [], "users": [EDITOR]}
    assert routine.embeds[0]["footer"]["text"] == "Watchlists: Floods, Rivers"  # one card
    urgent = newsroom.discord_card("Severn flood barrier breached")
    assert urgent.content == f"<@&{ROLE}> <@{EDITOR}>"
    assert urgent.allowed_mentions == {"parse": [], "users": [EDITOR], "roles": [ROLE]}

    assert newsroom.slack_card("Flood gauges steady").blocks[0]["text"]["text"] == f"<@{ANN}>"
    assert newsroom.slack_card("Severn flood barrier").blocks[0]["text"]["text"] == (
        f"<!subteam^{GROUP}> <@{ANN}>"
    )


async def test_an_edit_of_a_card_that_pinged_does_not_ping_again(newsroom: Newsroom) -> None:
    await newsroom.start({**FLOODS, "ping_when": "always"})
    first = story("BREAKING: Carlisle flood wall fails", "e1")
    await newsroom.publish(first)
    posted = newsroom.discord_card("Carlisle flood wall fails")
    assert posted.content == f"<@&{ROLE}>"

    newsroom.items = [
        story("BREAKING: Carlisle flood wall fails, hundreds evacuated", "e1", first.description)
    ]
    newsroom.feeds.set("wire.xml", rss(newsroom.items))
    assert newsroom.bot is not None
    await newsroom.bot.run_once()

    assert len(newsroom.discord.messages_in(DISCORD_CHANNEL)) == 1  # edited, not re-posted
    [edit] = newsroom.discord.edits
    assert edit.payload["embeds"][0]["title"].startswith("Updated: ")
    assert "content" not in edit.payload  # the first post's line stays; nothing new to ping
    assert edit.payload["allowed_mentions"] == NOBODY

    [update] = newsroom.slack.updates
    assert "Updated" in (update.text or "")
    assert "<!subteam" not in (update.text or "") + json.dumps(update.blocks)
    assert len(newsroom.slack.messages_in(SLACK_CHANNEL)) == 1


async def test_a_thread_reply_under_a_card_that_pinged_pings_nobody(newsroom: Newsroom) -> None:
    """updates = "thread" (the other half of issue 18): a rewrite is also a reply under the
    card. Pings are for the new card only: neither the edit nor the reply mentions anyone."""
    await newsroom.start({**FLOODS, "ping_when": "always", "updates": "thread"})
    first = story("BREAKING: Carlisle flood wall fails", "t1")
    await newsroom.publish(first)
    posted = newsroom.discord_card("Carlisle flood wall fails")
    assert posted.content == f"<@&{ROLE}>"
    slack_posted = newsroom.slack_card("Carlisle flood wall fails")
    assert f"<!subteam^{GROUP}>" in slack_mentions(slack_posted)

    newsroom.items = [
        story("BREAKING: Carlisle flood wall fails, hundreds evacuated", "t1", first.description)
    ]
    newsroom.feeds.set("wire.xml", rss(newsroom.items))
    assert newsroom.bot is not None
    await newsroom.bot.run_once()

    [reply] = newsroom.discord.replies_to(posted.id)
    assert "hundreds evacuated" in reply.embeds[0]["title"]
    assert not reply.content and reply.allowed_mentions == NOBODY
    [edit] = newsroom.discord.edits
    assert "content" not in edit.payload and edit.payload["allowed_mentions"] == NOBODY
    [slack_reply] = newsroom.slack.replies_to(SLACK_CHANNEL, slack_posted.ts)
    assert "hundreds evacuated" in (slack_reply.text or "")
    assert "<!subteam" not in slack_mentions(slack_reply)
    assert "<@" not in slack_mentions(slack_reply)
    [update] = newsroom.slack.updates
    assert "<!subteam" not in (update.text or "") + json.dumps(update.blocks)
    # Still one top-level message each: the reply is in the thread, not the channel.
    assert len(newsroom.discord.messages_in(DISCORD_CHANNEL)) == 1
    assert len(newsroom.slack.top_level_in(SLACK_CHANNEL)) == 1


async def test_an_admin_turns_pings_on_in_chat_and_the_next_urgent_story_pings(
    newsroom: Newsroom,
) -> None:
    admin, reporter = "U0ADA", "U0RITA"
    newsroom.slack.add_user(admin, name="ada", is_admin=True)
    newsroom.slack.add_user(reporter, name="rita")
    await newsroom.start({"name": "Config desk", "query": "nothing-matches-this"})
    await newsroom.slack.wait_connected()
    added = await newsroom.slack.slash_command(
        f"watchlist add Floods <#{SLACK_CHANNEL}|newsdesk> flood", user_id=admin, quiet=0.05
    )
    assert "Watchlist 'Floods' added" in added.text

    refused = await newsroom.slack.slash_command(
        f"watchlist ping Floods <!subteam^{GROUP}|@floods> always", user_id=reporter, quiet=0.05
    )
    assert "Only admins can ping watchlists" in refused.text
    bad = await newsroom.slack.slash_command(
        "watchlist ping Floods role:abc", user_id=admin, quiet=0.05
    )
    assert "'role:abc' is not a ping any platform here can send" in bad.text
    # Typed with Slack's picker: the user group arrives as <!subteam^S0FLOODS|@floods>.
    done = await newsroom.slack.slash_command(
        f"watchlist ping Floods <!subteam^{GROUP}|@floods>", user_id=admin, quiet=0.05
    )
    assert f"now pings usergroup:{GROUP} on urgent stories only" in done.text

    await newsroom.publish(
        story("FLASH: Carlisle flood wall fails", "c1"), story("Flood gauges steady", "c2")
    )
    urgent = newsroom.slack_card("Carlisle flood wall fails")
    assert urgent.blocks is not None and urgent.blocks[0]["text"]["text"] == f"<!subteam^{GROUP}>"
    assert "<!subteam" not in slack_mentions(newsroom.slack_card("Flood gauges steady"))

    off = await newsroom.slack.slash_command("watchlist ping Floods off", user_id=admin, quiet=0.05)
    assert "pings nobody now" in off.text
    await newsroom.publish(story("BREAKING: second flood wall fails", "c3"))
    assert "<!subteam" not in slack_mentions(newsroom.slack_card("second flood wall fails"))


async def test_a_burst_digest_pings_once_for_the_urgent_story_it_lists(newsroom: Newsroom) -> None:
    await newsroom.start(FLOODS, alerts={"burst_limit": 1})
    await newsroom.publish(
        story("Flood gauges steady on the Wye", "b1"),
        story("BREAKING: Carlisle flood wall fails", "b2"),
        story("FLASH: Cockermouth flood barrier overtopped", "b3"),
        story("Ouse flood barrier raised in York", "b4"),
    )
    # One full card (an urgent one: the most prominent), the rest in one digest.
    full, digest = newsroom.discord.messages_in(DISCORD_CHANNEL)
    assert full.content == f"<@&{ROLE}>"
    assert digest.embeds[0]["title"] == "3 more stories in a burst"
    assert digest.content == f"<@&{ROLE}>"  # once, for the urgent story among its lines
    assert digest.allowed_mentions == {"parse": [], "roles": [ROLE]}

    slack_full, slack_digest = newsroom.slack.messages_in(SLACK_CHANNEL)
    assert slack_full.blocks is not None and slack_full.blocks[0]["text"]["text"] == (
        f"<!subteam^{GROUP}>"
    )
    assert slack_digest.blocks is not None
    assert slack_digest.blocks[0]["text"]["text"] == f"<!subteam^{GROUP}>"
    assert slack_mentions(slack_digest).count("<!subteam^") == 2  # the section and the text

    # A burst of routine stories: its digest pings nobody.
    await newsroom.publish(
        *(story(f"Flood gauges steady on river {n}", f"q{n}") for n in range(4)),
    )
    [later] = newsroom.discord.messages_in(DISCORD_CHANNEL)[2:]  # the channel is still busy
    assert later.embeds[0]["title"] == "4 more stories in a burst"
    assert not later.content
    assert later.allowed_mentions == NOBODY
