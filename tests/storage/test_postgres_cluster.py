"""Several workers on one PostgreSQL database (bot.core.cluster.Coordinator, issue 16): two
PostgresStorage objects on the same database are two workers. Leases here last a second, so
that a lapse takes a second's sleep; every time they compare is the database's clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from bot.core.cluster import Coordinator, LeaseLost, Signal
from bot.core.models import DeliveryStatus, FeedSpec, Origin, Watchlist
from bot.core.pipeline import Pipeline
from bot.core.routing import QueryBook, Route
from storage.postgres import PostgresStorage
from tests.storage.postgres_server import open_clean
from tests.storage.test_storage_contract import (
    AP,
    EDITOR_DM,
    MARKETS_CHANNEL,
    NOW,
    OK,
    REUTERS,
    UKRAINE_CHANNEL,
    bare_story,
    config_feeds,
    ecb_story,
    editor_route,
    ingest,
    kyiv_story,
    markets_route,
    quake_story,
    ukraine_route,
)

LEASE = timedelta(seconds=1)
LAPSE_S = 1.3  # a little longer than a lease
SHORT = {"feed_lease": LEASE, "destination_claim": LEASE, "fallback_poll": timedelta(minutes=5)}

OpenWorker = Callable[..., Awaitable[PostgresStorage]]

DISCORD_GATEWAY = "discord-gateway"  # a role, as bot.chat.discord names its gateway


@pytest.fixture
async def open_worker(postgres_url: str) -> AsyncIterator[OpenWorker]:
    """Opens workers on the session's database: the first one empties it."""
    opened: list[PostgresStorage] = []

    async def open_one(**options: Any) -> PostgresStorage:
        options = SHORT | options
        if opened:
            store = await PostgresStorage.open(postgres_url, pool_size=4, **options)
        else:
            store = await open_clean(postgres_url, **options)
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        if not store._pool.is_closing():
            await store.close()


@pytest.fixture
async def pair(open_worker: OpenWorker) -> tuple[PostgresStorage, PostgresStorage]:
    return await open_worker(), await open_worker()


