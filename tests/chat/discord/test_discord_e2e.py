"""The real bot on Discord: NewsBot with the Discord platform, real discord.py, real SQLite and a
local feed server, against the fake Discord REST + gateway (tests/fakes/discord_server.py).

Nothing of ours is mocked: what is faked is the far side of the network. Polls are driven with
`bot.run_once()` (which starts the platform, polls every feed and drains the outbox); slash
commands arrive as real INTERACTION_CREATE events on the gateway."""

from __future__ import annotations

import asyncio
import io
import logging
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import discord.gateway
import discord.http
import pytest
import yarl

from bot.app import NewsBot
from bot.chat.discord import DiscordPlatform
from bot.core.models import DeliveryStatus
from config.settings import Settings, settings_from_dict
from tests.chat.discord.markdown import masked_link_targets
from tests.chat.hostile import HOSTILE_LINK
from tests.fakes.discord_server import FakeDiscord, FakeMessage, InteractionReply, point_discord_at
from tests.fakes.feed_server import FeedServer
from tests.faults.process import free_port

pytestmark = pytest.mark.timeout(20)

CH_DESK = 1_400_000_000_000_000_001
CH_WORLD = 1_400_000_000_000_000_002
CH_OPS = 1_400_000_000_000_000_003
READER = 2_000_000_000_000_000_001  # an ordinary member
EDITOR = 2_000_000_000_000_000_002  # has Manage Server
ADMIN_ROLE = 3_000_000_000_000_000_001
FOREIGN_GUILD = 1_300_000_000_000_000_099  # somebody else's server
CH_FOREIGN = 1_400_000_000_000_000_099  # a channel there
STRANGER = 2_000_000_000_000_000_099  # has Manage Server there; no member of the desk's server
MANAGE_GUILD = 1 << 5
PRIVILEGED_INTENTS = (1 << 1) | (1 << 8) | (1 << 15)
COMMANDS = {
    "subscribe",
    "unsubscribe",
    "subscriptions",
    "recent",
    "status",
    "why",
    "watchlist",
    "feed",
}


# --- feeds ----------------------------------------------------------------------------------------


@dataclass
class Item:
    title: str
    guid: str
    description: str = ""  # default: a lead of its own, so stories never look alike
    link: str | None = None
    image: str | None = None
    published: datetime = field(default_factory=lambda: datetime.now(UTC) - timedelta(minutes=2))


def rss(items: list[Item]) -> bytes:
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/"><channel>',
        "<title>Test Wire</title><link>https://wire.example/</link><description>t</description>",
    ]
    for item in items:
        link = item.link or f"https://wire.example/{item.guid}"
        parts += [
            "<item>",
            f"<title>{escape(item.title)}</title>",
            f"<link>{escape(link)}</link>",
            f'<guid isPermaLink="false">{escape(item.guid)}</guid>',
            f"<description>{escape(item.description or 'Report: ' + item.title)}</description>",
            f"<pubDate>{format_datetime(item.published, usegmt=True)}</pubDate>",
        ]
        if item.image:
            parts.append(f"<media:thumbnail url={quoteattr(item.image)} />")
        parts.append("</item>")
    parts.append("</channel></rss>")
    return "\n".join(parts).encode()


# --- the desk: a running bot ----------------------------------------------------------------------


