"""The SQLite schema and its migrations: numbering, pragmas, upgrading databases made by older
versions of newsbot, refusing newer ones, and all-or-nothing migration steps.

These tests are about the SQLite file format, so they use files and the stdlib sqlite3 module to
build databases the way an older newsbot left them."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import storage.sqlite as sqlite_module
from bot.core.identity import KeyKind, fuzzy_keys, strong_keys
from bot.core.latency import SourceSighting
from bot.core.models import DeliveryStatus, Origin, Story
from bot.core.pipeline import IngestPlan, NewStory, Revision
from bot.core.ports import PollOutcome
from storage.migrations import LATEST_VERSION, Migration, load_migrations, script_for
from storage.sqlite import BUSY_TIMEOUT_MS, SqliteStorage, StorageError

MIGRATIONS_DIR = Path(sqlite_module.__file__).resolve().parent / "migrations"
NOW = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)


@contextmanager
def connect(path: Path, **kwargs) -> Iterator[sqlite3.Connection]:
    """sqlite3's own context manager commits but does not close; this does both."""
    conn = sqlite3.connect(path, **kwargs)
    try:
        with conn:
            yield conn
    finally:
        conn.close()


def user_version(path: Path) -> int:
    with connect(path) as conn:
        return conn.execute("PRAGMA user_version").fetchone()[0]


def tables(path: Path) -> set[str]:
    with connect(path) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {name for (name,) in rows}


