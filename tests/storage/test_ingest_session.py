"""Ingest sessions: several polls back to back, as one transaction (IngestStore.ingest_session).

The contract part runs on every backend: what a poll in a session sees and leaves behind. The
SQLite part is about the shared commit itself: a poll that fails inside a session is undone
alone, and a session that cannot commit saves nothing and says so on every feed it held."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from dataclasses import replace
from datetime import timedelta

import pytest

from bot.core.identity import KeyKind, strong_keys
from bot.core.models import FeedSpec, FeedState, Story
from bot.core.pipeline import INGEST_BACKLOG, IngestPlan, NewStory, Pipeline, PlannedKey
from bot.core.routing import QueryBook
from bot.core.store import StorageError
from bot.feeds import FeedReader
from bot.feeds.fetch import HttpFetcher
from storage.memory import MemoryStorage
from storage.sqlite import SqliteStorage
from tests.feedgen import Item, rss
from tests.storage.test_storage_contract import AP, NOW, OK, REUTERS


def story(title: str, *, link: str | None = None, summary: str = "") -> Story:
    slug = title.lower().replace(" ", "-")
    return Story(
        feed=REUTERS.name,
        title=title,
        link=link or f"https://example.com/{slug}",
        guid=f"guid-{slug}",
        summary=summary,
        published=NOW,
    )


def poll_of(feed: FeedState, *stories: Story) -> IngestPlan:
    plan = IngestPlan()
    for index, item in enumerate(stories, start=1):
        plan.new_stories.append(NewStory(-index, item, alertable=False))
        plan.keys.extend(
            PlannedKey(-index, key) for key in strong_keys(item, feed.id, guid_unique=True)
        )
    return plan


def link_key(item: Story, feed: FeedState) -> int:
    (key,) = [
        k.value for k in strong_keys(item, feed.id, guid_unique=True) if k.kind == KeyKind.URL
    ]
    return key


async def test_a_poll_in_a_session_sees_the_polls_before_it_and_all_are_kept(storage):
    reuters = await storage.add_feed(REUTERS, "config", NOW)
    ap = await storage.add_feed(AP, "config", NOW)
    first = story("Kim Jong Un inspects missile launch", link="https://example.com/kim")
    again = replace(first, feed=AP.name, guid="ap-kim-1")

    async with storage.ingest_session() as session:
        ids = await session.apply_ingest(reuters, poll_of(reuters, first), OK, NOW)
        # The second feed's poll, in the same session, finds the first one's story by its link.
        hits = await session.find_keys([link_key(again, ap)])
        assert {hit.story_id for hit in hits} == set(ids.values())
        loaded = await session.load_stories(list(ids.values()))
        assert [s.title for s in loaded.values()] == [first.title]
        await session.apply_ingest(ap, poll_of(ap, story("Seoul responds")), OK, NOW)

    assert await storage.count_stories() == 2
    for name in (REUTERS.name, AP.name):
        fed = await storage.get_feed(name)
        assert fed.baseline_done and fed.failures == 0


# --- SQLite: one commit for the session -----------------------------------------------------------


@pytest.fixture
async def sqlite_store(tmp_path):
    store = await SqliteStorage.open(tmp_path / "newsbot.db")
    try:
        yield store
    finally:
        await store.close()


async def test_a_poll_that_fails_in_a_session_is_undone_alone(sqlite_store):
    store = sqlite_store
    reuters = await store.add_feed(REUTERS, "config", NOW)
    ap = await store.add_feed(AP, "config", NOW)
    broken = replace(story("no title"), title=None)  # NOT NULL: the database refuses the row

    async with store.ingest_session() as session:
        await session.apply_ingest(reuters, poll_of(reuters, story("Kept")), OK, NOW)
        with pytest.raises(sqlite3.IntegrityError):
            await session.apply_ingest(
                ap, poll_of(ap, story("Undone with its poll"), broken), OK, NOW
            )
        await session.apply_ingest(reuters, poll_of(reuters, story("Kept too")), OK, NOW)

    titles = sorted(s.title for s in await store.recent_stories(NOW - timedelta(days=1)))
    assert titles == ["Kept", "Kept too"]
    failed = await store.get_feed(AP.name)
    assert failed.failures == 1 and not failed.baseline_done
    assert failed.last_error.startswith("cannot save the poll: NOT NULL constraint failed")
    assert (await store.get_feed(REUTERS.name)).failures == 0


async def test_a_session_that_cannot_commit_saves_nothing_and_fails_every_feed(sqlite_store):
    store = sqlite_store
    reuters = await store.add_feed(REUTERS, "config", NOW)
    ap = await store.add_feed(AP, "config", NOW)
    async with store._db.execute("PRAGMA page_count") as cursor:
        (pages,) = await cursor.fetchone()
    await store._db.execute(f"PRAGMA max_page_count = {pages + 2}")
    big = [story(f"Story {n}", summary="words " * 2000) for n in range(20)]

    with pytest.raises(sqlite3.OperationalError, match="database or disk is full"):
        async with store.ingest_session() as session:
            await session.apply_ingest(reuters, poll_of(reuters, story("Small")), OK, NOW)
            # Full: SQLite gives up the whole transaction, the first poll's rows with it.
            with pytest.raises(sqlite3.OperationalError):
                await session.apply_ingest(ap, poll_of(ap, *big), OK, NOW)

    await store._db.execute(f"PRAGMA max_page_count = {pages * 100}")
    assert await store.count_stories() == 0
    for name in (REUTERS.name, AP.name):
        fed = await store.get_feed(name)
        assert fed.failures == 1 and not fed.baseline_done, name
        assert fed.last_error.startswith("cannot save the poll"), name


async def test_a_session_cancelled_as_it_begins_leaves_no_transaction_open(sqlite_store):
    store = sqlite_store
    reuters = await store.add_feed(REUTERS, "config", NOW)

    async def session() -> None:
        async with store.ingest_session():
            await asyncio.sleep(10)

    task = asyncio.create_task(session())
    await asyncio.sleep(0)  # it has the lock and waits for its BEGIN on the connection's thread
    task.cancel()  # shutdown
    with pytest.raises(asyncio.CancelledError):
        await task

    # The BEGIN ran all the same, and was rolled back: the next poll commits as usual.
    await store.apply_ingest(reuters, poll_of(reuters, story("After")), OK, NOW)
    assert await store.count_stories() == 1
    assert not await store._run(lambda conn: conn.in_transaction)


# --- the pipeline around sessions -----------------------------------------------------------------


class Unreachable(MemoryStorage):
    """A store whose sessions cannot open (the database gone): nothing to await, even."""

    def ingest_session(self):  # type: ignore[override]
        raise StorageError("the database is unreachable")


@pytest.mark.timeout(20)
async def test_a_session_that_cannot_open_fails_the_poll_instead_of_waiting_for_ever():
    store = Unreachable()
    feed = await store.add_feed(REUTERS, "config", NOW)
    pipeline = Pipeline(
        store,
        reader=None,  # type: ignore[arg-type]  # ingest() reads nothing from the network
        queries=lambda: _empty_book(),
        clock=lambda: NOW,
    )

    with pytest.raises(StorageError, match="unreachable"):
        await asyncio.wait_for(pipeline.ingest(feed, [story("Kept for later")], OK), 10)
    # The lock is free again: the next poll fails the same way, it does not hang either.
    with pytest.raises(StorageError, match="unreachable"):
        await asyncio.wait_for(pipeline.ingest(feed, [story("And again")], OK), 10)


async def _empty_book() -> QueryBook:
    return QueryBook([], [])


class Stalled(MemoryStorage):
    """A store whose sessions wait until `free` is set (a database busy with a long write)."""

    def __init__(self) -> None:
        super().__init__()
        self.free = asyncio.Event()

    @contextlib.asynccontextmanager
    async def ingest_session(self):  # type: ignore[override]
        await self.free.wait()
        async with super().ingest_session() as session:
            yield session


@pytest.mark.timeout(30)
async def test_feeds_are_fetched_while_the_store_is_busy_and_the_waiting_polls_are_bounded(
    feed_server,
):
    """Issue 13: under one bound for the whole poll, every slot filled with parsed documents
    waiting for the store, and fetching stopped until the store was free again (a first poll
    slower than the naive loop, with both cores half idle). Now a parsed poll frees its fetch
    slot; the polls waiting for the store are bounded on their own."""
    concurrency, count = 2, 2 + INGEST_BACKLOG + 10
    store = Stalled()
    now = NOW
    specs = []
    for i in range(count):
        feed_server.set(
            f"f{i}.xml", rss([Item(f"Story {i}", "Text.", link=f"https://w.example/{i}")])
        )
        specs.append(FeedSpec(f"Feed {i}", feed_server.url(f"f{i}.xml"), timedelta(minutes=2)))
    await store.sync_config_feeds(specs, now)
    feeds = await store.list_feeds()
    reader = FeedReader(HttpFetcher())
    pipeline = Pipeline(
        store, reader, lambda: _empty_book(), clock=lambda: now, concurrency=concurrency
    )

    def fetched() -> int:
        return sum(feed_server.count(f"f{i}.xml") for i in range(count))

    try:
        polls = asyncio.gather(*(pipeline.poll(feed, force=True) for feed in feeds))
        for _ in range(500):  # up to 10 s for the fetches to reach the bound
            if fetched() >= concurrency + INGEST_BACKLOG:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)  # room for any poll past the bound to show itself
        assert fetched() == concurrency + INGEST_BACKLOG
        assert await store.count_stories() == 0

        store.free.set()
        reports = await polls
    finally:
        await reader.close()

    assert [r.status for r in reports] == ["new"] * count
    assert fetched() == count
    assert await store.count_stories() == count
