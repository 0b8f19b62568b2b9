"""Platform-neutral alert cards. Each chat platform renders a Card within its own limits."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from bot.core.identity import safe_link
from bot.core.models import Delivery, StoredStory
from bot.core.pings import Ping

_URGENT_CAPS = re.compile(r"^\W*(BREAKING|URGENT|FLASH|ALERT)\b")
_URGENT_MARKED = re.compile(
    r"^\W*(breaking|urgent|flash|alert)(\s+news)?\s*[:|\-–—]", re.IGNORECASE
)


def is_urgent(headline: str) -> bool:
    """Wire desks mark urgency in the headline itself: "BREAKING: ...", "FLASH - ...",
    "URGENT ..." in capitals. "Alert issued as typhoon nears" is an ordinary headline."""
    return bool(_URGENT_CAPS.match(headline) or _URGENT_MARKED.match(headline))


@dataclass(frozen=True, slots=True)
class Card:
    headline: str
    url: str | None
    source: str
    published: datetime | None
    summary: str
    matched: tuple[str, ...]
    channel: str
    watchlists: tuple[str, ...] = ()
    subscriber: str | None = None
    urgent: bool = False
    image: str | None = None
    # This card revises one already posted: it carries the "updated" mark. A destination that
    # first matches an already-revised story gets a fresh card, without the mark.
    update: bool = False
    delivery_id: int = 0
    story_id: int = 0
    # Thread mode only (a watchlist's `updates = "thread"`): every feed that carries the story,
    # its own first, once more than one does. Renderers show "N sources now report: ...".
    sources: tuple[str, ...] = ()
    revision: int = 0  # the story revision the card shows (a thread reply's idempotency key)
    # Who this card may ping: the only mentions it carries (bot.core.pings). Set by the
    # delivery worker for a new card; never on an update or a thread reply.
    pings: tuple[Ping, ...] = ()


# A card names at most this many sources, each cut to SOURCE_NAME_LIMIT characters; the rest
# are counted ("and 4 more"). Feed names are the desk's own, but a chat-added feed can be
# named anything, and a line must never push a card past a platform's limits.
SOURCES_SHOWN = 5
SOURCE_NAME_LIMIT = 40


def sources_line(sources: tuple[str, ...]) -> str | None:
    """`3 sources now report: Reuters, AP, BBC`, or None while one feed alone carries it.
    Plain text: each renderer escapes it for its own markup."""
    if len(sources) < 2:
        return None
    names = [
        name if len(name) <= SOURCE_NAME_LIMIT else name[: SOURCE_NAME_LIMIT - 1] + "…"
        for name in (" ".join(s.split()) for s in sources[:SOURCES_SHOWN])
    ]
    more = len(sources) - len(names)
    listed = ", ".join(names) + (f" and {more} more" if more else "")
    return f"{len(sources)} sources now report: {listed}"


def build_card(delivery: Delivery, stored: StoredStory, *, update: bool = False) -> Card:
    story = stored.story
    sources: tuple[str, ...] = ()
    if delivery.thread and stored.sources:
        sources = tuple(dict.fromkeys((story.feed, *stored.sources)))
    return Card(
        headline=story.title,
        url=safe_link(story.link),
        source=story.feed,
        published=story.published,
        summary=story.summary,
        matched=delivery.matched,
        channel=delivery.target,
        watchlists=delivery.watchlists,
        subscriber=delivery.subscriber,
        urgent=is_urgent(story.title),
        image=safe_link(story.image),
        update=update,
        delivery_id=delivery.id,
        story_id=stored.id,
        sources=sources,
        revision=stored.revision,
    )


@dataclass(frozen=True, slots=True)
class Digest:
    """Many cards for one channel in a burst, posted as one message listing the headlines; or a
    person's cards that waited (quiet hours, an hourly or daily digest), then `reason` says why
    in a few words that follow the count: "3 stories from your quiet hours"."""

    channel: str
    cards: tuple[Card, ...]
    reason: str = ""
