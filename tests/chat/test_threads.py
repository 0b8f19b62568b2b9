"""Threads of updates (issue 18), end to end on Discord and Slack at once: a watchlist with
`updates = "thread"` posts a rewrite of an alerted story as a reply under its card (a Discord
thread started on the card's message, a Slack thread_ts reply), and the card names every feed
that carries the story ("3 sources now report: ..."), edited in place. Never a new top-level
message.

One real NewsBot serves both platforms from one outbox (real discord.py, slack_bolt, feedparser,
SQLite), against the fake Discord and fake Slack; feeds come from the local feed server."""

from __future__ import annotations

import contextlib
import io
import json
import re
import sqlite3
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.app import NewsBot, build_platforms
from bot.chat.slack.platform import SlackPlatform
from config.settings import ConfigError, settings_from_dict
from tests.fakes.discord_server import CREATE_PUBLIC_THREADS, FakeDiscord, FakeMessage
from tests.fakes.feed_server import FeedServer
from tests.fakes.slack_server import FakeSlack, FakeSlackMessage
from tests.feedgen import Item, minutes_ago, rss

DESK = 1_400_000_000_000_000_001  # Discord: the thread-mode watchlist's channel
EDIT_DESK = 1_400_000_000_000_000_002  # Discord: an edit-mode watchlist's channel
OPS = 1_400_000_000_000_000_003
SLACK_DESK = "C0NEWSDESK"

pytestmark = pytest.mark.timeout(30)

LEAD = (
    "Water rose over the Severn defences at Bewdley overnight and the Environment Agency "
    "issued severe flood warnings for homes along the quay, officials said on Sunday."
)
TITLE = "Severn floods Bewdley as barriers are overtopped"


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(var, raising=False)


class Desk:
    """A NewsBot with Discord and Slack on one SQLite file; feeds by name on the feed server."""

    def __init__(
        self,
        tmp_path,
        discord: FakeDiscord,
        slack: FakeSlack,
        feeds: FeedServer,
        *,
        sources: tuple[str, ...] = ("Reuters",),
        max_updates: int = 3,
        edit_watchlist: bool = False,
    ) -> None:
        self.discord, self.slack, self.feeds = discord, slack, feeds
        self.db = tmp_path / "newsbot.db"
        self.files = {name: f"feed{i}.xml" for i, name in enumerate(sources)}
        for file in self.files.values():
            feeds.set(file, rss([]))
        watchlists: list[dict[str, Any]] = [
            {
                "name": "Floods",
                "query": "flood OR floods",
                "channels": [f"discord:{DESK}", f"slack:{SLACK_DESK}"],
                "updates": "thread",
            }
        ]
        if edit_watchlist:
            watchlists.append(
                {"name": "Rivers", "query": "Severn", "channels": [f"discord:{EDIT_DESK}"]}
            )
        self.settings = settings_from_dict(
            {
                "storage": {"path": str(self.db)},
                "console": {"format": "jsonl"},
                "http": {"enabled": False},
                "alerts": {"max_updates": max_updates},
                "discord": {
                    "api_base": discord.api_base,
                    "gateway_url": discord.gateway_url,
                    "ops_channel": f"discord:{OPS}",
                },
                "slack": {"api_base": slack.api_base},
                "feeds": [{"name": n, "url": feeds.url(f)} for n, f in self.files.items()],
                "watchlists": watchlists,
            },
            {
                "DISCORD_TOKEN": discord.token,
                "SLACK_BOT_TOKEN": slack.bot_token,
                "SLACK_APP_TOKEN": slack.app_token,
            },
        )
        self.bot: NewsBot | None = None

    async def start(self) -> None:
        platforms = build_platforms(self.settings)
        for platform in platforms:
            if isinstance(platform, SlackPlatform):
                # Slack's one post per second per channel, paced by the sender, would make
                # every edit-then-reply wait a second here; the fake has no such limit.
                platform.sender.pace = 0
        self.bot = NewsBot(self.settings, stdout=io.StringIO(), platforms=platforms)
        await self.bot.open()
        await self.bot.run_once()  # the first polls are baselines

    async def close(self) -> None:
        if self.bot is not None:
            bot, self.bot = self.bot, None
            await bot.close()

    async def restart(self) -> None:
        await self.close()
        await self.start()

    async def publish(self, source: str, *items: Item) -> None:
        """What the feed `source` lists now, then one poll and delivery pass."""
        assert self.bot is not None
        self.feeds.set(self.files[source], rss(items, title=source))
        reports = await self.bot.run_once()
        assert all(r.status != "error" for r in reports), reports

    def sql(self, statement: str, *params: Any) -> list[tuple]:
        with contextlib.closing(sqlite3.connect(self.db)) as db, db:
            return db.execute(statement, params).fetchall()

    # --- what each platform shows -------------------------------------------------------------

    def discord_card(self, channel: int = DESK) -> FakeMessage:
        cards = self.discord.messages_in(channel)
        assert len(cards) == 1, [m.embeds for m in cards]  # one top-level message, always
        return cards[0]

    def slack_card(self) -> FakeSlackMessage:
        cards = self.slack.top_level_in(SLACK_DESK)
        assert len(cards) == 1, [m.text for m in cards]
        return cards[0]

    def discord_replies(self) -> list[str]:
        return [m.embeds[0]["title"] for m in self.discord.replies_to(self.discord_card().id)]

    def slack_replies(self) -> list[str]:
        return [m.text or "" for m in self.slack.replies_to(SLACK_DESK, self.slack_card().ts)]


