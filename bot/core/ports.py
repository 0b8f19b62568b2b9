"""The small interfaces the core talks through. Implementations live outside the core
(bot.feeds, storage, bot.chat); tests use the real ones against local servers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, NamedTuple, Protocol

from bot.core.cards import Card, Digest
from bot.core.models import Delivery, FeedState, StoredStory, Story

if TYPE_CHECKING:
    from bot.core.identity import DocumentIdentity, KeyKind
    from bot.core.pipeline import IngestPlan


# --- feeds ----------------------------------------------------------------------------------------


class FetchStatus(StrEnum):
    OK = "ok"  # a body to parse
    NOT_MODIFIED = "not_modified"  # 304
    UNCHANGED = "unchanged"  # 200, but the same bytes as last time
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class FetchResult:
    status: FetchStatus
    url: str
    body: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    http_status: int | None = None
    error: str | None = None
    retry_after: float | None = None  # seconds the server asked us to wait


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    stories: list[Story]
    title: str | None = None
    warning: str | None = None  # recovered from broken markup, say
    # identify(stories), computed by the parse worker; None when nobody has yet.
    identity: DocumentIdentity | None = None


class FeedError(Exception):
    """The document is not a usable feed (an HTML error page, a truncated server error)."""


class FeedReader(Protocol):
    async def fetch(self, feed: FeedState) -> FetchResult: ...

    async def parse(self, result: FetchResult, feed_name: str) -> ParsedFeed:
        """Raises FeedError when the body is not a feed."""
        ...


# --- storage --------------------------------------------------------------------------------------


class KeyHit(NamedTuple):
    # A tuple: a first poll of formulaic feeds reads millions of them (a dataclass cost a
    # tenth of the writing process's time to build).
    key: int
    kind: KeyKind
    story_id: int
    seen_at: datetime


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


class IngestStore(Protocol):
    async def find_keys(
        self, keys: Sequence[int], *, since: datetime | None = None
    ) -> list[KeyHit]:
        """The stories holding these keys. With `since`: only keys seen since then, and per
        key only a few of the newest stories."""
        ...

    async def load_stories(self, ids: Sequence[int]) -> dict[int, StoredStory]: ...

    async def delivery_targets(self, story_ids: Sequence[int]) -> dict[int, set[str]]: ...

    async def apply_ingest(
        self, feed: FeedState, plan: IngestPlan, outcome: PollOutcome, now: datetime
    ) -> dict[int, int]:
        """Write the plan and the feed's new state in one transaction. Returns the ids given to
        the plan's new stories (plan reference -> story id)."""
        ...

    async def record_poll(self, feed: FeedState, outcome: PollOutcome, now: datetime) -> None: ...


# --- chat -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendResult:
    """A send never returns None and never swallows an error: it says what happened."""

    ok: bool
    message_id: str | None = None
    error: str | None = None
    retry_after: float | None = None
    permanent: bool = False  # retrying cannot help (channel gone, DMs closed, no permission)

    @classmethod
    def sent(cls, message_id: str) -> SendResult:
        return cls(ok=True, message_id=message_id)

    @classmethod
    def retry(cls, error: str, retry_after: float | None = None) -> SendResult:
        return cls(ok=False, error=error, retry_after=retry_after)

    @classmethod
    def failed(cls, error: str) -> SendResult:
        return cls(ok=False, error=error, permanent=True)


class Sender(Protocol):
    """One chat platform's delivery side. Render is pure and lives beside it."""

    platform: str

    async def send(self, card: Card) -> SendResult:
        """Post a new card. Must be idempotent per card.delivery_id: a re-send after a crash
        must not create a second message."""
        ...

    async def edit(self, card: Card, message_id: str) -> SendResult: ...

    async def send_digest(self, digest: Digest) -> SendResult: ...

    async def notify(self, target: str, text: str) -> SendResult:
        """A plain operational notice (a feed failing, a channel the bot cannot post to)."""
        ...


class DeliveryStore(Protocol):
    async def due_deliveries(
        self, now: datetime, limit: int
    ) -> list[tuple[Delivery, StoredStory]]: ...

    async def mark_sent(
        self,
        delivery_id: int,
        message_id: str,
        now: datetime,
        *,
        digest: bool = False,
        revision: int | None = None,
    ) -> None: ...

    async def mark_update_done(
        self, delivery_id: int, now: datetime, *, revision: int | None = None
    ) -> None: ...

    async def mark_failed(self, delivery_id: int, error: str, now: datetime) -> None: ...

    async def reschedule(
        self, delivery_id: int, error: str, next_attempt: datetime, *, update: bool
    ) -> None: ...

    async def recent_sent_count(self, target: str, since: datetime) -> int: ...

    async def assign_digest(self, delivery_ids: Sequence[int], group: str) -> None: ...
