"""Several workers on one database (bot.core.cluster.Coordinator): this worker's row, feed
leases, unique roles held by session advisory locks, and events handled once. The outbox's
destination claims are in outbox.py, the fencing checks of a poll's writes in base.py, and the
signals between workers in signals.py.

Every lease time is the database's clock (now()), never this machine's: workers on hosts whose
clocks disagree still agree on whether a lease has lapsed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import zlib
from datetime import timedelta
from typing import Any

import asyncpg

from bot.core.cluster import FeedLease, WorkerRow
from storage.postgres.base import PostgresBase, utc

log = logging.getLogger(__name__)

# pg_try_advisory_lock(HOLD_LOCKS, <role's number>): the first number keeps the roles' locks
# apart from the migration lock (storage.postgres.MIGRATION_LOCK) and anyone else's.
HOLD_LOCKS = 0x686F6C64  # "hold"
# pg_advisory_lock(LIVE_LOCKS, <worker's number>), held for the worker's life: the view
# live_workers (migration 0003, which spells the number out) lists the workers holding theirs.
LIVE_LOCKS = 0x6C697665  # "live"
# Events handled (first_to_handle) are remembered this long: Slack retries within minutes.
HANDLED_FOR = timedelta(days=1)
# A worker not seen for this long is dropped from the workers table (and from /status).
FORGET_WORKERS_AFTER = timedelta(days=1)
# How long a check that the hold connection still answers may take before it counts as lost.
PING_TIMEOUT_S = 5.0
CONNECT_TIMEOUT_S = 10.0
# What leaving may take at shutdown, before the database is left to let the leases lapse.
LEAVE_TIMEOUT_S = 5.0

_UNREACHABLE = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


def new_worker_id() -> str:
    """ "<host>:<pid>:<random>": the host and pid say where to look, the random part tells a
    restarted process (same pid in a container) from its predecessor."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def role_key(role: str) -> int:
    """The role's (or a worker's) lock number: stable across processes and versions (unlike
    Python's hash), and non-negative, so it reads back the same from pg_locks (an oid)."""
    return zlib.crc32(role.encode()) & 0x7FFFFFFF


