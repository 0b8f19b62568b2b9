"""What a worker does when several `newsbot run` processes share one database (issue 16; the
port is bot.core.cluster.Coordinator, which storage.postgres implements).

Instead of one scheduler job per feed, each worker asks the database every second (and at once
when woken) for due feeds nobody holds, polls each through the same Polling path as a single
bot (same logs, metrics, backoff), and lets it go with its next poll one interval on (or at its
retry time while it backs off). A heartbeat renews what the worker holds. A connection only one
worker may hold (the Discord gateway) is opened by the worker that holds its role; the others
wait their turn and take over within HOLD_RETRY when the holder dies. Slack sends every worker
its socket's share, so each command or event is handled by the first worker to claim it.

Maintenance (pruning) runs in every worker: it deletes by age, so running it twice is harmless."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol, runtime_checkable

from bot.core.cluster import (
    DESTINATION_CLAIM,
    FEED_LEASE,
    HOLD_RETRY,
    Coordinator,
    FeedLease,
    LeaseLost,
    Signal,
    WorkerRow,
)
from bot.core.delivery import DeliveryWorker
from bot.core.models import FeedState
from bot.core.polling import next_allowed
from bot.core.store import Storage
from bot.ops import ClusterFigures, Metrics
from bot.scheduler import Polling

log = logging.getLogger(__name__)


@dataclass
class ClusterTimings:
    """Seconds; the defaults follow bot.core.cluster. Tests shorten them."""

    claim_every: float = 0.5  # ask for due feeds at least this often
    # A third of the shorter of the two terms the heartbeat renews (feed leases, destination
    # claims): two beats may be missed before anything lapses.
    heartbeat_every: float = min(FEED_LEASE, DESTINATION_CLAIM).total_seconds() / 3
    hold_retry: float = HOLD_RETRY.total_seconds()  # a worker without a role asks again
    # How often a held role is checked (a lost one closes its connection); a cheap look at a flag.
    hold_check: float = 0.25
    stop_grace: float = 5.0  # polls in flight may finish this long when the worker stops


@runtime_checkable
class HeldConnection(Protocol):
    """A chat connection only one worker may open (bot.chat.discord's gateway)."""

    held_role: str

    def share(self, turn: Callable[[], Awaitable[None]]) -> None: ...

    async def stand_down(self) -> None: ...


@runtime_checkable
class OnceHandled(Protocol):
    """A chat connection every worker opens, whose events must be handled once (Slack)."""

    def handle_once_with(self, first_to_handle: Callable[[str], Awaitable[bool]]) -> None: ...


class ClusterWorker:
    """This worker's share of the work: lease-driven polling, the heartbeat, and the turns at
    unique connections. Wires itself into the parts it is given when made."""

    def __init__(
        self,
        coordinator: Coordinator,
        storage: Storage,
        polling: Polling,
        delivery: DeliveryWorker,
        connections: Sequence[object],
        *,
        metrics: Metrics,
    ) -> None:
        self.coordinator = coordinator
        self.storage = storage
        self.polling = polling
        self.concurrency = polling.settings.fetch.concurrency  # polls in flight, at most
        self.clock = polling.clock
        self.timings = ClusterTimings()
        self.leases_lost = 0  # polls refused because the feed had moved to another worker
        self._wake = asyncio.Event()
        self._leases: dict[int, FeedLease] = {}  # held now, by feed id
        self._unfinished: dict[int, timedelta] = {}  # polled, not yet let go: next poll in
        self._polls: set[asyncio.Task[None]] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._held: set[str] = set()  # roles this worker was given its turn at
        self._rows: list[WorkerRow] = []  # as last read, for /metrics
        self._connections: dict[str, HeldConnection] = {}
        # Feeds are read from the database at each claim: nothing per feed to keep in step.
        polling.per_feed_jobs = False
        polling.on_feeds_changed = self.wake
        for connection in connections:
            if isinstance(connection, HeldConnection):
                role = connection.held_role
                self._connections[role] = connection
                connection.share(lambda role=role: self.turn(role))  # type: ignore[misc]
            elif isinstance(connection, OnceHandled):
                connection.handle_once_with(coordinator.first_to_handle)
        coordinator.on_signal(Signal.OUTBOX, delivery.wake)
        coordinator.on_signal(Signal.FEEDS, self.wake)
        metrics.watch_cluster(self.figures)

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Heartbeat once (so /status lists this worker at once), then run the loops."""
        with contextlib.suppress(Exception):
            await self.coordinator.heartbeat()  # a failure is logged by the loop's first beat
        self._tasks = [
            asyncio.create_task(self._heartbeats(), name="cluster-heartbeat"),
            asyncio.create_task(self._claims(), name="cluster-claims"),
            asyncio.create_task(self._watch_holds(), name="cluster-holds"),
        ]

    async def stop(self) -> None:
        """Stop claiming; let the polls in flight finish (for a while), and give back at once
        the feeds whose polls did not, so that another worker need not wait for the lease."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._polls:
            await asyncio.wait(self._polls, timeout=self.timings.stop_grace)
        for task in list(self._polls):
            task.cancel()
        await asyncio.gather(*self._polls, return_exceptions=True)
        for feed_id, lease in list(self._leases.items()):
            with contextlib.suppress(Exception):
                await self.coordinator.finish_feed(
                    lease, self._unfinished.get(feed_id, timedelta(0))
                )
        self._leases.clear()
        self._unfinished.clear()

    async def let_go(self) -> None:
        """Give back the unique roles (once their connections are closed)."""
        for role in sorted(self._held):
            with contextlib.suppress(Exception):
                await self.coordinator.let_go(role)
        self._held.clear()

    def wake(self) -> None:
        """Look for due feeds now (a feed was added, here or by another worker)."""
        self._wake.set()

    # --- unique connections ------------------------------------------------------------------

    async def turn(self, role: str) -> None:
        """Returns once this worker holds `role`, asking every `hold_retry` until then."""
        failing = False
        while True:
            try:
                if await self.coordinator.try_hold(role):
                    # Perhaps freed a moment ago by a worker whose database connection dropped:
                    # it closes its own connection within a check of noticing; give it that
                    # long, so that two are never open at once.
                    await asyncio.sleep(2 * self.timings.hold_check)
                    if self.coordinator.holding(role):
                        self._held.add(role)
                        return
                failing = False
            except Exception as exc:
                if not failing:
                    log.warning("cannot ask the database for %s (%s); asking again", role, exc)
                failing = True
            await asyncio.sleep(self.timings.hold_retry)

    async def _watch_holds(self) -> None:
        while True:
            await asyncio.sleep(self.timings.hold_check)
            for role, connection in self._connections.items():
                if role in self._held and not self.coordinator.holding(role):
                    self._held.discard(role)
                    log.warning(
                        "this worker no longer holds %s (its database connection dropped); "
                        "closing it, so that only the worker holding it now serves it",
                        role,
                    )
                    await connection.stand_down()

    # --- polling -----------------------------------------------------------------------------

    async def _heartbeats(self) -> None:
        failing = False
        while True:
            try:
                await self.coordinator.heartbeat()
            except Exception as exc:
                if not failing:
                    log.warning(
                        "heartbeat failed (%s); unless it recovers, this worker's destination "
                        "claims lapse within %ds and its feed leases within %ds; retrying",
                        exc,
                        DESTINATION_CLAIM.total_seconds(),
                        FEED_LEASE.total_seconds(),
                    )
                failing = True
            else:
                if failing:
                    log.info("heartbeat works again")
                failing = False
            await asyncio.sleep(self.timings.heartbeat_every)

    async def _claims(self) -> None:
        failing = False
        while True:
            await self._finish_left_over()
            room = self.concurrency - len(self._polls)
            if room > 0:
                try:
                    leases = await self.coordinator.claim_due_feeds(room)
                except Exception as exc:
                    if not failing:
                        log.warning("cannot claim due feeds (%s); retrying", exc)
                    failing = True
                    leases = []
                else:
                    failing = False
                for lease in leases:
                    self._leases[lease.feed_id] = lease
                    task = asyncio.create_task(self._poll(lease), name=f"poll-{lease.feed_id}")
                    self._polls.add(task)
                    task.add_done_callback(self._polled)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.timings.claim_every)
            self._wake.clear()

    def _polled(self, task: asyncio.Task[None]) -> None:
        self._polls.discard(task)
        self._wake.set()  # room for another claim

    async def _poll(self, lease: FeedLease) -> None:
        claimed_at = self.clock()
        if lease.taken_over:
            log.info("feed %d: lease taken over from a worker that let it lapse", lease.feed_id)
        next_in: timedelta | None = None
        try:
            feed = await self.storage.get_feed_by_id(lease.feed_id)
            if feed is None:  # removed meanwhile
                self._leases.pop(lease.feed_id, None)
                return
            try:
                await self.polling.poll(feed)
            except LeaseLost:
                self.leases_lost += 1
                self._leases.pop(lease.feed_id, None)
                log.info("feed %r moved to another worker during its poll", feed.name)
                return
            after = await self.storage.get_feed_by_id(feed.id) or feed
            next_in = self.next_poll_in(after, self.clock() - claimed_at)
            await self.coordinator.finish_feed(lease, next_in)
            self._leases.pop(lease.feed_id, None)
        except Exception as exc:
            # The database is away: the feed is let go by the claim loop once it is back
            # (held, the heartbeat would renew it for ever).
            log.warning("cannot finish the poll of feed %d (%s)", lease.feed_id, exc)
            self._unfinished[lease.feed_id] = next_in or timedelta(0)

    async def _finish_left_over(self) -> None:
        for feed_id, next_in in list(self._unfinished.items()):
            lease = self._leases.get(feed_id)
            try:
                if lease is not None:
                    await self.coordinator.finish_feed(lease, next_in)
            except Exception:
                return  # still away; the next round tries again
            self._unfinished.pop(feed_id, None)
            self._leases.pop(feed_id, None)

    def next_poll_in(self, feed: FeedState, spent: timedelta = timedelta(0)) -> timedelta:
        """One interval after the claim (the poll's own time is part of it, so a feed keeps its
        pace), or at the retry time of a feed that backs off. The interval is the one its poll
        left it (adaptive: bot.core.polling), and the hours and days the feed asks to skip are
        skipped."""
        now = self.clock()
        if feed.retry_at is not None and feed.retry_at > now:
            return feed.retry_at - now
        due = now + max(feed.poll_interval - spent, timedelta(0))
        return next_allowed(feed.schedule, self.polling.pipeline.polling, due) - now

    # --- reporting ---------------------------------------------------------------------------

    async def refresh(self) -> None:
        """Read the workers' rows for the next /metrics scrape."""
        self._rows = await self.coordinator.workers()

    def figures(self) -> ClusterFigures:
        me = next((row for row in self._rows if row.worker == self.coordinator.worker), None)
        roles = set(self._connections)
        return ClusterFigures(
            workers_alive=sum(1 for row in self._rows if row.alive),
            feed_leases=me.feeds if me else len(self._leases),
            destination_claims=me.destinations if me else 0,
            roles={role: self.coordinator.holding(role) for role in roles},
            takeovers=self.coordinator.takeovers,
            leases_lost=self.leases_lost,
        )
