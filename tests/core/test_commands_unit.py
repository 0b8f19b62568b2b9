"""Every chat command, through its declaration (bot.core.catalog, `Command.run`: the one way in
from a platform), on the in-memory storage backend with fake services: who may run it, what it
answers with valid arguments, and how it refuses bad ones (a reply that says why, never an
exception)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from bot.core.catalog import CATALOG, COMMANDS, Who
from bot.core.commands import Actor, Commands, CommandSettings, Reply
from bot.core.models import FeedSpec, Origin, Story
from bot.core.ports import FeedError, ParsedFeed, PollOutcome
from bot.core.routing import QueryBook
from bot.core.store import IngestBatch, NewStoryRow
from storage.memory import MemoryStorage
from tests.core.fakes import DESTINATIONS, NOW, Clock

MEMBER = Actor("toy", "rita", "Rita", is_admin=False, admin_hint="a desk editor")
ADMIN = Actor("toy", "ed", "Ed", is_admin=True)
WIRE_URL = "https://wire.example/rss"
AGENCY_URL = "https://agency.example/rss"


@dataclass
class Services:
    """The running bot as the commands see it (bot.core.commands.Services)."""

    store: MemoryStorage
    clock: Clock
    config_source: str = "newsbot.toml"
    destinations: Any = DESTINATIONS
    # url -> why the probe fails (FeedError); any other URL reads as a small feed.
    unreachable: dict[str, str] = field(default_factory=dict)
    probes: list[tuple[str, str]] = field(default_factory=list)
    feeds_changes: int = 0

    @property
    def started_at(self) -> Any:
        return NOW - timedelta(hours=2, minutes=5)

    @property
    def last_poll_at(self) -> Any:
        return self.clock() - timedelta(seconds=40)

    async def query_book(self) -> QueryBook:
        return QueryBook(await self.store.list_watchlists(), await self.store.list_subscriptions())

    async def probe_feed(self, url: str, name: str) -> ParsedFeed:
        self.probes.append((url, name))
        if url in self.unreachable:
            raise FeedError(self.unreachable[url])
        stories = [
            Story("Agency", f"Agency story {n}", f"https://agency.example/{n}") for n in (1, 2, 3)
        ]
        return ParsedFeed(stories, title="Agency Wire")

    async def feeds_changed(self) -> None:
        self.feeds_changes += 1

    def connections(self) -> dict[str, bool]:
        return {"toy": True, "pager": False}


@dataclass
class Desk:
    store: MemoryStorage
    services: Services
    commands: Commands

    async def run(self, command: str, actor: Actor, /, **args: Any) -> Reply:
        return await COMMANDS[command].run(self.commands, actor, args)

    async def snapshot(self) -> tuple[Any, ...]:
        """Everything a command could change."""
        return (
            await self.store.list_watchlists(),
            await self.store.list_subscriptions(),
            [f.name for f in await self.store.list_feeds()],
            await self.store.audit_entries(),
            list(self.services.probes),
            self.services.feeds_changes,
            await self.store.subscriber_settings([MEMBER.key, ADMIN.key]),
        )


def lines(reply: Reply) -> list[str]:
    """A reply as a person reads it: its text, then each item (with its detail)."""
    return [reply.text, *(f"{i.text} | {i.detail}" if i.detail else i.text for i in reply.items)]


async def seeded(settings: CommandSettings | None = None) -> Desk:
    """A desk with one feed and one watchlist from the config file, one of each made in chat,
    a Kremlin subscription for each of MEMBER and ADMIN, and four stories (one of them three
    days old)."""
    clock = Clock()
    store = MemoryStorage()
    await store.sync_config_feeds([FeedSpec("Wire", WIRE_URL, timedelta(minutes=2))], NOW)
    await store.add_feed(
        FeedSpec("Local news", "https://local.example/rss", timedelta(minutes=10), Origin.CHAT),
        "toy:ed",
        NOW,
    )
    await store.sync_config_watchlists([("Desk floods", "flood", ["toy:desk"])], NOW)
    await store.add_watchlist("Rivers desk", "Severn", ["toy:rivers"], "toy:ed", NOW)
    for actor in (MEMBER, ADMIN):
        await store.add_subscription(actor.key, "Kremlin", NOW)
    wire = await store.get_feed("Wire")
    assert wire is not None

    async def poll(at: Any, *titles: str) -> None:
        rows = [
            NewStoryRow(
                -n,
                Story(
                    "Wire", t, f"https://wire.example/{t[:5]}", summary=t, content=t, published=at
                ),
                True,
            )
            for n, t in enumerate(titles, start=1)
        ]
        await store.apply_ingest(wire, IngestBatch(rows), PollOutcome(ok=True), at)

    await poll(NOW - timedelta(days=3), "Flood defences built on the Severn in 1998")
    await poll(NOW - timedelta(hours=3), "Flood warnings lifted for the Severn")
    await poll(NOW - timedelta(hours=2), "Council approves new cycle lanes")
    await poll(NOW - timedelta(hours=1), "Flood barrier raised in York")
    services = Services(store, clock)
    commands = Commands(store, services, clock=clock, settings=settings)
    return Desk(store, services, commands)


@pytest.fixture
async def desk() -> Desk:
    return await seeded()


# --- every command, with valid arguments ---------------------------------------------------------

# What each command is given and the first lines of what it answers (for anyone allowed).
VALID: dict[str, tuple[dict[str, Any], list[str]]] = {
    "subscribe": (
        {"query": '"North Korea" OR Pyongyang'},
        [
            'Subscribed. Stories matching "North Korea" OR Pyongyang will come to you by '
            "direct message."
        ],
    ),
    "unsubscribe": ({"query": "Kremlin"}, ["Unsubscribed from: Kremlin"]),
    "subscriptions": ({}, ["Your subscriptions (1):", "Kremlin"]),
    "recent": (
        {"query": "flood"},
        [
            "2 stories matching flood in the last 1d:",
            "Flood barrier raised in York | Wire · 02 Mar 08:00 UTC · Flood",
            "Flood warnings lifted for the Severn | Wire · 02 Mar 06:00 UTC · Flood",
        ],
    ),
    "status": (
        {},
        [
            "newsbot status",
            "Up for 2h5m",
            "Feeds: 1 healthy, 0 failing, 1 not polled yet",
            "Last poll: 40s ago",
            "Deliveries: 0 pending, 0 sent, 0 failed",
            "Connections: toy up, pager DOWN",
        ],
    ),
    "why": (
        {"story": "barrier York"},
        [
            'Why: "Flood barrier raised in York"',
            "First seen on Wire at 02 Mar 08:00 UTC | published 02 Mar 08:00 UTC",
        ],
    ),
    "watchlist add": (
        {"name": "Fires", "query": "wildfire OR bushfire", "channel": "toy:fire"},
        [
            "Watchlist 'Fires' added: wildfire OR bushfire -> toy:fire. "
            "It applies from the next poll."
        ],
    ),
    "watchlist edit": (
        {"name": "rivers DESK", "query": "Severn OR Trent"},
        ["Watchlist 'Rivers desk' now watches: Severn OR Trent"],
    ),
    "watchlist ping": (
        {"name": "rivers DESK", "pings": "role:NIGHTS user:ann always"},
        [
            "Watchlist 'Rivers desk' now pings role:NIGHTS, user:ann on every new card. Only "
            "these are ever mentioned; an updated card does not ping again."
        ],
    ),
    "watchlist remove": ({"name": "Rivers desk"}, ["Watchlist 'Rivers desk' removed."]),
    "watchlist list": (
        {},
        [
            "2 watchlists:",
            "Desk floods | flood -> toy:desk (config file)",
            "Rivers desk | Severn -> toy:rivers",
        ],
    ),
    "watchlist test": (
        {"query": "Severn"},
        [
            "Severn would have matched 1 stories in the last 1d. Nothing was saved.",
            "Flood warnings lifted for the Severn | Wire · 02 Mar 06:00 UTC · Severn",
        ],
    ),
    "feed add": (
        {"url": AGENCY_URL},
        [
            "Feed 'Agency Wire' added: 3 stories found, polled every 5m until its publishing "
            "rate is known. Its first poll records what is there without alerting.",
            "Agency story 1",
            "Agency story 2",
            "Agency story 3",
        ],
    ),
    "feed remove": ({"name": "local NEWS"}, ["Feed 'Local news' removed."]),
    "feed list": (
        {},
        [
            "2 feeds: No story carried by two feeds in 7 days.",
            "Local news | not polled yet · last success never · 0 stories in 24h · every 10m "
            "(rate not known yet) · no cards or shared stories in 7 days",
            "Wire | ok · last success 60m ago · 3 stories in 24h · every 2m (rate not known "
            "yet) · config file · no cards or shared stories in 7 days",
        ],
    ),
}

ADMIN_VERBS = {
    "watchlist add": "add watchlists",
    "watchlist edit": "edit watchlists",
    "watchlist remove": "remove watchlists",
    "watchlist ping": "ping watchlists",
    "watchlist list": "list watchlists",
    "watchlist test": "test watchlists",
    "feed add": "add feeds",
    "feed remove": "remove feeds",
    "feed list": "list feeds",
}


def test_every_declared_command_is_covered_here() -> None:
    assert set(VALID) == set(COMMANDS)
    assert set(ADMIN_VERBS) == {c.name for c in CATALOG if c.who is Who.ADMINS}


@pytest.mark.parametrize("actor", [MEMBER, ADMIN], ids=["member", "admin"])
@pytest.mark.parametrize("command", sorted(COMMANDS))
async def test_every_command_answers_whoever_may_run_it(
    desk: Desk, command: str, actor: Actor
) -> None:
    args, expected = VALID[command]
    before = await desk.snapshot()

    reply = await desk.run(command, actor, **args)

    if COMMANDS[command].admins_only and not actor.is_admin:
        assert not reply.ok
        assert reply.text == f"Only admins can {ADMIN_VERBS[command]}. Ask a desk editor."
        assert await desk.snapshot() == before  # refused before the handler ran
    else:
        assert reply.ok, lines(reply)
        assert lines(reply)[: len(expected)] == expected
        assert reply.code is None


async def test_an_admin_refusal_without_a_hint_says_only_who_may() -> None:
    desk = await seeded()
    plain = Actor("toy", "sam")
    reply = await desk.run("feed list", plain)
    assert (reply.ok, reply.text) == (False, "Only admins can list feeds.")


# --- what the valid commands did ----------------------------------------------------------------


@pytest.mark.parametrize("actor", [MEMBER, ADMIN], ids=["member", "admin"])
async def test_subscribe_then_unsubscribe_changes_only_the_persons_own_list(
    desk: Desk, actor: Actor
) -> None:
    other = ADMIN if actor is MEMBER else MEMBER
    await desk.run("subscribe", actor, query="Pyongyang")
    assert lines(await desk.run("subscriptions", actor)) == [
        "Your subscriptions (2):",
        "Kremlin",
        "Pyongyang",
    ]
    again = await desk.run("subscribe", actor, query="Pyongyang")
    assert again.text == "You are already subscribed to: Pyongyang"

    await desk.run("unsubscribe", actor, query="Kremlin")
    await desk.run("unsubscribe", actor, query="Pyongyang")
    assert (await desk.run("subscriptions", actor)).text.startswith("You have no subscriptions.")
    assert lines(await desk.run("subscriptions", other))[1:] == ["Kremlin"]
    actions = [(e.actor, e.action) for e in await desk.store.audit_entries()]
    assert actions[::-1] == [
        (actor.key, "subscribe"),
        (actor.key, "unsubscribe"),
        (actor.key, "unsubscribe"),
    ]


async def test_a_subscription_goes_into_the_matcher(desk: Desk) -> None:
    await desk.run("subscribe", MEMBER, query="York")
    book = await desk.services.query_book()
    routes = book.route(Story("Wire", "Barrier raised in York", content="York"))
    assert [(r.target, r.subscriber, r.matched) for r in routes] == [
        ("toy:dm:rita", "toy:rita", ("York",))
    ]


async def test_recent_without_a_query_shows_what_the_watchlists_match(desk: Desk) -> None:
    reply = await desk.run("recent", MEMBER)
    assert [i.text for i in reply.items] == [
        "Flood barrier raised in York",
        "Flood warnings lifted for the Severn",
    ]
    assert reply.text == "2 stories matching the watchlists in the last 1d:"
    assert reply.items[0].url == "https://wire.example/Flood"


async def test_recent_looks_as_far_back_and_shows_as_many_as_asked(desk: Desk) -> None:
    reply = await desk.run("recent", MEMBER, query="Severn", hours=96)
    assert reply.text == "2 stories matching Severn in the last 4d:"
    few = await desk.run("recent", MEMBER, query="flood", hours=96, limit=1)
    assert few.text == "The newest 1 stories matching flood in the last 4d:"
    assert [i.text for i in few.items] == ["Flood barrier raised in York"]
    none = await desk.run("recent", MEMBER, query="wildfire")
    assert (none.ok, none.text) == (True, "No stories matching wildfire in the last 1d.")


async def test_status_names_skipped_queries_and_shows_whose_only_to_admins(desk: Desk) -> None:
    # A stored query that no longer parses (a row from an older version, say).
    await desk.store.add_subscription("toy:bob", "flood AND (", NOW)
    member, admin = await desk.run("status", MEMBER), await desk.run("status", ADMIN)
    skipped = "Skipped queries: 1 (they alert nobody until fixed)"
    assert skipped in lines(member) and skipped in lines(admin)
    whose = [line for line in lines(admin) if line.startswith("Skipped: ")]
    assert whose and whose[0].startswith("Skipped: subscription of toy:bob | ")
    assert not any(line.startswith("Skipped: ") for line in lines(member))


async def test_status_lists_failing_feeds(desk: Desk) -> None:
    wire = await desk.store.get_feed("Wire")
    assert wire is not None
    failed = PollOutcome(ok=False, error="HTTP 503", failures=3)
    await desk.store.record_poll(wire, failed, NOW)
    reply = await desk.run("status", MEMBER)
    assert "Feeds: 0 healthy, 1 failing, 1 not polled yet" in lines(reply)
    assert "Failing: Wire | HTTP 503" in lines(reply)


async def test_watchlist_add_stores_it_for_the_next_poll(desk: Desk) -> None:
    await desk.run("watchlist add", ADMIN, name="  Fires  ", query="wildfire", channel="toy:fire")
    added = await desk.store.get_watchlist("Fires")
    assert added is not None
    assert (added.query, added.channels, added.origin) == ("wildfire", ("toy:fire",), Origin.CHAT)
    assert added.created_by == "toy:ed"
    [entry] = [e for e in await desk.store.audit_entries() if e.action == "watchlist.add"]
    assert entry.detail == {"by": "Ed", "name": "Fires", "query": "wildfire", "channel": "toy:fire"}


async def test_watchlist_edit_and_remove_change_the_store(desk: Desk) -> None:
    await desk.run("watchlist edit", ADMIN, name="Rivers desk", query="Severn OR Trent")
    edited = await desk.store.get_watchlist("Rivers desk")
    assert edited is not None and edited.query == "Severn OR Trent"
    await desk.run("watchlist remove", ADMIN, name="Rivers desk")
    assert await desk.store.get_watchlist("Rivers desk") is None


async def test_a_watchlists_pings_and_thread_mode_are_set_apart_and_both_listed(
    desk: Desk,
) -> None:
    """Issue 18's two options on one watchlist: setting one keeps the other."""
    await desk.run("watchlist edit", ADMIN, name="Rivers desk", updates="thread")
    await desk.run("watchlist ping", ADMIN, name="Rivers desk", pings="user:ann always")
    await desk.run("watchlist edit", ADMIN, name="Rivers desk", query="Severn OR Trent")
    assert lines(await desk.run("watchlist list", ADMIN))[2] == (
        "Rivers desk | Severn OR Trent -> toy:rivers · updates in a thread"
        " · pings user:ann (always)"
    )
    await desk.run("watchlist edit", ADMIN, name="Rivers desk", updates="edit")
    assert lines(await desk.run("watchlist list", ADMIN))[2] == (
        "Rivers desk | Severn OR Trent -> toy:rivers · pings user:ann (always)"
    )


