"""What the matcher is built from (watchlists and personal subscriptions), and the audit log
of changes made from chat."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from bot.core.models import PingWhen, Subscription, Updates, Watchlist, WatchlistSpec
from bot.core.store import AuditEntry
from storage.errors import DuplicateName
from storage.rows import WATCHLIST_COLUMNS, watchlist_of
from storage.sqlite.base import SqliteBase, marks

_WATCHLIST = ", ".join(WATCHLIST_COLUMNS)


class QueryTables(SqliteBase):
    def _queries_changed(self) -> None:
        self.queries_version += 1

    async def sync_config_watchlists(self, items: Sequence[WatchlistSpec], now: datetime) -> None:
        specs = [WatchlistSpec(*item) for item in items]
        async with self._transaction() as db:
            names = [spec.name for spec in specs]
            for spec in specs:
                await db.execute(
                    """INSERT INTO watchlists (name, query, channels, origin, created_by,
                         created_at, updated_at, ping, ping_when, updates)
                       VALUES (?, ?, ?, 'config', 'config file', ?, ?, ?, ?, ?)
                       ON CONFLICT (name) DO UPDATE SET query = excluded.query,
                         channels = excluded.channels, origin = 'config',
                         updated_at = excluded.updated_at, ping = excluded.ping,
                         ping_when = excluded.ping_when, updates = excluded.updates""",
                    (
                        spec.name,
                        spec.query,
                        json.dumps(list(spec.channels)),
                        now.timestamp(),
                        now.timestamp(),
                        json.dumps(list(spec.ping)),
                        str(spec.ping_when),
                        str(spec.updates),
                    ),
                )
            placeholders = marks(len(names)) or "''"
            await db.execute(
                f"DELETE FROM watchlists WHERE origin = 'config' AND name NOT IN ({placeholders})",  # noqa: S608
                names,
            )
        self._queries_changed()

    async def list_watchlists(self) -> list[Watchlist]:
        rows = await self._read(f"SELECT {_WATCHLIST} FROM watchlists ORDER BY name")  # noqa: S608
        return [watchlist_of(r) for r in rows]

    async def get_watchlist(self, name: str) -> Watchlist | None:
        rows = await self._read(
            f"SELECT {_WATCHLIST} FROM watchlists WHERE name = ?",  # noqa: S608
            (name,),
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
                     updated_at, updates) VALUES (?, ?, ?, 'chat', ?, ?, ?, ?)""",
                (
                    name,
                    query,
                    json.dumps(list(channels)),
                    created_by,
                    now.timestamp(),
                    now.timestamp(),
                    str(updates),
                ),
            )
        except sqlite3.IntegrityError as exc:
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
            """UPDATE watchlists SET query = coalesce(?, query),
                 channels = coalesce(?, channels), updates = coalesce(?, updates),
                 ping = coalesce(?, ping), ping_when = coalesce(?, ping_when), updated_at = ?
               WHERE name = ? AND origin = 'chat'""",
            (
                query,
                None if channels is None else json.dumps(list(channels)),
                None if updates is None else str(updates),
                None if ping is None else json.dumps(list(ping)),
                None if ping_when is None else str(ping_when),
                now.timestamp(),
                name,
            ),
        )
        self._queries_changed()
        return changed > 0

    async def remove_watchlist(self, name: str) -> bool:
        removed = await self._write(
            "DELETE FROM watchlists WHERE name = ? AND origin = 'chat'", (name,)
        )
        self._queries_changed()
        return removed > 0

    async def add_subscription(
        self, subscriber: str, query: str, now: datetime, *, limit: int | None = None
    ) -> bool:
        """False when the subscriber already has this query, or already has `limit`
        subscriptions. The count and the insert are one statement, so concurrent subscribes
        cannot all see room for one more and overshoot the limit."""
        added = await self._write(
            """INSERT OR IGNORE INTO subscriptions (subscriber, query, created_at)
               SELECT ?, ?, ?
               WHERE ? IS NULL OR (SELECT count(*) FROM subscriptions WHERE subscriber = ?) < ?""",
            (subscriber, query, now.timestamp(), limit, subscriber, limit),
        )
        self._queries_changed()
        return added > 0

    async def remove_subscription(self, subscriber: str, query: str) -> bool:
        removed = await self._write(
            "DELETE FROM subscriptions WHERE subscriber = ? AND query = ?", (subscriber, query)
        )
        self._queries_changed()
        return removed > 0

    async def list_subscriptions(self, subscriber: str | None = None) -> list[Subscription]:
        sql = "SELECT id, subscriber, query FROM subscriptions"
        params: tuple[str, ...] = ()
        if subscriber is not None:
            sql += " WHERE subscriber = ?"
            params = (subscriber,)
        rows = await self._read(sql + " ORDER BY id", params)
        return [Subscription(r["id"], r["subscriber"], r["query"]) for r in rows]

    # --- audit -----------------------------------------------------------------------------

    async def record_audit(
        self, actor: str, action: str, detail: Mapping[str, object], now: datetime
    ) -> None:
        await self._write(
            "INSERT INTO audit_log (at, actor, action, detail) VALUES (?, ?, ?, ?)",
            (now.timestamp(), actor, action, json.dumps(dict(detail), ensure_ascii=False)),
        )

    async def audit_entries(self, limit: int = 100) -> list[AuditEntry]:
        rows = await self._read(
            "SELECT at, actor, action, detail FROM audit_log ORDER BY id DESC LIMIT ?", (limit,)
        )
        return [
            AuditEntry(
                datetime.fromtimestamp(r["at"], UTC),
                r["actor"],
                r["action"],
                json.loads(r["detail"]),
            )
            for r in rows
        ]
