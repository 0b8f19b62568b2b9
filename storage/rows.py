"""Rows by column name, shared by the SQL backends: the columns both schemas give the core's
values, and how a row becomes one. A backend hands over its row (anything indexed by column
name: sqlite3.Row, asyncpg.Record) and how its timestamps read back (`When`: Unix seconds in
SQLite, timestamptz in PostgreSQL); everything else about a row is the same in both."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from bot.core.latency import CardTiming, SourceSighting
from bot.core.models import (
    Delivery,
    DeliveryStatus,
    DigestMode,
    FeedState,
    Origin,
    PingWhen,
    StoredStory,
    Story,
    SubscriberSettings,
    Updates,
    Watchlist,
)
from bot.core.polling import PollSchedule


class Row(Protocol):
    def __getitem__(self, name: str, /) -> Any: ...


When = Callable[[Any], datetime | None]  # a stored timestamp, as an aware UTC datetime

STORY_COLUMNS = (
    "id",
    "feed_id",
    "feed_name",
    "guid",
    "url",
    "title",
    "summary",
    "content",
    "published_at",
    "first_seen_at",
    "author",
    "categories",
    "image",
    "revision",
    "alertable",
    "held",
    "published_stamped",
)
DELIVERY_COLUMNS = (
    "id",
    "story_id",
    "target",
    "watchlists",
    "subscriber",
    "matched",
    "status",
    "attempts",
    "message_id",
    "update_pending",
    "update_count",
    "created_at",
    "digest_group",
    "thread",
    "shown_revision",
    "error",
    "held_until",
)
FEED_COLUMNS = (
    "id",
    "name",
    "url",
    "interval_s",
    "origin",
    "etag",
    "last_modified",
    "body_hash",
    "baseline_done",
    "last_poll_at",
    "last_success_at",
    "last_error",
    "last_error_at",
    "failures",
    "retry_at",
    "created_by",
    # bot.core.polling: whether the interval is the feed's own, and its schedule
    "interval_fixed",
    "poll_interval_s",
    "poll_reason",
    "publish_gap_s",
    "last_new_at",
    "feed_ttl_s",
    "skip_hours",
    "skip_days",
)
WATCHLIST_COLUMNS = (
    "id",
    "name",
    "query",
    "channels",
    "origin",
    "created_by",
    "updates",
    "ping",
    "ping_when",
)
SETTINGS_COLUMNS = ("timezone", "quiet_start", "quiet_end", "urgent_through", "mode", "daily_at")

_EPOCH = datetime.fromtimestamp(0, UTC)


def columns(table: str, names: Sequence[str], prefix: str = "") -> str:
    """A select list: `s.id AS s_id, ...` (a prefix keeps a join's two `id`s apart)."""
    return ", ".join(f"{table}.{name} AS {prefix}{name}" for name in names)


def _categories(value: str | None) -> tuple[str, ...]:
    # Most stories have none: no JSON parse for those (a first poll loads many thousands).
    return () if not value or value == "[]" else tuple(json.loads(value))


def story_of(row: Row, when: When, prefix: str = "") -> StoredStory:
    def col(name: str) -> Any:
        return row[prefix + name]

    return StoredStory(
        id=col("id"),
        feed_id=col("feed_id"),
        story=Story(
            feed=col("feed_name"),
            guid=col("guid"),
            link=col("url"),
            title=col("title"),
            summary=col("summary"),
            content=col("content"),
            published=when(col("published_at")),
            author=col("author"),
            categories=_categories(col("categories")),
            image=col("image"),
        ),
        first_seen=when(col("first_seen_at")) or _EPOCH,
        revision=col("revision"),
        alertable=bool(col("alertable")),
        held=col("held") or "",
        published_stamped=bool(col("published_stamped")),
    )


def delivery_of(row: Row, when: When) -> Delivery:
    return Delivery(
        id=row["id"],
        story_id=row["story_id"],
        target=row["target"],
        watchlists=tuple(json.loads(row["watchlists"])),
        subscriber=row["subscriber"],
        matched=tuple(json.loads(row["matched"])),
        status=DeliveryStatus(row["status"]),
        attempts=row["attempts"],
        message_id=row["message_id"],
        update_pending=bool(row["update_pending"]),
        update_count=row["update_count"],
        created_at=when(row["created_at"]),
        digest_group=row["digest_group"],
        thread=bool(row["thread"]),
        shown_revision=row["shown_revision"],
        error=row["error"],
        held_until=when(row["held_until"]),
    )


def feed_of(row: Row, when: When) -> FeedState:
    return FeedState(
        id=row["id"],
        name=row["name"],
        url=row["url"],
        interval=timedelta(seconds=row["interval_s"]),
        origin=Origin(row["origin"]),
        etag=row["etag"],
        last_modified=row["last_modified"],
        body_hash=row["body_hash"],
        baseline_done=bool(row["baseline_done"]),
        last_poll_at=when(row["last_poll_at"]),
        last_success_at=when(row["last_success_at"]),
        last_error=row["last_error"],
        last_error_at=when(row["last_error_at"]),
        failures=row["failures"],
        retry_at=when(row["retry_at"]),
        created_by=row["created_by"],
        fixed=bool(row["interval_fixed"]),
        schedule=schedule_of(row, when),
    )


def schedule_of(row: Row, when: When) -> PollSchedule | None:
    """The feed's polling (bot.core.polling), stored in plain columns; None until its first
    successful poll."""
    if row["poll_interval_s"] is None:
        return None
    gap, ttl = row["publish_gap_s"], row["feed_ttl_s"]
    return PollSchedule(
        interval=timedelta(seconds=row["poll_interval_s"]),
        reason=row["poll_reason"] or "",
        gap=None if gap is None else timedelta(seconds=gap),
        last_new_at=when(row["last_new_at"]),
        ttl=None if ttl is None else timedelta(seconds=ttl),
        skip_hours=numbers_of(row["skip_hours"]),
        skip_days=numbers_of(row["skip_days"]),
    )


def schedule_values(
    schedule: PollSchedule,
) -> tuple[int, str, float | None, float | None, str, str]:
    """poll_interval_s, poll_reason, publish_gap_s, feed_ttl_s, skip_hours, skip_days (the
    backend writes last_new_at in its own time form)."""
    return (
        round(schedule.interval.total_seconds()),
        schedule.reason,
        None if schedule.gap is None else schedule.gap.total_seconds(),
        None if schedule.ttl is None else schedule.ttl.total_seconds(),
        ",".join(str(n) for n in sorted(schedule.skip_hours)),
        ",".join(str(n) for n in sorted(schedule.skip_days)),
    )


def numbers_of(text: str | None) -> frozenset[int]:
    return frozenset(int(n) for n in (text or "").split(",") if n.strip().isdigit())


def watchlist_of(row: Row) -> Watchlist:
    return Watchlist(
        id=row["id"],
        name=row["name"],
        query=row["query"],
        channels=tuple(json.loads(row["channels"])),
        origin=Origin(row["origin"]),
        created_by=row["created_by"],
        updates=Updates(row["updates"]),
        ping=tuple(json.loads(row["ping"])),
        ping_when=PingWhen(row["ping_when"]),
    )


def settings_of(row: Row) -> SubscriberSettings:
    return SubscriberSettings(
        timezone=row["timezone"],
        quiet_start=row["quiet_start"],
        quiet_end=row["quiet_end"],
        urgent_through=bool(row["urgent_through"]),
        mode=DigestMode(row["mode"]),
        daily_at=row["daily_at"],
    )


# The latency a desk feels (bot.core.latency), in SQL both engines run; `{since}` is the
# engine's parameter for the window's start. A story's first card, with its story's times:
CARD_TIMINGS = """
    SELECT s.feed_id, s.feed_name, s.published_at, s.published_stamped, s.first_seen_at,
           d.sent_at
    FROM (SELECT story_id, min(sent_at) AS sent_at FROM deliveries
          WHERE status = 'sent' AND sent_at IS NOT NULL GROUP BY story_id
          HAVING min(sent_at) >= {since}) d
    JOIN stories s ON s.id = d.story_id"""
# The sightings of the stories several feeds carry, one of them seen in the window.
SHARED_SOURCES = """
    SELECT story_id, feed_id, feed_name, seen_at, baseline FROM story_feeds
    WHERE story_id IN (SELECT story_id FROM story_feeds GROUP BY story_id
                       HAVING count(*) > 1 AND max(seen_at) >= {since})
    ORDER BY story_id, seen_at, feed_id"""


def card_timing_of(row: Row, when: When) -> CardTiming:
    return CardTiming(
        feed_id=row["feed_id"],
        feed_name=row["feed_name"],
        published=when(row["published_at"]),
        stamped=bool(row["published_stamped"]),
        first_seen=when(row["first_seen_at"]) or _EPOCH,
        sent_at=when(row["sent_at"]) or _EPOCH,
    )


def sightings_of(rows: Sequence[Row], when: When) -> dict[int, list[SourceSighting]]:
    """Rows of story_feeds (story_id, feed_id, feed_name, seen_at, baseline), per story in
    the order given (the queries sort them earliest first)."""
    found: dict[int, list[SourceSighting]] = {}
    for row in rows:
        found.setdefault(row["story_id"], []).append(
            SourceSighting(
                row["feed_id"],
                row["feed_name"],
                when(row["seen_at"]) or _EPOCH,
                bool(row["baseline"]),
            )
        )
    return found
