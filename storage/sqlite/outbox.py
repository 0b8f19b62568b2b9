"""The outbox: one row per card owed to a destination, from pending to sent (or failed), and
the edits a sent card is owed when its story is revised."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from bot.core.models import Delivery, DeliveryStatus, StoredStory, SubscriberSettings
from storage.rows import DELIVERY_COLUMNS, SETTINGS_COLUMNS, STORY_COLUMNS, columns, settings_of
from storage.sqlite.base import SqliteBase, chunks, delivery_of, marks, story_of

_DELIVERY = columns("d", DELIVERY_COLUMNS)
_STORY = columns("s", STORY_COLUMNS)
# A join of both: the story's columns are prefixed, both tables have an `id`.
_PREFIX = "s_"
_DELIVERY_AND_STORY = f"{_DELIVERY}, {columns('s', STORY_COLUMNS, _PREFIX)}"
# Whether a card is behind its story, given (revision, sources) it showed (None: nothing to
# compare, so not behind): revised since, or, in thread mode, carried by a feed it did not name.
_BEHIND = """coalesce(?, 1 << 62) <
               (SELECT revision FROM stories s WHERE s.id = deliveries.story_id)
             OR (deliveries.thread = 1 AND coalesce(?, 1 << 62) <
               (SELECT count(*) FROM story_sources ss WHERE ss.story_id = deliveries.story_id))"""
_SETTINGS = ", ".join(SETTINGS_COLUMNS)


class OutboxTables(SqliteBase):
    async def due_deliveries(self, now: datetime, limit: int) -> list[tuple[Delivery, StoredStory]]:
        stamp = now.timestamp()
        rows = await self._read(
            f"""SELECT {_DELIVERY_AND_STORY} FROM (
                    SELECT id FROM deliveries p WHERE status = 'pending' AND next_attempt_at <= ?
                      -- A destination reads its cards in order: while an earlier card waits
                      -- out a retry, the later ones wait behind it (not behind a person's
                      -- card held for their quiet hours or digest).
                      AND NOT EXISTS (
                          SELECT 1 FROM deliveries e INDEXED BY deliveries_pending
                          WHERE e.status = 'pending' AND e.target = p.target AND e.id < p.id
                            AND e.next_attempt_at > ? AND e.held_until IS NULL)
                    UNION ALL
                    SELECT id FROM deliveries WHERE update_pending = 1 AND status = 'sent'
                      AND next_attempt_at <= ?
                ) due
                JOIN deliveries d ON d.id = due.id
                JOIN stories s ON s.id = d.story_id
                ORDER BY d.id LIMIT ?""",  # noqa: S608 - column lists are constants
            (stamp, stamp, stamp, limit),
        )
        due = [(delivery_of(r), story_of(r, _PREFIX)) for r in rows]
        return await self._with_sources(due)

    async def _with_sources(
        self, due: list[tuple[Delivery, StoredStory]]
    ) -> list[tuple[Delivery, StoredStory]]:
        """The other feeds of the stories whose cards are in thread mode (the only cards
        that name them), in the order they came."""
        wanted = sorted({s.id for d, s in due if d.thread})
        if not wanted:
            return due
        found: dict[int, list[str]] = {}
        for chunk in chunks(wanted):
            rows = await self._read_tuples(
                f"""SELECT story_id, feed_name FROM story_sources
                    WHERE story_id IN ({marks(len(chunk))}) ORDER BY seen_at, feed_name""",  # noqa: S608 - placeholders only
                list(chunk),
            )
            for story_id, feed in rows:
                found.setdefault(story_id, []).append(feed)
        return [(d, replace(s, sources=tuple(found[s.id])) if s.id in found else s) for d, s in due]

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
        """`revision`: the story revision the card showed. If the story was revised meanwhile
        (or, in thread mode, gained a source the card did not name), the delivery is due for
        an update at once."""
        await self._write(
            f"""UPDATE deliveries SET status = 'sent', message_id = ?, sent_at = ?, error = NULL,
                 digest = ?, next_attempt_at = ?, shown_revision = coalesce(?, 0),
                 update_pending = ? = 0 AND ({_BEHIND})
               WHERE id = ?""",  # noqa: S608 - a constant
            (
                message_id,
                now.timestamp(),
                int(digest),
                now.timestamp(),
                revision,
                int(digest),
                revision,
                sources,
                delivery_id,
            ),
        )

    async def mark_update_done(
        self,
        delivery_id: int,
        now: datetime,
        *,
        revision: int | None = None,
        sources: int | None = None,
    ) -> None:
        await self._write(
            f"""UPDATE deliveries SET attempts = 0, error = NULL,
                 update_count = update_count + (coalesce(?, 1 << 62) > shown_revision),
                 shown_revision = max(shown_revision, coalesce(?, shown_revision)),
                 update_pending = {_BEHIND}
               WHERE id = ?""",  # noqa: S608 - a constant
            (revision, revision, revision, sources, delivery_id),
        )

    async def mark_failed(self, delivery_id: int, error: str, now: datetime) -> None:
        await self._write(
            "UPDATE deliveries SET status = 'failed', error = ?, sent_at = NULL WHERE id = ?",
            (error[:1000], delivery_id),
        )

    async def reschedule(
        self, delivery_id: int, error: str, next_attempt: datetime, *, update: bool
    ) -> None:
        await self._write(
            """UPDATE deliveries SET attempts = attempts + 1, error = ?, next_attempt_at = ?,
                 held_until = NULL
               WHERE id = ?""",
            (error[:1000], next_attempt.timestamp(), delivery_id),
        )

    async def recent_sent_count(self, target: str, since: datetime) -> int:
        async with self._lock:
            count: int = await self._scalar(
                "SELECT count(*) FROM deliveries WHERE target = ? AND sent_at >= ?",
                (target, since.timestamp()),
            )
            return count

    async def assign_digest(self, delivery_ids: Sequence[int], group: str) -> None:
        async with self._transaction() as db:
            await db.executemany(
                "UPDATE deliveries SET digest_group = ? WHERE id = ? AND status = 'pending'",
                [(group, delivery_id) for delivery_id in delivery_ids],
            )

    async def hold_deliveries(self, delivery_ids: Sequence[int], until: datetime) -> None:
        stamp = until.timestamp()
        async with self._transaction() as db:
            await db.executemany(
                """UPDATE deliveries SET held_until = ?, next_attempt_at = ?
                   WHERE id = ? AND status = 'pending'""",
                [(stamp, stamp, delivery_id) for delivery_id in delivery_ids],
            )

    async def waiting_cards(
        self, target: str, now: datetime, limit: int
    ) -> list[tuple[Delivery, StoredStory]]:
        rows = await self._read(
            f"""SELECT {_DELIVERY_AND_STORY} FROM deliveries d
                JOIN stories s ON s.id = d.story_id
                WHERE d.target = ? AND d.status = 'pending' AND d.held_until IS NOT NULL
                  AND d.next_attempt_at <= ? AND d.digest_group IS NULL
                ORDER BY d.id LIMIT ?""",  # noqa: S608 - column lists are constants
            (target, now.timestamp(), limit),
        )
        return [(delivery_of(r), story_of(r, _PREFIX)) for r in rows]

    async def subscriber_settings(
        self, subscribers: Sequence[str]
    ) -> dict[str, SubscriberSettings]:
        found: dict[str, SubscriberSettings] = {}
        for chunk in chunks(list(dict.fromkeys(subscribers))):
            rows = await self._read(
                f"""SELECT subscriber, {_SETTINGS} FROM subscriber_settings
                    WHERE subscriber IN ({marks(len(chunk))})""",  # noqa: S608 - constants
                chunk,
            )
            found.update((r["subscriber"], settings_of(r)) for r in rows)
        return found

    async def set_subscriber_settings(
        self, subscriber: str, settings: SubscriberSettings, now: datetime
    ) -> None:
        async with self._transaction() as db:
            await db.execute(
                """INSERT INTO subscriber_settings (subscriber, timezone, quiet_start, quiet_end,
                     urgent_through, mode, daily_at, updated_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (subscriber) DO UPDATE SET timezone = excluded.timezone,
                     quiet_start = excluded.quiet_start, quiet_end = excluded.quiet_end,
                     urgent_through = excluded.urgent_through, mode = excluded.mode,
                     daily_at = excluded.daily_at, updated_at = excluded.updated_at""",
                (
                    subscriber,
                    settings.timezone,
                    settings.quiet_start,
                    settings.quiet_end,
                    int(settings.urgent_through),
                    settings.mode.value,
                    settings.daily_at,
                    now.timestamp(),
                ),
            )
            # Held under the old settings: due now, to be decided under the new ones.
            await db.execute(
                """UPDATE deliveries SET next_attempt_at = min(next_attempt_at, ?)
                   WHERE subscriber = ? AND held_until IS NOT NULL AND status = 'pending'""",
                (now.timestamp(), subscriber),
            )

    async def delivery_counts(self) -> dict[str, int]:
        rows = await self._read_tuples("SELECT status, count(*) FROM deliveries GROUP BY status")
        counts = {s.value: 0 for s in DeliveryStatus}
        counts.update({status: count for status, count in rows})
        return counts

    async def deliveries_for_story(self, story_id: int) -> list[Delivery]:
        rows = await self._read(
            f"SELECT {_DELIVERY} FROM deliveries d WHERE d.story_id = ? ORDER BY d.id",  # noqa: S608
            (story_id,),
        )
        return [delivery_of(r) for r in rows]

    async def recent_for_subscriber(self, subscriber: str, limit: int) -> list[StoredStory]:
        rows = await self._read(
            f"""SELECT {_STORY} FROM deliveries d JOIN stories s ON s.id = d.story_id
                WHERE d.subscriber = ? ORDER BY d.id DESC LIMIT ?""",  # noqa: S608
            (subscriber, limit),
        )
        return [story_of(r) for r in rows]