async def eventually(check: Callable[[], bool], within: float = 3.0) -> None:
    for _ in range(int(within / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    assert check()


def many_feeds(count: int) -> list[FeedSpec]:
    return [
        FeedSpec(f"Wire {i:02d}", f"https://wire.example/{i}.rss", timedelta(minutes=5))
        for i in range(count)
    ]


async def kill_connection(store: PostgresStorage, pid: int) -> None:
    assert await store._pool.fetchval("SELECT pg_terminate_backend($1)", pid)


async def kill_worker(store: PostgresStorage) -> None:
    """Every session of the worker ends at once, and it lets nothing go: a SIGKILL, as the
    database sees it."""
    await store._stop_signals()  # its listener (not what frees anything)
    assert store._hold_conn is not None
    holder = store._hold_conn.get_server_pid()
    store._hold_conn.terminate()
    store._pool.terminate()
    # The server ends the sessions (and frees their locks) when it notices the sockets closed,
    # a moment later: wait for that, as a restarted worker's first claim would in practice.
    watcher = await asyncpg.connect(store._url)
    try:
        for _ in range(500):  # up to 10 s
            gone = await watcher.fetchval(
                "SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)", holder
            )
            if gone:
                break
            await asyncio.sleep(0.02)
        assert gone, "the killed worker's session outlived its socket"
    finally:
        await watcher.close()


# --- feed leases ----------------------------------------------------------------------------------


async def test_a_postgres_store_is_a_coordinator_with_a_worker_id_of_its_own(pair):
    a, b = pair
    assert isinstance(a, Coordinator)
    assert a.worker != b.worker
    assert a.worker.count(":") >= 2  # host:pid:random


async def test_workers_claiming_at_once_never_get_the_same_feed(pair):
    a, b = pair
    feeds = await config_feeds(a, *many_feeds(30))

    claimed: list[int] = []
    for _ in range(10):
        rounds = await asyncio.gather(*(w.claim_due_feeds(4) for w in (a, b, a, b)))
        claimed += [lease.feed_id for leases in rounds for lease in leases]

    assert sorted(claimed) == sorted(f.id for f in feeds)  # each feed once, none twice
    assert await a.claim_due_feeds(10) == []
    assert await b.claim_due_feeds(10) == []


async def test_a_lapsed_lease_is_taken_over_with_a_larger_token(pair):
    a, b = pair
    (feed,) = await config_feeds(a, REUTERS)
    (first,) = await a.claim_due_feeds(5)
    assert not first.taken_over
    assert await b.claim_due_feeds(5) == []  # live: nobody else gets it

    await asyncio.sleep(LAPSE_S)
    (second,) = await b.claim_due_feeds(5)

    assert second.feed_id == feed.id
    assert second.token > first.token
    assert second.taken_over
    assert (b.takeovers, a.takeovers) == (1, 0)


async def test_a_lease_let_go_or_reclaimed_by_its_own_worker_is_no_takeover(pair):
    a, b = pair
    await config_feeds(a, REUTERS)
    (first,) = await a.claim_due_feeds(5)
    await a.finish_feed(first, timedelta(0))
    (again,) = await b.claim_due_feeds(5)
    assert not again.taken_over and again.token > first.token

    await asyncio.sleep(LAPSE_S)
    (mine,) = await b.claim_due_feeds(5)
    assert not mine.taken_over
    assert (a.takeovers, b.takeovers) == (0, 0)


async def test_heartbeats_keep_a_lease_past_its_first_term(pair):
    a, b = pair
    await config_feeds(a, REUTERS)
    await a.claim_due_feeds(5)
    for _ in range(6):  # two leases' time, renewed every quarter lease
        await asyncio.sleep(LEASE.total_seconds() / 4)
        await a.heartbeat()
    await asyncio.sleep(LEASE.total_seconds() / 4)

    assert await b.claim_due_feeds(5) == []


async def test_the_old_holder_writes_nothing_once_its_lease_was_taken_over(pair):
    a, b = pair
    (feed,) = await config_feeds(a, REUTERS)
    await a.claim_due_feeds(5)
    await asyncio.sleep(LAPSE_S)
    await b.claim_due_feeds(5)

    with pytest.raises(LeaseLost):
        await ingest(a, feed, [(ecb_story(), [markets_route()])])
    with pytest.raises(LeaseLost):
        await a.record_poll(feed, OK, NOW)

    assert await b.count_stories() == 0
    after = await b.get_feed_by_id(feed.id)
    assert after is not None
    assert (after.last_poll_at, after.etag, after.baseline_done) == (None, None, False)
    # The new holder writes.
    (story_id,) = await ingest(b, feed, [(ecb_story(), [markets_route()])])
    assert (await b.load_stories([story_id])).keys() == {story_id}


async def test_a_live_lease_lets_its_holder_write(pair):
    a, _ = pair
    (feed,) = await config_feeds(a, REUTERS)
    await a.claim_due_feeds(5)

    await ingest(a, feed, [(ecb_story(), [markets_route()])])
    await a.record_poll(feed, OK, NOW)
    assert await a.count_stories() == 1


async def test_a_lease_lapsed_but_not_taken_over_still_lets_its_holder_write(pair):
    """Nobody else polls the feed: the late write is the only one, and is kept."""
    a, _ = pair
    (feed,) = await config_feeds(a, REUTERS)
    await a.claim_due_feeds(5)
    await asyncio.sleep(LAPSE_S)

    await ingest(a, feed, [(ecb_story(), [markets_route()])])
    assert await a.count_stories() == 1


async def test_finish_feed_sets_the_next_poll_one_interval_on(pair):
    a, b = pair
    (feed,) = await config_feeds(a, REUTERS)
    (lease,) = await a.claim_due_feeds(5)

    await a.finish_feed(lease, timedelta(seconds=2))

    assert await b.claim_due_feeds(5) == []
    assert await a.claim_due_feeds(5) == []
    await asyncio.sleep(2.2)
    (next_lease,) = await b.claim_due_feeds(5)
    assert next_lease.feed_id == feed.id


async def test_finish_feed_of_a_lost_lease_leaves_the_new_holders_alone(pair):
    a, b = pair
    (feed,) = await config_feeds(a, REUTERS)
    (old,) = await a.claim_due_feeds(5)
    await asyncio.sleep(LAPSE_S)
    await b.claim_due_feeds(5)

    await a.finish_feed(old, timedelta(0))  # no error: the new holder decides

    assert await a.claim_due_feeds(5) == []  # b still holds it
    await ingest(b, feed, [(ecb_story(), [markets_route()])])


# --- the outbox, claimed by destination -----------------------------------------------------------


async def _cards(store: PostgresStorage) -> dict[str, list[int]]:
    """Three stories, each with a card for the markets channel and the Ukraine channel."""
    (feed,) = await config_feeds(store, REUTERS)
    ids = await ingest(
        store,
        feed,
        [
            (story, [markets_route(), ukraine_route()])
            for story in (ecb_story(), quake_story(), kyiv_story())
        ],
    )
    cards: dict[str, list[int]] = {MARKETS_CHANNEL: [], UKRAINE_CHANNEL: []}
    for story_id in ids:
        for card in await store.deliveries_for_story(story_id):
            cards[card.target].append(card.id)
    return cards


async def test_a_second_worker_gets_no_card_of_a_claimed_destination(pair):
    a, b = pair
    cards = await _cards(a)

    first = await a.due_deliveries(NOW, 2)  # takes both channels, however few cards it reads
    assert len(first) == 2
    assert await b.due_deliveries(NOW, 10) == []

    # A destination nobody holds goes to whoever asks.
    (feed,) = await config_feeds(a, REUTERS)
    (story_id,) = await ingest(a, feed, [(bare_story(), [editor_route()])])
    (dm,) = await a.deliveries_for_story(story_id)
    assert [d.id for d, _ in await b.due_deliveries(NOW, 10)] == [dm.id]
    due_in_a = [d.id for d, _ in await a.due_deliveries(NOW, 10)]
    assert dm.id not in due_in_a
    # Each channel in outbox order.
    assert [i for i in due_in_a if i in cards[MARKETS_CHANNEL]] == cards[MARKETS_CHANNEL]
    assert [i for i in due_in_a if i in cards[UKRAINE_CHANNEL]] == cards[UKRAINE_CHANNEL]
    assert {w.worker: w.destinations for w in await a.workers()} == {a.worker: 2, b.worker: 1}


async def test_workers_reading_the_outbox_at_once_never_share_a_destination(pair):
    a, b = pair
    (feed,) = await config_feeds(a, REUTERS)
    channels = [f"discord:{1000 + i}" for i in range(12)]
    routes = [Route(c, ("Desk",), None, ("ECB",)) for c in channels]
    await ingest(a, feed, [(ecb_story(), routes), (quake_story(), routes)])

    rounds = await asyncio.gather(*(w.due_deliveries(NOW, 50) for w in (a, b, a, b)))

    seen = {w: {d.target for d, _ in due} for w, due in zip("abab", rounds, strict=True)}
    assert not seen["a"] & seen["b"]
    assert seen["a"] | seen["b"] == set(channels)


async def test_a_claim_lapsed_and_taken_over_refuses_the_old_holders_marks(pair):
    a, b = pair
    cards = await _cards(a)
    first = cards[MARKETS_CHANNEL][0]
    other = cards[UKRAINE_CHANNEL][0]
    assert first in [d.id for d, _ in await a.due_deliveries(NOW, 10)]
    await asyncio.sleep(LAPSE_S)

    taken = [d.id for d, _ in await b.due_deliveries(NOW, 10)]
    assert first in taken and other in taken
    assert b.takeovers == 2

    with pytest.raises(LeaseLost):
        await a.mark_sent(first, "m-1", NOW)
    with pytest.raises(LeaseLost):
        await a.reschedule(first, "HTTP 503", NOW + timedelta(seconds=30), update=False)
    with pytest.raises(LeaseLost):
        await a.mark_failed(first, "50007", NOW)
    with pytest.raises(LeaseLost):
        await a.mark_update_done(first, NOW)
    with pytest.raises(LeaseLost):
        await a.assign_digest([first, other], "digest-1")

    row = await a._pool.fetchrow(
        "SELECT status, attempts, error, update_count, digest_group FROM deliveries WHERE id = $1",
        first,
    )
    assert dict(row) == {
        "status": "pending",
        "attempts": 0,
        "error": None,
        "update_count": 0,
        "digest_group": None,
    }
    await b.mark_sent(first, "m-1", NOW)  # the new holder's mark is kept
    assert await b.delivery_counts() == {"pending": 5, "sent": 1, "failed": 0}


async def test_a_worker_holding_no_claim_may_not_write_over_a_live_one(pair):
    a, b = pair
    cards = await _cards(a)
    await a.due_deliveries(NOW, 10)

    with pytest.raises(LeaseLost):
        await b.mark_sent(cards[MARKETS_CHANNEL][0], "m-1", NOW)


async def test_heartbeats_keep_a_destination_claim(pair):
    a, b = pair
    await _cards(a)
    await a.due_deliveries(NOW, 10)
    for _ in range(6):  # two leases' time, renewed every quarter lease
        await asyncio.sleep(LEASE.total_seconds() / 4)
        await a.heartbeat()
    await asyncio.sleep(LEASE.total_seconds() / 4)

    assert await b.due_deliveries(NOW, 10) == []


async def test_a_destination_with_nothing_left_to_send_is_let_go(pair):
    """So that destinations spread over the workers rather than stay with the first."""
    a, b = pair
    cards = await _cards(a)
    await a.due_deliveries(NOW, 10)
    for card in cards[MARKETS_CHANNEL]:
        await a.mark_sent(card, f"m-{card}", NOW)

    await a.due_deliveries(NOW, 10)

    assert {w.worker: w.destinations for w in await a.workers()}[a.worker] == 1
    (feed,) = await config_feeds(a, REUTERS)
    (story_id,) = await ingest(a, feed, [(bare_story(), [markets_route()])])
    (card,) = await a.deliveries_for_story(story_id)
    assert [d.id for d, _ in await b.due_deliveries(NOW, 10)] == [card.id]


async def test_closing_a_worker_lets_its_feeds_and_destinations_go_at_once(pair):
    a, b = pair
    await config_feeds(a, REUTERS)
    await _cards(a)
    await a.claim_due_feeds(5)
    await a.due_deliveries(NOW, 10)

    await a.close()

    (lease,) = await b.claim_due_feeds(5)
    assert not lease.taken_over
    assert len(await b.due_deliveries(NOW, 10)) == 6
    assert [w.worker for w in await b.workers()] == [b.worker]


async def test_a_worker_that_dies_gives_up_its_feeds_and_destinations_at_once(open_worker):
    # Leases far longer than the test: only the dead worker's session can free them.
    a = await open_worker(feed_lease=timedelta(minutes=5), destination_claim=timedelta(minutes=5))
    b = await open_worker(feed_lease=timedelta(minutes=5), destination_claim=timedelta(minutes=5))
    await config_feeds(a, REUTERS)
    await _cards(a)
    (held,) = await a.claim_due_feeds(5)
    assert len(await a.due_deliveries(NOW, 10)) == 6
    assert await b.claim_due_feeds(5) == [] and await b.due_deliveries(NOW, 10) == []

    # SIGKILL, as the database sees it: every session of the worker ends, nothing is let go.
    await kill_worker(a)

    (lease,) = await b.claim_due_feeds(5)
    assert lease.feed_id == held.feed_id and lease.taken_over and lease.token > held.token
    assert len(await b.due_deliveries(NOW, 10)) == 6
    alive = {w.worker: w.alive for w in await b.workers()}
    assert alive == {a.worker: False, b.worker: True}


async def test_ingest_sessions_run_one_at_a_time_across_workers(pair):
    # Two workers polling two feeds that carry one story: the second plan must see what the
    # first wrote, or the story is new to both and posted twice.
    a, b = pair
    entered = asyncio.Event()

    async def second() -> None:
        async with b.ingest_session():
            entered.set()

    async with a.ingest_session():
        task = asyncio.create_task(second())
        await asyncio.sleep(0.5)
        assert not entered.is_set()  # B waits while A's session is open
    await asyncio.wait_for(task, 5)  # and has its turn once it ends
    assert entered.is_set()


async def test_one_story_on_two_feeds_polled_by_two_workers_at_once_is_one_card(pair):
    # What the desk sees: the ECB story reaches Reuters and AP at the same moment, two workers
    # poll one each, and the channel gets one card, not two.
    a, b = pair
    reuters, ap = await config_feeds(a, REUTERS, AP)
    book = QueryBook(
        [Watchlist(1, "Desk", "ECB OR earthquake OR Zelensky", (MARKETS_CHANNEL,), Origin.CONFIG)],
        [],
    )

    async def queries() -> QueryBook:
        return book

    def pipeline(store: PostgresStorage) -> Pipeline:
        return Pipeline(store, None, queries, clock=lambda: NOW)  # type: ignore[arg-type]

    one, other = pipeline(a), pipeline(b)
    for feed in (reuters, ap):  # the baselines: alerts start with the next new story
        await one.ingest(feed, [], OK)
    reuters, ap = await a.get_feed(REUTERS.name), await a.get_feed(AP.name)

    stories = [ecb_story(), quake_story(), kyiv_story()]  # the two polls interleave anew each
    for n, story in enumerate(stories):
        story = replace(story, feed=REUTERS.name, guid=f"reuters-{n}", published=NOW)
        reports = await asyncio.gather(
            one.ingest(reuters, [story], OK),
            other.ingest(ap, [replace(story, feed=AP.name, guid=f"ap-{n}")], OK),
        )
        assert sorted(r.alerts for r in reports) == [0, 1], story.title

    assert await a.count_stories() == len(stories)
    assert (await a.delivery_counts()).get("pending") == len(stories)


# --- unique roles, events, /status ----------------------------------------------------------------


async def test_a_role_is_held_by_one_worker_and_passes_when_it_lets_go(pair):
    a, b = pair
    assert await a.try_hold(DISCORD_GATEWAY)
    assert await a.try_hold(DISCORD_GATEWAY)  # asking again keeps it
    assert not await b.try_hold(DISCORD_GATEWAY)
    assert a.holding(DISCORD_GATEWAY) and not b.holding(DISCORD_GATEWAY)
    assert {w.worker: w.holds for w in await b.workers()} == {
        a.worker: (DISCORD_GATEWAY,),
        b.worker: (),
    }

    await a.let_go(DISCORD_GATEWAY)

    assert not a.holding(DISCORD_GATEWAY)
    assert await b.try_hold(DISCORD_GATEWAY)
    assert not await a.try_hold(DISCORD_GATEWAY)


async def test_a_role_passes_when_its_holder_closes(pair):
    a, b = pair
    assert await a.try_hold(DISCORD_GATEWAY)
    await a.close()
    assert await b.try_hold(DISCORD_GATEWAY)


async def test_a_role_passes_when_its_holders_connection_is_killed(pair):
    a, b = pair
    assert await a.try_hold(DISCORD_GATEWAY)
    assert a._hold_conn is not None

    await kill_connection(b, a._hold_conn.get_server_pid())

    await eventually(lambda: not a.holding(DISCORD_GATEWAY))
    assert await b.try_hold(DISCORD_GATEWAY)
    # The dead holder's row is not believed: only the lock's holder is shown.
    assert {w.worker: w.holds for w in await b.workers()}[b.worker] == (DISCORD_GATEWAY,)
    # And the old holder can ask again (on a new connection), and is refused.
    assert not await a.try_hold(DISCORD_GATEWAY)


async def test_an_event_is_handled_exactly_once_across_workers(pair):
    a, b = pair
    answers = await asyncio.gather(*(w.first_to_handle("slack:Ev07ABCDEF") for w in (a, b) * 8))
    assert sorted(answers) == [False] * 15 + [True]
    assert await b.first_to_handle("slack:Ev07OTHER")


async def test_workers_lists_every_worker_with_what_it_holds(pair):
    a, b = pair
    await config_feeds(a, *many_feeds(3))
    await a.claim_due_feeds(2)
    await b.claim_due_feeds(5)

    rows = {w.worker: w for w in await a.workers()}

    assert rows.keys() == {a.worker, b.worker}
    assert (rows[a.worker].feeds, rows[b.worker].feeds) == (2, 1)
    assert all(w.alive for w in rows.values())
    assert rows[a.worker].seen_at >= rows[a.worker].started_at


# --- signals --------------------------------------------------------------------------------------


async def test_a_watchlist_added_by_one_worker_is_told_to_the_other(pair):
    a, b = pair  # the fallback poll is minutes away: only NOTIFY can tell b in time
    told: list[str] = []
    a.on_signal(Signal.QUERIES, lambda: told.append("a"))
    b.on_signal(Signal.QUERIES, lambda: told.append("b"))
    before_a, before_b = a.queries_version, b.queries_version

    await a.add_watchlist("Markets", "ECB OR Lagarde", [MARKETS_CHANNEL], "discord:1", NOW)

    await eventually(lambda: b.queries_version > before_b)
    assert told == ["b"]  # once; a does not call itself back for its own change
    await asyncio.sleep(0.2)
    assert a.queries_version == before_a + 1


async def test_cards_and_feeds_are_told_to_the_other_worker(pair):
    a, b = pair
    told: list[Signal] = []
    for signal in Signal:
        b.on_signal(signal, lambda signal=signal: told.append(signal))

    (feed,) = await config_feeds(a, REUTERS)
    await eventually(lambda: Signal.FEEDS in told)
    await ingest(a, feed, [(ecb_story(), [markets_route()])])
    await eventually(lambda: Signal.OUTBOX in told)
    assert Signal.QUERIES not in told


async def test_a_change_missed_by_a_dead_listener_is_found_by_the_fallback(open_worker):
    a = await open_worker()
    b = await open_worker(fallback_poll=timedelta(seconds=0.5))
    told: list[Signal] = []
    b.on_signal(Signal.QUERIES, lambda: told.append(Signal.QUERIES))
    assert b._listener is not None
    await kill_connection(a, b._listener.get_server_pid())
    await eventually(lambda: b._listener is not None and b._listener.is_closed())
    before = b.queries_version

    await a.add_subscription("slack:U1", "ecb", NOW)

    await eventually(lambda: b.queries_version > before)
    assert told == [Signal.QUERIES]
    # And b listens again: the next change is told too.
    await eventually(lambda: b._listener is not None and not b._listener.is_closed())
    await a.remove_subscription("slack:U1", "ecb")
    await eventually(lambda: len(told) == 2)


async def test_a_dead_listener_is_the_only_reason_for_the_fallback_to_call_back(open_worker):
    """With the listener alive, the fallback finds nothing missed: one call per change."""
    a = await open_worker()
    b = await open_worker(fallback_poll=timedelta(seconds=0.3))
    told: list[Signal] = []
    b.on_signal(Signal.QUERIES, lambda: told.append(Signal.QUERIES))

    await a.add_subscription("slack:U1", "ecb", NOW)
    await asyncio.sleep(1.0)

    assert told == [Signal.QUERIES]


async def test_cards_are_read_back_in_order_by_a_single_worker(open_worker):
    """One worker alone behaves as before: all its cards, in outbox order."""
    a = await open_worker()
    cards = await _cards(a)
    due = await a.due_deliveries(NOW, 10)
    assert [d.id for d, _ in due] == sorted(cards[MARKETS_CHANNEL] + cards[UKRAINE_CHANNEL])
    assert all(d.status == DeliveryStatus.PENDING for d, _ in due)
    assert EDITOR_DM not in {d.target for d, _ in due}
