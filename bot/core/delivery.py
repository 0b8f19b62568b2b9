"""The delivery worker: sends pending deliveries from the outbox and records what happened.

A delivery is marked sent only after the platform confirmed it, with the platform's message id;
a crash in between re-sends with the same idempotency key (the sender's job), so no alert is
lost and none is doubled. Transient failures wait and retry, forever if need be: nothing is
dropped because a chat platform was down. Permanent failures (no permission, DMs closed) are
recorded with their reason and never block other deliveries.

When a platform's connection comes back, `release(platform)` makes every card owed to it due at
once instead of after its backoff timer (up to `max_backoff`): the next pass sends them, in order
per destination, with the same idempotency keys as any retry.

More than `burst_limit` cards for one channel within `burst_window` is a burst: the most
prominent of them (urgent, then matched by the most watchlists and terms) get full cards, in
outbox order, and the rest are listed in digests.

A new card carries the pings its watchlists ask for (bot.core.pings), as they are when it is
sent; a digest carries the union of its cards' pings; an update carries none.

A person's cards follow their settings (bot.core.quiet): those owed in their quiet hours, or
in an hourly or daily digest mode, wait in the outbox (held, durably) and go out together as
one digest when the wait is over; an urgent story comes at once if the person allows it."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.core.cards import Card, Digest, build_card
from bot.core.cluster import LeaseLost
from bot.core.destinations import DestinationError, DestinationKind, Destinations
from bot.core.models import (
    Delivery,
    DeliveryStatus,
    StoredStory,
    SubscriberSettings,
    platform_of,
)
from bot.core.pings import PingBook
from bot.core.ports import DeliveryStore, Sender, SendResult
from bot.core.quiet import digest_group, digest_reason, plan

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    burst_limit: int = 5  # cards per channel per window before the rest become one digest
    burst_window: timedelta = timedelta(minutes=1)
    concurrency: int = 8  # destinations served at once
    max_backoff: timedelta = timedelta(minutes=5)
    batch: int = 500
    digest_size: int = 10  # headlines per digest message: what fits any platform's limits
    # A card is edited for a rewrite at most this many times (alerts.max_updates; the store
    # applies it when a rewrite lands): no thread reply beyond it either, whatever else (a
    # new source) brings the card up for an edit.
    max_updates: int = 3
    # Cards in one person's digest at most (quiet hours, hourly, daily); each platform lists what
    # fits its limits and ends with "and N more". Beyond it, the next digest.
    person_digest: int = 500


# "Whatever its retry time": further ahead than any backoff or Retry-After ever schedules.
RELEASE_HORIZON = timedelta(days=3650)

FailureHook = Callable[[Delivery, str], Awaitable[None]]
SentHook = Callable[[Delivery, StoredStory, datetime], None]
PingSource = Callable[[], Awaitable[PingBook]]  # who the watchlists ping, as they are now


def _sources_shown(delivery: Delivery, story: StoredStory) -> int | None:
    """How many other feeds the card named (thread mode); None: it names none, whatever the
    story's sources (edit mode shows none, so none can make it behind)."""
    return len(story.sources) if delivery.thread else None


def prominence(delivery: Delivery, story: StoredStory) -> tuple[bool, int, int]:
    """How much a card deserves a full post in a burst, highest first: urgent (what the card
    itself shows as urgent), then how many of the channel's watchlists matched it, then how many
    terms. Feed order says nothing about importance: a wire puts its newest item on top."""
    urgent = build_card(delivery, story).urgent
    return (urgent, len(delivery.watchlists), len(set(delivery.matched)))


