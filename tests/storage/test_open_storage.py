"""`open_storage` picks the backend the settings name, so the composition root names none."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.core.store import Storage
from config.settings import settings_from_dict
from storage import DatabaseUnavailable, describe_failure, keeps_files, open_storage
from storage.memory import MemoryStorage
from storage.migrations import LATEST_VERSION
from storage.sqlite import SqliteStorage

NOW = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)


def settings_at(path: str):
    return settings_from_dict({"storage": {"path": path}}, {})


async def test_a_path_opens_a_migrated_sqlite_file(tmp_path):
    path = tmp_path / "data" / "newsbot.db"
    settings = settings_at(str(path))

    store = await open_storage(settings)
    try:
        assert isinstance(store, SqliteStorage)
        assert await store.schema_version() == LATEST_VERSION
        await store.add_subscription("slack:U1", "ecb", NOW)
    finally:
        await store.close()

    assert path.exists() and keeps_files(settings)


async def test_memory_keeps_nothing_on_disk(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = settings_at(":memory:")

    store: Storage = await open_storage(settings)
    try:
        assert isinstance(store, MemoryStorage)
        assert await store.add_subscription("slack:U1", "ecb", NOW)
        assert [s.query for s in await store.list_subscriptions()] == ["ecb"]
    finally:
        await store.close()

    assert not keeps_files(settings)
    assert list(tmp_path.iterdir()) == []


async def test_a_file_that_is_not_a_database_is_refused_in_one_line(tmp_path):
    path = tmp_path / "notes.db"
    path.write_text("not a database\n")
    settings = settings_at(str(path))

    with pytest.raises(DatabaseUnavailable) as refused:
        await open_storage(settings)

    assert describe_failure(settings, refused.value) == (
        f"cannot open the database {path}: it is not a SQLite database; refusing to touch it"
    )
    assert describe_failure(settings, ValueError("a bug")) is None