async def test_a_name_is_found_however_its_spaces_were_typed(desk: Desk) -> None:
    """add tidies a name's spaces; edit and remove find it typed the same untidy way."""
    added = await desk.run(
        "watchlist add", ADMIN, name="Fires  desk", query="wildfire", channel="toy:fire"
    )
    assert added.ok, added.text
    edited = await desk.run("watchlist edit", ADMIN, name=" Fires  desk ", query="bushfire")
    assert edited.ok, edited.text
    assert (await desk.store.get_watchlist("Fires desk")).query == "bushfire"
    removed = await desk.run("watchlist remove", ADMIN, name="Fires   desk")
    assert removed.ok, removed.text
    assert await desk.store.get_watchlist("Fires desk") is None


async def test_a_valid_query_that_probably_means_something_else_gets_a_note(desk: Desk) -> None:
    reply = await desk.run("subscribe", MEMBER, query="putin or kremlin")
    assert reply.ok and reply.text.splitlines()[0].startswith("Subscribed.")
    assert any(line.startswith("Note: ") for line in reply.text.splitlines()[1:])


async def test_watchlist_test_saves_nothing(desk: Desk) -> None:
    before = await desk.snapshot()
    reply = await desk.run("watchlist test", ADMIN, query="cycle OR Severn", hours=96)
    assert reply.text.startswith("cycle OR Severn would have matched 3 stories in the last 4d.")
    nothing = await desk.run("watchlist test", ADMIN, query="wildfire")
    assert nothing.text == (
        "wildfire would have matched no stored story in the last 1d. Nothing was saved."
    )
    assert await desk.snapshot() == before


