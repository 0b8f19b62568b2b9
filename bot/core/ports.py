"""The small interfaces the core talks through. Implementations live outside the core
(bot.feeds, storage, bot.chat); tests use the real ones against local servers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from bot.core.cards import Card, Digest
from bot.core.models import FeedState, Story
from bot.core.polling import FeedHints
from bot.core.store import (
    AuditEntry,
    CommandStore,
    DeliveryStore,
    DuplicateName,
    IngestBatch,
    IngestSession,
    IngestStore,
    KeyHit,
    OpsStore,
    PollOutcome,
    Storage,
    StorageError,
)

if TYPE_CHECKING:
    from bot.core.identity import DocumentIdentity

__all__ = [
    "AuditEntry",
    "CommandStore",
    "DeliveryStore",
    "DuplicateName",
    "FeedError",
    "FeedReader",
    "FetchResult",
    "FetchStatus",
    "IngestBatch",
    "IngestSession",
    "IngestStore",
    "KeyHit",
    "OpsStore",
    "ParsedFeed",
    "PollOutcome",
    "SendResult",
    "Sender",
    "Storage",
    "StorageError",
]


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
    max_age: float | None = None  # seconds, from Cache-Control (a success's, or a 304's)


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    stories: list[Story]
    title: str | None = None
    warning: str | None = None  # recovered from broken markup, say
    # identify(stories), computed by the parse worker; None when nobody has yet.
    identity: DocumentIdentity | None = None
    hints: FeedHints | None = None  # <ttl>, <skipHours>, <skipDays>; None when not read


class FeedError(Exception):
    """The document is not a usable feed (an HTML error page, a truncated server error)."""


class FeedReader(Protocol):
    async def fetch(self, feed: FeedState) -> FetchResult: ...

    async def parse(self, result: FetchResult, feed_name: str) -> ParsedFeed:
        """Raises FeedError when the body is not a feed."""
        ...

    async def close(self) -> None:
        """Release the connections (the bot calls it once, when it stops)."""
        ...


# --- storage --------------------------------------------------------------------------------------
# The storage contract has its own module, bot.core.store; its names are importable from here too.

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

    async def reply(self, card: Card, message_id: str) -> SendResult:
        """Post the card's update as a reply under the card `message_id` (a thread on it).
        Must be idempotent per (card.delivery_id, card.revision): a re-send after a crash
        must not post a second reply. Never posts at the top level: a card that is gone is a
        permanent failure."""
        ...

    async def send_digest(self, digest: Digest) -> SendResult: ...

    async def notify(self, target: str, text: str) -> SendResult:
        """A plain operational notice (a feed failing, a channel the bot cannot post to)."""
        ...