def create_at_version(path: Path, version: int) -> None:
    """A database exactly as a newsbot whose newest migration was `version` left it."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for migration in load_migrations()[:version]:
            conn.executescript(script_for(migration))
    finally:
        conn.close()


# --- numbering ------------------------------------------------------------------------------------


def test_migrations_are_numbered_one_to_n_without_gaps():
    versions = [m.version for m in load_migrations()]

    assert versions == list(range(1, len(versions) + 1))
    assert len(versions) == LATEST_VERSION


def test_every_sql_file_in_the_folder_is_a_migration_that_runs():
    # load_migrations skips names that do not match NNNN_name.sql: a misnamed file would be
    # silently ignored, so the folder and the list must agree.
    files = sorted(p.name for p in MIGRATIONS_DIR.glob("*.sql"))

    assert files == [m.name for m in load_migrations()]
    assert all(re.fullmatch(r"\d{4}_[a-z0-9_]+\.sql", name) for name in files)
    assert len(files) == LATEST_VERSION


# --- a fresh database -----------------------------------------------------------------------------


async def test_a_fresh_database_is_at_the_latest_version_in_wal_mode_with_a_busy_timeout(
    tmp_path,
):
    path = tmp_path / "newsbot.db"
    store = await SqliteStorage.open(path)
    try:
        assert await store.schema_version() == LATEST_VERSION
        async with store._db.execute("PRAGMA busy_timeout") as cursor:
            assert (await cursor.fetchone())[0] == BUSY_TIMEOUT_MS > 0
        async with store._db.execute("PRAGMA foreign_keys") as cursor:
            assert (await cursor.fetchone())[0] == 1
    finally:
        await store.close()

    assert user_version(path) == LATEST_VERSION
    # The journal mode is stored in the file: any later connection sees it.
    with connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert {
        "feeds",
        "stories",
        "story_keys",
        "watchlists",
        "subscriptions",
        "deliveries",
        "audit_log",
    } <= tables(path)


async def test_a_fresh_in_memory_database_is_at_the_latest_version(tmp_path):
    store = await SqliteStorage.open(":memory:")
    try:
        assert await store.schema_version() == LATEST_VERSION
    finally:
        await store.close()


async def test_open_creates_missing_parent_folders(tmp_path):
    path = tmp_path / "var" / "lib" / "newsbot" / "newsbot.db"

    store = await SqliteStorage.open(path)
    await store.close()

    assert user_version(path) == LATEST_VERSION


async def test_a_write_waits_for_another_process_instead_of_failing(tmp_path):
    # The busy handler in action: another process (here a second connection) holds the write
    # lock; our write waits for it rather than failing with "database is locked". (Python's
    # sqlite3 also installs a 5 s handler of its own; the PRAGMA test above pins our value.)
    path = tmp_path / "newsbot.db"
    store = await SqliteStorage.open(path)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute(
            "INSERT INTO audit_log (at, actor, action, detail) VALUES (?, 'cli', 'backup', '{}')",
            (NOW.timestamp(),),
        )
        write = asyncio.create_task(
            store.record_audit("slack:U04ABCD1234", "feed.add", {"name": "AP"}, NOW)
        )
        await asyncio.sleep(0.2)  # let the write reach SQLite and meet the lock
        assert not write.done()
        other.execute("COMMIT")
        await write

        assert [e[2] for e in await store.audit_entries()] == ["feed.add", "backup"]
    finally:
        other.close()
        await store.close()


async def test_reopening_a_current_database_keeps_its_rows_and_version(tmp_path):
    path = tmp_path / "newsbot.db"
    store = await SqliteStorage.open(path)
    await store.add_subscription("discord:284917365023981569", "lagarde OR ecb", NOW)
    await store.close()

    store = await SqliteStorage.open(path)
    try:
        assert await store.migrate() == LATEST_VERSION
        assert [s.query for s in await store.list_subscriptions()] == ["lagarde OR ecb"]
    finally:
        await store.close()


def test_the_schema_allows_one_delivery_per_story_and_destination(tmp_path):
    # One card per story per destination is a constraint of the table, not a Python `if`.
    path = tmp_path / "newsbot.db"
    create_at_version(path, LATEST_VERSION)
    with connect(path) as conn:
        conn.execute(
            "INSERT INTO feeds (id, name, url, interval_s, origin, created_at) "
            "VALUES (1, 'Reuters World', 'https://feeds.reuters.com/reuters/worldNews', 300, "
            "'config', ?)",
            (NOW.timestamp(),),
        )
        conn.execute(
            "INSERT INTO stories (id, feed_id, feed_name, title, first_seen_at) "
            "VALUES (1, 1, 'Reuters World', 'ECB holds rates steady', ?)",
            (NOW.timestamp(),),
        )
        insert = (
            "INSERT INTO deliveries (story_id, target, next_attempt_at, created_at) "
            "VALUES (1, 'discord:1093847561029384756', ?, ?)"
        )
        conn.execute(insert, (NOW.timestamp(), NOW.timestamp()))
        with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
            conn.execute(insert, (NOW.timestamp(), NOW.timestamp()))


# --- upgrading an old database --------------------------------------------------------------------

OLD_FEED_ID = 7
OLD_STORY_ID = 41
SENT_ID, PENDING_ID = 101, 102
SENT_TO = "discord:1093847561029384756"
PENDING_TO = "slack:C05LKQ2M8TZ"
POLLED = NOW - timedelta(hours=2)

OLD_STORY = Story(
    feed="Reuters World",
    title="ECB holds rates steady as euro zone inflation eases to 2.3%",
    link="https://www.reuters.com/markets/europe/ecb-holds-rates-steady-2025-03-14/",
    guid="tag:reuters.com,2025:newsml_L8N3PQ0XY",
    summary="The European Central Bank left its deposit rate at 2.75% on Friday, saying price "
    "pressures were fading faster than expected.",
    content="FRANKFURT, March 14 (Reuters) - The European Central Bank left its deposit rate "
    "unchanged at 2.75% on Friday.",
    published=datetime(2025, 3, 14, 7, 15, tzinfo=UTC),
    author="Francesco Canepa",
    categories=("Markets", "Europe"),
    image="https://www.reuters.com/resizer/v2/ECB-LAGARDE.jpg?width=1200",
)


def write_schema_1_rows(path: Path) -> None:
    """Rows as the first release of newsbot wrote them (schema 1: no revision, no update
    columns, no audit log)."""
    stamp = POLLED.timestamp()
    with connect(path) as conn:
        conn.execute(
            """INSERT INTO feeds (id, name, url, interval_s, origin, active, created_at,
                 created_by, etag, last_modified, body_hash, baseline_done, last_poll_at,
                 last_success_at, failures)
               VALUES (?, 'Reuters World', 'https://feeds.reuters.com/reuters/worldNews', 300,
                 'config', 1, ?, 'config file', 'W/"6a1f-1741937400"',
                 'Fri, 14 Mar 2025 07:30:00 GMT', '3f7a9c2e81d54b06', 1, ?, ?, 0)""",
            (OLD_FEED_ID, stamp - 86400, stamp, stamp),
        )
        conn.execute(
            """INSERT INTO stories (id, feed_id, feed_name, guid, url, title, summary, content,
                 published_at, first_seen_at, author, categories, image, alertable)
               VALUES (?, ?, 'Reuters World', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)""",
            (
                OLD_STORY_ID,
                OLD_FEED_ID,
                OLD_STORY.guid,
                OLD_STORY.link,
                OLD_STORY.title,
                OLD_STORY.summary,
                OLD_STORY.content,
                int(OLD_STORY.published.timestamp()),
                stamp,
                OLD_STORY.author,
                json.dumps(list(OLD_STORY.categories)),
                OLD_STORY.image,
            ),
        )
        conn.executemany(
            "INSERT INTO story_keys (key, story_id, kind, seen_at) VALUES (?, ?, ?, ?)",
            [
                (key.value, OLD_STORY_ID, int(key.kind), stamp)
                for key in strong_keys(OLD_STORY, OLD_FEED_ID, guid_unique=True)
                + fuzzy_keys(OLD_STORY)
            ],
        )
        conn.execute(
            """INSERT INTO watchlists (name, query, channels, origin, created_by, created_at,
                 updated_at)
               VALUES ('Markets desk', 'ecb OR lagarde OR "rate cut"', ?, 'chat',
                 'discord:284917365023981569', ?, ?)""",
            (json.dumps([SENT_TO, PENDING_TO]), stamp, stamp),
        )
        conn.execute(
            "INSERT INTO subscriptions (subscriber, query, created_at) VALUES (?, ?, ?)",
            ("slack:U04ABCD1234", "lagarde", stamp),
        )
        conn.execute(
            """INSERT INTO deliveries (id, story_id, target, watchlists, matched, status,
                 attempts, next_attempt_at, created_at, sent_at, message_id)
               VALUES (?, ?, ?, '["Markets desk"]', '["ECB"]', 'sent', 0, ?, ?, ?,
                 '1349876543210987654')""",
            (SENT_ID, OLD_STORY_ID, SENT_TO, stamp, stamp, stamp + 2),
        )
        conn.execute(
            """INSERT INTO deliveries (id, story_id, target, watchlists, matched, status,
                 attempts, next_attempt_at, created_at, error)
               VALUES (?, ?, ?, '["Markets desk"]', '["ECB"]', 'pending', 3, ?, ?,
                 'HTTP 503 Service Unavailable')""",
            (PENDING_ID, OLD_STORY_ID, PENDING_TO, stamp + 60, stamp),
        )


async def test_a_schema_1_database_upgrades_and_its_rows_work_with_the_current_code(tmp_path):
    path = tmp_path / "newsbot.db"
    with connect(path, isolation_level=None) as conn:
        conn.executescript(script_for(load_migrations()[0]))
    assert user_version(path) == 1
    assert "audit_log" not in tables(path)
    write_schema_1_rows(path)

    store = await SqliteStorage.open(path)
    try:
        assert await store.schema_version() == LATEST_VERSION
        assert user_version(path) == LATEST_VERSION

        # Every row survived, readable through the current interface.
        feed = await store.get_feed("Reuters World")
        assert (feed.id, feed.origin, feed.baseline_done) == (OLD_FEED_ID, Origin.CONFIG, True)
        assert (feed.etag, feed.last_modified) == (
            'W/"6a1f-1741937400"',
            "Fri, 14 Mar 2025 07:30:00 GMT",
        )
        assert feed.last_success_at == POLLED
        old = (await store.load_stories([OLD_STORY_ID]))[OLD_STORY_ID]
        assert old.story == OLD_STORY
        assert (old.feed_id, old.first_seen, old.revision, old.alertable) == (
            OLD_FEED_ID,
            POLLED,
            0,
            True,
        )
        (watchlist,) = await store.list_watchlists()
        assert (watchlist.name, watchlist.channels, watchlist.origin) == (
            "Markets desk",
            (SENT_TO, PENDING_TO),
            Origin.CHAT,
        )
        assert [s.query for s in await store.list_subscriptions("slack:U04ABCD1234")] == ["lagarde"]
        assert await store.delivery_counts() == {"pending": 1, "sent": 1, "failed": 0}
        assert await store.delivery_targets([OLD_STORY_ID]) == {OLD_STORY_ID: {SENT_TO, PENDING_TO}}

        # The old pending card is still owed, with its story.
        ((due, story),) = await store.due_deliveries(NOW, 10)
        assert (due.id, due.status, due.attempts) == (PENDING_ID, DeliveryStatus.PENDING, 3)
        assert (due.update_pending, due.update_count) == (False, 0)
        assert story.id == OLD_STORY_ID and story.story.title == OLD_STORY.title

        # The old identity keys still recognise the story.
        strong = strong_keys(OLD_STORY, OLD_FEED_ID, guid_unique=True)
        hits = await store.find_keys([k.value for k in strong])
        assert {(h.kind, h.story_id) for h in hits} == {
            (KeyKind.GUID, OLD_STORY_ID),
            (KeyKind.URL, OLD_STORY_ID),
        }
        windowed = await store.find_keys(
            [k.value for k in fuzzy_keys(OLD_STORY)], since=NOW - timedelta(hours=48)
        )
        assert {h.story_id for h in windowed} == {OLD_STORY_ID}

        # A revision of the old story marks the old sent card for an edit: update_pending
        # only exists since schema 2.
        rewritten = Story(
            feed=OLD_STORY.feed,
            title="ECB holds rates, signals cut in April as inflation eases to 2.3%",
            link=OLD_STORY.link,
            guid=OLD_STORY.guid,
            summary="Lagarde said a cut in April was likely if wage growth keeps slowing.",
            published=OLD_STORY.published,
        )
        await store.apply_ingest(
            feed,
            IngestPlan(revisions=[Revision(OLD_STORY_ID, rewritten, notify=True, alertable=True)]),
            PollOutcome(ok=True, etag='W/"6b20-1741944600"'),
            NOW,
        )
        by_id = {d.id: d for d in await store.deliveries_for_story(OLD_STORY_ID)}
        assert by_id[SENT_ID].update_pending
        assert by_id[SENT_ID].message_id == "1349876543210987654"
        assert not by_id[PENDING_ID].update_pending
        due_now = await store.due_deliveries(NOW, 10)
        assert [(d.id, d.status) for d, _ in due_now] == [
            (SENT_ID, DeliveryStatus.SENT),
            (PENDING_ID, DeliveryStatus.PENDING),
        ]
        assert all(s.revision == 1 and s.story.title == rewritten.title for _, s in due_now)

        # The audit log (schema 3) works on the upgraded file.
        await store.record_audit("discord:284917365023981569", "watchlist.update", {}, NOW)
        assert len(await store.audit_entries()) == 1
    finally:
        await store.close()


@pytest.mark.parametrize("version", range(1, LATEST_VERSION))
async def test_every_older_schema_upgrades_to_the_latest(tmp_path, version):
    path = tmp_path / "newsbot.db"
    create_at_version(path, version)
    assert user_version(path) == version

    store = await SqliteStorage.open(path)
    try:
        assert await store.schema_version() == LATEST_VERSION
        await store.record_audit("slack:U04ABCD1234", "subscription.add", {"q": "ecb"}, NOW)
        assert await store.add_subscription("slack:U04ABCD1234", "ecb", NOW)
    finally:
        await store.close()

    # Same tables as a database created by the current code.
    fresh = tmp_path / "fresh.db"
    create_at_version(fresh, LATEST_VERSION)
    assert tables(path) == tables(fresh)


async def test_schema_4_gives_new_stories_ids_past_every_id_given_before(tmp_path):
    # Ids come from a sequence of our own since schema 4. An older database's newest story may
    # be pruned already (its identity keys still point at it): SQLite's own record of the ids
    # it gave is where the sequence starts, not the highest id left in the table.
    path = tmp_path / "newsbot.db"
    create_at_version(path, 3)
    write_schema_1_rows(path)
    with connect(path) as conn:
        conn.execute(
            "INSERT INTO stories (id, feed_id, feed_name, title, first_seen_at) "
            "VALUES (57, ?, 'Reuters World', 'Pruned since', ?)",
            (OLD_FEED_ID, POLLED.timestamp()),
        )
        conn.execute("DELETE FROM stories WHERE id = 57")

    store = await SqliteStorage.open(path)
    try:
        feed = await store.get_feed("Reuters World")
        plan = IngestPlan(
            new_stories=[NewStory(-1, OLD_STORY, False), NewStory(-2, OLD_STORY, False)]
        )
        ids = await store.apply_ingest(feed, plan, PollOutcome(ok=True), NOW)
    finally:
        await store.close()

    assert ids == {-1: 58, -2: 59}
    with connect(path) as conn:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(deliveries)")}
    assert "rendered_revision" not in columns
    assert {"update_pending", "update_count", "digest", "digest_group"} <= columns


async def test_a_database_newer_than_the_code_is_refused(tmp_path):
    path = tmp_path / "newsbot.db"
    create_at_version(path, LATEST_VERSION)
    with connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {LATEST_VERSION + 1}")

    with pytest.raises(StorageError, match="upgrade newsbot") as refused:
        await SqliteStorage.open(path)

    assert f"schema version {LATEST_VERSION + 1}" in str(refused.value)
    assert user_version(path) == LATEST_VERSION + 1


# --- all-or-nothing steps -------------------------------------------------------------------------


async def test_a_migration_that_fails_halfway_leaves_the_previous_version(tmp_path, monkeypatch):
    # The runner is what is tested here: it gets one extra migration whose second statement
    # fails after its first one succeeded. Patched where the runner looks it up.
    path = tmp_path / "newsbot.db"
    store = await SqliteStorage.open(path)
    await store.add_subscription("discord:284917365023981569", "lagarde OR ecb", NOW)
    await store.close()
    broken = Migration(
        LATEST_VERSION + 1,
        f"{LATEST_VERSION + 1:04d}_feed_tags.sql",
        "CREATE TABLE feed_tags (feed_id INTEGER NOT NULL, tag TEXT NOT NULL);\n"
        "ALTER TABLE feeds ADD COLUMN language TEXT;\n"
        "INSERT INTO feed_tags (feed_id, tag) SELECT id, no_such_column FROM feeds;\n",
    )
    real = load_migrations()
    monkeypatch.setattr(sqlite_module, "load_migrations", lambda: [*real, broken])
    monkeypatch.setattr(sqlite_module, "LATEST_VERSION", LATEST_VERSION + 1)

    with pytest.raises(sqlite3.OperationalError, match="no_such_column"):
        await SqliteStorage.open(path)

    assert user_version(path) == LATEST_VERSION
    assert "feed_tags" not in tables(path)
    with connect(path) as conn:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(feeds)")}
    assert "language" not in columns

    monkeypatch.undo()
    store = await SqliteStorage.open(path)
    try:
        assert await store.schema_version() == LATEST_VERSION
        assert [s.query for s in await store.list_subscriptions()] == ["lagarde OR ecb"]
    finally:
        await store.close()


async def test_a_failing_upgrade_from_an_old_version_keeps_the_steps_that_succeeded(
    tmp_path, monkeypatch
):
    # Each migration commits on its own: when step n fails, steps before it stay applied and the
    # next start resumes from there.
    path = tmp_path / "newsbot.db"
    create_at_version(path, 1)
    real = load_migrations()
    broken = Migration(
        LATEST_VERSION + 1,
        f"{LATEST_VERSION + 1:04d}_broken.sql",
        "CREATE TABLE feed_tags (feed_id INTEGER);\nSELECT no_such_column FROM feeds;\n",
    )
    monkeypatch.setattr(sqlite_module, "load_migrations", lambda: [*real, broken])
    monkeypatch.setattr(sqlite_module, "LATEST_VERSION", LATEST_VERSION + 1)

    with pytest.raises(sqlite3.OperationalError):
        await SqliteStorage.open(path)

    assert user_version(path) == LATEST_VERSION
    assert "audit_log" in tables(path)
    assert "feed_tags" not in tables(path)


async def test_stories_stored_before_carriers_were_recorded_keep_their_first_feed(tmp_path):
    # Sources per story came with the latency figures (issue 17): a story an older version
    # stored is carried by its own feed from its first sighting, so that another feed listing
    # it later is second, not first.
    path = tmp_path / "newsbot.db"
    create_at_version(path, 4)
    write_schema_1_rows(path)

    store = await SqliteStorage.open(path)
    try:
        assert await store.story_carriers([OLD_STORY_ID]) == {
            OLD_STORY_ID: [SourceSighting(OLD_FEED_ID, "Reuters World", POLLED, False)]
        }
        assert (await store.load_stories([OLD_STORY_ID]))[OLD_STORY_ID].published_stamped is False
    finally:
        await store.close()