async def test_feed_add_probes_stores_and_reschedules(desk: Desk) -> None:
    reply = await desk.run("feed add", ADMIN, url=AGENCY_URL, name="Agency", interval="90s")
    assert reply.text.startswith("Feed 'Agency' added: 3 stories found, polled every 1m30s.")
    assert [i.url for i in reply.items] == [f"https://agency.example/{n}" for n in (1, 2, 3)]
    assert desk.services.probes == [(AGENCY_URL, "Agency")]
    assert desk.services.feeds_changes == 1
    feed = await desk.store.get_feed("Agency")
    assert feed is not None
    assert (feed.url, feed.interval, feed.origin) == (
        AGENCY_URL,
        timedelta(seconds=90),
        Origin.CHAT,
    )
    assert not feed.baseline_done  # its first poll alerts nobody


async def test_feed_remove_drops_it_and_reschedules(desk: Desk) -> None:
    await desk.run("feed remove", ADMIN, name="Local news")
    assert await desk.store.get_feed("Local news") is None
    assert desk.services.feeds_changes == 1


async def test_unsubscribe_suggests_only_the_persons_own_subscriptions(desk: Desk) -> None:
    await desk.run("subscribe", MEMBER, query='"North Korea"')
    await desk.run("subscribe", ADMIN, query="Korean won")
    [arg] = COMMANDS["unsubscribe"].args
    assert arg.suggest is not None
    assert await arg.suggest(desk.commands, MEMBER, "kor") == ['"North Korea"']
    assert await arg.suggest(desk.commands, MEMBER, "") == ["Kremlin", '"North Korea"']


