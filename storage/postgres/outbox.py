"""The outbox: one row per card owed to a destination, from pending to sent (or failed), and
the edits a sent card is owed when its story is revised."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from bot.core.models import Delivery, DeliveryStatus, StoredStory
from storage.postgres.base import PostgresBase, delivery_of, story_of
from storage.rows import DELIVERY_COLUMNS, STORY_COLUMNS, columns

_DELIVERY = columns("d", DELIVERY_COLUMNS)
_STORY = columns("s", STORY_COLUMNS)
# A join of both: the story's columns are prefixed, both tables have an `id`.
_PREFIX = "s_"
_DELIVERY_AND_STORY = f"{_DELIVERY}, {columns('s', STORY_COLUMNS, _PREFIX)}"
# "Behind its story": the card showed `revision` (None: unknown, never behind).
# FOR SHARE: a poll revising the story at this moment holds its row until it commits; reading
# the revision under a share lock waits for that commit, so a revision landing while its card
# is being sent is noticed here (read committed would see the old one and lose the update).
_BEHIND = """coalesce($REV::integer, 2147483647) <
             (SELECT revision FROM stories s WHERE s.id = deliveries.story_id FOR SHARE)"""


class OutboxTables(PostgresBase):
    async def due_deliveries(self, now: datetime, limit: int) -> list[tuple[Delivery, StoredStory]]:
        rows = await self._read(
            f"""SELECT {_DELIVERY_AND_STORY} FROM (
                    SELECT id FROM deliveries p WHERE status = 'pending' AND next_attempt_at <= $1
                      -- A destination reads its cards in order: while an earlier card waits
                      -- out a retry, the later ones wait behind it.
                      AND NOT EXISTS (
                          SELECT 1 FROM deliveries e
                          WHERE e.status = 'pending' AND e.target = p.target AND e.id < p.id
                            AND e.next_attempt_at > $1)
                    UNION ALL
                    SELECT id FROM deliveries WHERE update_pending AND status = 'sent'
                      AND next_attempt_at <= $1
                ) due
                JOIN deliveries d ON d.id = due.id
                JOIN stories s ON s.id = d.story_id
                ORDER BY d.id LIMIT $2""",  # noqa: S608 - column lists are constants
            now,
            limit,
        )
        return [(delivery_of(r), story_of(r, _PREFIX)) for r in rows]

    async def mark_sent(
        self,
        delivery_id: int,
        message_id: str,
        now: datetime,
        *,
        digest: bool = False,
        revision: int | None = None,
    ) -> None:
        """`revision`: the story revision the card showed. If the story was revised meanwhile,
        the delivery is due for an update at once."""
        await self._write(
            f"""UPDATE deliveries SET status = 'sent', message_id = $1, sent_at = $2,
                  error = NULL, digest = $3, next_attempt_at = $2,
                  update_pending = (NOT $3 AND {_BEHIND.replace("$REV", "$4")})
                WHERE id = $5""",  # noqa: S608 - a constant
            message_id,
            now,
            digest,
            revision,
            delivery_id,
        )

    async def mark_update_done(
        self, delivery_id: int, now: datetime, *, revision: int | None = None
    ) -> None:
        await self._write(
            f"""UPDATE deliveries SET update_count = update_count + 1, attempts = 0, error = NULL,
                  update_pending = {_BEHIND.replace("$REV", "$1")}
                WHERE id = $2""",  # noqa: S608 - a constant
            revision,
            delivery_id,
        )

    async def mark_failed(self, delivery_id: int, error: str, now: datetime) -> None:
        await self._write(
            "UPDATE deliveries SET status = 'failed', error = $1, sent_at = NULL WHERE id = $2",
            error[:1000],
            delivery_id,
        )

    async def reschedule(
        self, delivery_id: int, error: str, next_attempt: datetime, *, update: bool
    ) -> None:
        await self._write(
            """UPDATE deliveries SET attempts = attempts + 1, error = $1, next_attempt_at = $2
               WHERE id = $3""",
            error[:1000],
            next_attempt,
            delivery_id,
        )

    async def recent_sent_count(self, target: str, since: datetime) -> int:
        count: int = await self._scalar(
            "SELECT count(*) FROM deliveries WHERE target = $1 AND sent_at >= $2", target, since
        )
        return count

    async def assign_digest(self, delivery_ids: Sequence[int], group: str) -> None:
        await self._write(
            """UPDATE deliveries SET digest_group = $1
               WHERE id = ANY($2::bigint[]) AND status = 'pending'""",
            group,
            list(delivery_ids),
        )

    async def delivery_counts(self) -> dict[str, int]:
        rows = await self._read("SELECT status, count(*) FROM deliveries GROUP BY status")
        counts = {s.value: 0 for s in DeliveryStatus}
        counts.update({status: count for status, count in rows})
        return counts

    async def deliveries_for_story(self, story_id: int) -> list[Delivery]:
        rows = await self._read(
            f"SELECT {_DELIVERY} FROM deliveries d WHERE d.story_id = $1 ORDER BY d.id",  # noqa: S608
            story_id,
        )
        return [delivery_of(r) for r in rows]

    async def recent_for_subscriber(self, subscriber: str, limit: int) -> list[StoredStory]:
        rows = await self._read(
            f"""SELECT {_STORY} FROM deliveries d JOIN stories s ON s.id = d.story_id
                WHERE d.subscriber = $1 ORDER BY d.id DESC LIMIT $2""",  # noqa: S608
            subscriber,
            limit,
        )
        return [story_of(r) for r in rows]