def story(title: str = TITLE, lead: str = LEAD, *, guid: str = "r-1", host: str = "reuters"):
    return Item(title, lead, f"https://{host}.example/{guid}", guid, minutes_ago(3))


def discord_sources(message: FakeMessage) -> str | None:
    fields = {f["name"]: f["value"] for f in message.embeds[0].get("fields", [])}
    return fields.get("Sources")


def slack_text(message: FakeSlackMessage) -> str:
    return json.dumps(message.blocks, ensure_ascii=False)


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[FakeDiscord, FakeSlack]]:
    async with (
        FakeDiscord(text_channel_ids=(DESK, EDIT_DESK, OPS)) as discord_fake,
        FakeSlack() as slack_fake,
    ):
        slack_fake.add_channel(SLACK_DESK, name="newsdesk")
        yield discord_fake, slack_fake


@pytest.fixture
async def desk_factory(tmp_path, fakes, feed_server):
    desks: list[Desk] = []

    async def make(**options: Any) -> Desk:
        desk = Desk(tmp_path, *fakes, feed_server, **options)
        desks.append(desk)
        await desk.start()
        return desk

    yield make
    for desk in desks:  # the bots go before the fakes do
        await desk.close()


# --- the acceptance tests -----------------------------------------------------------------------


async def test_a_rewrite_is_a_thread_reply_under_the_card_on_both_platforms(desk_factory) -> None:
    desk = await desk_factory()
    await desk.publish("Reuters", story())
    card, slack_card = desk.discord_card(), desk.slack_card()

    rewrite = "Severn floods Bewdley and Shrewsbury as barriers are overtopped"
    await desk.publish("Reuters", story(rewrite, LEAD + " Shrewsbury was flooded by noon."))

    # Discord: the card edited in place, a thread started on it, the update posted in there.
    assert desk.discord_card() is card
    assert card.embeds[0]["title"] == f"Updated: {rewrite}"
    thread = desk.discord.thread_on(card.id)
    assert thread is not None and thread.parent_id == DESK
    assert thread.name == f"Updates: {rewrite}"
    assert desk.discord_replies() == [f"Updated: {rewrite}"]
    [reply] = desk.discord.replies_to(card.id)
    assert reply.enforce_nonce and reply.nonce and reply.allowed_mentions == {"parse": []}
    # Slack: chat.update on the card, then one reply with its thread_ts.
    assert desk.slack_card() is slack_card and slack_card.edits == 1
    assert rewrite in slack_card.text
    [slack_reply] = desk.slack.replies_to(SLACK_DESK, slack_card.ts)
    assert rewrite in (slack_reply.text or "") and slack_reply.thread_ts == slack_card.ts
    assert slack_reply.event_type == "newsbot_update"

    # Nothing new: nothing more anywhere.
    await desk.publish("Reuters", story(rewrite, LEAD + " Shrewsbury was flooded by noon."))
    assert len(desk.discord.replies_to(card.id)) == 1
    assert len(desk.slack.replies_to(SLACK_DESK, slack_card.ts)) == 1
    assert len(desk.discord.messages) == 2 and len(desk.slack.messages_in(SLACK_DESK)) == 2