# --- bad arguments: a clear refusal, never an exception -----------------------------------------

TOO_LONG = "flood " * 200  # 1,200 characters typed; 1,199 once the trailing space goes
TOO_MANY_TERMS = " OR ".join(f"term{n}" for n in range(101))
NOTHING_TO_SUBSCRIBE = (
    "Give a query to subscribe to, or a setting (timezone, quiet, urgent, mode, at), "
    'e.g. a query "North Korea" OR Pyongyang, or the quiet option with 22:00-07:00 '
    "(typed as --quiet 22:00-07:00)."
)

# (command, arguments, the first line of the refusal, text in its `code` block if any)
REFUSALS: list[tuple[str, dict[str, Any], str, str]] = [
    ("subscribe", {"query": ""}, NOTHING_TO_SUBSCRIBE, ""),
    ("subscribe", {"query": None}, NOTHING_TO_SUBSCRIBE, ""),
    ("subscribe", {"query": "   "}, NOTHING_TO_SUBSCRIBE, ""),
    ("subscribe", {"query": TOO_LONG}, "That query does not parse:", "Query is too long (1199"),
    ("subscribe", {"query": TOO_MANY_TERMS}, "That query does not parse:", "Too many terms"),
    ("subscribe", {"query": '"North Korea'}, "That query does not parse:", "Unclosed quote"),
    ("subscribe", {"query": "NOT flood"}, "That query does not parse:", ""),
    ("subscribe", {"query": "ab*"}, "That query does not parse:", ""),
    # a person's delivery settings (bot.core.quiet): a query given with a bad one is not added
    (
        "subscribe",
        {"query": "Severn", "timezone": "Mars/Olympus"},
        "'Mars/Olympus' is not a time zone I know. Use an IANA name such as Europe/London, "
        "America/New_York, Asia/Tokyo or UTC. Nothing was changed.",
        "",
    ),
    (
        "subscribe",
        {"timezone": "../../etc/passwd"},
        "'../../etc/passwd' is not a time zone I know. Use an IANA name such as "
        "Europe/London, America/New_York, Asia/Tokyo or UTC. Nothing was changed.",
        "",
    ),
    (
        "subscribe",
        {"quiet": "25:00-07:00", "timezone": "Europe/London"},
        "'25:00' is not a time of day for quiet hours: use 24-hour HH:MM, 00:00 to 23:59. "
        "Nothing was changed.",
        "",
    ),
    (
        "subscribe",
        {"quiet": "22:00"},
        "'22:00' is not a span of quiet hours: give start-end, e.g. 22:00-07:00 (or off). "
        "Nothing was changed.",
        "",
    ),
    (
        "subscribe",
        {"quiet": "07:00-7"},
        "Quiet hours must start and end at different times. Nothing was changed.",
        "",
    ),
    (
        "subscribe",
        {"query": "Severn", "mode": "weekly", "quiet": "22:00-07:00"},
        "Unknown mode 'weekly': use instant, hourly or daily. Nothing was changed.",
        "",
    ),
    (
        "subscribe",
        {"urgent": "maybe"},
        "urgent takes yes or no, not 'maybe'. Nothing was changed.",
        "",
    ),
    (
        "subscribe",
        {"mode": "daily", "at": "8pm"},
        "'8pm' is not a time of day for the daily digest: use 24-hour HH:MM, 00:00 to 23:59. "
        "Nothing was changed.",
        "",
    ),
    (
        "unsubscribe",
        {"query": "Pyongyang"},
        "You have no subscription 'Pyongyang'. Yours: Kremlin",
        "",
    ),
    ("unsubscribe", {"query": None}, "You have no subscription ''. Yours: Kremlin", ""),
    ("recent", {"query": "flood AND ("}, "That query does not parse:", ""),
    ("recent", {"query": TOO_LONG}, "That query does not parse:", "Query is too long"),
    ("recent", {"hours": 0}, "hours must be between 1 and 168.", ""),
    ("recent", {"hours": -5}, "hours must be between 1 and 168.", ""),
    ("recent", {"hours": 169}, "hours must be between 1 and 168.", ""),
    ("recent", {"limit": 0}, "limit must be between 1 and 25.", ""),
    ("recent", {"limit": 26}, "limit must be between 1 and 25.", ""),
    (
        "watchlist add",
        {"name": "", "query": "wildfire", "channel": "toy:fire"},
        "Give the watchlist a name.",
        "",
    ),
    (
        "watchlist add",
        {"name": "x" * 101, "query": "wildfire", "channel": "toy:fire"},
        "A watchlist name is at most 100 plain characters.",
        "",
    ),
    (
        "watchlist add",
        {"name": "Fires\x07", "query": "wildfire", "channel": "toy:fire"},
        "A watchlist name is at most 100 plain characters.",
        "",
    ),
    (
        "watchlist add",
        {"name": "Fires", "query": "", "channel": "toy:fire"},
        "That query does not parse:",
        "Empty query",
    ),
    (
        "watchlist add",
        {"name": "Fires", "query": TOO_LONG, "channel": "toy:fire"},
        "That query does not parse:",
        "Query is too long",
    ),
    (
        "watchlist add",
        {"name": "Fires", "query": "wildfire", "channel": "fire"},
        "'fire' is not a channel this bot can post to.",
        "",
    ),
    (
        "watchlist add",
        {"name": "Fires", "query": "wildfire", "channel": "toy:dm:rita"},
        "'toy:dm:rita' is not a channel this bot can post to.",
        "",
    ),
    (
        "watchlist add",
        {"name": "Fires", "query": "wildfire", "channel": "elsewhere:C123"},
        "'elsewhere:C123' is not a channel this bot can post to.",
        "",
    ),
    (
        "watchlist add",
        {"name": "Fires", "query": "wildfire", "channel": "pager:not-digits"},
        "'pager:not-digits' is not a channel this bot can post to.",
        "",
    ),
    (
        "watchlist add",
        {"name": "desk FLOODS", "query": "wildfire", "channel": "toy:fire"},
        "A watchlist named 'Desk floods' already exists; edit it instead.",
        "",
    ),
    (
        "watchlist edit",
        {"name": "Fires", "query": "wildfire"},
        "There is no watchlist 'Fires'.",
        "",
    ),
    (
        "watchlist edit",
        {"name": "Desk floods", "query": "flood OR flooding"},
        "The watchlist 'Desk floods' comes from the config file (newsbot.toml); change it "
        "there and restart the bot.",
        "",
    ),
    (
        "watchlist edit",
        {"name": "Rivers desk", "query": "Severn OR"},
        "That query does not parse:",
        "",
    ),
    ("watchlist remove", {"name": "Fires"}, "There is no watchlist 'Fires'.", ""),
    ("watchlist remove", {"name": None}, "There is no watchlist None.", ""),
    (
        "watchlist remove",
        {"name": "Desk floods"},
        "The watchlist 'Desk floods' comes from the config file (newsbot.toml); change it "
        "there and restart the bot.",
        "",
    ),
    ("watchlist test", {"query": ""}, "That query does not parse:", "Empty query"),
    ("watchlist test", {"query": "flood", "hours": 500}, "hours must be between 1 and 168.", ""),
    (
        "feed add",
        {"url": ""},
        "Give an http:// or https:// feed URL (file:// feeds belong in the config file).",
        "",
    ),
    (
        "feed add",
        {"url": "file:///etc/passwd"},
        "Give an http:// or https:// feed URL (file:// feeds belong in the config file).",
        "",
    ),
    (
        "feed add",
        {"url": "https://agency.example/" + "a" * 2000},
        "Give an http:// or https:// feed URL (file:// feeds belong in the config file).",
        "",
    ),
    (
        "feed add",
        {"url": AGENCY_URL, "interval": "10s"},
        "The shortest interval is 30s.",
        "",
    ),
    (
        "feed add",
        {"url": AGENCY_URL, "interval": "soon"},
        "invalid duration 'soon': use e.g. 90s, 2m, 1h or 30d",
        "",
    ),
    ("feed add", {"url": WIRE_URL}, "That feed is already polled.", ""),
    (
        "feed add",
        {"url": "https://down.example/rss"},
        "Not added: the server answered HTTP 404",
        "",
    ),
    (
        "feed add",
        {"url": AGENCY_URL, "name": "wire"},
        "A feed named 'wire' already exists; pick another name.",
        "",
    ),
    (
        "feed add",
        {"url": AGENCY_URL, "name": "n" * 101},
        "A feed name is at most 100 plain characters.",
        "",
    ),
    ("feed remove", {"name": "Agency"}, "There is no feed 'Agency'.", ""),
    (
        "feed remove",
        {"name": "Wire"},
        "The feed 'Wire' comes from the config file (newsbot.toml); change it there and "
        "restart the bot.",
        "",
    ),
]


