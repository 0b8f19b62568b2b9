"""Values that flow through the pipeline. Frozen: a story or a card never changes under a reader."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import NamedTuple

from bot.core.durations import format_duration
from bot.core.polling import PollSchedule


@dataclass(frozen=True, slots=True)
class Story:
    """One item of a feed, as clean text. `content` is the text used for matching: every text
    the publisher gave for the item (description, full text, captions), paragraphs separated by
    a blank line; `summary` is the short lead shown on cards, cut from the description."""

    feed: str
    title: str
    link: str | None = None
    guid: str | None = None
    summary: str = ""
    content: str = ""
    published: datetime | None = None
    author: str | None = None
    categories: tuple[str, ...] = ()
    image: str | None = None


@dataclass(frozen=True, slots=True)
class StoredStory:
    id: int
    feed_id: int | None
    story: Story
    first_seen: datetime
    revision: int
    alertable: bool
    # The other feeds that carried the story since, in the order they did (its own feed is
    # `story.feed`). Read with the outbox only: a card in thread mode names them.
    sources: tuple[str, ...] = ()
    # Why a story that never alerted was recorded quietly: HELD_BASELINE or HELD_OLD (empty
    # otherwise). Stored with the story, so /why can say it without guessing.
    held: str = ""
    # The feed gave its publish time to several items of the document: a stamp (the fetch
    # time, a build date), not when the story was published (bot.core.latency).
    published_stamped: bool = False

    # The matcher reads these four attributes (bot.core.matcher.Matchable).
    @property
    def title(self) -> str:
        return self.story.title

    @property
    def content(self) -> str:
        return self.story.content

    @property
    def categories(self) -> tuple[str, ...]:
        return self.story.categories

    @property
    def feed(self) -> str:
        return self.story.feed


class Updates(StrEnum):
    """How a watchlist's cards show an update of an alerted story."""

    EDIT = "edit"  # the card is edited in place (the default, and how it always was)
    # Also a reply under the card (a Discord thread, a Slack thread) for each rewrite, and the
    # card names every feed that carries the story ("3 sources now report: ...").
    THREAD = "thread"


UPDATE_MODES: tuple[str, ...] = tuple(u.value for u in Updates)


HELD_BASELINE = "baseline"  # first seen in the first poll of a new feed
HELD_OLD = "old"  # published longer ago than max_age when first seen


@dataclass(frozen=True, slots=True)
class Sighting:
    """Another feed's (or another link's) item that turned out to be a story already stored: a
    duplicate. Kept once per story, feed and link, for /why."""

    story_id: int
    feed: str
    title: str
    link: str | None
    seen_at: datetime


class Origin(StrEnum):
    """Who owns a feed or watchlist: the config file, or chat (the database)."""

    CONFIG = "config"
    CHAT = "chat"


@dataclass(frozen=True, slots=True)
class FeedSpec:
    name: str
    url: str
    interval: timedelta
    origin: Origin = Origin.CONFIG
    # The feed's own interval (config `interval`, chat `feed add ... interval`): a fixed
    # override. Otherwise `interval` is the default, used until the feed's rate is known.
    fixed: bool = False


@dataclass(frozen=True, slots=True)
class FeedState:
    """A feed as stored, with what the last fetches taught us."""

    id: int
    name: str
    url: str
    interval: timedelta
    origin: Origin
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    baseline_done: bool = False
    last_poll_at: datetime | None = None
    last_success_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    failures: int = 0
    retry_at: datetime | None = None
    created_by: str | None = None
    fixed: bool = False  # see FeedSpec.fixed
    schedule: PollSchedule | None = None  # None until its first successful poll

    @property
    def poll_interval(self) -> timedelta:
        """The wait between two polls now: the adaptive one once known (bot.core.polling)."""
        return self.interval if self.schedule is None else self.schedule.interval

    def describe_polling(self) -> str:
        """ "every 30s (publishes every ~1m)": how often and why, for the feed list."""
        if self.schedule is not None:
            return self.schedule.describe()
        return f"every {format_duration(self.interval)}" + (
            " (fixed)" if self.fixed else " (rate not known yet)"
        )


