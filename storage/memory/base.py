"""The in-memory backend's rows and state: plain dataclasses in dicts, with the few rules of
SQLite that the contract makes every backend keep (see storage/memory/__init__.py)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from bot.core.identity import KeyKind
from bot.core.latency import SourceSighting
from bot.core.models import (
    Delivery,
    DeliveryStatus,
    FeedState,
    Origin,
    StoredStory,
    Story,
    SubscriberSettings,
    Subscription,
    Watchlist,
)
from bot.core.polling import PollSchedule
from bot.core.store import PollOutcome, WebSubSubscription

T = TypeVar("T")
_NOCASE = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def nocase(text: str) -> str:
    """How names compare (SQLite's NOCASE): only ASCII letters fold."""
    return text.translate(_NOCASE)


def ts(value: datetime) -> float:
    return value.timestamp()


def dt(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def moment(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


def limited(items: list[T], limit: int) -> list[T]:
    return items if limit < 0 else items[:limit]  # SQL: a negative LIMIT is no limit


def as_stored(story: Story) -> Story:
    """A story as it comes back from storage: its date in UTC, via Unix seconds."""
    published = None if story.published is None else moment(ts(story.published))
    return replace(story, published=published, categories=tuple(story.categories))


@dataclass
class FeedRow:
    id: int
    name: str
    url: str
    interval: timedelta
    origin: Origin
    created_by: str | None
    active: bool = True
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    baseline_done: bool = False
    last_poll_at: float | None = None
    last_success_at: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    failures: int = 0
    retry_at: float | None = None
    fixed: bool = False
    schedule: PollSchedule | None = None

    def state(self) -> FeedState:
        return FeedState(
            id=self.id,
            name=self.name,
            url=self.url,
            interval=timedelta(seconds=int(self.interval.total_seconds())),
            origin=self.origin,
            etag=self.etag,
            last_modified=self.last_modified,
            body_hash=self.body_hash,
            baseline_done=self.baseline_done,
            last_poll_at=dt(self.last_poll_at),
            last_success_at=dt(self.last_success_at),
            last_error=self.last_error,
            last_error_at=dt(self.last_error_at),
            failures=self.failures,
            retry_at=dt(self.retry_at),
            created_by=self.created_by,
            fixed=self.fixed,
            schedule=self.schedule,
        )


@dataclass
class StoryRow:
    id: int
    feed_id: int | None
    story: Story
    first_seen: float
    revision: int = 0
    alertable: bool = False
    sources: list[str] = field(default_factory=list)  # the other feeds, in the order they came
    held: str = ""
    published_stamped: bool = False

    def stored(self, *, sources: bool = False) -> StoredStory:
        """`sources`: with the other feeds (as the outbox reads a story; the planner does not)."""
        return StoredStory(
            self.id,
            self.feed_id,
            self.story,
            dt(self.first_seen) or datetime.fromtimestamp(0, UTC),
            self.revision,
            self.alertable,
            sources=tuple(self.sources) if sources else (),
            held=self.held,
            published_stamped=self.published_stamped,
        )


@dataclass
class CardRow:
    id: int
    story_id: int
    target: str
    watchlists: tuple[str, ...]
    subscriber: str | None
    matched: tuple[str, ...]
    next_attempt_at: float
    created_at: float
    status: DeliveryStatus = DeliveryStatus.PENDING
    attempts: int = 0
    sent_at: float | None = None
    message_id: str | None = None
    error: str | None = None
    update_pending: bool = False
    update_count: int = 0
    digest: bool = False
    digest_group: str | None = None
    thread: bool = False
    shown_revision: int = 0
    held_until: float | None = None

    def value(self) -> Delivery:
        return Delivery(
            id=self.id,
            story_id=self.story_id,
            target=self.target,
            watchlists=self.watchlists,
            subscriber=self.subscriber,
            matched=self.matched,
            status=self.status,
            attempts=self.attempts,
            message_id=self.message_id,
            update_pending=self.update_pending,
            update_count=self.update_count,
            created_at=dt(self.created_at),
            digest_group=self.digest_group,
            thread=self.thread,
            shown_revision=self.shown_revision,
            error=self.error,
            held_until=dt(self.held_until),
        )


class MemoryBase:
    """The tables; the methods over them are in the mixins beside this module."""

    def __init__(self) -> None:
        self._feeds: dict[int, FeedRow] = {}
        self._stories: dict[int, StoryRow] = {}
        # identity key -> story id -> (kind, seen at): one row per (key, story), like the table.
        self._keys: dict[int, dict[int, tuple[KeyKind, float]]] = {}
        # story id -> feed id -> (feed name, first seen there, in its baseline poll).
        self._carriers: dict[int, dict[int, tuple[str, float, bool]]] = {}
        self._deliveries: dict[int, CardRow] = {}  # in id order: ids only grow
        # story id -> destination -> delivery id: one card per story and destination.
        self._cards: dict[int, dict[str, int]] = {}
        # story id -> (feed name, link) -> (title, seen at): the duplicates kept for /why.
        self._sightings: dict[int, dict[tuple[str, str], tuple[str, float]]] = {}
        self._watchlists: dict[int, Watchlist] = {}
        self._subscriptions: dict[int, Subscription] = {}
        self._subscriber_settings: dict[str, SubscriberSettings] = {}
        self._audit: list[tuple[float, str, str, str]] = []
        self._websub: dict[int, WebSubSubscription] = {}  # by feed id
        self._last: dict[str, int] = {}
        # Moves with every change to watchlists or subscriptions (see OpsStore).
        self.queries_version = 0
        self.path = ":memory:"

    def _next_id(self, table: str) -> int:
        """Ids are never reused, in any table (SQLite reuses some; nothing may rely on it)."""
        self._last[table] = self._last.get(table, 0) + 1
        return self._last[table]

    def _feed_named(self, name: str) -> FeedRow | None:
        wanted = nocase(name)
        return next((f for f in self._feeds.values() if nocase(f.name) == wanted), None)

    def _drop_feed(self, feed: FeedRow) -> None:
        del self._feeds[feed.id]
        self._websub.pop(feed.id, None)  # ON DELETE CASCADE
        for story in self._stories.values():  # ON DELETE SET NULL
            if story.feed_id == feed.id:
                story.feed_id = None

    def _carrier_sightings(self, story_id: int) -> list[SourceSighting]:
        found = self._carriers.get(story_id, {})
        rows = sorted(found.items(), key=lambda item: (item[1][1], item[0]))
        return [SourceSighting(fid, name, moment(at), base) for fid, (name, at, base) in rows]

    def _record_poll(
        self, feed_id: int, outcome: PollOutcome, now: datetime, *, baseline_done: bool | None
    ) -> None:
        feed = self._feeds.get(feed_id)
        if feed is None:
            return
        feed.last_poll_at = ts(now)
        if outcome.ok:
            feed.etag, feed.last_modified = outcome.etag, outcome.last_modified
            feed.body_hash, feed.last_success_at = outcome.body_hash, ts(now)
            feed.failures, feed.retry_at = 0, None
            if baseline_done is not None:
                feed.baseline_done = baseline_done
            if outcome.schedule is not None:
                # Whole seconds, as the SQL backends keep it.
                seconds = round(outcome.schedule.interval.total_seconds())
                feed.schedule = replace(outcome.schedule, interval=timedelta(seconds=seconds))
        else:
            feed.last_error, feed.last_error_at = outcome.error, ts(now)
            feed.failures = outcome.failures
            feed.retry_at = None if outcome.retry_at is None else ts(outcome.retry_at)