def split_burst(
    items: list[tuple[Delivery, StoredStory]], room: int
) -> tuple[list[tuple[Delivery, StoredStory]], list[tuple[Delivery, StoredStory]]]:
    """A burst's `room` most prominent cards (ties: outbox order) go out as full cards, the rest
    as digest lines. Each part keeps outbox order, so a channel still reads its full cards in the
    order they came; every card is in exactly one part."""
    ranked = sorted(range(len(items)), key=lambda i: prominence(*items[i]), reverse=True)
    # sorted() is stable and reverse=True keeps ties in their original order.
    full = set(ranked[:room])
    return (
        [item for i, item in enumerate(items) if i in full],
        [item for i, item in enumerate(items) if i not in full],
    )


class DeliveryWorker:
    def __init__(
        self,
        store: DeliveryStore,
        senders: Mapping[str, Sender],
        *,
        clock: Callable[[], datetime],
        destinations: Destinations,
        settings: DeliverySettings | None = None,
        on_permanent_failure: FailureHook | None = None,
        on_sent: SentHook | None = None,
        on_thread_dropped: FailureHook | None = None,
        pings: PingSource | None = None,
    ) -> None:
        self.store = store
        self.senders = dict(senders)
        self.destinations = destinations
        self.clock = clock
        self.settings = settings or DeliverySettings()
        self.on_permanent_failure = on_permanent_failure
        self.on_sent = on_sent
        self.on_thread_dropped = on_thread_dropped
        self._ping_source = pings
        self._pings = PingBook()  # read again at each step: an edit in chat applies at once
        self._wake = asyncio.Event()
        self._released: set[str] = set()
        self._stopping = False
        self._busy = asyncio.Lock()
        self.sent = 0
        self.failed = 0
        self.claims_lost = 0

    def wake(self) -> None:
        self._wake.set()

    def release(self, platform: str) -> None:
        """`platform` is reachable again: what waits out a retry for it is due now."""
        self._released.add(platform)
        self._wake.set()

    async def run_forever(self, idle: float = 2.0) -> None:
        while not self._stopping:
            try:
                await self.drain()
            except Exception:
                # The worker must outlive any one bad row or database hiccup; the row stays
                # pending and is tried again.
                log.exception("delivery pass failed; retrying shortly")
            if self._stopping:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=idle)
            self._wake.clear()

    async def stop(self, grace: float = 8.0) -> None:
        """Let the sends in flight finish (their result gets recorded), then stop."""
        self._stopping = True
        self._wake.set()
        try:
            await asyncio.wait_for(self._busy.acquire(), timeout=grace)
            self._busy.release()
        except TimeoutError:
            log.warning("delivery worker did not finish within %.0fs", grace)

    async def drain(self) -> int:
        """Send everything that is due now; returns how many deliveries were handled."""
        handled = 0
        while not self._stopping:
            done = await self.step()
            handled += done
            if done == 0:
                break
        return handled

    async def step(self) -> int:
        async with self._busy:
            now = self.clock()
            due = await self.store.due_deliveries(now, self.settings.batch)
            if self._ping_source is not None and (due or self._released):
                self._pings = await self._ping_source()
            released, self._released = self._released, set()
            owed: list[tuple[Delivery, StoredStory]] = []
            more = False
            if released:
                # Everything pending, whatever its retry time (the store keeps each
                # destination's cards in order), then only the released platforms' share.
                everything = await self.store.due_deliveries(
                    now + RELEASE_HORIZON, self.settings.batch
                )
                owed = [(d, s) for d, s in everything if platform_of(d.target) in released]
                more = len(everything) == self.settings.batch
            if not due and not owed:
                return 0
            groups: dict[str, list[tuple[Delivery, StoredStory]]] = {}
            for delivery, story in due:
                if platform_of(delivery.target) not in released:
                    groups.setdefault(delivery.target, []).append((delivery, story))
            for delivery, story in owed:
                groups.setdefault(delivery.target, []).append((delivery, story))
            gate = asyncio.Semaphore(self.settings.concurrency)
            # What the people owed cards in this pass set (quiet hours, digests): one read.
            subscribers = sorted(
                {d.subscriber for ds in groups.values() for d, _ in ds if d.subscriber}
            )
            people = await self.store.subscriber_settings(subscribers) if subscribers else {}

            async def serve(target: str, items: list[tuple[Delivery, StoredStory]]) -> int:
                async with gate:
                    try:
                        return await self._serve_target(target, items, people)
                    except LeaseLost:
                        # Its claim lapsed and another worker serves it now; a card posted
                        # here but not recorded is re-sent there with the same idempotency key.
                        log.info("%s is served by another worker now", target)
                        self.claims_lost += 1
                        return 0

            counts = await asyncio.gather(*(serve(t, items) for t, items in groups.items()))
            if owed and more:
                # More than one batch may be owed: release again the platforms whose cards all
                # went (one still failing waits for its retry time instead of spinning here).
                handled = dict(zip(groups, counts, strict=True))
                stuck = {platform_of(t) for t, items in groups.items() if handled[t] < len(items)}
                self._released |= {platform_of(d.target) for d, _ in owed} - stuck
            return sum(counts)

    def _to_person(self, target: str) -> bool:
        """A person's direct messages get every card in full: digests are for busy channels."""
        try:
            return self.destinations.parse(target).kind == DestinationKind.DM
        except DestinationError:
            # Its platform cannot read it either: the sender fails each card with the reason.
            return False

    async def _personal(
        self,
        items: list[tuple[Delivery, StoredStory]],
        people: Mapping[str, SubscriberSettings],
    ) -> tuple[list[tuple[Delivery, StoredStory]], list[tuple[Delivery, StoredStory]], str, int]:
        """A person's due cards under their settings (`people`: by subscriber): (those to post
        now, those for one digest, the digest's kind, how many were held). The held ones are
        recorded as held here."""
        subscriber = next((d.subscriber for d, _ in items if d.subscriber), None)
        if not items or subscriber is None:
            return items, [], "", 0
        settings = people.get(subscriber)
        if settings is None or (settings.plain and not any(d.held_until for d, _ in items)):
            return items, [], "", 0
        now = self.clock()
        try:
            decided = plan(
                settings,
                now,
                items,
                held_until=[d.held_until for d, _ in items],
                urgent=[build_card(d, s).urgent for d, s in items],
            )
        except (LookupError, ValueError, OSError):
            # The stored time zone no longer loads (the host's time zone data changed): the
            # cards go out as if there were no settings rather than wait forever.
            log.warning("the settings of %s cannot be applied; delivering at once", subscriber)
            return items, [], "", 0
        if decided.hold and decided.until is not None:
            await self.store.hold_deliveries([d.id for d, _ in decided.hold], decided.until)
            log.info("%d cards for %s wait until %s", len(decided.hold), subscriber, decided.until)
        return decided.now, decided.digest, decided.kind, len(decided.hold)

    async def _serve_target(
        self,
        target: str,
        items: list[tuple[Delivery, StoredStory]],
        people: Mapping[str, SubscriberSettings] | None = None,
    ) -> int:
        sender = self.senders.get(platform_of(target))
        if sender is None:
            reason = f"no {platform_of(target)} connection is configured"
            for delivery, story in items:
                if delivery.status == DeliveryStatus.SENT:
                    # Posted while the platform was configured: the card stands, the edit lapses.
                    await self.store.mark_update_done(
                        delivery.id, self.clock(), revision=story.revision
                    )
                else:
                    await self._permanent(delivery, reason)
            return len(items)
        fresh = [(d, s) for d, s in items if d.status == DeliveryStatus.PENDING]
        updates = [(d, s) for d, s in items if d.status == DeliveryStatus.SENT]
        # A digest formed before a restart (and perhaps posted) goes out exactly as it was
        # formed: the same cards give the platform the same idempotency key.
        formed: dict[str, list[tuple[Delivery, StoredStory]]] = {}
        for delivery, story in fresh:
            if delivery.digest_group:
                formed.setdefault(delivery.digest_group, []).append((delivery, story))
        fresh = [(d, s) for d, s in fresh if not d.digest_group]
        digest: list[tuple[Delivery, StoredStory]] = []
        gathered: list[tuple[Delivery, StoredStory]] = []  # a person's, for one digest
        kind, held = "", 0
        if self._to_person(target):
            decided = {d.id for d, _ in fresh}
            fresh, gathered, kind, held = await self._personal(fresh, people or {})
            if gathered:
                # Everything that waited goes in the one digest, also the cards past this batch.
                cap = self.settings.person_digest
                more = await self.store.waiting_cards(target, self.clock(), cap)
                gathered += [(d, s) for d, s in more if d.id not in decided]
                gathered = sorted(gathered, key=lambda item: item[0].id)[:cap]
        elif len(fresh) > 1:
            recent = await self.store.recent_sent_count(
                target, self.clock() - self.settings.burst_window
            )
            room = max(0, self.settings.burst_limit - recent)
            if len(fresh) > room + 1:
                fresh, digest = split_burst(fresh, room)
        handled = held
        for name, group in formed.items():
            if not await self._send_digest(sender, target, group, digest_reason(name)):
                return handled
            handled += len(group)
        if len(gathered) > 1:
            # Recorded before posting, as a burst digest is; named for why it was formed, so
            # that a re-send after a restart is worded the same.
            name = digest_group(kind, gathered[0][0].id, gathered[-1][0].id)
            await self.store.assign_digest([d.id for d, _ in gathered], name)
            if not await self._send_digest(sender, target, gathered, digest_reason(name)):
                return handled
            handled += len(gathered)
        elif gathered:  # one card waited: it goes out as itself
            fresh = sorted(gathered + fresh, key=lambda item: item[0].id)
        # In order, one at a time: a channel reads its alerts in the order they came, and a
        # transient failure stops this destination's queue until its retry time.
        for delivery, story in fresh:
            if not await self._send_one(sender, delivery, story):
                return handled
            handled += 1
        size = self.settings.digest_size
        for start in range(0, len(digest), size):
            chunk = digest[start : start + size]
            # Recorded before posting: if the bot dies mid-post, the restart re-sends this
            # very digest rather than regrouping its cards.
            await self.store.assign_digest(
                [d.id for d, _ in chunk], f"{chunk[0][0].id}-{chunk[-1][0].id}"
            )
            if not await self._send_digest(sender, target, chunk):
                return handled
            handled += len(chunk)
        for delivery, story in updates:
            if not await self._send_one(sender, delivery, story):
                return handled
            handled += 1
        return handled

    async def _send_one(self, sender: Sender, delivery: Delivery, story: StoredStory) -> bool:
        if delivery.status == DeliveryStatus.SENT:
            # An edit of a posted card, and a reply under it, never ping again.
            return await self._update(sender, delivery, story)
        card = self._with_pings(build_card(delivery, story))
        result = await self._guard(sender.send(card), card)
        now = self.clock()
        if result.ok:
            await self.store.mark_sent(
                delivery.id,
                result.message_id or "",
                now,
                revision=story.revision,
                sources=_sources_shown(delivery, story),
            )
            self.sent += 1
            if self.on_sent is not None:
                self.on_sent(delivery, story, now)
            return True
        if result.permanent:
            await self._permanent(delivery, result.error or "refused")
            return True
        await self._retry(delivery, result, update=False)
        return False

    async def _update(self, sender: Sender, delivery: Delivery, story: StoredStory) -> bool:
        """A sent card behind its story: edited in place; in thread mode a rewrite (not a new
        source alone) also goes under it as a reply, within the update cap. The edit comes
        first: a card that is gone fails it, and then nothing is posted, least of all at the
        top level. A re-run after a crash or a transient failure edits again (harmless) and
        replies with the same idempotency key."""
        rewrite = story.revision > delivery.shown_revision
        # "Updated" marks a card that shows a rewrite: not one that only names a new source.
        card = build_card(delivery, story, update=rewrite or delivery.update_count > 0)
        message_id = delivery.message_id or ""
        reply = delivery.thread and rewrite and delivery.update_count < self.settings.max_updates
        result = await self._guard(sender.edit(card, message_id), card)
        if result.ok and reply:
            result = await self._guard(sender.reply(card, message_id), card)
            if not result.ok and result.permanent:
                log.warning(
                    "thread reply for delivery %d to %s dropped: %s; the card itself was "
                    "edited, nothing was posted in the channel",
                    delivery.id,
                    delivery.target,
                    result.error,
                )
                await self._thread_dropped(delivery, result.error or "refused")
        elif not result.ok and result.permanent:
            # The card was posted; an edit that cannot be made (message deleted) is dropped.
            log.info("update of delivery %d dropped: %s", delivery.id, result.error)
            if reply:
                await self._thread_dropped(
                    delivery, f"the card cannot be edited any more ({result.error})"
                )
        if not result.ok and not result.permanent:
            await self._retry(delivery, result, update=True)
            return False
        await self.store.mark_update_done(
            delivery.id,
            self.clock(),
            revision=story.revision,
            sources=_sources_shown(delivery, story),
        )
        return True

    async def _thread_dropped(self, delivery: Delivery, error: str) -> None:
        if self.on_thread_dropped is not None:
            try:
                await self.on_thread_dropped(delivery, error)
            except Exception:
                # An ops notice that cannot go out must not hold the card's update back.
                log.exception("reporting the dropped thread reply of %d failed", delivery.id)

    async def _send_digest(
        self,
        sender: Sender,
        target: str,
        items: list[tuple[Delivery, StoredStory]],
        reason: str = "",
    ) -> bool:
        cards = tuple(self._with_pings(build_card(d, s)) for d, s in items)
        result = await self._guard(sender.send_digest(Digest(target, cards, reason)), cards[0])
        now = self.clock()
        if result.ok:
            for delivery, story in items:
                await self.store.mark_sent(delivery.id, result.message_id or "", now, digest=True)
                if self.on_sent is not None:
                    self.on_sent(delivery, story, now)
            self.sent += len(items)
            return True
        if result.permanent:
            for delivery, _ in items:
                await self._permanent(delivery, result.error or "refused")
            return True
        for delivery, _ in items:
            await self._retry(delivery, result, update=False)
        return False

    def _with_pings(self, card: Card) -> Card:
        pings = self._pings.for_card(card.watchlists, urgent=card.urgent) if self._pings else ()
        return dataclasses.replace(card, pings=pings) if pings else card

    async def _guard(self, call: Awaitable[SendResult], card: Card) -> SendResult:
        try:
            return await call
        except Exception as exc:
            # Senders report failures as results; an exception here is a bug or an unexpected
            # network error. Treat it as transient so the card is not lost.
            log.exception("sending delivery %d to %s raised", card.delivery_id, card.channel)
            return SendResult.retry(f"{type(exc).__name__}: {exc}")

    async def _retry(self, delivery: Delivery, result: SendResult, *, update: bool) -> None:
        attempts = delivery.attempts + 1
        delay = min(timedelta(seconds=2 ** min(attempts, 12)), self.settings.max_backoff)
        if result.retry_after is not None:
            delay = max(delay, timedelta(seconds=result.retry_after))
        log.warning(
            "delivery %d to %s failed (%s); retry %d in %ds",
            delivery.id,
            delivery.target,
            result.error,
            attempts,
            int(delay.total_seconds()),
        )
        await self.store.reschedule(
            delivery.id, result.error or "failed", self.clock() + delay, update=update
        )

    async def _permanent(self, delivery: Delivery, error: str) -> None:
        self.failed += 1
        log.warning("delivery %d to %s failed for good: %s", delivery.id, delivery.target, error)
        await self.store.mark_failed(delivery.id, error, self.clock())
        if self.on_permanent_failure is not None:
            await self.on_permanent_failure(delivery, error)
