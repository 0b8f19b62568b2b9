"""Watchlists, subscriptions and the audit log, in memory."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from bot.core.models import Origin, PingWhen, Subscription, Updates, Watchlist, WatchlistSpec
from bot.core.store import AuditEntry, DuplicateName
from storage.memory.base import MemoryBase, limited, moment, nocase, ts


class QueryTables(MemoryBase):
    def _queries_changed(self) -> None:
        self.queries_version += 1

    def _watchlist_named(self, name: str) -> Watchlist | None:
        wanted = nocase(name)
        return next((w for w in self._watchlists.values() if nocase(w.name) == wanted), None)

    async def sync_config_watchlists(self, items: Sequence[WatchlistSpec], now: datetime) -> None:
        specs = [WatchlistSpec(*item) for item in items]
        for spec in specs:
            found = self._watchlist_named(spec.name)
            if found is None:
                found = Watchlist(
                    self._next_id("watchlists"),
                    spec.name,
                    spec.query,
                    tuple(spec.channels),
                    Origin.CONFIG,
                    "config file",
                )
            # The name and who made it stay; the file's query, channels, mode and pings win.
            found = replace(
                found,
                query=spec.query,
                channels=tuple(spec.channels),
                origin=Origin.CONFIG,
                updates=Updates(spec.updates),
                ping=tuple(spec.ping),
                ping_when=PingWhen(spec.ping_when),
            )
            self._watchlists[found.id] = found
        names = {nocase(spec.name) for spec in specs}
        for watchlist in list(self._watchlists.values()):
            if watchlist.origin == Origin.CONFIG and nocase(watchlist.name) not in names:
                del self._watchlists[watchlist.id]
        self._queries_changed()

    async def list_watchlists(self) -> list[Watchlist]:
        return sorted(self._watchlists.values(), key=lambda w: nocase(w.name))

    async def get_watchlist(self, name: str) -> Watchlist | None:
        return self._watchlist_named(name)

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
        if self._watchlist_named(name) is not None:
            raise DuplicateName(f"a watchlist named {name!r} already exists")
        added = Watchlist(
            self._next_id("watchlists"),
            name,
            query,
            tuple(channels),
            Origin.CHAT,
            created_by,
            Updates(updates),
        )
        self._watchlists[added.id] = added
        self._queries_changed()
        return added

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
        self._queries_changed()
        found = self._watchlist_named(name)
        if found is None or found.origin != Origin.CHAT:
            return False
        self._watchlists[found.id] = replace(
            found,
            query=found.query if query is None else query,
            channels=found.channels if channels is None else tuple(channels),
            updates=found.updates if updates is None else Updates(updates),
            ping=found.ping if ping is None else tuple(ping),
            ping_when=found.ping_when if ping_when is None else PingWhen(ping_when),
        )
        return True

    async def remove_watchlist(self, name: str) -> bool:
        self._queries_changed()
        found = self._watchlist_named(name)
        if found is None or found.origin != Origin.CHAT:
            return False
        del self._watchlists[found.id]
        return True

    async def add_subscription(
        self, subscriber: str, query: str, now: datetime, *, limit: int | None = None
    ) -> bool:
        self._queries_changed()
        mine = [s for s in self._subscriptions.values() if s.subscriber == subscriber]
        if any(s.query == query for s in mine) or (limit is not None and len(mine) >= limit):
            return False
        added = Subscription(self._next_id("subscriptions"), subscriber, query)
        self._subscriptions[added.id] = added
        return True

    async def remove_subscription(self, subscriber: str, query: str) -> bool:
        self._queries_changed()
        for found in self._subscriptions.values():
            if (found.subscriber, found.query) == (subscriber, query):
                del self._subscriptions[found.id]
                return True
        return False

    async def list_subscriptions(self, subscriber: str | None = None) -> list[Subscription]:
        return [
            s
            for s in self._subscriptions.values()
            if subscriber is None or s.subscriber == subscriber
        ]

    async def record_audit(
        self, actor: str, action: str, detail: Mapping[str, object], now: datetime
    ) -> None:
        # Stored as JSON, as a database would: what comes back is a copy, and a detail that
        # cannot be stored fails here, not later.
        self._audit.append((ts(now), actor, action, json.dumps(dict(detail), ensure_ascii=False)))

    async def audit_entries(self, limit: int = 100) -> list[AuditEntry]:
        newest = limited(self._audit[::-1], limit)
        return [AuditEntry(moment(at), actor, act, json.loads(d)) for at, actor, act, d in newest]
