"""Persistence behind one contract (bot.core.store.Storage), with a backend per engine:
storage.sqlite (the default) and storage.memory. The composition root opens whichever the
settings choose with `open_storage` and names no backend itself."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.core.store import Storage
from storage.errors import DatabaseUnavailable, DuplicateName, StorageError
from storage.memory import MemoryStorage
from storage.sqlite import SqliteStorage
from storage.sqlite.files import describe_failure as _describe_sqlite_failure
from storage.sqlite.files import ensure_private_folder

if TYPE_CHECKING:
    from config.settings import Settings

__all__ = [
    "MEMORY",
    "DatabaseUnavailable",
    "DuplicateName",
    "StorageError",
    "describe_failure",
    "ensure_private_folder",
    "keeps_files",
    "open_storage",
]

# [storage] path = ":memory:": nothing is kept, nothing is written to disk.
MEMORY = ":memory:"


async def open_storage(settings: Settings) -> Storage:
    """The store the settings name, open and ready: the in-memory backend for ":memory:",
    otherwise SQLite at [storage].path (created and migrated as needed). Raises
    DatabaseUnavailable, with a one-line reason, for a database that cannot be used."""
    path = settings.storage.path
    if path == MEMORY:
        return MemoryStorage()
    return await SqliteStorage.open(path)


def keeps_files(settings: Settings) -> bool:
    """Whether the store lives in files (the database, and the instance lock beside it)."""
    return settings.storage.path != MEMORY


def describe_failure(settings: Settings, exc: BaseException) -> str | None:
    """One line for an error that is about the database rather than a bug in newsbot (locked
    by another process, not a database, damaged, a full disk); None otherwise."""
    return _describe_sqlite_failure(settings.storage.path, exc)
