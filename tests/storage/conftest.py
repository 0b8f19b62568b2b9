"""The storage contract runs against every backend listed in BACKENDS.

A new backend is one more entry there (a name and a coroutine that opens an empty, fully migrated
store in `tmp_path`) plus, in INSPECTORS, a way to read what the interface deliberately does not
expose (the stored error of a failed delivery, the raw row count behind a uniqueness rule).

Tests that are about one backend's own machinery (SQLite's file modes, WAL, a full disk,
migrations) open that backend themselves and live in files of their own."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from storage.memory import MemoryStorage
from storage.sqlite import SqliteStorage


async def _memory(tmp_path: Path) -> MemoryStorage:
    return MemoryStorage()


BACKENDS: dict[str, Callable[[Path], Awaitable[Any]]] = {
    # What production runs: a file in WAL mode with a busy handler.
    "sqlite-file": lambda tmp_path: SqliteStorage.open(tmp_path / "state" / "newsbot.db"),
    # ":memory:" takes other paths inside SQLite (no WAL, no file) and must behave the same.
    "sqlite-memory": lambda tmp_path: SqliteStorage.open(":memory:"),
    # Plain dicts: what the core's unit tests run on.
    "memory": _memory,
}


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


INSPECTORS: dict[type, Callable[[Any], Any]] = {
    SqliteStorage: SqliteInspector,
    MemoryStorage: MemoryInspector,
}


@pytest.fixture(params=list(BACKENDS), ids=list(BACKENDS))
async def storage(request: pytest.FixtureRequest, tmp_path: Path):
    store = await BACKENDS[request.param](tmp_path)
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
def raw(storage):
    return INSPECTORS[type(storage)](storage)
