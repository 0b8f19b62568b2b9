"""Persistence behind one contract (bot.core.store.Storage), with a backend per engine:
storage.sqlite (the default; one bot per file), storage.postgres (a database server, which
several bots may share: feed polls and outbox cards are leased, see bot.core.cluster) and
storage.memory. The composition root opens whichever the settings choose with `open_storage`
and names no backend itself."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from bot.core.store import Storage
from config.schema import check_database_url
from storage.errors import DatabaseUnavailable, DuplicateName, StorageError
from storage.memory import MemoryStorage
from storage.postgres import PostgresStorage, redact, secrets_in
from storage.sqlite import SqliteStorage
from storage.sqlite.files import describe_failure as _describe_sqlite_failure
from storage.sqlite.files import ensure_private_folder

if TYPE_CHECKING:
    from config.settings import Settings

__all__ = [
    "DATABASE_URL_ENV",
    "MEMORY",
    "DatabaseUnavailable",
    "DuplicateName",
    "StorageError",
    "database_url",
    "describe",
    "describe_failure",
    "ensure_private_folder",
    "keeps_files",
    "open_storage",
    "secrets",
]

# [storage] path = ":memory:": nothing is kept, nothing is written to disk.
MEMORY = ":memory:"
# A PostgreSQL URL in the environment: wins over [storage] url (a password stays out of files).
DATABASE_URL_ENV = "NEWSBOT_DATABASE_URL"


def database_url(settings: Settings, env: Mapping[str, str] | None = None) -> str | None:
    """The PostgreSQL database the bot uses, if any: $NEWSBOT_DATABASE_URL, else [storage] url.
    `env`: the environment (read when called, never at import). Raises DatabaseUnavailable, in
    one line that does not repeat the value, for a variable that is not a PostgreSQL URL."""
    env = os.environ if env is None else env
    given = env.get(DATABASE_URL_ENV)
    if not given:
        return settings.storage.url
    try:
        return check_database_url(given)
    except ValueError as exc:
        raise DatabaseUnavailable(f"{DATABASE_URL_ENV}: {exc}") from None


async def open_storage(settings: Settings, env: Mapping[str, str] | None = None) -> Storage:
    """The store the settings name, open and ready: PostgreSQL for a database URL (see
    database_url), the in-memory backend for ":memory:", otherwise SQLite at [storage].path
    (created and migrated as needed). Raises DatabaseUnavailable, with a one-line reason, for a
    database that cannot be used."""
    url = database_url(settings, env)
    if url is not None:
        return await PostgresStorage.open(url)
    path = settings.storage.path
    if path == MEMORY:
        return MemoryStorage()
    return await SqliteStorage.open(path)


def keeps_files(settings: Settings, env: Mapping[str, str] | None = None) -> bool:
    """Whether the store lives in files (the database, and the instance lock beside it): not
    in memory, and not on a PostgreSQL server (which several bots share, each a worker of its
    own)."""
    try:
        on_server = database_url(settings, env) is not None
    except DatabaseUnavailable:
        on_server = True  # open_storage refuses it, with the reason
    return not on_server and settings.storage.path != MEMORY


def describe(settings: Settings, env: Mapping[str, str] | None = None) -> str:
    """Where the data lives, for logs and messages: the password of a URL is never shown."""
    try:
        url = database_url(settings, env)
    except DatabaseUnavailable:
        return f"${DATABASE_URL_ENV} (invalid)"
    return redact(url) if url is not None else settings.storage.path


def secrets(settings: Settings, env: Mapping[str, str] | None = None) -> list[str]:
    """What the log must never show of the database: a server URL's passwords (the second
    guard; `describe` already shows URLs redacted)."""
    try:
        url = database_url(settings, env)
    except DatabaseUnavailable:
        return []
    return secrets_in(url) if url is not None else []


def describe_failure(settings: Settings, exc: BaseException) -> str | None:
    """One line for an error that is about the database rather than a bug in newsbot (locked
    by another process, not a database, damaged, a full disk, a server that cannot be
    reached); None otherwise."""
    if isinstance(exc, DatabaseUnavailable):
        return str(exc)
    return _describe_sqlite_failure(settings.storage.path, exc)
