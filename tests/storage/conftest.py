"""The storage contract runs against every backend listed in BACKENDS.

A new backend is one more entry there (a name and a coroutine that opens an empty, fully migrated
store in `tmp_path`, or, for a server, in the session's database: see SERVERS) plus, in INSPECTORS, a way to read what the interface deliberately does not
expose (the stored error of a failed delivery, the raw row count behind a uniqueness rule).

Tests that are about one backend's own machinery (SQLite's file modes, WAL, a full disk,
migrations) open that backend themselves and live in files of their own."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from storage.memory import MemoryStorage
from storage.postgres import PostgresStorage
from storage.sqlite import SqliteStorage
from tests.storage.postgres_server import open_clean, throwaway_database


async def _memory(tmp_path: Path) -> MemoryStorage:
    return MemoryStorage()


BACKENDS: dict[str, Callable[[Any], Awaitable[Any]]] = {
    # What production runs: a file in WAL mode with a busy handler.
    "sqlite-file": lambda tmp_path: SqliteStorage.open(tmp_path / "state" / "newsbot.db"),
    # ":memory:" takes other paths inside SQLite (no WAL, no file) and must behave the same.
    "sqlite-memory": lambda tmp_path: SqliteStorage.open(":memory:"),
    # Plain dicts: what the core's unit tests run on.
    "memory": _memory,
    # A database server (tests/storage/postgres_server.py): the throwaway database of the test
    # session, emptied for each test.
    "postgres": lambda where: open_clean(str(where)),
}
# Backends on a server: given the URL of the session's database (a fixture) instead of tmp_path.
SERVERS = {"postgres": "postgres_url"}


@pytest.fixture(scope="session")
def postgres_url():
    """A migrated database of its own for this test session, dropped at its end; the tests that
    need it are skipped (failed in CI) when no PostgreSQL server can be reached."""
    yield from throwaway_database()


class SqliteInspector:
    """Reads the tables directly, on the store's own connection (an in-memory database has no
    other), for facts the storage interface has no reader for."""

    def __init__(self, store: SqliteStorage) -> None:
        self._db = store._db

    async def delivery_rows(self, story_id: int, target: str) -> int:
        async with self._db.execute(
            "SELECT count(*) FROM deliveries WHERE story_id = ? AND target = ?",
            (story_id, target),
        ) as cursor:
            row = await cursor.fetchone()
        assert row is not None
        count: int = row[0]
        return count

    async def delivery_error(self, delivery_id: int) -> str | None:
        async with self._db.execute(
            "SELECT error FROM deliveries WHERE id = ?", (delivery_id,)
        ) as cursor:
            row = await cursor.fetchone()
        assert row is not None
        error: str | None = row[0]
        return error


class MemoryInspector:
    """The same facts, read from the in-memory backend's dicts."""

    def __init__(self, store: MemoryStorage) -> None:
        self._store = store

    async def delivery_rows(self, story_id: int, target: str) -> int:
        return sum(
            1
            for d in self._store._deliveries.values()
            if (d.story_id, d.target) == (story_id, target)
        )

    async def delivery_error(self, delivery_id: int) -> str | None:
        return self._store._deliveries[delivery_id].error


class PostgresInspector:
    """The same facts, read with SQL on the store's pool."""

    def __init__(self, store: PostgresStorage) -> None:
        self._pool = store._pool

    async def delivery_rows(self, story_id: int, target: str) -> int:
        count: int = await self._pool.fetchval(
            "SELECT count(*) FROM deliveries WHERE story_id = $1 AND target = $2",
            story_id,
            target,
        )
        return count

    async def delivery_error(self, delivery_id: int) -> str | None:
        error: str | None = await self._pool.fetchval(
            "SELECT error FROM deliveries WHERE id = $1", delivery_id
        )
        return error


INSPECTORS: dict[type, Callable[[Any], Any]] = {
    SqliteStorage: SqliteInspector,
    MemoryStorage: MemoryInspector,
    PostgresStorage: PostgresInspector,
}


@pytest.fixture(params=list(BACKENDS), ids=list(BACKENDS))
async def storage(request: pytest.FixtureRequest, tmp_path: Path):
    fixture = SERVERS.get(request.param)
    where = tmp_path if fixture is None else request.getfixturevalue(fixture)
    store = await BACKENDS[request.param](where)
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
def raw(storage):
    return INSPECTORS[type(storage)](storage)
