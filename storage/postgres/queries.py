"""What the matcher is built from (watchlists and personal subscriptions), and the audit log
of changes made from chat."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime

import asyncpg

from bot.core.models import PingWhen, Subscription, Updates, Watchlist, WatchlistSpec
from bot.core.store import AuditEntry
from storage.errors import DuplicateName
from storage.postgres.base import PostgresBase, fold, rowcount, utc
from storage.rows import WATCHLIST_COLUMNS, watchlist_of

_WATCHLIST = ", ".join(WATCHLIST_COLUMNS)


class QueryTables(PostgresBase):
    def _queries_changed(self) -> None:
        self.queries_version += 1

    async def sync_config_watchlists(self, items: Sequence[WatchlistSpec], now: datetime) -> None:
        specs = [WatchlistSpec(*item) for item in items]
        async with self._transaction() as conn:
            await conn.executemany(
                """INSERT INTO watchlists (name, query, channels, origin, created_by,
                     created_at, updated_at, ping, ping_when, updates)
                   VALUES ($1, $2, $3, 'config', 'config file', $4, $4, $5, $6, $7)
                   ON CONFLICT (ascii_lower(name)) DO UPDATE SET query = excluded.query,
                     channels = excluded.channels, origin = 'config',
                     updated_at = excluded.updated_at, ping = excluded.ping,
                     ping_when = excluded.ping_when, updates = excluded.updates""",
                [
                    (
                        spec.name,
                        spec.query,
                        json.dumps(list(spec.channels)),
                        now,
                        json.dumps(list(spec.ping)),
                        str(spec.ping_when),
                        str(spec.updates),
                    )
                    for spec in specs
                ],
            )
            await conn.execute(
                """DELETE FROM watchlists WHERE origin = 'config'
                   AND ascii_lower(name) <> ALL($1::text[])""",
                [fold(spec.name) for spec in specs],
            )
        self._queries_changed()

    async def list_watchlists(self) -> list[Watchlist]:
        rows = await self._read(
            f'SELECT {_WATCHLIST} FROM watchlists ORDER BY ascii_lower(name) COLLATE "C"'  # noqa: S608
        )
        return [watchlist_of(r) for r in rows]

    async def get_watchlist(self, name: str) -> Watchlist | None:
        rows = await self._read(
            f"SELECT {_WATCHLIST} FROM watchlists WHERE ascii_lower(name) = $1",  # noqa: S608
            fold(name),
        )
        return watchlist_of(rows[0]) if rows else None

    async def add_watchlist(
        self,
        name: str,
        query: str,
        channels: Sequence[str],
        created_by: str,
        now: datetime,
        *,
        updates: Updates = Updates.EDIT,
    ) -> Watchlist:
        try:
            await self._write(
                """INSERT INTO watchlists (name, query, channels, origin, created_by, created_at,
                     updated_at, updates) VALUES ($1, $2, $3, 'chat', $4, $5, $5, $6)""",
                name,
                query,
                json.dumps(list(channels)),
                created_by,
                now,
                str(updates),
            )
        except asyncpg.UniqueViolationError as exc:
            raise DuplicateName(f"a watchlist named {name!r} already exists") from exc
        self._queries_changed()
        found = await self.get_watchlist(name)
        assert found is not None
        return found

    async def update_watchlist(
        self,
        name: str,
        *,
        query: str | None = None,
        channels: Sequence[str] | None = None,
        updates: Updates | None = None,
        ping: Sequence[str] | None = None,
        ping_when: PingWhen | None = None,
        now: datetime,
    ) -> bool:
        changed = await self._write(
            """UPDATE watchlists SET query = coalesce($1, query),
                 channels = coalesce($2, channels), ping = coalesce($5, ping),
                 ping_when = coalesce($6, ping_when), updates = coalesce($7, updates),
                 updated_at = $3
               WHERE ascii_lower(name) = $4 AND origin = 'chat'""",
            query,
            None if channels is None else json.dumps(list(channels)),
            now,
            fold(name),
            None if ping is None else json.dumps(list(ping)),
            None if ping_when is None else str(ping_when),
            None if updates is None else str(updates),
        )
        self._queries_changed()
        return changed > 0

    async def remove_watchlist(self, name: str) -> bool:
        removed = await self._write(
            "DELETE FROM watchlists WHERE ascii_lower(name) = $1 AND origin = 'chat'", fold(name)
        )
        self._queries_changed()
        return removed > 0

    async def add_subscription(
        self, subscriber: str, query: str, now: datetime, *, limit: int | None = None
    ) -> bool:
        """False when the subscriber already has this query, or already has `limit`
        subscriptions. A lock per subscriber, held to the commit, makes the count and the
        insert one step: concurrent subscribes (from any process) cannot overshoot the limit."""
        async with self._transaction() as conn:
            await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", subscriber)
            added = rowcount(
                await conn.execute(
                    """INSERT INTO subscriptions (subscriber, query, created_at)
                       SELECT $1, $2, $3
                       WHERE $4::integer IS NULL
                          OR (SELECT count(*) FROM subscriptions WHERE subscriber = $1) < $4
                       ON CONFLICT (subscriber, query) DO NOTHING""",
                    subscriber,
                    query,
                    now,
                    limit,
                )
            )
        self._queries_changed()
        return added > 0

    async def remove_subscription(self, subscriber: str, query: str) -> bool:
        removed = await self._write(
            "DELETE FROM subscriptions WHERE subscriber = $1 AND query = $2", subscriber, query
        )
        self._queries_changed()
        return removed > 0

    async def list_subscriptions(self, subscriber: str | None = None) -> list[Subscription]:
        rows = await self._read(
            """SELECT id, subscriber, query FROM subscriptions
               WHERE $1::text IS NULL OR subscriber = $1 ORDER BY id""",
            subscriber,
        )
        return [Subscription(r["id"], r["subscriber"], r["query"]) for r in rows]

    # --- audit -----------------------------------------------------------------------------

    async def record_audit(
        self, actor: str, action: str, detail: Mapping[str, object], now: datetime
    ) -> None:
        await self._write(
            "INSERT INTO audit_log (at, actor, action, detail) VALUES ($1, $2, $3, $4)",
            now,
            actor,
            action,
            json.dumps(dict(detail), ensure_ascii=False),
        )

    async def audit_entries(self, limit: int = 100) -> list[AuditEntry]:
        rows = await self._read(
            "SELECT at, actor, action, detail FROM audit_log ORDER BY id DESC LIMIT $1", limit
        )
        return [
            AuditEntry(utc(r["at"]) or r["at"], r["actor"], r["action"], json.loads(r["detail"]))
            for r in rows
        ]
