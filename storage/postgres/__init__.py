"""PostgreSQL storage on asyncpg: a connection pool, plain-SQL migrations (migrations/ beside
this file, numbered, recorded in the schema_version table and applied under an advisory lock).

Why asyncpg: a maintained driver written for asyncio (no thread pool behind the awaits), speaking
PostgreSQL's binary protocol, with fast executemany and COPY for a poll's batched writes and a
connection pool of its own; our one event loop needs nothing more.

The tables' methods live in one module per part (feeds, ingest, stories, outbox, queries), each
a mixin over the shared pool in base.py; this module opens the pool, migrates, and puts the
parts together as PostgresStorage, which implements bot.core.store.Storage with the same
semantics as storage.sqlite."""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import asyncpg

from storage.errors import DatabaseUnavailable
from storage.migrations import load_migrations
from storage.postgres.feeds import FeedTables
from storage.postgres.ingest import IngestTables
from storage.postgres.outbox import OutboxTables
from storage.postgres.queries import QueryTables
from storage.postgres.stories import StoryTables

__all__ = [
    "MIGRATION_LOCK",
    "SCHEMES",
    "PostgresStorage",
    "latest_version",
    "redact",
    "secrets_in",
]

log = logging.getLogger(__name__)

SCHEMES = ("postgresql", "postgres")
# pg_advisory_lock(MIGRATION_LOCK): two processes starting at once migrate one after the other
# (the two-number form keeps it apart from the one-number locks taken elsewhere).
MIGRATION_LOCK = (0x6E657773, 1)  # "news", 1
# Held for as long as a bot runs on the database: until feed polls and outbox cards are leased
# (issue 16), a second bot on the same database would poll the same feeds and post every alert
# twice, so it is refused, as a second bot on one SQLite file is.
WRITER_LOCK = (0x6E657773, 2)
# Connections per process: a poll's transaction, the delivery worker and chat commands at once.
POOL_SIZE = 10
CONNECT_TIMEOUT_S = 10.0


def latest_version() -> int:
    return len(load_migrations("postgres"))


def _is_secret(parameter: str) -> bool:
    return "password" in parameter.lower()  # password, sslpassword, ...


def redact(url: str) -> str:
    """The URL as it may be shown or logged: the password, if any, replaced with ***, whether
    written before the host or as a ?password= parameter (asyncpg accepts both)."""
    parts = urlsplit(url)
    if parts.query:
        query = [
            (name, "***" if _is_secret(name) else value)
            for name, value in parse_qsl(parts.query, keep_blank_values=True)
        ]
        parts = parts._replace(query=urlencode(query, safe="*"))
    if parts.password is None:
        return urlunsplit(parts)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{parts.username or ''}:***@{host}"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def secrets_in(url: str) -> list[str]:
    """The passwords a URL carries, as `redact` hides them: before the host (as written and
    once %-decoded) and as ?password= / ?sslpassword= parameters."""
    parts = urlsplit(url)
    found = {parts.password, unquote(parts.password)} if parts.password else set()
    found.update(
        value for name, value in parse_qsl(parts.query, keep_blank_values=True) if _is_secret(name)
    )
    return sorted(value for value in found if value)


class PostgresStorage(IngestTables, OutboxTables, FeedTables, StoryTables, QueryTables):
    @classmethod
    async def open(
        cls, url: str, *, pool_size: int = POOL_SIZE, exclusive: bool = True
    ) -> PostgresStorage:
        """Connect (a pool), migrate, and (`exclusive`) hold the writer lock: one bot per
        database until several can share one. Raises DatabaseUnavailable, with a one-line
        reason that never shows the password, when the server cannot be reached or refuses
        us, or another bot holds the database."""
        shown = redact(url)
        try:
            pool = await asyncpg.create_pool(
                url, min_size=1, max_size=pool_size, timeout=CONNECT_TIMEOUT_S
            )
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise DatabaseUnavailable(
                f"cannot open the database {shown}: {type(exc).__name__}: {exc}"
            ) from None
        storage = cls(pool, shown)
        try:
            await storage.migrate()
            if exclusive:
                await storage._hold_writer_lock(url)
        except BaseException:
            await pool.close()
            raise
        return storage

    async def _hold_writer_lock(self, url: str) -> None:
        # A connection of its own, outside the pool, for the bot's lifetime: a session lock is
        # released when its connection closes, so a crashed bot frees the database at once.
        conn = await asyncpg.connect(url, timeout=CONNECT_TIMEOUT_S)
        try:
            held = await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", *WRITER_LOCK)
        except BaseException:
            await conn.close()
            raise
        if not held:
            await conn.close()
            raise DatabaseUnavailable(
                f"cannot open the database {self.where}: another newsbot is running on it "
                "(one bot per database until several workers can share one); stop it first"
            )
        self._writer = conn

    async def close(self) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            await writer.close()  # the lock goes with the session
        await self._pool.close()

    async def migrate(self) -> int:
        """Apply the migrations this database lacks, each in its own transaction with its
        version row, holding an advisory lock so that a second process starting at the same
        moment waits, then finds the work done."""
        latest = latest_version()
        async with self._pool.acquire() as conn:
            await conn.execute("SELECT pg_advisory_lock($1, $2)", *MIGRATION_LOCK)
            try:
                await conn.execute(
                    """CREATE TABLE IF NOT EXISTS schema_version (
                           version     integer     PRIMARY KEY,
                           name        text        NOT NULL,
                           applied_at  timestamptz NOT NULL DEFAULT now())"""
                )
                version: int = await conn.fetchval(
                    "SELECT coalesce(max(version), 0) FROM schema_version"
                )
                if version > latest:
                    raise DatabaseUnavailable(
                        f"cannot open the database {self.where}: it has schema version "
                        f"{version}, newer than this newsbot understands ({latest}); "
                        "upgrade newsbot"
                    )
                for migration in load_migrations("postgres"):
                    if migration.version <= version:
                        continue
                    log.info(
                        "migrating database to schema %d (%s)", migration.version, migration.name
                    )
                    async with conn.transaction():
                        await conn.execute(migration.sql)
                        await conn.execute(
                            "INSERT INTO schema_version (version, name) VALUES ($1, $2)",
                            migration.version,
                            migration.name,
                        )
                    version = migration.version
                return version
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1, $2)", *MIGRATION_LOCK)

    async def schema_version(self) -> int:
        found: int = await self._scalar("SELECT coalesce(max(version), 0) FROM schema_version")
        return found