@pytest.mark.parametrize(
    ("command", "args", "refusal", "code"),
    REFUSALS,
    ids=[f"{c}-{n}" for n, (c, *_) in enumerate(REFUSALS)],
)
async def test_bad_arguments_get_a_clear_refusal(
    desk: Desk, command: str, args: dict[str, Any], refusal: str, code: str
) -> None:
    desk.services.unreachable["https://down.example/rss"] = "the server answered HTTP 404"
    before = await desk.snapshot()
    before_probes = list(desk.services.probes)

    reply = await desk.run(command, ADMIN, **args)

    assert not reply.ok
    assert reply.text == refusal
    if code:
        assert reply.code is not None and code in reply.code
    changed = await desk.snapshot()
    # Nothing was stored, audited or rescheduled (a feed may have been probed to learn why).
    assert changed[:4] == before[:4] and changed[5:] == before[5:]
    assert len(desk.services.probes) - len(before_probes) <= 1


async def test_a_query_error_shows_where_it_is(desk: Desk) -> None:
    reply = await desk.run("subscribe", MEMBER, query='flood AND "North Korea')
    assert reply.code is not None
    assert reply.code.splitlines()[0] == "Unclosed quote at column 11:"
    assert reply.code.splitlines()[2].index("^") == 2 + 10  # under the opening quote


