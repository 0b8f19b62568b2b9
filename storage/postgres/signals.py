"""Signals between workers (bot.core.cluster.Signal): the tables' triggers NOTIFY on the channel
"newsbot" in the writing transaction (migrations/0002_cluster.sql); this worker LISTENs on a
connection of its own and calls the callbacks registered for what another worker changed.

A notification can be missed (the listening connection dropped): every FALLBACK_POLL a check
reads the change counters (watchlists and subscriptions, feeds) and the outbox's newest card,
calls the callbacks of what moved without being told, and listens again on a new connection if
the old one died."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import asyncpg

from bot.core.cluster import Signal
from storage.postgres.base import PostgresBase

log = logging.getLogger(__name__)

CHANNEL = "newsbot"
CONNECT_TIMEOUT_S = 10.0
_COUNTED = (Signal.QUERIES, Signal.FEEDS)
_UNREACHABLE = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


class SignalTables(PostgresBase):
    def _init_signals(self, url: str, *, fallback_poll: timedelta) -> None:
        self._signal_url = url
        self._fallback_poll = fallback_poll
        self._callbacks: dict[Signal, list[Callable[[], None]]] = {s: [] for s in Signal}
        self._listener: asyncpg.Connection[Any] | None = None
        self._fallback: asyncio.Task[None] | None = None
        # The newest change counted (QUERIES, FEEDS) that this worker has heard of.
        self._known: dict[Signal, int] = {}
        # The outbox's newest card and edits owed at the last check, and whether a
        # notification came since.
        self._outbox_mark: tuple[int, int] | None = None
        self._outbox_told = False
        self._pending: set[Signal] = set()

    def on_signal(self, signal: Signal, callback: Callable[[], None]) -> None:
        self._callbacks[signal].append(callback)

    async def _start_signals(self) -> None:
        await self._listen()
        await self._check_missed(tell=False)
        self._fallback = asyncio.create_task(self._poll_for_missed(), name="newsbot-signals")

    async def _stop_signals(self) -> None:
        task, self._fallback = self._fallback, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        conn, self._listener = self._listener, None
        if conn is not None and not conn.is_closed():
            try:
                await asyncio.wait_for(conn.close(), CONNECT_TIMEOUT_S)
            except _UNREACHABLE:
                conn.terminate()

    async def _listen(self) -> None:
        conn = await asyncpg.connect(self._signal_url, timeout=CONNECT_TIMEOUT_S)
        try:
            await conn.add_listener(CHANNEL, self._notified)
        except BaseException:
            conn.terminate()
            raise
        self._listener = conn

    def _notified(self, conn: object, pid: int, channel: str, payload: str) -> None:
        """ "<signal> <version> <worker>" (migrations/0002_cluster.sql)."""
        name, _, rest = payload.partition(" ")
        version, _, sender = rest.partition(" ")
        try:
            signal = Signal(name)
        except ValueError:
            return
        if signal in _COUNTED and version.isdigit():
            self._known[signal] = max(self._known.get(signal, 0), int(version))
        if signal is Signal.OUTBOX:
            self._outbox_told = True
        if sender != self.worker:  # this worker's own changes are known here already
            self._tell(signal)

    def _tell(self, signal: Signal) -> None:
        """Call the callbacks soon, once for the notifications that arrived together (one
        transaction's statements each notify)."""
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._call_back)
        self._pending.add(signal)

    def _call_back(self) -> None:
        pending, self._pending = self._pending, set()
        for signal in Signal:
            if signal not in pending:
                continue
            if signal is Signal.QUERIES:
                self.queries_version += 1  # the matcher is rebuilt from the tables
            for callback in self._callbacks[signal]:
                try:
                    callback()
                except Exception:
                    log.exception("a %s signal's callback failed", signal.value)

    async def _poll_for_missed(self) -> None:
        while True:
            await asyncio.sleep(self._fallback_poll.total_seconds())
            try:
                await self._check_missed(tell=True)
            except _UNREACHABLE as exc:
                log.warning("cannot check for changes by other workers: %s", exc)

    async def _check_missed(self, *, tell: bool) -> None:
        if self._listener is None or self._listener.is_closed():
            if tell:
                log.warning("the connection listening for other workers' changes was lost")
            await self._listen()  # then count on the check below for what was missed
        row = await self._pool.fetchrow(
            """SELECT (SELECT version FROM changes WHERE signal = 'queries') AS queries,
                      (SELECT version FROM changes WHERE signal = 'feeds') AS feeds,
                      (SELECT coalesce(max(id), 0) FROM deliveries) AS newest,
                      (SELECT count(*) FROM deliveries WHERE update_pending) AS edits"""
        )
        assert row is not None
        for signal in _COUNTED:
            version = row[signal.value] or 0
            if version > self._known.get(signal, 0):
                self._known[signal] = version
                if tell:
                    self._tell(signal)
        mark = (row["newest"], row["edits"])
        if tell and mark != self._outbox_mark and not self._outbox_told:
            self._tell(Signal.OUTBOX)
        self._outbox_mark, self._outbox_told = mark, False
