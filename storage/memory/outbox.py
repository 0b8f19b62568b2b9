"""The outbox, in memory."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from bot.core.models import Delivery, DeliveryStatus, StoredStory, SubscriberSettings
from storage.memory.base import CardRow, MemoryBase, limited, ts

# Larger than any revision: a card that names no revision it showed is never behind.
_NO_REVISION = 1 << 62


class OutboxTables(MemoryBase):
    async def due_deliveries(self, now: datetime, limit: int) -> list[tuple[Delivery, StoredStory]]:
        stamp = ts(now)
        waiting: set[str] = set()  # destinations with an earlier card waiting out a retry
        due: list[tuple[Delivery, StoredStory]] = []
        for card in self._deliveries.values():  # in id order
            if card.status == DeliveryStatus.PENDING:
                if card.next_attempt_at > stamp:
                    if card.held_until is None:  # a person's held card holds up nothing
                        waiting.add(card.target)
                    continue
                if card.target in waiting:
                    continue
            elif (
                card.status != DeliveryStatus.SENT
                or not card.update_pending
                or card.next_attempt_at > stamp
            ):
                continue
            story = self._stories.get(card.story_id)
            if story is not None:
                due.append((card.value(), story.stored(sources=card.thread)))
        return limited(due, limit)

    def _behind(self, card: CardRow, revision: int | None, sources: int | None) -> bool:
        story = self._stories[card.story_id]
        shown = _NO_REVISION if revision is None else revision
        named = _NO_REVISION if sources is None else sources
        return shown < story.revision or (card.thread and named < len(story.sources))

    async def mark_sent(
        self,
        delivery_id: int,
        message_id: str,
        now: datetime,
        *,
        digest: bool = False,
        revision: int | None = None,
        sources: int | None = None,
    ) -> None:
        card = self._deliveries.get(delivery_id)
        if card is None:
            return
        card.status, card.message_id, card.error = DeliveryStatus.SENT, message_id, None
        card.sent_at = card.next_attempt_at = ts(now)
        card.digest = digest
        card.shown_revision = revision or 0
        card.update_pending = not digest and self._behind(card, revision, sources)

    async def mark_update_done(
        self,
        delivery_id: int,
        now: datetime,
        *,
        revision: int | None = None,
        sources: int | None = None,
    ) -> None:
        card = self._deliveries.get(delivery_id)
        if card is None:
            return
        if revision is None or revision > card.shown_revision:
            card.update_count += 1  # a rewrite shown; a new source alone is not counted
        if revision is not None:
            card.shown_revision = max(card.shown_revision, revision)
        card.attempts, card.error = 0, None
        card.update_pending = self._behind(card, revision, sources)

    async def mark_failed(self, delivery_id: int, error: str, now: datetime) -> None:
        card = self._deliveries.get(delivery_id)
        if card is not None:
            card.status, card.error, card.sent_at = DeliveryStatus.FAILED, error[:1000], None

    async def reschedule(
        self, delivery_id: int, error: str, next_attempt: datetime, *, update: bool
    ) -> None:
        card = self._deliveries.get(delivery_id)
        if card is not None:
            card.attempts += 1
            card.error, card.next_attempt_at = error[:1000], ts(next_attempt)
            card.held_until = None

    async def recent_sent_count(self, target: str, since: datetime) -> int:
        start = ts(since)
        return sum(
            1
            for c in self._deliveries.values()
            if c.target == target and c.sent_at is not None and c.sent_at >= start
        )

    async def assign_digest(self, delivery_ids: Sequence[int], group: str) -> None:
        for delivery_id in delivery_ids:
            card = self._deliveries.get(delivery_id)
            if card is not None and card.status == DeliveryStatus.PENDING:
                card.digest_group = group

    async def hold_deliveries(self, delivery_ids: Sequence[int], until: datetime) -> None:
        for delivery_id in delivery_ids:
            card = self._deliveries.get(delivery_id)
            if card is not None and card.status == DeliveryStatus.PENDING:
                card.held_until = card.next_attempt_at = ts(until)

    async def waiting_cards(
        self, target: str, now: datetime, limit: int
    ) -> list[tuple[Delivery, StoredStory]]:
        stamp = ts(now)
        found = [
            (card.value(), self._stories[card.story_id].stored())
            for card in self._deliveries.values()
            if card.target == target
            and card.status == DeliveryStatus.PENDING
            and card.held_until is not None
            and card.next_attempt_at <= stamp
            and card.digest_group is None
            and card.story_id in self._stories
        ]
        return limited(found, limit)

    async def subscriber_settings(
        self, subscribers: Sequence[str]
    ) -> dict[str, SubscriberSettings]:
        return {
            s: self._subscriber_settings[s] for s in subscribers if s in self._subscriber_settings
        }

    async def set_subscriber_settings(
        self, subscriber: str, settings: SubscriberSettings, now: datetime
    ) -> None:
        self._subscriber_settings[subscriber] = settings
        for card in self._deliveries.values():
            if (
                card.subscriber == subscriber
                and card.status == DeliveryStatus.PENDING
                and card.held_until is not None
            ):
                card.next_attempt_at = min(card.next_attempt_at, ts(now))

    async def delivery_counts(self) -> dict[str, int]:
        counts = {s.value: 0 for s in DeliveryStatus}
        for card in self._deliveries.values():
            counts[card.status.value] += 1
        return counts

    async def deliveries_for_story(self, story_id: int) -> list[Delivery]:
        return [self._deliveries[i].value() for i in sorted(self._cards.get(story_id, {}).values())]

    async def recent_for_subscriber(self, subscriber: str, limit: int) -> list[StoredStory]:
        cards = reversed(self._deliveries.values())  # newest card first
        mine = [self._stories[c.story_id] for c in cards if c.subscriber == subscriber]
        return [s.stored() for s in limited(mine, limit)]
