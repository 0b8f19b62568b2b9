"""PostgreSQL storage on asyncpg: a connection pool, plain-SQL migrations (migrations/ beside
this file, numbered, recorded in the schema_version table and applied under an advisory lock).

Why asyncpg: a maintained driver written for asyncio (no thread pool behind the awaits), speaking
PostgreSQL's binary protocol, with fast executemany and COPY for a poll's batched writes and a
connection pool of its own; our one event loop needs nothing more.

The tables' methods live in one module per part (feeds, ingest, stories, outbox, queries), each
a mixin over the shared pool in base.py; this module opens the pool, migrates, and puts the
parts together as PostgresStorage, which implements bot.core.store.Storage with the same
semantics as storage.sqlite, and bot.core.cluster.Coordinator (cluster.py, signals.py): several
bots may run on one database and share its work."""

from __future__ import annotations

import logging
from datetime import timedelta
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import asyncpg

from bot.core.cluster import DESTINATION_CLAIM, FALLBACK_POLL, FEED_LEASE
from storage.errors import DatabaseUnavailable
from storage.migrations import load_migrations
from storage.postgres.cluster import ClusterTables, new_worker_id
from storage.postgres.feeds import FeedTables
from storage.postgres.ingest import IngestTables
from storage.postgres.outbox import OutboxTables
from storage.postgres.queries import QueryTables
from storage.postgres.signals import SignalTables
from storage.postgres.stories import StoryTables
from storage.postgres.websub import WebSubTables

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


class PostgresStorage(
    IngestTables,
    OutboxTables,
    FeedTables,
    StoryTables,
    QueryTables,
    ClusterTables,
    SignalTables,
    WebSubTables,
):
    def __init__(
        self,
        pool: asyncpg.Pool,
        where: str,
        url: str,
        *,
        worker: str,
        feed_lease: timedelta = FEED_LEASE,
        destination_claim: timedelta = DESTINATION_CLAIM,
        fallback_poll: timedelta = FALLBACK_POLL,
    ) -> None:
        super().__init__(pool, where, worker)
        self._init_cluster(url, feed_lease=feed_lease, destination_claim=destination_claim)
        self._init_signals(url, fallback_poll=fallback_poll)

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        pool_size: int = POOL_SIZE,
        feed_lease: timedelta = FEED_LEASE,
        destination_claim: timedelta = DESTINATION_CLAIM,
        fallback_poll: timedelta = FALLBACK_POLL,
    ) -> PostgresStorage:
        """Connect (a pool), migrate, join the workers on this database and listen for their
        changes. The lease times are parameters for the tests (short leases lapse quickly).
        Raises DatabaseUnavailable, with a one-line reason that never shows the password, when
        the server cannot be reached or refuses us."""
        shown = redact(url)
        worker = new_worker_id()
        try:
            pool = await asyncpg.create_pool(
                url,
                min_size=1,
                max_size=pool_size,
                timeout=CONNECT_TIMEOUT_S,
                # Read by the tables' triggers: a worker's notifications name it.
                server_settings={"newsbot.worker": worker},
            )
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise DatabaseUnavailable(
                f"cannot open the database {shown}: {type(exc).__name__}: {exc}"
            ) from None
        storage = cls(
            pool,
            shown,
            url,
            worker=worker,
            feed_lease=feed_lease,
            destination_claim=destination_claim,
            fallback_poll=fallback_poll,
        )
        try:
            await storage.migrate()
            await storage._join()
            await storage._start_signals()
        except BaseException:
            await storage._stop_signals()
            await storage._close_hold_connection()
            await pool.close()
            raise
        return storage

    async def close(self) -> None:
        await self._stop_signals()
        await self._leave()
        await self._close_hold_connection()
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
