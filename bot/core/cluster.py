"""Several workers on one database: the port a shared store offers so that `newsbot run`
processes cooperate instead of repeating each other's work (issue 16; docs/scale-out.md).

A store that can be shared (storage.postgres) implements `Coordinator` as well as `Storage`;
one that belongs to a single process (SQLite, memory) does not, and the bot runs as it always
has: one scheduler, one delivery worker, every chat connection in this process.

What is shared, and how:

- **Feed polls are leased.** `claim_due_feeds` hands this worker feeds whose next poll is due
  and which no live worker holds (`FOR UPDATE SKIP LOCKED`), each with a lease that expires
  (database clock; at once when its worker's process dies) and a fencing token that grows with
  every claim of that feed. The store
  remembers the tokens it was given: a poll's write (`apply_ingest`, `record_poll`) from a
  worker whose lease has since been taken over is refused with `LeaseLost`, so a worker that
  stalled past its lease cannot write over its successor. `finish_feed` lets the feed go and
  sets its next poll one interval on, so three workers do not poll a feed three times as often.
- **The outbox is claimed by destination.** `due_deliveries` returns only the cards of
  destinations this worker holds a claim on, claiming free (or lapsed) destinations as it goes;
  `mark_sent` and friends are refused (`LeaseLost`) once the claim has moved to another worker.
  A channel's cards therefore keep their order, and its rate-limit state lives in one worker at
  a time. The platforms' idempotency keys cover a worker that dies between posting and
  recording.
- **Unique connections are held.** `try_hold(role)` (a chat platform's gateway, say) is true
  for one live worker at a time (a session advisory lock, released when the worker dies or its connection drops); the
  others ask again every `HOLD_RETRY` and take over within a minute.
- **An event is handled once.** `first_to_handle(key)` is true for exactly one caller of a key
  (a chat event's or command's id), whichever worker the platform sent it to, retries included.
- **Changes are told.** A worker's writes NOTIFY the others: `Signal.QUERIES` when watchlists
  or subscriptions changed (the store's `queries_version` moves), `Signal.OUTBOX` when cards were
  queued, `Signal.FEEDS` when feeds were added or removed. A polling fallback (every
  `FALLBACK_POLL`) covers a dropped listener.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import NamedTuple, Protocol, runtime_checkable

from bot.core.store import StorageError

# How long a claim lasts without renewal; a worker renews what it holds every third of it.
FEED_LEASE = timedelta(seconds=60)
DESTINATION_CLAIM = timedelta(seconds=30)
# How often a worker that does not hold a unique connection asks again.
HOLD_RETRY = timedelta(seconds=10)
# A missed NOTIFY is noticed within this long.
FALLBACK_POLL = timedelta(seconds=15)


class LeaseLost(StorageError):
    """The lease or claim this write relied on now belongs to another worker: the write was
    not made (the new holder does the work)."""


class Signal(StrEnum):
    QUERIES = "queries"
    OUTBOX = "outbox"
    FEEDS = "feeds"


class FeedLease(NamedTuple):
    feed_id: int
    token: int  # fencing token: larger for every later claim of the same feed
    taken_over: bool  # the feed was claimed from a worker whose lease had lapsed


@dataclass(frozen=True, slots=True)
class WorkerRow:
    """One worker as /status shows it."""

    worker: str  # "<host>:<pid>:<random>", unique per process start
    started_at: datetime
    seen_at: datetime  # last heartbeat (database clock)
    feeds: int  # feed leases held now
    destinations: int  # destination claims held now
    holds: tuple[str, ...]  # unique roles held (a chat gateway, say)
    alive: bool  # its process runs (its session on the database is open)


@runtime_checkable
class Coordinator(Protocol):
    """What a shared store offers for several workers (see the module docstring)."""

    @property
    def worker(self) -> str:
        """This process's worker id."""
        ...

    async def heartbeat(self) -> None:
        """Renew this worker's row, feed leases and destination claims. Run every few seconds;
        a worker that stops calling it loses what it holds after the lease times."""
        ...

    async def claim_due_feeds(self, limit: int) -> list[FeedLease]:
        """Up to `limit` feeds due now (database clock) that no live worker holds, leased to
        this worker for FEED_LEASE."""
        ...

    async def finish_feed(self, lease: FeedLease, next_poll_in: timedelta) -> None:
        """Let the feed go; its next poll is due `next_poll_in` from now (database clock).
        A lease lost meanwhile is left alone (no error: the new holder decides)."""
        ...

    async def try_hold(self, role: str) -> bool:
        """Whether this worker now holds `role` (taking it if free); true until `let_go` or
        this worker's connection to the database is lost (then `holding` turns false)."""
        ...

    def holding(self, role: str) -> bool: ...

    async def let_go(self, role: str) -> None: ...

    async def first_to_handle(self, key: str) -> bool:
        """True for exactly one caller of `key`, across workers and retries."""
        ...

    async def workers(self) -> list[WorkerRow]: ...

    def on_signal(self, signal: Signal, callback: Callable[[], None]) -> None:
        """Call `callback` (on the event loop) when another worker sends `signal`, or when the
        fallback poll finds it missed one."""
        ...

    @property
    def takeovers(self) -> int:
        """Leases and claims this worker took from a worker that had let them lapse."""
        ...
