"""The database file itself: whose it is, who may read it, and what a failed write leaves.

SQLite-specific (file modes, the application id in the header, SQLITE_FULL), so these run on
files with the stdlib sqlite3 module alongside, not through the backend-neutral contract."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import stat
from datetime import UTC, datetime, timedelta

import pytest

from bot.core.models import FeedSpec, Origin, Story
from bot.core.pipeline import IngestPlan, NewStory
from bot.core.ports import PollOutcome
from storage.sqlite import APPLICATION_ID, DatabaseUnavailable, SqliteStorage
from tests.storage.test_migrations import connect, create_at_version, tables

NOW = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)


def application_id(path) -> int:
    with connect(path) as conn:
        return conn.execute("PRAGMA application_id").fetchone()[0]


# --- whose database -------------------------------------------------------------------------------


async def test_a_new_database_is_marked_as_ours(tmp_path):
    path = tmp_path / "newsbot.db"
    await (await SqliteStorage.open(path)).close()

    assert application_id(path) == APPLICATION_ID


@pytest.mark.parametrize("version", [1, 2, 3])
async def test_a_database_made_before_the_mark_is_recognised_by_its_tables(tmp_path, version):
    path = tmp_path / "newsbot.db"
    create_at_version(path, version)
    assert application_id(path) == 0

    store = await SqliteStorage.open(path)
    await store.close()

    assert application_id(path) == APPLICATION_ID


async def test_another_applications_database_is_refused_and_not_migrated(tmp_path):
    # It versions itself with user_version, as many applications do: a runner that trusted the
    # number alone would apply our later migrations to it.
    path = tmp_path / "newsbot.db"
    with connect(path) as conn:
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        conn.execute("INSERT INTO notes (body) VALUES ('mine')")
        conn.execute("PRAGMA user_version = 2")
    before = path.read_bytes()

    with pytest.raises(DatabaseUnavailable) as refused:
        await SqliteStorage.open(path)

    assert str(refused.value) == (
        f"cannot open the database {path}: it is not a newsbot database (it has tables notes); "
        "refusing to touch it"
    )
    assert path.read_bytes() == before
    assert tables(path) == {"notes"}


async def test_a_database_marked_by_another_application_is_refused_even_with_our_tables(
    tmp_path,
):
    path = tmp_path / "newsbot.db"
    create_at_version(path, 3)
    with connect(path) as conn:
        conn.execute("PRAGMA application_id = 1234")
    before = path.read_bytes()

    with pytest.raises(DatabaseUnavailable, match=r"application id 0x4d2\); refusing"):
        await SqliteStorage.open(path)

    assert path.read_bytes() == before


async def test_a_file_that_is_not_sqlite_is_refused_and_left_unchanged(tmp_path):
    path = tmp_path / "newsbot.db"
    path.write_bytes(b"PK\x03\x04" + os.urandom(4096))  # say, a zip someone put there
    before = path.read_bytes()

    with pytest.raises(DatabaseUnavailable, match="is not a SQLite database; refusing"):
        await SqliteStorage.open(path)

    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["newsbot.db"]


async def test_a_truncated_database_is_refused_as_damaged_and_left_unchanged(tmp_path):
    path = tmp_path / "newsbot.db"
    store = await SqliteStorage.open(path)
    await store.record_audit("discord:42", "subscribe", {"query": "ecb"}, NOW)
    await store.close()
    path.write_bytes(path.read_bytes()[:5000])
    before = path.read_bytes()

    with pytest.raises(DatabaseUnavailable, match="is damaged or truncated"):
        await SqliteStorage.open(path)

    assert path.read_bytes() == before


async def test_an_empty_file_is_an_empty_database(tmp_path):
    path = tmp_path / "newsbot.db"
    path.touch()

    store = await SqliteStorage.open(path)
    try:
        assert await store.list_feeds() == []
    finally:
        await store.close()


async def test_a_write_lock_held_elsewhere_is_refused_at_open_naming_the_cause(
    tmp_path, monkeypatch
):
    path = tmp_path / "newsbot.db"
    await (await SqliteStorage.open(path)).close()
    monkeypatch.setattr("storage.sqlite.BUSY_TIMEOUT_MS", 100)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN EXCLUSIVE")
        with pytest.raises(DatabaseUnavailable) as refused:
            await SqliteStorage.open(path)
    finally:
        other.close()

    assert str(refused.value).startswith(
        f"cannot open the database {path}: it is locked by another process"
    )
    await (await SqliteStorage.open(path)).close()  # nothing was left behind


# --- who may read it ------------------------------------------------------------------------------


@pytest.fixture
def common_umask():
    previous = os.umask(0o022)  # what most systems use: 0644 files if nobody says otherwise
    yield
    os.umask(previous)


async def test_the_folder_we_create_and_the_database_files_are_private(tmp_path, common_umask):
    chosen = tmp_path / "srv"
    chosen.mkdir(mode=0o755)
    path = chosen / "newsbot" / "newsbot.db"

    store = await SqliteStorage.open(path)
    try:
        await store.record_audit("discord:42", "subscribe", {"query": "ecb"}, NOW)
        modes = {
            p.name: stat.S_IMODE(p.stat().st_mode) for p in path.parent.iterdir() if p.is_file()
        }
    finally:
        await store.close()

    assert modes == {"newsbot.db": 0o600, "newsbot.db-wal": 0o600, "newsbot.db-shm": 0o600}
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(chosen.stat().st_mode) == 0o755  # existed: the operator's choice


async def test_an_existing_database_others_can_read_is_reported_not_changed(
    tmp_path, caplog, common_umask
):
    path = tmp_path / "newsbot.db"
    await (await SqliteStorage.open(path)).close()
    path.chmod(0o644)
    caplog.set_level(logging.WARNING, "storage.sqlite")

    await (await SqliteStorage.open(path)).close()

    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [r.getMessage() for r in caplog.records] == [
        f"the database {path} can be read by other users (mode -rw-r--r--): it holds every "
        "subscription and the audit log; run chmod 600 on it and its -wal and -shm files"
    ]


# --- a full disk ----------------------------------------------------------------------------------


def big_story(n: int) -> NewStory:
    story = Story(
        feed="Wire",
        guid=f"g{n}",
        link=f"https://w.example/{n}",
        title=f"Story {n}",
        summary="words " * 2000,
        content="",
        published=NOW,
    )
    return NewStory(ref=-n, story=story, alertable=True)


async def test_a_full_disk_raises_its_own_error_and_marks_the_feed_failing(tmp_path):
    store = await SqliteStorage.open(tmp_path / "newsbot.db")
    try:
        feed = await store.add_feed(
            FeedSpec("Wire", "https://w.example/rss", timedelta(minutes=5), Origin.CONFIG),
            "test",
            NOW,
        )
        async with store._db.execute("PRAGMA page_count") as cursor:
            (pages,) = await cursor.fetchone()
        await store._db.execute(f"PRAGMA max_page_count = {pages}")
        plan = IngestPlan(new_stories=[big_story(n) for n in range(1, 20)])

        with pytest.raises(sqlite3.OperationalError) as failed:
            await store.apply_ingest(feed, plan, PollOutcome(ok=True, etag='"v2"'), NOW)

        # The cause, not "cannot rollback - no transaction is active".
        assert str(failed.value) == "database or disk is full"
        assert await store.count_stories() == 0
        stored = await store.get_feed("Wire")
        assert stored.failures == 1 and stored.etag is None
        assert stored.last_error == "cannot save the poll: database or disk is full"
    finally:
        await store.close()


# --- the subscription limit -----------------------------------------------------------------------


async def test_concurrent_subscriptions_stop_exactly_at_the_limit(tmp_path):
    store = await SqliteStorage.open(tmp_path / "newsbot.db")
    try:
        added = await asyncio.gather(
            *(store.add_subscription("discord:42", f"topic {n}", NOW, limit=50) for n in range(80))
        )
        assert added.count(True) == 50
        assert len(await store.list_subscriptions("discord:42")) == 50
        # Someone else's limit is their own.
        assert await store.add_subscription("discord:43", "topic 1", NOW, limit=50)
    finally:
        await store.close()