class PingWhen(StrEnum):
    """When a watchlist's pings go out with its card (bot.core.pings)."""

    URGENT = "urgent"  # only on a card the headline marks urgent (cards.is_urgent)
    ALWAYS = "always"  # on every new card of the watchlist


@dataclass(frozen=True, slots=True)
class Watchlist:
    id: int
    name: str
    query: str
    channels: tuple[str, ...]
    origin: Origin
    created_by: str | None = None
    updates: Updates = Updates.EDIT
    # Who its cards may ping, as written ("role:<id>", "user:<id>", "usergroup:<id>"); none by
    # default. Checked when set (config file, chat); read by bot.core.pings.
    ping: tuple[str, ...] = ()
    ping_when: PingWhen = PingWhen.URGENT


class WatchlistSpec(NamedTuple):
    """A watchlist as the config file states it (what `sync_config_watchlists` makes true).
    A tuple, so that a plain (name, query, channels) still reads as one with no pings whose
    cards are edited in place (updates = "edit")."""

    name: str
    query: str
    channels: Sequence[str]
    ping: Sequence[str] = ()
    ping_when: PingWhen = PingWhen.URGENT
    updates: Updates = Updates.EDIT


@dataclass(frozen=True, slots=True)
class Subscription:
    """A personal keyword subscription. `subscriber` is "<platform>:<user id>"."""

    id: int
    subscriber: str
    query: str


class DigestMode(StrEnum):
    """How a person's cards come: each at once, or gathered into one digest an hour or a day."""

    INSTANT = "instant"
    HOURLY = "hourly"
    DAILY = "daily"


@dataclass(frozen=True, slots=True)
class SubscriberSettings:
    """How and when one person's cards come (bot.core.quiet reads and applies them). Times of
    day are minutes after local midnight in `timezone` (an IANA name); quiet hours run from
    `quiet_start` to `quiet_end`, across midnight when the end is the earlier."""

    timezone: str = "UTC"
    quiet_start: int | None = None
    quiet_end: int | None = None
    urgent_through: bool = True  # an urgent story comes at once, quiet hours or digest alike
    mode: DigestMode = DigestMode.INSTANT
    daily_at: int = 8 * 60  # when a daily digest goes out

    @property
    def quiet(self) -> bool:
        return self.quiet_start is not None and self.quiet_end is not None

    @property
    def plain(self) -> bool:
        """Every card at once, as if there were no settings at all."""
        return not self.quiet and self.mode is DigestMode.INSTANT


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One card for one destination (the outbox row)."""

    id: int
    story_id: int
    target: str
    watchlists: tuple[str, ...]
    subscriber: str | None
    matched: tuple[str, ...]
    status: DeliveryStatus
    attempts: int = 0
    message_id: str | None = None
    update_pending: bool = False
    update_count: int = 0
    created_at: datetime | None = None
    digest_group: str | None = None  # set once the card is put in a burst digest
    thread: bool = False  # a watchlist of this destination asked for updates = "thread"
    shown_revision: int = 0  # the story revision the posted card was last rendered from
    error: str | None = None  # the last failed attempt's reason (kept after a failure for good)
    # Set while a person's card waits for their quiet hours to end or their digest to be due
    # (bot.core.quiet); a card that waits does not hold up the person's later cards.
    held_until: datetime | None = None


def platform_of(target: str) -> str:
    """The platform a destination or a subscriber belongs to: the text before the first colon
    ("<platform>:<id>"; see bot.core.destinations for how each platform writes the rest)."""
    return target.partition(":")[0]


def dm_target(subscriber: str) -> str:
    """Where a personal subscription is delivered: the person's direct messages. The one
    destination the core writes itself, the same way for every platform (bot.core.destinations
    holds each platform's form to it)."""
    platform, _, user = subscriber.partition(":")
    return f"{platform}:dm:{user}"