async def test_a_second_and_third_source_edit_the_card_to_name_them(desk_factory) -> None:
    desk = await desk_factory(sources=("Reuters", "AP", "BBC"), edit_watchlist=True)
    await desk.publish("Reuters", story())
    card, slack_card = desk.discord_card(), desk.slack_card()
    assert discord_sources(card) is None and "sources now report" not in slack_text(slack_card)

    # The same story on another wire, under its own link and with its lead cut short.
    await desk.publish("AP", story(lead=LEAD[:140].rsplit(" ", 1)[0] + "...", guid="ap-9"))
    assert discord_sources(desk.discord_card()) == "2 sources now report: Reuters, AP"
    assert "2 sources now report: Reuters, AP" in slack_text(desk.slack_card())
    assert card.embeds[0]["title"] == TITLE  # a new source is no rewrite: no "Updated" mark
    await desk.publish("BBC", story(guid="bbc-1", host="bbc"))
    assert discord_sources(desk.discord_card()) == "3 sources now report: Reuters, AP, BBC"
    assert "3 sources now report: Reuters, AP, BBC" in slack_text(desk.slack_card())

    # Edited in place, never a reply or a new message.
    assert desk.discord_replies() == [] and desk.slack_replies() == []
    assert [e.message_id for e in desk.discord.edits] == [card.id, card.id]
    assert slack_card.edits == 2
    # The same feeds listing it again edit nothing.
    await desk.publish("AP", story(lead=LEAD[:140].rsplit(" ", 1)[0] + "...", guid="ap-9"))
    assert len(desk.discord.edits) == 2 and slack_card.edits == 2
    # An edit-mode watchlist's card (the default) stays as it was: no sources line, no edit.
    edit_mode = desk.discord_card(EDIT_DESK)
    assert discord_sources(edit_mode) is None and edit_mode.edited_at is None


# --- how it could break -------------------------------------------------------------------------


async def test_the_update_cap_holds_in_thread_mode(desk_factory) -> None:
    desk = await desk_factory(max_updates=2)
    await desk.publish("Reuters", story())
    for n in range(1, 5):
        await desk.publish("Reuters", story(f"{TITLE}, update {n} with {'new ' * n}words"))
    expected = [f"Updated: {TITLE}, update {n} with {'new ' * n}words" for n in (1, 2)]
    assert desk.discord_replies() == expected
    assert len(desk.slack_replies()) == 2
    assert len(desk.discord.edits) == 2 and desk.slack_card().edits == 2


async def test_a_crash_after_the_reply_posts_no_second_reply_on_either_platform(
    desk_factory,
) -> None:
    desk = await desk_factory()
    await desk.publish("Reuters", story())
    rewrite = "Severn floods Bewdley and Shrewsbury as barriers are overtopped"
    await desk.publish("Reuters", story(rewrite))
    assert len(desk.discord_replies()) == 1 and len(desk.slack_replies()) == 1
    await desk.close()
    # What a crash after both replies landed, before mark_update_done committed, leaves.
    desk.sql(
        "UPDATE deliveries SET update_pending = 1, shown_revision = shown_revision - 1, "
        "update_count = update_count - 1"
    )

    await desk.start()  # edits again and re-sends each reply with its idempotency key
    assert len(desk.discord.edits) == 2  # the edit is simply made again
    assert len(desk.discord_replies()) == 1
    assert [m.id for m in desk.discord.deduplicated] == [
        m.id for m in desk.discord.replies_to(desk.discord_card().id)
    ]
    assert len(desk.slack_replies()) == 1
    assert desk.sql("SELECT update_pending, update_count FROM deliveries") == [(0, 1), (0, 1)]


async def test_a_deleted_card_gets_no_reply_and_no_new_post_and_one_ops_note(
    desk_factory, caplog
) -> None:
    desk = await desk_factory()
    await desk.publish("Reuters", story())
    card, slack_card = desk.discord_card(), desk.slack_card()
    card.deleted = True  # somebody deleted both cards
    slack_card.deleted = True

    for n in (1, 2):
        await desk.publish("Reuters", story(f"{TITLE}, rewrite {n} with {'more ' * n}words"))

    assert desk.discord.messages_in(DESK) == [card]  # nothing new at the top level
    assert desk.discord.threads == {}
    assert desk.slack.top_level_in(SLACK_DESK) == []  # the deleted card is not shown
    assert [m for m in desk.slack.messages if m.channel == SLACK_DESK] == [slack_card]
    notes = [m.content or "" for m in desk.discord.messages_in(OPS)]
    # One note per card (Discord's and Slack's), however many updates came.
    assert len(notes) == 2, notes
    assert all("was not posted in its thread" in n for n in notes)
    assert any(f"discord:{DESK}" in n and "10008 Unknown Message" in n for n in notes)
    assert any(f"slack:{SLACK_DESK}" in n and "no longer exists" in n for n in notes)
    assert desk.sql("SELECT update_pending FROM deliveries") == [(0,), (0,)]