class Clock:
    """Real time plus an offset the test can move (to make a retry due without sleeping)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


class Desk:
    """A real NewsBot with the Discord platform on a temporary SQLite file."""

    def __init__(self, tmp_path, fake: FakeDiscord, feeds: FeedServer, **overrides: Any) -> None:
        self.fake = fake
        self.feeds = feeds
        self.db = tmp_path / "newsbot.db"
        self.clock = Clock()
        self.items: list[Item] = []
        self.bot: NewsBot | None = None
        self.platform: DiscordPlatform | None = None
        token = overrides.pop("token", fake.token)
        discord_section = {
            "api_base": fake.api_base,
            "gateway_url": fake.gateway_url,
            "admin_role_ids": [ADMIN_ROLE],
            "ops_channel": f"discord:{CH_OPS}",
            **overrides.pop("discord", {}),
        }
        raw = {
            "storage": {"path": str(self.db)},
            "console": {"format": "jsonl"},
            "http": {"enabled": False},
            "alerts": overrides.pop("alerts", {}),
            "fetch": {"allow_networks": ["127.0.0.1/32"], **overrides.pop("fetch", {})},
            "feeds": [
                {"name": "Wire", "url": feeds.url("wire.xml")},
                *overrides.pop("more_feeds", []),
            ],
            "watchlists": overrides.pop(
                "watchlists",
                [{"name": "Floods", "query": "flood", "channels": [f"discord:{CH_DESK}"]}],
            ),
            "discord": discord_section,
            "chat": overrides.pop("chat", {}),
        }
        assert not overrides, overrides
        self.settings: Settings = settings_from_dict(raw, {"DISCORD_TOKEN": token})
        self.feeds.set("wire.xml", rss([]))

    async def start(self, *, wait: bool = True) -> NewsBot:
        """Open the bot and make the baseline poll (which also starts Discord)."""
        self.platform = DiscordPlatform(self.settings, guild_ready_timeout=0.05, defer_after=0.5)
        self.bot = NewsBot(
            self.settings, stdout=io.StringIO(), clock=self.clock, platforms=[self.platform]
        )
        await self.bot.open()
        await self.bot.run_once()
        if wait:
            await self.fake.wait_until(
                lambda: bool(self.fake.command_syncs), what="the slash commands to be synced"
            )
            await self.fake.wait_ready()
            await self.fake.wait_until(lambda: self.platform.connected, what="platform connected")
        return self.bot

    async def publish(self, *items: Item) -> None:
        """Put stories in the feed and run one poll: matches are delivered before this returns."""
        self.items.extend(items)
        self.feeds.set("wire.xml", rss(self.items))
        assert self.bot is not None
        reports = await self.bot.run_once()
        assert all(r.status != "error" for r in reports), reports

    async def close(self) -> None:
        if self.bot is not None:
            bot, self.bot = self.bot, None
            await bot.close()

    async def restart(self) -> NewsBot:
        await self.close()
        return await self.start()

    async def deliveries(self, title: str) -> list:
        assert self.bot is not None and self.bot.storage is not None
        stories = await self.bot.storage.recent_stories(self.clock() - timedelta(days=1))
        [story] = [s for s in stories if s.story.title == title]
        return await self.bot.storage.deliveries_for_story(story.id)

    async def invoke(
        self, command: str, options: dict | None = None, *, user_id: int = READER, **kw: Any
    ) -> InteractionReply:
        kw.setdefault("guild_id", self.fake.guild_id)
        return await self.fake.invoke(command, options or {}, user_id=user_id, **kw)

    async def as_editor(self, command: str, options: dict | None = None) -> InteractionReply:
        return await self.invoke(command, options, user_id=EDITOR, permissions=MANAGE_GUILD)


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    fake = FakeDiscord(text_channel_ids=(CH_DESK, CH_WORLD, CH_OPS))
    await fake.start()
    try:
        with point_discord_at(fake):
            yield fake
    finally:
        await fake.close()


@pytest.fixture
async def desk_factory(tmp_path, fake, feed_server):
    desks: list[Desk] = []

    def make(**overrides: Any) -> Desk:
        desk = Desk(tmp_path, fake, feed_server, **overrides)
        desks.append(desk)
        return desk

    yield make
    for desk in desks:
        await desk.close()


@pytest.fixture
async def desk(desk_factory) -> Desk:
    desk = desk_factory()
    await desk.start()
    return desk


def only(messages: list[FakeMessage]) -> FakeMessage:
    assert len(messages) == 1, [m.embeds or m.content for m in messages]
    return messages[0]


def ops_notices(fake: FakeDiscord) -> list[str]:
    return [m.content or "" for m in fake.messages_in(CH_OPS)]


# --- start-up -------------------------------------------------------------------------------------


async def test_login_syncs_the_commands_globally_without_privileged_intents(
    desk: Desk, fake: FakeDiscord
) -> None:
    assert fake.requests[:2] == [("GET", "/users/@me"), ("GET", "/oauth2/applications/@me")]
    assert {c["name"] for c in fake.global_commands} == COMMANDS
    by_name = {c["name"]: c for c in fake.global_commands}
    for group in ("watchlist", "feed"):
        assert by_name[group]["default_member_permissions"] == str(MANAGE_GUILD)
        assert by_name[group]["dm_permission"] is False
    assert {o["name"] for o in by_name["watchlist"]["options"]} == {
        "add",
        "edit",
        "remove",
        "ping",
        "list",
        "test",
    }
    assert {o["name"] for o in by_name["feed"]["options"]} == {"add", "remove", "list"}
    assert by_name["subscribe"]["default_member_permissions"] is None
    intents = fake.identify_payloads[0]["intents"]
    assert intents & PRIVILEGED_INTENTS == 0
    assert fake.guild_commands == {}
    assert desk.platform is not None and desk.platform.connected


async def test_the_api_base_and_gateway_come_from_the_settings(
    desk_factory, fake: FakeDiscord, caplog
) -> None:
    # Point discord.py somewhere unreachable: only the settings lead it to the fake.
    nowhere = ("http://127.0.0.1:9/api/v10", yarl.URL("ws://127.0.0.1:9/gateway"))
    discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = nowhere
    caplog.set_level(logging.DEBUG)
    desk = desk_factory()
    await desk.start()
    assert fake.api_base == discord.http.Route.BASE
    assert fake.identify_count == 1
    assert fake.token not in caplog.text
    await desk.close()
    # Put back as found, for whatever else runs in this process.
    assert nowhere == (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)


async def test_guild_ids_sync_the_commands_to_those_guilds_at_once(
    desk_factory, fake: FakeDiscord
) -> None:
    desk = desk_factory(discord={"guild_ids": [fake.guild_id]})
    await desk.start()
    assert {c["name"] for c in fake.guild_commands[fake.guild_id]} == COMMANDS
    assert fake.global_commands == []
    reply = await desk.invoke("status")
    assert "newsbot status" in (reply.content or "")


async def test_a_bad_token_is_logged_without_the_token_and_polling_goes_on(
    desk_factory, fake: FakeDiscord, caplog
) -> None:
    caplog.set_level(logging.INFO)
    desk = desk_factory(token="not-the-real-token-0123456789")
    await desk.start(wait=False)
    assert "Discord login failed: Improper token has been passed." in caplog.text
    assert "not-the-real-token-0123456789" not in caplog.text
    assert desk.platform is not None and not desk.platform.connected
    await desk.publish(Item("Flood warnings issued for the Severn", "a1"))  # polling still works
    [delivery] = await desk.deliveries("Flood warnings issued for the Severn")
    assert delivery.status == DeliveryStatus.PENDING  # kept for when the token is fixed
    assert fake.messages == []
    assert fake.identify_count == 0


async def test_an_unreachable_discord_does_not_hold_up_polling(
    desk_factory, fake: FakeDiscord, caplog
) -> None:
    caplog.set_level(logging.INFO)
    desk = desk_factory(discord={"api_base": "http://127.0.0.1:9/api/v10"})  # nothing listens
    loop = asyncio.get_running_loop()
    started = loop.time()
    await desk.start(wait=False)
    await desk.publish(Item("Flood warnings issued for the Severn", "a1"))
    assert loop.time() - started < 3
    assert "Discord login failed: ClientConnectorError" in caplog.text
    assert "retrying in" in caplog.text
    [delivery] = await desk.deliveries("Flood warnings issued for the Severn")
    assert delivery.status == DeliveryStatus.PENDING
    assert fake.requests == []


async def test_a_dropped_gateway_reconnects_and_commands_work_again(
    desk: Desk, fake: FakeDiscord
) -> None:
    assert desk.platform is not None
    await fake.drop_gateway()
    await fake.wait_until(lambda: fake.resume_count == 1, what="a RESUME after the drop")
    await fake.wait_until(lambda: desk.platform.connected, what="the platform to be up again")
    reply = await desk.invoke("status")
    assert "Connections: discord up" in (reply.content or "")
    # Alerts never depended on the gateway: they go over REST.
    await desk.publish(Item("Flood warnings issued for the Severn", "a1"))
    assert len(fake.messages_in(CH_DESK)) == 1


async def test_discord_unreachable_at_start_connects_by_itself_when_it_appears(
    tmp_path, feed_server: FeedServer
) -> None:
    """The login fails while nothing listens; once Discord is there, the same client logs in
    and connects (the failed login used to leave discord.py's HTTP session closed for good)."""
    late = FakeDiscord(port=free_port(), text_channel_ids=(CH_DESK,))
    desk = Desk(
        tmp_path, late, feed_server, chat={"reconnect_min": "20ms", "reconnect_max": "200ms"}
    )
    try:
        await desk.start(wait=False)
        assert desk.platform is not None and not desk.platform.connected
        await late.start()
        await late.wait_until(lambda: desk.platform.connected, what="the bot to connect")
        await desk.publish(Item("Flood warnings issued for the Severn", "a1"))
        assert len(late.messages_in(CH_DESK)) == 1
    finally:
        await desk.close()
        await late.close()


async def test_discord_answering_5xx_at_login_is_retried_until_it_works(
    desk_factory, fake: FakeDiscord
) -> None:
    fake.fail_logins(2, status=503)
    desk = desk_factory(chat={"reconnect_min": "20ms", "reconnect_max": "100ms"})

    await desk.start()

    assert fake.statuses("GET", "/users/@me") == [503, 503, 200]
    await desk.publish(Item("Flood warnings issued for the Severn", "a1"))
    assert len(fake.messages_in(CH_DESK)) == 1


async def test_cards_owed_during_an_outage_go_out_when_the_gateway_is_back(
    desk: Desk, fake: FakeDiscord
) -> None:
    assert desk.bot is not None and desk.bot.worker is not None and desk.platform is not None
    fake.set_down(True)  # message POSTs answer 503
    await desk.publish(Item("Flood warnings issued for the Severn", "a1"))
    [delivery] = await desk.deliveries("Flood warnings issued for the Severn")
    assert delivery.status == DeliveryStatus.PENDING and delivery.attempts == 1
    fake.set_down(False)
    desk.clock.offset = -timedelta(hours=1)  # the retry is an hour off: only a reconnect helps
    await desk.bot.worker.drain()
    assert fake.messages_in(CH_DESK) == []

    await fake.drop_gateway()
    await fake.wait_until(lambda: fake.resume_count == 1, what="a RESUME")
    await fake.wait_until(lambda: desk.platform.connected, what="the gateway to be back")
    await desk.bot.worker.drain()

    assert only(fake.messages_in(CH_DESK)).embeds[0]["title"] == (
        "Flood warnings issued for the Severn"
    )
    assert desk.platform.link.reconnects == 1


# --- alerts ---------------------------------------------------------------------------------------


async def test_alert_is_an_embed_in_the_watchlist_channel_and_cannot_ping(
    desk: Desk, fake: FakeDiscord
) -> None:
    title = "BREAKING: Flood @everyone **warning** <@&456> for the Severn"
    item = Item(
        title,
        "a1",
        description="Evacuate __now__ says <@123> > quote",
        link="https://wire.example/severn",
        image="https://img.wire.example/severn.jpg",
    )
    await desk.publish(item)

    message = only(fake.messages_in(CH_DESK))
    assert message.allowed_mentions == {"parse": []}
    assert message.nonce is not None and message.nonce.startswith("newsbot-")
    assert message.enforce_nonce is True
    [embed] = message.embeds
    assert embed["title"] == (
        "BREAKING: Flood @\u200beveryone \\*\\*warning\\*\\* <\u200b@&456> for the Severn"
    )
    assert embed["url"] == "https://wire.example/severn"
    assert embed["description"] == "Evacuate \\_\\_now\\_\\_ says <\u200b@123> > quote"
    assert embed["author"]["name"] == "Wire"
    assert embed["footer"]["text"] == "Watchlist: Floods"
    assert embed["thumbnail"]["url"] == "https://img.wire.example/severn.jpg"
    assert embed["color"] == 0xD7263D  # urgent
    stamp = int(item.published.timestamp())
    assert datetime.fromisoformat(embed["timestamp"]).timestamp() == stamp
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields["Published"] == f"<t:{stamp}:R>"
    assert fields["Matched"].lower() == "flood"

    [delivery] = await desk.deliveries(title)
    assert delivery.status == DeliveryStatus.SENT
    assert delivery.message_id == str(message.id)


async def test_subscribe_then_the_next_matching_story_arrives_by_dm(
    desk: Desk, fake: FakeDiscord
) -> None:
    reply = await desk.invoke("subscribe", {"query": "Severn"})
    assert reply.ephemeral
    assert "Subscribed" in (reply.content or "")

    await desk.publish(Item("Severn bore draws crowds", "b1"))  # matches no watchlist
    dm = only(fake.dms_to(READER))
    assert dm.embeds[0]["title"] == "Severn bore draws crowds"
    assert dm.embeds[0]["footer"]["text"] == "Your subscription"
    assert dm.allowed_mentions == {"parse": []}
    assert fake.messages_in(CH_DESK) == []

    listed = await desk.invoke("subscriptions")
    assert "• Severn" in (listed.content or "")
    choices = await fake.autocomplete(
        "unsubscribe", {"query": "sev"}, "query", user_id=READER, guild_id=fake.guild_id
    )
    assert choices == [{"name": "Severn", "value": "Severn"}]
    others = await fake.autocomplete(
        "unsubscribe", {"query": ""}, "query", user_id=EDITOR, guild_id=fake.guild_id
    )
    assert others == []  # only the caller's own subscriptions
    gone = await desk.invoke("unsubscribe", {"query": "Severn"})
    assert "Unsubscribed from: Severn" in (gone.content or "")


async def test_a_burst_becomes_cards_then_one_digest(desk_factory, fake: FakeDiscord) -> None:
    desk = desk_factory(alerts={"burst_limit": 2})
    await desk.start()
    places = ["Severn", "Thames", "Trent", "Wye", "Ouse", "Tyne"]
    await desk.publish(
        *(
            Item(f"Flood alert for {place} residents", f"s{i}", description=f"{place} {i} " * 8)
            for i, place in enumerate(places)
        )
    )
    messages = fake.messages_in(CH_DESK)
    assert len(messages) == 3
    digest = messages[-1].embeds[0]
    assert digest["title"] == "4 more stories in a burst"
    assert digest["description"].count("\n• ") == 3
    assert "](https://wire.example/s5)" in digest["description"]


async def test_a_burst_posts_the_urgent_and_most_matched_stories_as_full_cards(
    desk_factory, fake: FakeDiscord
) -> None:
    desk = desk_factory(
        alerts={"burst_limit": 2},
        watchlists=[
            {"name": "Floods", "query": "flood", "channels": [f"discord:{CH_DESK}"]},
            {"name": "Rivers", "query": "Severn", "channels": [f"discord:{CH_DESK}"]},
        ],
    )
    await desk.start()
    # Feed order, top first: the urgent story comes last, the one both watchlists match sits in
    # the middle. By feed order both would have been digest lines.
    await desk.publish(
        Item("Flood alert for Wye residents", "w1", "Sandbags handed out at the Hereford depot."),
        Item("Ouse flood barrier raised in York", "w2", "The Foss barrier closed before dawn."),
        Item("Severn flood defences tested at Bewdley", "w3", "Barriers went up on the quay."),
        Item("Trent flood gauges at record level", "w4", "The Colwick gauge passed its mark."),
        Item("BREAKING: Carlisle flood wall fails", "w5", "Water poured into Warwick Road."),
    )
    messages = fake.messages_in(CH_DESK)
    assert len(messages) == 3
    titles = [m.embeds[0]["title"] for m in messages[:2]]
    assert any("Severn flood defences" in t for t in titles), titles
    assert any("Carlisle flood wall fails" in t for t in titles), titles
    digest = messages[-1].embeds[0]
    assert digest["title"] == "3 more stories in a burst"
    lines = digest["description"].split("\n")
    assert [line.split("](")[0] for line in lines] == [
        "• [Flood alert for Wye residents",
        "• [Ouse flood barrier raised in York",
        "• [Trent flood gauges at record level",
    ]
    assert all(" · Floods" in line for line in lines), lines  # each line names its watchlist


async def test_a_429_is_waited_out_and_the_card_arrives_once(desk: Desk, fake: FakeDiscord) -> None:
    fake.rate_limit_next(1, retry_after=0.3)
    await desk.publish(Item("Flood warnings issued for the Severn", "a1"))
    only(fake.messages_in(CH_DESK))
    assert fake.statuses("POST", f"/channels/{CH_DESK}/messages") == [429, 200]


async def test_a_headline_rewrite_edits_the_same_message(desk: Desk, fake: FakeDiscord) -> None:
    await desk.publish(Item("Flood warnings issued for the Severn", "a1"))
    first = only(fake.messages_in(CH_DESK))
    desk.items.clear()
    await desk.publish(Item("Flood warnings extended to the Wye and the Usk", "a1"))

    assert only(fake.messages_in(CH_DESK)) is first  # no second message
    [edit] = fake.edits
    assert (edit.message_id, edit.channel_id) == (first.id, CH_DESK)
    assert edit.payload["embeds"][0]["title"] == (
        "Updated: Flood warnings extended to the Wye and the Usk"
    )
    assert edit.payload["allowed_mentions"] == {"parse": []}
    assert ("PATCH", f"/channels/{CH_DESK}/messages/{first.id}") in fake.requests


async def test_a_restart_between_send_and_mark_sent_posts_nothing_twice(
    desk: Desk, fake: FakeDiscord
) -> None:
    title = "Flood warnings issued for the Severn"
    await desk.publish(Item(title, "a1"))
    posted = only(fake.messages_in(CH_DESK))
    [delivery] = await desk.deliveries(title)
    await desk.close()

    # What a crash after Discord accepted the message, before mark_sent committed, leaves behind.
    with sqlite3.connect(desk.db) as db:
        db.execute(
            "UPDATE deliveries SET status = 'pending', message_id = NULL, sent_at = NULL "
            "WHERE id = ?",
            (delivery.id,),
        )
    db.close()

    await desk.start()  # re-sends the pending card with the same nonce
    assert only(fake.messages_in(CH_DESK)) is posted
    assert [m.id for m in fake.deduplicated] == [posted.id]
    [again] = await desk.deliveries(title)
    assert again.status == DeliveryStatus.SENT
    assert again.message_id == str(posted.id)


async def test_forbidden_channel_and_closed_dms_fail_for_good_without_blocking_others(
    desk_factory, fake: FakeDiscord
) -> None:
    desk = desk_factory(
        watchlists=[
            {"name": "Floods", "query": "flood", "channels": [f"discord:{CH_DESK}"]},
            {"name": "World", "query": "flood", "channels": [f"discord:{CH_WORLD}"]},
        ]
    )
    await desk.start()
    await desk.invoke("subscribe", {"query": "flood"})
    fake.forbid_channel(CH_DESK)
    fake.close_dms(READER)

    title = "Flood warnings issued for the Severn"
    await desk.publish(Item(title, "a1"))
    by_target = {d.target: d for d in await desk.deliveries(title)}
    desk_card = by_target[f"discord:{CH_DESK}"]
    dm_card = by_target[f"discord:dm:{READER}"]
    world_card = by_target[f"discord:{CH_WORLD}"]
    assert desk_card.status == DeliveryStatus.FAILED
    assert dm_card.status == DeliveryStatus.FAILED
    assert world_card.status == DeliveryStatus.SENT
    only(fake.messages_in(CH_WORLD))
    # The storage API has no getter for the recorded reason: read the row (WAL allows it).
    with sqlite3.connect(f"file:{desk.db}?mode=ro", uri=True) as db:
        errors = dict(
            db.execute(
                "SELECT target, error FROM deliveries WHERE story_id = ?", (desk_card.story_id,)
            )
        )
    db.close()
    assert "50013 Missing Permissions" in errors[f"discord:{CH_DESK}"]
    assert "50007" in errors[f"discord:dm:{READER}"]

    notices = ops_notices(fake)
    assert len(notices) == 2
    assert any(f"discord:{CH_DESK}" in n and "Missing Permissions" in n for n in notices)
    assert any(f"discord:dm:{READER}" in n and "50007" in n for n in notices)
    assert all(m.allowed_mentions == {"parse": []} for m in fake.messages_in(CH_OPS))

    await desk.publish(Item("Flood barriers raised in Shrewsbury", "a2"))
    assert len(ops_notices(fake)) == 2  # each broken destination is reported once
    assert len(fake.messages_in(CH_WORLD)) == 2


async def test_discord_down_keeps_the_card_pending_then_it_is_retried(
    desk: Desk, fake: FakeDiscord
) -> None:
    title = "Flood warnings issued for the Severn"
    fake.set_down(True)
    await desk.publish(Item(title, "a1"))  # the poll completes regardless
    [delivery] = await desk.deliveries(title)
    assert delivery.status == DeliveryStatus.PENDING
    assert delivery.attempts == 1
    assert fake.messages == []

    fake.set_down(False)
    desk.clock.offset += timedelta(minutes=1)  # the retry is due
    assert desk.bot is not None and desk.bot.worker is not None
    await desk.bot.worker.drain()
    only(fake.messages_in(CH_DESK))
    [delivery] = await desk.deliveries(title)
    assert delivery.status == DeliveryStatus.SENT


# --- remote text never becomes a link -------------------------------------------------------------

HOSTILE = HOSTILE_LINK
ESCAPED = "\\[1\\] \\[Read more\\](https://evil.example)"  # shown as typed; evil.example bare
# The rest of the hostile reason phrase: Slack's link markup, inert on Discord but for the "<".
REASON = f"HTTP 502 Bad Gateway {ESCAPED} <https://evil.example|Read more>"


async def test_a_masked_link_in_a_headline_or_lead_is_posted_as_plain_text(
    desk_factory, fake: FakeDiscord
) -> None:
    desk = desk_factory(alerts={"burst_limit": 1})
    await desk.start()
    await desk.publish(
        Item(f"Flood {HOSTILE}", "h1", description=f"Rivers rose {HOSTILE}"),
        # Past the burst limit: these two come as one digest, a line (and a link) per story.
        Item(f"Flood alert {HOSTILE}", "h2"),
        Item("Flood barriers raised in Shrewsbury", "h3"),
    )

    card, digest = fake.messages_in(CH_DESK)
    [embed] = card.embeds
    assert embed["title"] == f"Flood {ESCAPED}"
    assert embed["description"] == f"Rivers rose {ESCAPED}"
    assert embed["url"] == "https://wire.example/h1"
    for text in (embed["title"], embed["description"]):
        assert masked_link_targets(text) == []
    # The only links are ours: each headline's, to its story.
    lines = digest.embeds[0]["description"].splitlines()
    assert lines[0].startswith(f"• [Flood alert {ESCAPED}](https://wire.example/h2) · Wire")
    assert [masked_link_targets(line) for line in lines] == [
        ["https://wire.example/h2"],
        ["https://wire.example/h3"],
    ], lines


async def test_recent_lists_a_hostile_headline_without_a_masked_link(desk: Desk) -> None:
    await desk.publish(Item(f"Flood {HOSTILE}", "h1", link="https://wire.example/h1"))

    reply = await desk.invoke("recent", {"query": "flood"})

    line = (reply.content or "").splitlines()[1]
    assert line.startswith(f"• Flood {ESCAPED} · Wire · ")
    assert line.endswith(" <https://wire.example/h1>")
    assert masked_link_targets(reply.content or "") == []


async def test_a_hostile_reason_phrase_is_inert_in_feed_add_status_and_ops_notices(
    desk_factory, fake: FakeDiscord, hostile_feed_url: str
) -> None:
    desk = desk_factory(
        more_feeds=[{"name": "Hostile", "url": hostile_feed_url}],
        fetch={"failing_after": 1},
    )
    await desk.start()  # the first poll fails: the ops channel hears of it at once

    added = await desk.as_editor("feed add", {"url": hostile_feed_url + "?2", "name": "Again"})
    status = await desk.invoke("status")
    [notice] = ops_notices(fake)

    assert f"Not added: {REASON}" in (added.content or "")
    assert f"Failing: Hostile · {REASON}" in (status.content or "")
    assert f"Feed 'Hostile' is failing: {REASON}" in notice
    for text in (added.content, status.content, notice):
        assert masked_link_targets(text or "") == [], text


# --- commands -------------------------------------------------------------------------------------


async def test_recent_watchlist_test_and_feed_list_reply_ephemerally(
    desk: Desk, fake: FakeDiscord
) -> None:
    await desk.publish(
        Item(
            "Flood warnings issued for the Severn",
            "a1",
            link="https://wire.example/a1",
            published=datetime.now(UTC) - timedelta(minutes=10),
        ),
        Item("Markets calm **today**", "a2", published=datetime.now(UTC) - timedelta(minutes=20)),
    )

    recent = await desk.invoke("recent", {"query": "flood OR markets", "hours": 2, "limit": 5})
    assert recent.ephemeral
    lines = (recent.content or "").splitlines()
    assert lines[0] == "2 stories matching flood OR markets in the last 2h:"
    assert lines[1].startswith("• Flood warnings issued for the Severn · Wire · ")
    assert lines[1].endswith("<https://wire.example/a1>")
    assert lines[2].startswith("• Markets calm \\*\\*today\\*\\* · Wire")

    default = await desk.invoke("recent")
    assert "matching the watchlists" in (default.content or "")
    assert "Markets" not in (default.content or "")

    test = await desk.as_editor("watchlist test", {"query": "Severn"})
    assert test.ephemeral
    assert (test.content or "").startswith("Severn would have matched 1 stories in the last 1d")
    assert "Nothing was saved." in (test.content or "")

    feeds = await desk.as_editor("feed list")
    assert feeds.ephemeral
    assert (feeds.content or "").startswith(
        "1 feeds: No story carried by two feeds in 7 days.\n• Wire · ok · last success"
    )


@pytest.mark.parametrize(
    ("command", "options"),
    [
        ("watchlist add", {"name": "Rivers", "query": "river", "channel": CH_WORLD}),
        ("watchlist edit", {"name": "Floods", "query": "river"}),
        ("watchlist remove", {"name": "Floods"}),
        ("watchlist list", {}),
        ("watchlist test", {"query": "flood"}),
        ("feed add", {"url": "https://wire.example/other.xml"}),
        ("feed remove", {"name": "Wire"}),
        ("feed list", {}),
    ],
)
async def test_non_admins_are_refused_every_admin_command(
    desk: Desk, fake: FakeDiscord, command: str, options: dict
) -> None:
    reply = await desk.invoke(command, options, permissions=0, roles=[3_999])
    assert reply.ephemeral
    assert (reply.content or "").startswith("Only admins can")
    assert desk.bot is not None and desk.bot.storage is not None
    assert await desk.bot.storage.audit_entries() == []
    assert [w.name for w in await desk.bot.storage.list_watchlists()] == ["Floods"]
    # Discord's own client would not even offer the command to this member.
    with pytest.raises(PermissionError):
        await desk.invoke(command, options, permissions=0, respect_default_permissions=True)


async def test_an_admin_role_is_enough(desk: Desk, fake: FakeDiscord) -> None:
    reply = await desk.invoke(
        "watchlist add",
        {"name": "Rivers", "query": "river", "channel": CH_WORLD},
        permissions=0,
        roles=[ADMIN_ROLE],
    )
    assert (reply.content or "").startswith("Watchlist 'Rivers' added")


async def test_watchlist_added_in_chat_routes_the_next_story_to_its_channel(
    desk: Desk, fake: FakeDiscord
) -> None:
    reply = await desk.as_editor(
        "watchlist add", {"name": "Rivers", "query": "river", "channel": CH_WORLD}
    )
    assert (reply.content or "").startswith(
        f"Watchlist 'Rivers' added: river -> discord:{CH_WORLD}"
    )
    await desk.publish(Item("River levels at record high", "r1"))
    message = only(fake.messages_in(CH_WORLD))
    assert message.embeds[0]["footer"]["text"] == "Watchlist: Rivers"
    assert fake.messages_in(CH_DESK) == []
    assert desk.bot is not None and desk.bot.storage is not None
    [(_, actor, action, detail)] = await desk.bot.storage.audit_entries()
    assert (actor, action, detail["channel"]) == (
        f"discord:{EDITOR}",
        "watchlist.add",
        f"discord:{CH_WORLD}",
    )

    listed = await desk.as_editor("watchlist list")
    assert "• Floods · flood -> discord:" in (listed.content or "")
    assert "(config file)" in (listed.content or "")
    removed = await desk.as_editor("watchlist remove", {"name": "Rivers"})
    assert (removed.content or "") == "Watchlist 'Rivers' removed."


async def test_an_admin_sets_pings_by_picking_a_role_and_the_next_card_pings_it(
    desk: Desk, fake: FakeDiscord
) -> None:
    await desk.as_editor("watchlist add", {"name": "Rivers", "query": "river", "channel": CH_WORLD})
    refused = await desk.invoke("watchlist ping", {"name": "Rivers", "pings": "off"})
    assert (refused.content or "").startswith("Only admins can ping watchlists.")
    config_file = await desk.as_editor("watchlist ping", {"name": "Floods", "pings": "always"})
    assert "comes from the config file" in (config_file.content or "")
    # Discord's option sends a role picked as you type as <@&id>: the ping it names is taken.
    reply = await desk.as_editor(
        "watchlist ping", {"name": "Rivers", "pings": f"<@&{ADMIN_ROLE}> always"}
    )
    assert (reply.content or "").startswith(
        f"Watchlist 'Rivers' now pings role:{ADMIN_ROLE} on every new card."
    )
    listed = await desk.as_editor("watchlist list")
    assert f"pings role:{ADMIN_ROLE} (always)" in (listed.content or "")

    await desk.publish(Item("River levels steady on the Wye", "p1"))  # routine, but "always"
    message = only(fake.messages_in(CH_WORLD))
    assert message.content == f"<@&{ADMIN_ROLE}>"
    assert message.allowed_mentions == {"parse": [], "roles": [ADMIN_ROLE]}


async def test_a_config_file_watchlist_cannot_be_removed_or_edited(desk: Desk) -> None:
    for command, options in (
        ("watchlist remove", {"name": "Floods"}),
        ("watchlist edit", {"name": "Floods", "query": "river"}),
    ):
        reply = await desk.as_editor(command, options)
        assert "comes from the config file" in (reply.content or ""), reply.content
    assert desk.bot is not None and desk.bot.storage is not None
    [floods] = await desk.bot.storage.list_watchlists()
    assert floods.query == "flood"


async def test_a_query_that_does_not_parse_gets_the_caret_message(desk: Desk) -> None:
    reply = await desk.invoke("subscribe", {"query": '"North Korea'})
    assert reply.ephemeral
    assert reply.content == (
        "That query does not parse:\n```\nUnclosed quote at column 1:\n"
        '  "North Korea\n  ^\nClose the phrase with a ".\n```'
    )
    edited = await desk.as_editor("watchlist add", {"name": "x", "query": "a AND"})
    assert "AND needs a word" in (edited.content or "")
    assert "    ^" in (edited.content or "")


async def test_a_slow_command_is_deferred_then_answered(
    desk: Desk, fake: FakeDiscord, feed_server: FeedServer
) -> None:
    body = rss([Item("Slow story", "z1")])
    feed_server.set("slow.xml", body, drip=1.0 / len(body))  # about 1 s, the defer is at 0.5 s
    reply = await desk.as_editor("feed add", {"url": feed_server.url("slow.xml"), "name": "Slow"})
    assert reply.deferred and reply.ephemeral
    assert (reply.content or "").startswith("Feed 'Slow' added: 1 stories found")


async def test_an_internal_error_is_answered_with_an_apology(desk: Desk, caplog) -> None:
    with sqlite3.connect(desk.db) as db:  # the database breaks under the running bot
        db.execute("DROP TABLE subscriptions")
    db.close()
    reply = await desk.invoke("subscriptions")
    assert reply.ephemeral
    assert reply.content is not None and reply.content.startswith("Sorry, something went wrong")
    assert "subscriptions" not in reply.content  # no internals leak to the user
    assert "/subscriptions failed" in caplog.text


async def test_commands_work_in_dms_but_admin_groups_are_guild_only(
    desk: Desk, fake: FakeDiscord
) -> None:
    fake.add_member(READER)  # a DM is answered for members of the desk's server
    reply = await desk.invoke("subscribe", {"query": "Pyongyang"}, guild_id=None)
    assert "Subscribed" in (reply.content or "")
    with pytest.raises(ValueError, match="guild-only"):
        await desk.invoke("watchlist list", guild_id=None)


# --- only the desk's own server -------------------------------------------------------------------

NOT_SERVED = (
    "This bot serves Newsroom only; it does nothing in this server. "
    "Ask the admins of Newsroom if you need it."
)
EVERY_COMMAND = [
    ("watchlist add", {"name": "Theirs", "query": "flood", "channel": CH_FOREIGN}),
    ("watchlist edit", {"name": "Mine", "query": "nothing"}),
    ("watchlist remove", {"name": "Mine"}),
    ("watchlist ping", {"name": "Mine", "pings": f"role:{ADMIN_ROLE} always"}),
    ("watchlist list", {}),
    ("watchlist test", {"query": "flood"}),
    ("feed add", {"url": "https://wire.example/other.xml"}),
    ("feed remove", {"name": "Wire"}),
    ("feed list", {}),
    ("subscribe", {"query": "flood"}),
    ("unsubscribe", {"query": "flood"}),
    ("subscriptions", {}),
    ("recent", {}),
    ("status", {}),
    ("why", {"story": "flood"}),
]


async def stored_state(desk: Desk) -> tuple:
    assert desk.bot is not None and desk.bot.storage is not None
    storage = desk.bot.storage
    return (
        [(w.name, w.query, tuple(w.channels)) for w in await storage.list_watchlists()],
        [f.name for f in await storage.list_feeds()],
        [(s.subscriber, s.query) for s in await storage.list_subscriptions()],
        await storage.audit_entries(),
    )


@pytest.fixture
async def desk_with_a_chat_watchlist(desk_factory, fake: FakeDiscord) -> Desk:
    """The desk's server, and a foreign one the bot is added to after start-up (a public bot can
    be added by anyone), whose admin then tries every command."""
    fake.add_guild(
        FOREIGN_GUILD, name="Elsewhere", text_channel_ids=(CH_FOREIGN,), bot_member=False
    )
    desk = desk_factory()
    await desk.start()
    added = await desk.as_editor("watchlist add", {"name": "Mine", "query": "river"})
    assert (added.content or "").startswith("Watchlist 'Mine' added")
    await fake.join_guild(FOREIGN_GUILD)
    return desk


@pytest.mark.parametrize(("command", "options"), EVERY_COMMAND, ids=[c for c, _ in EVERY_COMMAND])
async def test_an_admin_of_a_server_the_bot_joined_later_is_refused_everything(
    desk_with_a_chat_watchlist: Desk, fake: FakeDiscord, command: str, options: dict
) -> None:
    desk = desk_with_a_chat_watchlist
    before = await stored_state(desk)

    reply = await desk.invoke(
        command,
        options,
        user_id=STRANGER,
        guild_id=FOREIGN_GUILD,
        channel_id=CH_FOREIGN,
        permissions=MANAGE_GUILD,
    )

    assert reply.ephemeral
    assert reply.content == NOT_SERVED
    assert await stored_state(desk) == before  # nothing listed, changed, added or audited
    assert fake.messages_in(CH_FOREIGN) == []


async def test_a_server_that_installed_only_the_commands_is_refused(
    desk_factory, fake: FakeDiscord
) -> None:
    # The applications.commands scope without the bot: global commands work there, the bot is
    # not a member, and the interactions still reach its gateway.
    fake.add_guild(
        FOREIGN_GUILD, name="Elsewhere", text_channel_ids=(CH_FOREIGN,), bot_member=False
    )
    desk = desk_factory()
    await desk.start()

    reply = await desk.invoke(
        "watchlist add",
        {"name": "Theirs", "query": "flood", "channel": CH_FOREIGN},
        user_id=STRANGER,
        guild_id=FOREIGN_GUILD,
        permissions=MANAGE_GUILD,
    )

    assert reply.content == NOT_SERVED
    assert desk.bot is not None and desk.bot.storage is not None
    assert [w.name for w in await desk.bot.storage.list_watchlists()] == ["Floods"]
    assert await desk.bot.storage.audit_entries() == []


async def test_guild_ids_serve_only_those_servers_even_if_the_bot_is_in_others(
    desk_factory, fake: FakeDiscord, caplog
) -> None:
    caplog.set_level(logging.INFO)
    fake.add_guild(FOREIGN_GUILD, name="Elsewhere", text_channel_ids=(CH_FOREIGN,))
    # An earlier run without guild_ids registered the commands globally, and Discord keeps
    # them: they are still offered in every server that has the app.
    first = desk_factory()
    await first.start()
    await first.close()
    desk = desk_factory(discord={"guild_ids": [fake.guild_id]})
    await desk.start()
    await fake.wait_until(lambda: "the bot is also in" in caplog.text, what="the start-up report")

    refused = await desk.invoke(
        "feed list", user_id=STRANGER, guild_id=FOREIGN_GUILD, permissions=MANAGE_GUILD
    )
    ours = await desk.as_editor("feed list")

    assert refused.content == NOT_SERVED
    assert (ours.content or "").startswith("1 feeds:")
    assert f"Discord: serving Newsroom ({fake.guild_id}) (discord.guild_ids)" in caplog.text
    assert f"the bot is also in Elsewhere ({FOREIGN_GUILD})" in caplog.text


async def test_a_dm_from_someone_in_no_served_server_is_refused(
    desk: Desk, fake: FakeDiscord
) -> None:
    fake.add_guild(
        FOREIGN_GUILD, name="Elsewhere", text_channel_ids=(CH_FOREIGN,), bot_member=False
    )
    fake.add_member(STRANGER, guild_id=FOREIGN_GUILD)  # a member elsewhere is no member here
    before = await stored_state(desk)

    reply = await desk.invoke("subscribe", {"query": "flood"}, user_id=STRANGER, guild_id=None)
    choices = await fake.autocomplete(
        "unsubscribe", {"query": ""}, "query", user_id=STRANGER, guild_id=None
    )

    assert reply.ephemeral
    assert reply.content == (
        "This bot answers direct messages only from members of Newsroom. "
        "Ask the admins of Newsroom if you need it."
    )
    assert choices == []
    assert await stored_state(desk) == before
    assert ("GET", f"/guilds/{fake.guild_id}/members/{STRANGER}") in fake.requests


async def test_with_guild_ids_empty_the_servers_at_start_up_are_served_and_said_so(
    desk_factory, fake: FakeDiscord, caplog
) -> None:
    caplog.set_level(logging.INFO)
    fake.add_guild(FOREIGN_GUILD, name="Second desk", text_channel_ids=(CH_FOREIGN,))
    desk = desk_factory()
    await desk.start()

    reply = await desk.invoke(
        "watchlist list", user_id=STRANGER, guild_id=FOREIGN_GUILD, permissions=MANAGE_GUILD
    )
    await fake.wait_until(lambda: "guild_ids is empty" in caplog.text, what="the start-up report")

    assert (reply.content or "").startswith("1 watchlists:")  # served: it was there at start-up
    warning = next(r for r in caplog.records if "discord.guild_ids is empty" in r.message)
    assert warning.levelno == logging.WARNING
    assert "the bot is in 2 servers at start-up" in warning.message
    assert f"Newsroom ({fake.guild_id})" in warning.message
    assert f"Second desk ({FOREIGN_GUILD})" in warning.message
    assert "set discord.guild_ids" in warning.message


async def test_one_server_at_start_up_is_served_and_a_later_one_is_logged_as_refused(
    desk_factory, fake: FakeDiscord, caplog
) -> None:
    caplog.set_level(logging.INFO)
    fake.add_guild(
        FOREIGN_GUILD, name="Elsewhere", text_channel_ids=(CH_FOREIGN,), bot_member=False
    )
    desk = desk_factory()
    await desk.start()
    await fake.wait_until(lambda: "Discord: serving" in caplog.text, what="the start-up report")
    await fake.join_guild(FOREIGN_GUILD)
    await fake.wait_until(lambda: "added to Elsewhere" in caplog.text, what="the join to be logged")

    assert (
        f"Discord: serving Newsroom ({fake.guild_id}), the server the bot is in at start-up"
        in caplog.text
    )
    assert (
        f"the bot was added to Elsewhere ({FOREIGN_GUILD}), which it does not serve" in caplog.text
    )


async def test_close_leaves_nothing_running(desk: Desk, fake: FakeDiscord) -> None:
    platform = desk.platform
    assert platform is not None
    await desk.close()
    assert platform.client.is_closed()
    assert not platform.connected
    await asyncio.sleep(0)
    pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
    assert [t for t in pending if "site-packages/discord/" in repr(t)] == []