class ClusterTables(PostgresBase):
    def _init_cluster(
        self, url: str, *, feed_lease: timedelta, destination_claim: timedelta
    ) -> None:
        self._url = url  # for the hold connection (never shown: see self.where)
        self._feed_lease = feed_lease
        self._destination_claim = destination_claim
        self._takeovers = 0
        self._hold_conn: asyncpg.Connection[Any] | None = None
        # One user of the hold connection at a time: asyncpg refuses a second query in flight
        # (the worker would drop its connection, and with it its live lock, as if it had died),
        # and two reconnections at once would each wait for the other's live lock.
        self._hold_lock = asyncio.Lock()
        self._held: set[str] = set()

    @property
    def takeovers(self) -> int:
        return self._takeovers

    async def _join(self) -> None:
        async with self._hold_lock:
            await self._hold_connection()  # takes this worker's live lock first
        await self._register(self._pool)

    async def _register(self, db: asyncpg.Pool[Any] | asyncpg.Connection[Any]) -> None:
        await db.execute(
            """INSERT INTO workers (worker, host, pid, live_key) VALUES ($1, $2, $3, $4)
               ON CONFLICT (worker) DO UPDATE SET seen_at = now(), live_key = excluded.live_key""",
            self.worker,
            socket.gethostname(),
            os.getpid(),
            role_key(self.worker),
        )

    async def _leave(self) -> None:
        """At a clean shutdown: let go of everything at once, so that the other workers take
        this one's feeds and destinations now rather than when the leases lapse."""
        for role in sorted(self._held):
            await self.let_go(role)
        try:
            async with asyncio.timeout(LEAVE_TIMEOUT_S), self._transaction() as conn:
                await conn.execute(
                    """UPDATE feeds SET lease_worker = NULL, lease_expires_at = NULL
                       WHERE lease_worker = $1""",
                    self.worker,
                )
                await conn.execute("DELETE FROM destination_claims WHERE worker = $1", self.worker)
                await conn.execute("DELETE FROM workers WHERE worker = $1", self.worker)
        except _UNREACHABLE as exc:
            log.warning("could not let go of this worker's leases (they lapse): %s", exc)
        self._feed_tokens.clear()
        self._claims.clear()

    async def heartbeat(self) -> None:
        # The live lock first: a worker whose lock connection dropped counts as gone (its
        # leases are anyone's) until it has the lock again.
        async with self._hold_lock:
            await self._check_hold_connection()
            await self._hold_connection()
        async with self._pool.acquire() as conn:
            await self._register(conn)
            # SKIP LOCKED: a locked feed is being written by this worker's own poll (a batch
            # of feeds, locked in its own order): waiting for it could deadlock, and the poll
            # is about to finish the lease anyway.
            await conn.execute(
                """UPDATE feeds SET lease_expires_at = now() + $2::interval
                   WHERE id IN (SELECT id FROM feeds WHERE lease_worker = $1
                                FOR UPDATE SKIP LOCKED)""",
                self.worker,
                self._feed_lease,
            )
            # In the destinations' order, as the outbox's writes lock them: no deadlock.
            await conn.execute(
                """UPDATE destination_claims SET expires_at = now() + $2::interval
                   WHERE destination IN (SELECT destination FROM destination_claims
                                         WHERE worker = $1 ORDER BY destination FOR UPDATE)""",
                self.worker,
                self._destination_claim,
            )
            await conn.execute(
                "DELETE FROM handled_events WHERE at < now() - $1::interval", HANDLED_FOR
            )
            await conn.execute(
                "DELETE FROM workers WHERE seen_at < now() - $1::interval", FORGET_WORKERS_AFTER
            )

    # --- feed leases ------------------------------------------------------------------------

    async def claim_due_feeds(self, limit: int) -> list[FeedLease]:
        rows = await self._read(
            """WITH due AS (
                   SELECT id, lease_worker FROM feeds
                   WHERE active AND coalesce(next_poll_at, '-infinity') <= now()
                     AND (lease_expires_at IS NULL OR lease_expires_at <= now()
                          OR lease_worker NOT IN (SELECT worker FROM live_workers))
                   ORDER BY next_poll_at NULLS FIRST, id
                   LIMIT $2 FOR UPDATE SKIP LOCKED)
               UPDATE feeds f SET lease_worker = $1, lease_token = nextval('lease_tokens'),
                 lease_expires_at = now() + $3::interval
               FROM due WHERE f.id = due.id
               RETURNING f.id, f.lease_token,
                 coalesce(due.lease_worker <> $1, false) AS taken_over""",
            self.worker,
            limit,
            self._feed_lease,
        )
        leases = sorted(FeedLease(r["id"], r["lease_token"], r["taken_over"]) for r in rows)
        for lease in leases:
            self._feed_tokens[lease.feed_id] = lease.token
            if lease.taken_over:
                self._takeovers += 1
                log.info(
                    "took over the poll of feed %d from a worker that is gone or let it lapse",
                    lease.feed_id,
                )
        return leases

    async def finish_feed(self, lease: FeedLease, next_poll_in: timedelta) -> None:
        await self._write(
            """UPDATE feeds SET lease_worker = NULL, lease_expires_at = NULL,
                 next_poll_at = now() + $3::interval
               WHERE id = $1 AND lease_token = $2""",
            lease.feed_id,
            lease.token,
            next_poll_in,
        )
        if self._feed_tokens.get(lease.feed_id) == lease.token:
            del self._feed_tokens[lease.feed_id]

    # --- unique roles -----------------------------------------------------------------------

    def holding(self, role: str) -> bool:
        conn = self._hold_conn
        return role in self._held and conn is not None and not conn.is_closed()

    async def try_hold(self, role: str) -> bool:
        """A session advisory lock on a connection of this worker's own, outside the pool: it
        is released by the server when the worker dies or the connection drops."""
        if self.holding(role):
            return True  # the lock counts re-entries: take it once only
        async with self._hold_lock:
            conn = await self._hold_connection()
            held: bool = await conn.fetchval(
                "SELECT pg_try_advisory_lock($1, $2)", HOLD_LOCKS, role_key(role)
            )
        if held:
            self._held.add(role)
            await self._pool.execute(
                """INSERT INTO role_holders (role, key, worker) VALUES ($1, $2, $3)
                   ON CONFLICT (role) DO UPDATE SET key = excluded.key,
                     worker = excluded.worker, since = now()""",
                role,
                role_key(role),
                self.worker,
            )
            log.info("this worker now holds %s", role)
        return held

    async def let_go(self, role: str) -> None:
        if role not in self._held:
            return
        self._held.discard(role)
        with contextlib.suppress(*_UNREACHABLE):
            async with self._hold_lock:
                conn = self._hold_conn
                if conn is not None and not conn.is_closed():
                    await conn.execute(
                        "SELECT pg_advisory_unlock($1, $2)", HOLD_LOCKS, role_key(role)
                    )
            await self._pool.execute(
                "DELETE FROM role_holders WHERE role = $1 AND worker = $2", role, self.worker
            )

    async def _hold_connection(self) -> asyncpg.Connection[Any]:
        """Callers hold _hold_lock."""
        conn = self._hold_conn
        if conn is None or conn.is_closed():
            self._held.clear()  # whatever the old connection held went with it
            conn = await asyncpg.connect(self._url, timeout=CONNECT_TIMEOUT_S)
            try:
                # Bounded: the server may not have noticed yet that this worker's previous
                # connection, which held the same lock, is gone; the next heartbeat tries again.
                await asyncio.wait_for(
                    conn.execute(
                        "SELECT pg_advisory_lock($1, $2)", LIVE_LOCKS, role_key(self.worker)
                    ),
                    CONNECT_TIMEOUT_S,
                )
            except BaseException:
                conn.terminate()
                raise
            self._hold_conn = conn
        return conn

    async def _check_hold_connection(self) -> None:
        """A connection that no longer answers holds nothing we can count on: drop it, so that
        `holding` turns false here (the server frees the locks when it notices). Callers hold
        _hold_lock."""
        conn = self._hold_conn
        if conn is None or conn.is_closed():
            return
        try:
            await asyncio.wait_for(conn.fetchval("SELECT 1"), PING_TIMEOUT_S)
        except _UNREACHABLE as exc:
            log.warning("lost the connection holding %s: %s", ", ".join(sorted(self._held)), exc)
            conn.terminate()
            self._held.clear()

    async def _close_hold_connection(self) -> None:
        conn, self._hold_conn = self._hold_conn, None
        self._held.clear()
        if conn is not None and not conn.is_closed():
            try:
                await asyncio.wait_for(conn.close(), LEAVE_TIMEOUT_S)
            except _UNREACHABLE:
                conn.terminate()

    # --- events handled once, and /status ---------------------------------------------------

    async def first_to_handle(self, key: str) -> bool:
        first = await self._scalar(
            "INSERT INTO handled_events (key) VALUES ($1) ON CONFLICT DO NOTHING RETURNING true",
            key,
        )
        return first is not None

    async def workers(self) -> list[WorkerRow]:
        rows = await self._read(
            """SELECT w.worker, w.started_at, w.seen_at,
                 w.worker IN (SELECT worker FROM live_workers) AS alive,
                 (SELECT count(*) FROM feeds f
                  WHERE f.lease_worker = w.worker AND f.lease_expires_at > now()) AS feeds,
                 (SELECT count(*) FROM destination_claims c
                  WHERE c.worker = w.worker AND c.expires_at > now()) AS destinations,
                 -- A holder is believed while the role's lock is held on the server.
                 ARRAY(SELECT r.role FROM role_holders r
                       WHERE r.worker = w.worker AND EXISTS (
                           SELECT 1 FROM pg_locks l
                           WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
                             AND l.classid = $1::integer::oid AND l.objid = r.key::oid
                             AND l.database = (SELECT oid FROM pg_database
                                               WHERE datname = current_database()))
                       ORDER BY r.role) AS holds
               FROM workers w ORDER BY w.started_at, w.worker""",
            HOLD_LOCKS,
        )
        return [
            WorkerRow(
                worker=r["worker"],
                started_at=utc(r["started_at"]) or r["started_at"],
                seen_at=utc(r["seen_at"]) or r["seen_at"],
                feeds=r["feeds"],
                destinations=r["destinations"],
                holds=tuple(r["holds"]),
                alive=r["alive"],
            )
            for r in rows
        ]
