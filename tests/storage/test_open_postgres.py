"""`open_storage` picks PostgreSQL from `[storage] url` or $NEWSBOT_DATABASE_URL (which wins),
refuses a URL of another scheme in words that name the key, and never shows a password; the
PostgreSQL migrations run once however many processes start at the same moment."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime

import asyncpg
import pytest

from config.settings import ConfigError, settings_from_dict
from storage import (
    DATABASE_URL_ENV,
    DatabaseUnavailable,
    describe,
    describe_failure,
    keeps_files,
    open_storage,
)
from storage.postgres import PostgresStorage, latest_version, redact
from tests.storage.postgres_server import open_clean, server_url, with_database

NOW = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)
# Nothing listens on port 1: a URL that names a server which cannot be reached.
NOWHERE = "postgresql://newsbot:s3cret-pw@127.0.0.1:1/newsbot"


def settings_with(**storage: str):
    return settings_from_dict({"storage": storage}, {})


async def test_a_storage_url_opens_a_migrated_postgres_database(postgres_url, tmp_path):
    await (await open_clean(postgres_url)).close()  # the session's database, emptied
    settings = settings_with(url=postgres_url, path=str(tmp_path / "unused.db"))

    store = await open_storage(settings, env={})
    try:
        assert isinstance(store, PostgresStorage)
        assert await store.schema_version() == latest_version()
        assert await store.add_subscription("slack:U1", "ecb", NOW)
    finally:
        await store.close()

    # On a server the workers share the database (leases in its tables): no file, no lock file.
    assert not keeps_files(settings, env={})
    assert list(tmp_path.iterdir()) == []


async def test_the_environment_wins_over_the_config_file(postgres_url):
    settings = settings_with(url=NOWHERE)

    store = await open_storage(settings, env={DATABASE_URL_ENV: postgres_url})
    try:
        assert isinstance(store, PostgresStorage)
    finally:
        await store.close()

    # And the variable alone selects PostgreSQL over the SQLite default.
    alone = settings_with()
    assert not keeps_files(alone, env={DATABASE_URL_ENV: postgres_url})
    assert keeps_files(alone, env={})


def test_a_storage_url_of_another_scheme_is_a_config_error_naming_the_key():
    with pytest.raises(ConfigError) as refused:
        settings_with(url="mysql://root:hunter2@db/newsbot")

    message = str(refused.value)
    assert "storage.url" in message
    assert "must be a PostgreSQL URL such as postgresql://" in message
    assert "hunter2" not in message


async def test_a_bad_url_in_the_environment_is_refused_in_one_line():
    settings = settings_with()

    with pytest.raises(DatabaseUnavailable) as refused:
        await open_storage(settings, env={DATABASE_URL_ENV: "sqlite:///tmp/x.db"})

    reason = describe_failure(settings, refused.value)
    assert reason == (
        "NEWSBOT_DATABASE_URL: must be a PostgreSQL URL such as "
        "postgresql://user@host:5432/newsbot (got sqlite://); for SQLite set [storage] path instead"
    )


async def test_a_server_that_cannot_be_reached_is_refused_without_the_password():
    settings = settings_with(url=NOWHERE)

    with pytest.raises(DatabaseUnavailable) as refused:
        await open_storage(settings, env={})

    reason = describe_failure(settings, refused.value)
    assert reason is not None and "\n" not in reason
    assert reason.startswith(
        "cannot open the database postgresql://newsbot:***@127.0.0.1:1/newsbot"
    )
    assert "s3cret" not in reason
    assert "s3cret" not in describe(settings, env={})


def test_redact_hides_only_the_password():
    assert redact(NOWHERE) == "postgresql://newsbot:***@127.0.0.1:1/newsbot"
    assert redact("postgres://bot@db:5432/news") == "postgres://bot@db:5432/news"
    assert redact("postgresql://u:p@[::1]:5433/db") == "postgresql://u:***@[::1]:5433/db"


async def test_processes_starting_at_once_migrate_one_after_the_other(postgres_url):
    server = server_url()
    name = f"newsbot_test_{os.getpid()}_migrate"
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = with_database(server, name)

        stores = await asyncio.gather(*(PostgresStorage.open(url, pool_size=2) for _ in range(4)))
        try:
            assert [await s.schema_version() for s in stores] == [latest_version()] * 4
            applied = await stores[0]._pool.fetchval("SELECT count(*) FROM schema_version")
            assert applied == latest_version()
        finally:
            for store in stores:
                await store.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def test_redact_hides_a_password_given_as_a_parameter():
    shown = redact("postgresql://bot@db:5432/news?sslmode=require&password=S3CRET&sslpassword=K3Y")
    assert "S3CRET" not in shown and "K3Y" not in shown
    assert shown.startswith("postgresql://bot@db:5432/news?sslmode=require&password=***")


async def test_two_bots_may_share_one_database(postgres_url):
    """Feed polls and outbox cards are leased (issue 16): a second bot on the same database
    is a second worker, not refused (as it still is on one SQLite file)."""
    first = await PostgresStorage.open(postgres_url, pool_size=1)
    try:
        second = await PostgresStorage.open(postgres_url, pool_size=1)
        try:
            assert first.worker != second.worker
            assert await second.add_subscription("slack:U2", "lagarde", NOW)
            assert [s.query for s in await first.list_subscriptions("slack:U2")] == ["lagarde"]
        finally:
            await second.close()
    finally:
        await first.close()


async def test_a_revision_committed_while_its_card_is_recorded_as_sent_is_not_lost(postgres_url):
    """A poll revises a story while the worker records its card as sent (showing the old
    revision): the card must be left owing an update, whichever commits first."""
    from tests.storage.test_storage_contract import REUTERS, config_feeds, ecb_story, ingest
    from tests.storage.test_storage_contract import markets_route as route

    store = await open_clean(postgres_url)
    poll = await asyncpg.connect(postgres_url)
    try:
        (feed,) = await config_feeds(store, REUTERS)
        (story_id,) = await ingest(store, feed, [(ecb_story(), [route()])])
        (card,) = await store.deliveries_for_story(story_id)
        async with poll.transaction():
            # The poll's revision, not yet committed, while the worker records the send.
            await poll.execute("UPDATE stories SET revision = revision + 1 WHERE id = $1", story_id)
            sending = asyncio.create_task(store.mark_sent(card.id, "m-1", NOW, revision=0))
            await asyncio.sleep(0.3)
        await asyncio.wait_for(sending, 10)
        (after,) = await store.deliveries_for_story(story_id)
        assert after.status == "sent"
        assert after.update_pending
    finally:
        await poll.close()
        await store.close()
