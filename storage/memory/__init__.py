"""The whole storage contract in plain dicts: for unit tests of the core, and for a bot that
keeps nothing ([storage] path = ":memory:").

It keeps the SQLite backend's rules, which the contract suite checks on both: names are unique
and compared ignoring ASCII letter case (SQLite's NOCASE), times go through Unix seconds and
come back in UTC, ids are never reused, a poll's write is all or nothing, removing a feed keeps
its stories (without a feed id), and pruning a story removes its cards. No method awaits
anything, so each one is atomic on the event loop, as a transaction is.

The parts mirror storage/sqlite/: feeds, ingest (with stories read back and pruned), outbox
and queries (watchlists, subscriptions, audit), each a mixin over the tables in base.py."""

from __future__ import annotations

from storage.memory.feeds import FeedTables
from storage.memory.ingest import IngestTables
from storage.memory.outbox import OutboxTables
from storage.memory.queries import QueryTables
from storage.memory.websub import WebSubTables

__all__ = ["MemoryStorage"]


class MemoryStorage(IngestTables, OutboxTables, FeedTables, QueryTables, WebSubTables):
    async def close(self) -> None:
        """Nothing to release; what was stored is gone with the object."""
