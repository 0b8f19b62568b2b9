"""The storage contract runs against every backend listed in BACKENDS.

A new backend is one more entry there (a name and a coroutine that opens an empty, fully migrated
store in `tmp_path`) plus, in INSPECTORS, a way to read what the interface deliberately does not
expose (the stored error of a failed delivery, the raw row count behind a uniqueness rule)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from storage.sqlite import SqliteStorage

BACKENDS: dict[str, Callable[[Path], Awaitable[Any]]] = {
    # What production runs: a file in WAL mode with a busy handler.
    "sqlite-file": lambda tmp_path: SqliteStorage.open(tmp_path / "state" / "newsbot.db"),
    # ":memory:" takes other paths inside SQLite (no WAL, no file) and must behave the same.
    "sqlite-memory": lambda tmp_path: SqliteStorage.open(":memory:"),
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
            (count,) = await cursor.fetchone()
        return count

    async def delivery_error(self, delivery_id: int) -> str | None:
        async with self._db.execute(
            "SELECT error FROM deliveries WHERE id = ?", (delivery_id,)
        ) as cursor:
            (error,) = await cursor.fetchone()
        return error


INSPECTORS: dict[type, Callable[[Any], Any]] = {SqliteStorage: SqliteInspector}


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