async def test_a_persons_subscriptions_are_capped() -> None:
    desk = await seeded(CommandSettings(subscription_limit=2))
    assert (await desk.run("subscribe", MEMBER, query="Pyongyang")).ok
    reply = await desk.run("subscribe", MEMBER, query="Seoul")
    assert (reply.ok, reply.text) == (
        False,
        "You have 2 subscriptions, the most allowed; remove one first.",
    )
    assert len(await desk.store.list_subscriptions(MEMBER.key)) == 2


async def test_a_persons_subscriptions_together_are_capped_in_words_and_near() -> None:
    desk = await seeded(CommandSettings(subscription_terms=5, subscription_near=1))
    assert (await desk.run("subscribe", MEMBER, query="a1 OR b2 OR c3")).ok  # 1 + 3 terms
    wide = await desk.run("subscribe", MEMBER, query="d4 OR e5")
    assert (wide.ok, wide.text) == (
        False,
        "Your subscriptions would look for 6 words and phrases in all; the limit is 5. "
        "Remove or shorten one first.",
    )
    # Another person's budget is their own.
    assert (await desk.run("subscribe", ADMIN, query="d4 OR e5")).ok


async def test_an_interval_left_empty_takes_the_default(desk: Desk) -> None:
    reply = await desk.run("feed add", ADMIN, url=AGENCY_URL, interval="")
    assert reply.ok and "polled every 5m until its publishing rate is known." in reply.text


async def test_a_subscription_typed_with_surrounding_spaces_can_be_stopped(desk: Desk) -> None:
    assert (await desk.run("subscribe", MEMBER, query=" Pyongyang ")).ok
    [arg] = COMMANDS["unsubscribe"].args
    assert arg.suggest is not None
    [suggested] = await arg.suggest(desk.commands, MEMBER, "pyong")
    reply = await desk.run("unsubscribe", MEMBER, query=suggested)
    assert reply.ok, reply.text
