"""The errors every backend raises. StorageError and DuplicateName are part of the contract
(bot.core.store), so the core may catch them; DatabaseUnavailable is about opening a store."""

from __future__ import annotations

from bot.core.store import DuplicateName, StorageError

__all__ = ["DatabaseUnavailable", "DuplicateName", "StorageError"]


class DatabaseUnavailable(StorageError):
    """The database cannot be used at all: locked by another process, not a SQLite file,
    damaged, or another application's. The message is one line that names it."""
