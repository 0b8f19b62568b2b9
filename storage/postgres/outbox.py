"""The outbox: one row per card owed to a destination, from pending to sent (or failed), and
the edits a sent card is owed when its story is revised."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from bot.core.models import Delivery, DeliveryStatus, StoredStory, SubscriberSettings
from storage.postgres.base import PostgresBase, delivery_of, story_of
from storage.rows import DELIVERY_COLUMNS, SETTINGS_COLUMNS, STORY_COLUMNS, columns, settings_of

_DELIVERY = columns("d", DELIVERY_COLUMNS)
_STORY = columns("s", STORY_COLUMNS)
# A join of both: the story's columns are prefixed, both tables have an `id`.
_PREFIX = "s_"
_DELIVERY_AND_STORY = f"{_DELIVERY}, {columns('s', STORY_COLUMNS, _PREFIX)}"
_SETTINGS = ", ".join(SETTINGS_COLUMNS)
# "Behind its story": the card showed `revision` (None: unknown, never behind).
# FOR SHARE: a poll revising the story at this moment holds its row until it commits; reading
# the revision under a share lock waits for that commit, so a revision landing while its card
# is being sent is noticed here (read committed would see the old one and lose the update).
# Thread mode also: carried by more feeds than the `$SRC` the card named.
_BEHIND = """(coalesce($REV::integer, 2147483647) <
             (SELECT revision FROM stories s WHERE s.id = deliveries.story_id FOR SHARE)
             OR (deliveries.thread AND coalesce($SRC::integer, 2147483647) <
               (SELECT count(*) FROM story_sources ss WHERE ss.story_id = deliveries.story_id)))"""


# The destinations with a card due (a pending card, or a sent one owing an edit).
_DUE_TARGETS = """SELECT target FROM deliveries WHERE status = 'pending' AND next_attempt_at <= $1
                  UNION
                  SELECT target FROM deliveries WHERE update_pending AND status = 'sent'
                    AND next_attempt_at <= $1"""


class OutboxTables(PostgresBase):
    # Set by storage.postgres.cluster (a parameter of open()).
    _destination_claim: timedelta
    _takeovers: int

    async def due_deliveries(self, now: datetime, limit: int) -> list[tuple[Delivery, StoredStory]]:
        """Only the cards of destinations this worker holds a claim on (claimed here first)."""
        held = await self._claim_destinations(now)
        if not held:
            return []
        rows = await self._read(
            f"""SELECT {_DELIVERY_AND_STORY} FROM (
                    SELECT id FROM deliveries p WHERE status = 'pending' AND next_attempt_at <= $1
                      AND target = ANY($3::text[])
                      -- A destination reads its cards in order: while an earlier card waits
                      -- out a retry, the later ones wait behind it (not behind a person's
                      -- card held for their quiet hours or digest).
                      AND NOT EXISTS (
                          SELECT 1 FROM deliveries e
                          WHERE e.status = 'pending' AND e.target = p.target AND e.id < p.id
                            AND e.next_attempt_at > $1 AND e.held_until IS NULL)
                    UNION ALL
                    SELECT id FROM deliveries WHERE update_pending AND status = 'sent'
                      AND next_attempt_at <= $1 AND target = ANY($3::text[])
                ) due
                JOIN deliveries d ON d.id = due.id
                JOIN stories s ON s.id = d.story_id
                ORDER BY d.id LIMIT $2""",  # noqa: S608 - column lists are constants
            now,
            limit,
            held,
        )
        due = [(delivery_of(r), story_of(r, _PREFIX)) for r in rows]
        wanted = sorted({s.id for d, s in due if d.thread})
        if not wanted:
            return due
        # The other feeds of the stories whose cards are in thread mode (the only cards that
        # name them), in the order they came.
        found: dict[int, list[str]] = {}
        for row in await self._read(
            """SELECT story_id, feed_name FROM story_sources WHERE story_id = ANY($1::bigint[])
               ORDER BY seen_at, feed_name""",
            wanted,
        ):
            found.setdefault(row["story_id"], []).append(row["feed_name"])
        return [(d, replace(s, sources=tuple(found[s.id])) if s.id in found else s) for d, s in due]

    async def _claim_destinations(self, now: datetime) -> list[str]:
        """Let go of the destinations with nothing left to send (so that claims spread over the
        workers), claim those with cards due that nobody holds or whose claim lapsed, and
        return those this worker holds now. Statements of their own, not one transaction: a
        claim is committed, and visible to the other workers, at once."""
        async with self._pool.acquire() as conn:
            # Two tests, each along an index (a destination's sent cards are many).
            # Rows locked in the destinations' order, as the heartbeat renews them, and those it
            # holds skipped: the two never wait on each other in a cycle.
            await conn.execute(
                """DELETE FROM destination_claims WHERE destination IN (
                     SELECT c.destination FROM destination_claims c WHERE c.worker = $1
                       AND NOT EXISTS (SELECT 1 FROM deliveries d
                                       WHERE d.target = c.destination AND d.status = 'pending')
                       AND NOT EXISTS (SELECT 1 FROM deliveries d
                                       WHERE d.target = c.destination AND d.update_pending)
                     ORDER BY c.destination FOR UPDATE SKIP LOCKED)""",
                self.worker,
            )
            # In the destinations' order: two workers inserting the same ones cannot deadlock.
            await conn.execute(
                f"""INSERT INTO destination_claims (destination, worker, token, expires_at)
                    SELECT target, $2, nextval('lease_tokens'), now() + $3::interval
                    FROM ({_DUE_TARGETS}) due
                    WHERE NOT EXISTS (
                        SELECT 1 FROM destination_claims c WHERE c.destination = due.target)
                    ORDER BY target
                    ON CONFLICT (destination) DO NOTHING""",  # noqa: S608 - a constant
                now,
                self.worker,
                self._destination_claim,
            )
            taken = await conn.fetch(
                f"""UPDATE destination_claims c SET worker = $2, token = nextval('lease_tokens'),
                      expires_at = now() + $3::interval
                    FROM (SELECT destination, worker FROM destination_claims
                          WHERE (expires_at <= now()
                                 OR worker NOT IN (SELECT worker FROM live_workers))
                            AND destination IN ({_DUE_TARGETS})
                          ORDER BY destination FOR UPDATE SKIP LOCKED) lapsed
                    WHERE c.destination = lapsed.destination
                    RETURNING lapsed.worker <> $2 AS taken_over""",  # noqa: S608 - a constant
                now,
                self.worker,
                self._destination_claim,
            )
            self._takeovers += sum(1 for row in taken if row["taken_over"])
            held = await conn.fetch(
                """SELECT destination, token FROM destination_claims
                   WHERE worker = $1 AND expires_at > now()""",
                self.worker,
            )
        self._claims = {row["destination"]: row["token"] for row in held}
        return sorted(self._claims)

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
        behind = _BEHIND.replace("$REV", "$4").replace("$SRC", "$6")
        await self._claimed_write(
            [delivery_id],
            f"""UPDATE deliveries SET status = 'sent', message_id = $1, sent_at = $2,
                  error = NULL, digest = $3, next_attempt_at = $2,
                  shown_revision = coalesce($4::integer, 0),
                  update_pending = (NOT $3 AND {behind})
                WHERE id = $5""",  # noqa: S608 - a constant
            message_id,
            now,
            digest,
            revision,
            delivery_id,
            sources,
        )

    async def mark_update_done(
        self,
        delivery_id: int,
        now: datetime,
        *,
        revision: int | None = None,
        sources: int | None = None,
    ) -> None:
        behind = _BEHIND.replace("$REV", "$1").replace("$SRC", "$3")
        await self._claimed_write(
            [delivery_id],
            f"""UPDATE deliveries SET attempts = 0, error = NULL,
                  update_count = update_count
                    + (coalesce($1::integer, 2147483647) > shown_revision)::integer,
                  shown_revision = greatest(shown_revision, coalesce($1::integer, shown_revision)),
                  update_pending = {behind}
                WHERE id = $2""",  # noqa: S608 - a constant
            revision,
            delivery_id,
            sources,
        )

    async def mark_failed(self, delivery_id: int, error: str, now: datetime) -> None:
        await self._claimed_write(
            [delivery_id],
            "UPDATE deliveries SET status = 'failed', error = $1, sent_at = NULL WHERE id = $2",
            error[:1000],
            delivery_id,
        )

    async def reschedule(
        self, delivery_id: int, error: str, next_attempt: datetime, *, update: bool
    ) -> None:
        await self._claimed_write(
            [delivery_id],
            """UPDATE deliveries SET attempts = attempts + 1, error = $1, next_attempt_at = $2,
                 held_until = NULL
               WHERE id = $3""",
            error[:1000],
            next_attempt,
            delivery_id,
        )

    async def _claimed_write(self, delivery_ids: list[int], sql: str, *params: object) -> None:
        """The statement, in one transaction with the check that this worker may still write
        for the cards' destinations (LeaseLost, and nothing changed, otherwise)."""
        async with self._transaction() as conn:
            await self._check_claims(conn, delivery_ids)
            await conn.execute(sql, *params)

    async def recent_sent_count(self, target: str, since: datetime) -> int:
        count: int = await self._scalar(
            "SELECT count(*) FROM deliveries WHERE target = $1 AND sent_at >= $2", target, since
        )
        return count

    async def assign_digest(self, delivery_ids: Sequence[int], group: str) -> None:
        await self._claimed_write(
            list(delivery_ids),
            """UPDATE deliveries SET digest_group = $1
               WHERE id = ANY($2::bigint[]) AND status = 'pending'""",
            group,
            list(delivery_ids),
        )

    async def hold_deliveries(self, delivery_ids: Sequence[int], until: datetime) -> None:
        await self._claimed_write(
            list(delivery_ids),
            """UPDATE deliveries SET held_until = $1, next_attempt_at = $1
               WHERE id = ANY($2::bigint[]) AND status = 'pending'""",
            until,
            list(delivery_ids),
        )

    async def waiting_cards(
        self, target: str, now: datetime, limit: int
    ) -> list[tuple[Delivery, StoredStory]]:
        rows = await self._read(
            f"""SELECT {_DELIVERY_AND_STORY} FROM deliveries d
                JOIN stories s ON s.id = d.story_id
                WHERE d.target = $1 AND d.status = 'pending' AND d.held_until IS NOT NULL
                  AND d.next_attempt_at <= $2 AND d.digest_group IS NULL
                ORDER BY d.id LIMIT $3""",  # noqa: S608 - column lists are constants
            target,
            now,
            limit,
        )
        return [(delivery_of(r), story_of(r, _PREFIX)) for r in rows]

    async def subscriber_settings(
        self, subscribers: Sequence[str]
    ) -> dict[str, SubscriberSettings]:
        rows = await self._read(
            f"""SELECT subscriber, {_SETTINGS} FROM subscriber_settings
                WHERE subscriber = ANY($1::text[])""",  # noqa: S608 - a constant
            list(subscribers),
        )
        return {r["subscriber"]: settings_of(r) for r in rows}

    async def set_subscriber_settings(
        self, subscriber: str, settings: SubscriberSettings, now: datetime
    ) -> None:
        async with self._transaction() as conn:
            await conn.execute(
                """INSERT INTO subscriber_settings (subscriber, timezone, quiet_start, quiet_end,
                     urgent_through, mode, daily_at, updated_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                   ON CONFLICT (subscriber) DO UPDATE SET timezone = excluded.timezone,
                     quiet_start = excluded.quiet_start, quiet_end = excluded.quiet_end,
                     urgent_through = excluded.urgent_through, mode = excluded.mode,
                     daily_at = excluded.daily_at, updated_at = excluded.updated_at""",
                subscriber,
                settings.timezone,
                settings.quiet_start,
                settings.quiet_end,
                settings.urgent_through,
                settings.mode.value,
                settings.daily_at,
                now,
            )
            # Held under the old settings: due now, to be decided under the new ones.
            await conn.execute(
                """UPDATE deliveries SET next_attempt_at = least(next_attempt_at, $1)
                   WHERE subscriber = $2 AND held_until IS NOT NULL AND status = 'pending'""",
                now,
                subscriber,
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
