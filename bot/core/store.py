"""The storage contract: what the core asks of a backend, split by who asks, and the rows it
speaks in both directions.

Every backend (storage.memory, storage.sqlite; PostgreSQL next) implements `Storage` and passes
one contract suite, tests/storage/test_storage_contract.py. Times go in and come out as
timezone-aware datetimes; a backend never reads the clock itself.

The write side of a poll is an `IngestBatch`: the rows one transaction writes. A row names the
story it is about with a `StoryRef`, which says outright whether that story is one the batch
creates or one already stored: a backend never decodes a number's sign or range."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple, Protocol

from bot.core.identity import IdentityKey, KeyKind
from bot.core.latency import CardTiming, SourceSighting
from bot.core.models import (
    Delivery,
    FeedSpec,
    FeedState,
    PingWhen,
    Sighting,
    StoredStory,
    Story,
    SubscriberSettings,
    Subscription,
    Updates,
    Watchlist,
    WatchlistSpec,
)
from bot.core.polling import PollSchedule
from bot.core.routing import Route

# Newest stories a windowed key lookup returns per key (see IngestStore.find_keys). On formulaic
# feeds one near-duplicate key is shared by thousands of stored bulletins; a key that common
# says little, and reading every holder made each poll's work grow with the database.
WINDOW_HITS_PER_KEY = 8


class StorageError(Exception):
    """A backend could not do what was asked (its own errors may be raised as they are)."""


class DuplicateName(StorageError):
    """A feed or watchlist of that name (in any letter case) already exists."""


# --- what the store returns -----------------------------------------------------------------------


class KeyHit(NamedTuple):
    # A tuple: a first poll of formulaic feeds reads millions of them (a dataclass cost a
    # tenth of the writing process's time to build).
    key: int
    kind: KeyKind
    story_id: int
    seen_at: datetime


@dataclass(frozen=True, slots=True)
class WebSubSubscription:
    """A feed's push subscription at a WebSub hub (bot.feeds.websub), one per feed.

    `callback`: the random last segment of the callback URL the hub posts to; it names the
    subscription without saying which feed it is, and is not the secret (which signs what the
    hub pushes). `lease_expires_at`: None until the hub has verified the subscription.
    `next_attempt_at`: when to ask the hub (again): a first subscription, a renewal before
    the lease runs out, or a retry after a refusal; None when nothing is due."""

    feed_id: int
    hub: str
    topic: str
    callback: str
    secret: str
    lease_expires_at: datetime | None = None
    next_attempt_at: datetime | None = None
    failures: int = 0  # attempts in a row that the hub did not verify
    last_error: str | None = None


class AuditEntry(NamedTuple):
    """One change made from chat: when, who ("<platform>:<user id>"), what, and its details."""

    at: datetime
    actor: str
    action: str
    detail: dict[str, object]


# --- what the store is given ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PollOutcome:
    """What a poll learnt about the feed itself, stored with the feed."""

    ok: bool
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    error: str | None = None
    failures: int = 0
    retry_at: datetime | None = None
    # The feed's polling after this poll (bot.core.polling); None leaves it as it is.
    schedule: PollSchedule | None = None


class StoryRef(NamedTuple):
    """The story a planned row is about: one the batch creates (`new`; `value` is the label of
    its NewStoryRow) or one already stored (`value` is its id). Build with `StoryRef.new` and
    `StoryRef.existing`."""

    value: int
    is_new: bool

    @classmethod
    def new(cls, label: int) -> StoryRef:
        return cls(label, True)

    @classmethod
    def existing(cls, story_id: int) -> StoryRef:
        return cls(story_id, False)


@dataclass(frozen=True, slots=True)
class NewStoryRow:
    """A story the batch creates. `label`: the caller's name for it, unique in the batch and
    otherwise meaningless to the store; `StoryRef.new(label)` refers to it, and apply_ingest
    returns the id it was given under that label."""

    label: int
    story: Story
    alertable: bool
    held: str = ""  # why it does not alert (models.HELD_BASELINE, HELD_OLD); "" when it does
    stamped: bool = False  # its publish time is a stamp (StoredStory.published_stamped)


@dataclass(frozen=True, slots=True)
class RevisionRow:
    """New text for a stored story. `notify`: its sent cards are due for an edit (and the
    story's revision moves); `alertable` never goes back from True to False."""

    story_id: int
    story: Story
    notify: bool
    alertable: bool


class KeyRow(NamedTuple):  # a tuple: a first poll writes a dozen per item
    story: StoryRef
    key: IdentityKey


class SourceRow(NamedTuple):
    """Another feed carries a stored story. The store keeps each (story, feed) once; a feed
    new to the story makes its sent thread-mode cards due for an edit (their sources line)."""

    story_id: int
    feed: str


class CarrierRow(NamedTuple):
    """A feed carries the story (for the latency figures, bot.core.latency): recorded at the batch's time unless the feed already is
    (the first sighting per feed and story is kept). `baseline`: seen in the feed's baseline
    poll, which says when we started listening, not when the feed had it."""

    story: StoryRef
    feed_id: int
    feed_name: str
    baseline: bool


class DeliveryRow(NamedTuple):
    """A card owed to a destination. A destination that already has a card for the story
    keeps it (one card per story and destination); only its watchlists and terms are renewed."""

    story: StoryRef
    route: Route


class SightingRow(NamedTuple):
    """A document's item found to be a stored story (`story_id`) under another feed or link:
    kept once per (story, feed, link); a repeat of one already kept changes nothing."""

    story_id: int
    feed: str
    title: str
    link: str | None


@dataclass(frozen=True, slots=True)
class IngestBatch:
    """Everything one poll writes, in one transaction. Deliveries are written in order: their
    ids, and so the order the cards go out in, follow it."""

    new_stories: Sequence[NewStoryRow] = ()
    revisions: Sequence[RevisionRow] = ()
    keys: Sequence[KeyRow] = ()
    deliveries: Sequence[DeliveryRow] = ()
    # A sent card is edited for a notified revision at most this many times.
    max_updates: int = 3
    sources: Sequence[SourceRow] = ()
    sightings: Sequence[SightingRow] = ()
    carriers: Sequence[CarrierRow] = ()  # for the latency figures (bot.core.latency)

    def ingest_batch(self) -> IngestBatch:
        return self


class SupportsIngestBatch(Protocol):
    """What apply_ingest takes: an IngestBatch, or a plan that gives one (the pipeline's
    IngestPlan, whose own references stay its own business)."""

    def ingest_batch(self) -> IngestBatch: ...


# --- the roles ------------------------------------------------------------------------------------


class IngestSession(Protocol):
    """What a poll reads and writes, as IngestStore says, inside a session that may hold
    several polls (IngestStore.ingest_session)."""

    async def find_keys(
        self, keys: Sequence[int], *, since: datetime | None = None
    ) -> list[KeyHit]: ...

    async def load_stories(self, ids: Sequence[int]) -> dict[int, StoredStory]: ...

    async def story_texts(self, ids: Sequence[int]) -> dict[int, tuple[str, str]]: ...

    async def delivery_targets(self, story_ids: Sequence[int]) -> dict[int, set[str]]: ...

    async def story_carriers(self, story_ids: Sequence[int]) -> dict[int, list[SourceSighting]]: ...

    async def apply_ingest(
        self, feed: FeedState, plan: SupportsIngestBatch, outcome: PollOutcome, now: datetime
    ) -> dict[int, int]: ...


class IngestStore(IngestSession, Protocol):
    """The pipeline's view: what a poll needs to read, and its one write."""

    def ingest_session(self) -> AbstractAsyncContextManager[IngestSession]:
        """Polls ingested back to back, as one transaction. Inside it, each poll's reads see
        the writes of the polls before it; a poll whose apply_ingest fails leaves nothing
        behind (its failure is recorded on the feed) and the session goes on. When the block
        ends, everything is committed, or, if that fails (a full disk), nothing is and it
        raises: every poll of the session then failed. A backend may commit each apply on
        its own and yield itself: the same results, without the shared commit, provided that
        no other session (another worker's, on a shared store) runs meanwhile."""
        ...

    async def find_keys(
        self, keys: Sequence[int], *, since: datetime | None = None
    ) -> list[KeyHit]:
        """The stories holding these keys (each key at most once in `keys` or not, each
        (key, story) pair at most once in the answer). With `since`: only keys seen since then,
        and per key only the WINDOW_HITS_PER_KEY newest stories (by id) among those."""
        ...

    async def load_stories(self, ids: Sequence[int]) -> dict[int, StoredStory]:
        """The stored stories among `ids`; unknown (or pruned) ids are left out."""
        ...

    async def story_texts(self, ids: Sequence[int]) -> dict[int, tuple[str, str]]:
        """(headline, lead) of the stored stories among `ids`, as load_stories would give
        them; unknown (or pruned) ids are left out. What a near-duplicate check reads: a few
        hundred bytes a story rather than the whole story."""
        ...

    async def delivery_targets(self, story_ids: Sequence[int]) -> dict[int, set[str]]:
        """Per story that has any, the destinations with a card for it (sent or not)."""
        ...

    async def story_carriers(self, story_ids: Sequence[int]) -> dict[int, list[SourceSighting]]:
        """Per story that has any, the feeds recorded as carrying it (CarrierRow), earliest
        sighting first."""
        ...

    async def apply_ingest(
        self, feed: FeedState, plan: SupportsIngestBatch, outcome: PollOutcome, now: datetime
    ) -> dict[int, int]:
        """Write `plan.ingest_batch()` and the feed's new state (its baseline is then done) in
        one transaction: all of it or, on an error, none of it (the feed then records the
        failed save). Returns the ids given to the new stories, by their labels. Story ids
        increase with time and are never reused, not even after every story is pruned
        (identity keys outlive their stories)."""
        ...

    async def record_poll(self, feed: FeedState, outcome: PollOutcome, now: datetime) -> None:
        """A poll that wrote no stories (not modified, unchanged, failed)."""
        ...


class DeliveryStore(Protocol):
    """The delivery worker's view: the outbox."""

    async def due_deliveries(self, now: datetime, limit: int) -> list[tuple[Delivery, StoredStory]]:
        """Pending cards whose next attempt is due, and sent cards with a due update, in id
        order. A destination reads its cards in order: while an earlier pending card waits out
        a retry, its later pending cards are not due either."""
        ...

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
        """`revision`: the story revision the card showed (kept as its `shown_revision`).
        If the story was revised since (and the card was not part of a digest), the card is
        due for an update at once; so is a thread-mode card that showed fewer than the
        story's sources (`sources`: how many other feeds it named)."""
        ...

    async def mark_update_done(
        self,
        delivery_id: int,
        now: datetime,
        *,
        revision: int | None = None,
        sources: int | None = None,
    ) -> None:
        """An edit was made. Counted (toward the cap of IngestBatch.max_updates) when it showed
        a revision past `shown_revision`, or when `revision` is None; an edit for a new source
        alone is not. Still due if the story moved past `revision`, or (thread mode) gained
        sources past `sources`."""
        ...

    async def mark_failed(self, delivery_id: int, error: str, now: datetime) -> None: ...

    async def reschedule(
        self, delivery_id: int, error: str, next_attempt: datetime, *, update: bool
    ) -> None:
        """Counts the attempt and keeps its error (the first 1,000 characters)."""
        ...

    async def recent_sent_count(self, target: str, since: datetime) -> int: ...

    async def assign_digest(self, delivery_ids: Sequence[int], group: str) -> None:
        """Put these cards, those still pending, in the burst digest `group`."""
        ...

    async def hold_deliveries(self, delivery_ids: Sequence[int], until: datetime) -> None:
        """These pending cards (a person's) wait until `until` (Delivery.held_until), without
        counting an attempt. A card that waits does not hold up its destination's later cards,
        as one waiting out a retry does; a reschedule makes it an ordinary retry again."""
        ...

    async def subscriber_settings(
        self, subscribers: Sequence[str]
    ) -> dict[str, SubscriberSettings]:
        """What each of these people set (bot.core.quiet), by subscriber; those who never set
        anything are left out. One read for a whole pass of the worker."""
        ...

    async def waiting_cards(
        self, target: str, now: datetime, limit: int
    ) -> list[tuple[Delivery, StoredStory]]:
        """A destination's pending cards that were held and are due now, in no digest yet, in
        id order: all that waited for one digest, however many batches of due_deliveries they
        would span."""
        ...


class CommandStore(Protocol):
    """The chat commands' view (bot.core.commands)."""

    async def add_subscription(
        self, subscriber: str, query: str, now: datetime, *, limit: int | None = None
    ) -> bool:
        """False when the subscriber already has this query, or already `limit` of them.
        Counting and adding are one step: concurrent calls cannot overshoot the limit."""
        ...

    async def remove_subscription(self, subscriber: str, query: str) -> bool: ...

    async def list_subscriptions(self, subscriber: str | None = None) -> list[Subscription]:
        """In the order they were added."""
        ...

    async def subscriber_settings(
        self, subscribers: Sequence[str]
    ) -> dict[str, SubscriberSettings]: ...

    async def set_subscriber_settings(
        self, subscriber: str, settings: SubscriberSettings, now: datetime
    ) -> None:
        """Store the person's settings, in place of any before. Their cards that were held
        under the old ones are due again at once, to be decided under the new ones."""
        ...

    async def recent_stories(
        self,
        since: datetime,
        *,
        limit: int = 5000,
        feed: str | None = None,
        after: StoredStory | None = None,
    ) -> list[StoredStory]:
        """Stories first seen since `since`, newest first (then by id, highest first). `feed`:
        only that feed's (its name, in any letter case). `after`: the last story of the
        previous page (keyset paging)."""
        ...

    async def list_watchlists(self) -> list[Watchlist]:
        """By name, ignoring letter case."""
        ...

    async def get_watchlist(self, name: str) -> Watchlist | None: ...

    async def add_watchlist(
        self,
        name: str,
        query: str,
        channels: Sequence[str],
        created_by: str,
        now: datetime,
        *,
        updates: Updates = Updates.EDIT,
    ) -> Watchlist:
        """Raises DuplicateName when the name (in any letter case) is taken."""
        ...

    async def update_watchlist(
        self,
        name: str,
        *,
        query: str | None = None,
        channels: Sequence[str] | None = None,
        updates: Updates | None = None,
        ping: Sequence[str] | None = None,
        ping_when: PingWhen | None = None,
        now: datetime,
    ) -> bool:
        """Only a watchlist made in chat; None leaves a field as it is."""
        ...

    async def remove_watchlist(self, name: str) -> bool:
        """Only a watchlist made in chat."""
        ...

    async def list_feeds(self) -> list[FeedState]:
        """The active feeds, by name ignoring letter case."""
        ...

    async def get_feed(self, name: str) -> FeedState | None: ...

    async def find_feed_by_url(self, url: str) -> FeedState | None: ...

    async def add_feed(self, spec: FeedSpec, created_by: str, now: datetime) -> FeedState:
        """Raises DuplicateName when an active feed has the name; a feed dropped from the
        config file gives its name up."""
        ...

    async def remove_feed(self, name: str) -> bool:
        """Only a feed made in chat. Its stories stay (without a feed id) and so do their
        identity keys."""
        ...

    async def stories_per_feed(self, since: datetime) -> dict[int, int]: ...

    async def card_timings(self, since: datetime) -> list[CardTiming]:
        """Per story whose first card was sent since `since`: that card's timing."""
        ...

    async def shared_stories(self, since: datetime) -> dict[int, list[SourceSighting]]:
        """Stories carried by several feeds, one of them first seen since `since`: per story,
        its sightings, earliest first."""
        ...

    async def delivery_counts(self) -> dict[str, int]:
        """Cards per DeliveryStatus value, every status present."""
        ...

    async def record_audit(
        self, actor: str, action: str, detail: Mapping[str, object], now: datetime
    ) -> None: ...

    async def recent_for_subscriber(self, subscriber: str, limit: int) -> list[StoredStory]:
        """The stories last delivered (or owed) to a person, newest card first."""
        ...

    # What /why reads of one story (the first three are also other roles' methods).

    async def find_keys(
        self, keys: Sequence[int], *, since: datetime | None = None
    ) -> list[KeyHit]: ...

    async def load_stories(self, ids: Sequence[int]) -> dict[int, StoredStory]: ...

    async def deliveries_for_story(self, story_id: int) -> list[Delivery]: ...

    async def recent_titles(self, since: datetime, *, limit: int) -> list[tuple[int, str]]:
        """(id, headline) of the stories first seen since `since`, newest first (then by id,
        highest first), at most `limit`: what a search by headline words reads, a few bytes a
        story rather than the whole story."""
        ...

    async def sightings(self, story_id: int) -> list[Sighting]:
        """The duplicates kept for a story (SightingRow), oldest first."""
        ...


class OpsStore(Protocol):
    """What the composition root and operations use besides the roles above: the config
    file's feeds and watchlists, the matcher's inputs, pruning, and counts."""

    @property
    def queries_version(self) -> int:
        """Moves with every change to watchlists or subscriptions (the matcher is rebuilt
        when it moves)."""
        ...

    async def sync_config_feeds(self, specs: Sequence[FeedSpec], now: datetime) -> None:
        """Make the config-owned feeds exactly those of the file. A feed dropped from the file
        is kept inactive (with its history, for when it comes back); a chat feed whose name
        the file now claims becomes the file's."""
        ...

    async def sync_config_watchlists(self, items: Sequence[WatchlistSpec], now: datetime) -> None:
        """Each watchlist of the file as the file states it (a plain (name, query, channels)
        tuple reads as one that pings nobody and edits its cards in place); others of the file
        are removed."""
        ...

    async def get_feed_by_id(self, feed_id: int) -> FeedState | None: ...

    async def prune(
        self, now: datetime, *, stories: timedelta, keys: timedelta, window: timedelta
    ) -> tuple[int, int]:
        """Drop stories first seen more than `stories` ago (with their cards); permanent
        identity keys older than `keys`, windowed ones older than `window`. Returns (stories,
        keys) dropped."""
        ...

    async def count_stories(self) -> int: ...

    async def deliveries_for_story(self, story_id: int) -> list[Delivery]: ...

    async def audit_entries(self, limit: int = 100) -> list[AuditEntry]:
        """Newest first."""
        ...

    async def close(self) -> None: ...


class WebSubStore(Protocol):
    """Push subscriptions (bot.feeds.websub): one per feed at most, gone with their feed."""

    async def save_websub(self, subscription: WebSubSubscription) -> None:
        """Insert or replace the feed's subscription (callbacks are unique: a callback of
        another feed's subscription raises)."""
        ...

    async def get_websub(self, feed_id: int) -> WebSubSubscription | None: ...

    async def websub_by_callback(self, callback: str) -> WebSubSubscription | None: ...

    async def websub_subscriptions(self) -> list[WebSubSubscription]:
        """Every feed's, by feed id."""
        ...

    async def remove_websub(self, feed_id: int) -> None: ...


class Storage(IngestStore, DeliveryStore, CommandStore, OpsStore, WebSubStore, Protocol):
    """The whole contract: what `storage.open_storage` returns."""