async def test_hostile_source_names_are_shown_inert_and_bounded(
    desk_factory, tmp_path, fakes, feed_server
) -> None:
    hostile = (
        "Reuters",
        "@everyone <@&123456789012345678> AP",
        "[BBC](https://evil.example) *World*",
        "<!channel> <https://evil.example|Le Monde>",
        "El País " + "x" * 90,
        "NHK",
        "Yonhap",
        "DPA",
    )
    desk = await desk_factory(sources=hostile)
    await desk.publish(hostile[0], story())
    for n, name in enumerate(hostile[1:], 1):
        await desk.publish(name, story(guid=f"s-{n}", host=f"h{n}"))

    line = discord_sources(desk.discord_card())
    assert line is not None and line.startswith("8 sources now report: Reuters, ")
    assert line.endswith(" and 3 more")
    assert "@everyone" not in line.replace("@\u200beveryone", "")  # broken, cannot ping
    assert "<@&" not in line  # the role mention is broken too
    assert "](https://evil.example)" not in line.replace("\\]", "")  # no masked link
    assert "x" * 50 not in line  # a long name is cut
    [block] = [b for b in desk.slack_card().blocks or [] if "sources now report" in str(b)]
    slack = block["elements"][0]["text"]
    assert slack.startswith(":newspaper: 8 sources now report: Reuters, ")
    assert slack.endswith(" and 3 more")
    shown = re.findall(r"<[^>]*>", slack)
    assert shown == [], shown  # no live mention, no link from a feed's name


async def test_a_bogus_updates_value_is_a_clear_config_error(tmp_path) -> None:
    with pytest.raises(ConfigError) as raised:
        settings_from_dict(
            {
                "storage": {"path": str(tmp_path / "bot.db")},
                "watchlists": [{"name": "Floods", "query": "flood", "updates": "bogus"}],
            },
            {},
        )
    message = str(raised.value)
    assert "watchlists" in message and "updates" in message
    assert "'edit'" in message and "'thread'" in message


async def test_without_thread_permissions_the_card_is_edited_and_the_ops_channel_told(
    desk_factory,
) -> None:
    desk = await desk_factory()
    await desk.publish("Reuters", story())
    desk.discord.deny_permissions(DESK, CREATE_PUBLIC_THREADS)
    rewrite = "Severn floods Bewdley and Shrewsbury as barriers are overtopped"
    await desk.publish("Reuters", story(rewrite))

    card = desk.discord_card()  # still the one message: no reply posted at the top instead
    assert card.embeds[0]["title"] == f"Updated: {rewrite}"
    assert desk.discord.threads == {}
    [note] = [m.content or "" for m in desk.discord.messages_in(OPS)]
    assert "Create Public Threads" in note and f"discord:{DESK}" in note
    assert desk.slack_replies() != []  # Slack, unaffected, replied as usual


async def test_a_watchlist_made_in_chat_takes_the_updates_option_on_both_platforms(
    desk_factory,
) -> None:
    desk = await desk_factory(sources=("Reuters", "AP"))
    discord, slack = desk.discord, desk.slack
    slack.add_user("U0ADMIN", name="ada", is_admin=True)
    await discord.wait_until(lambda: bool(discord.command_syncs), what="the commands synced")
    await slack.wait_connected(1)
    assert desk.bot is not None and desk.bot.storage is not None
    store = desk.bot.storage

    # Discord: the option's choices are the two modes.
    [sync] = [c for c in discord.global_commands if c["name"] == "watchlist"]
    [add] = [o for o in sync["options"] if o["name"] == "add"]
    [option] = [o for o in add["options"] if o["name"] == "updates"]
    assert [c["value"] for c in option["choices"]] == ["edit", "thread"]
    reply = await discord.invoke(
        "watchlist add",
        {"name": "Quakes", "query": "earthquake", "channel": EDIT_DESK, "updates": "thread"},
        user_id=2_000_000_000_000_000_002,
        guild_id=discord.guild_id,
        permissions=1 << 5,  # Manage Server
    )
    assert "updates posted as replies in a thread" in (reply.content or "")
    # Slack: typed as --updates; a bogus mode is refused with the two to choose from.
    bogus = await slack.slash_command("watchlist edit Quakes --updates bogus", user_id="U0ADMIN")
    assert "updates must be 'edit' or 'thread', not 'bogus'" in bogus.text
    assert (await store.get_watchlist("Quakes")).updates == "thread"
    help_text = (await slack.slash_command("help watchlist add", user_id="U0ADMIN")).text
    assert "--updates edit|thread" in help_text and "--updates thread" in help_text

    await desk.publish("Reuters", story("Earthquake shakes Bewdley", "A quake hit at dawn."))
    card = desk.discord_card(EDIT_DESK)
    await desk.publish("Reuters", story("Earthquake of magnitude 4 shakes Bewdley", "At dawn."))
    assert [m.embeds[0]["title"] for m in discord.replies_to(card.id)] == [
        "Updated: Earthquake of magnitude 4 shakes Bewdley"
    ]
    edited = await slack.slash_command("watchlist edit Quakes --updates edit", user_id="U0ADMIN")
    assert "Watchlist 'Quakes' now edits its cards in place" in edited.text
    assert (await store.get_watchlist("Quakes")).updates == "edit"
