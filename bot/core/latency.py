"""The latency a desk feels: from a story's publication, and from our first sight of it, to its
card; and, for a story several feeds carry, which feed had it first and by how much.

Pure: the pipeline and the store hand in times, this module decides which of them can be
believed and sums them up for /feed list (Prometheus gets the same rule, in bot.ops).

When a publish time is credible (`credible_published`): a feed's own date is only a claim.
It is left out of every "from publish" figure when
- there is none;
- it is in the future of our first sight by more than CLOCK_SKEW (a feed that dates items
  ahead, or a server whose clock runs fast: the delay would come out negative or zero);
- it is older than our first sight by more than MAX_CREDIBLE_AGE (a feed that stamps every
  item with a date from 2009, a story republished years later: the delay would be years);
- the document gave the same time to several items (`stamped_times`): two stories are
  rarely published in the same second, while a feed that dates its items with the time it was
  fetched, or built, gives them all one. Such a time says when the document was made.
The time from first sight to the card is always ours, and always counted.

Who was first (`first_and_lead`): each feed that carries a story is recorded once, with when
we first saw it there. A sighting in a feed's baseline poll (its first, which records what the
feed already listed without alerting) says when we started listening, not when the feed had
the story: it is left out of the comparison, and a story with fewer than two other sightings
is not compared at all."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from bot.core.models import Story

CLOCK_SKEW = timedelta(minutes=2)
MAX_CREDIBLE_AGE = timedelta(hours=24)
# How far back /feed list looks: a quiet feed still has a few cards in a week.
WINDOW = timedelta(days=7)


class SourceSighting(NamedTuple):
    """A feed carried a story: first seen there at `seen_at` (in its baseline poll or not)."""

    feed_id: int
    feed_name: str
    seen_at: datetime
    baseline: bool


class Lead(NamedTuple):
    """A story became shared: `first` had it `seconds` before `second`, the next feed."""

    first: str
    second: str
    seconds: float


class CardTiming(NamedTuple):
    """A story's first card: its feed (the one that saw it first), its publish time as the
    feed gave it, whether that time was a stamp, our first sight, and when the card went out."""

    feed_id: int | None
    feed_name: str
    published: datetime | None
    stamped: bool
    first_seen: datetime
    sent_at: datetime


def stamped_times(stories: Iterable[Story]) -> frozenset[datetime]:
    """The publish times that several items of one document share (see the module's doc)."""
    seen: set[datetime] = set()
    shared: set[datetime] = set()
    for story in stories:
        if story.published is None:
            continue
        (shared if story.published in seen else seen).add(story.published)
    return frozenset(shared)


def credible_published(
    published: datetime | None, first_seen: datetime, *, stamped: bool = False
) -> datetime | None:
    """The publish time to measure from, or None when it cannot be believed."""
    if published is None or stamped:
        return None
    if published > first_seen + CLOCK_SKEW or first_seen - published > MAX_CREDIBLE_AGE:
        return None
    return published


def delay_from_published(
    published: datetime | None, first_seen: datetime, at: datetime, *, stamped: bool = False
) -> float | None:
    """Seconds from a credible publish time to `at` (never negative: a date a little ahead,
    within CLOCK_SKEW, counts as published when first seen)."""
    moment = credible_published(published, first_seen, stamped=stamped)
    if moment is None:
        return None
    return max(0.0, (at - min(moment, first_seen)).total_seconds())


def comparable(sightings: Sequence[SourceSighting]) -> list[SourceSighting]:
    """The sightings that say when a feed had the story, earliest first."""
    return sorted((s for s in sightings if not s.baseline), key=lambda s: s.seen_at)


def first_and_lead(
    sightings: Sequence[SourceSighting],
) -> tuple[SourceSighting, SourceSighting, float] | None:
    """The first feed, the next one, and the first's lead in seconds; None when fewer than two
    feeds can be compared."""
    ordered = comparable(sightings)
    if len(ordered) < 2:
        return None
    first, second = ordered[0], ordered[1]
    return first, second, (second.seen_at - first.seen_at).total_seconds()


@dataclass(frozen=True, slots=True)
class FeedLatency:
    cards: int = 0  # stories of the feed that reached a card in the window
    from_published: float | None = None  # median seconds, over credible publish times
    from_first_seen: float | None = None  # median seconds
    first: int = 0  # shared stories this feed had first
    shared: int = 0  # shared stories this feed carried
    lead: float | None = None  # median seconds ahead of the next feed, when first


@dataclass(frozen=True, slots=True)
class Summary:
    per_feed: Mapping[int, FeedLatency]
    shared: int  # stories compared
    latest: tuple[str, str, float] | None  # the last shared story: first, next, lead seconds


def summarise(
    timings: Sequence[CardTiming], shared: Mapping[int, Sequence[SourceSighting]]
) -> Summary:
    published: dict[int, list[float]] = {}
    seen: dict[int, list[float]] = {}
    for t in timings:
        if t.feed_id is None:
            continue
        seen.setdefault(t.feed_id, []).append(max(0.0, (t.sent_at - t.first_seen).total_seconds()))
        delay = delay_from_published(t.published, t.first_seen, t.sent_at, stamped=t.stamped)
        if delay is not None:
            published.setdefault(t.feed_id, []).append(delay)
    carried: dict[int, int] = {}
    firsts: dict[int, list[float]] = {}
    compared = 0
    latest: tuple[datetime, str, str, float] | None = None
    for sightings in shared.values():
        found = first_and_lead(sightings)
        if found is None:
            continue
        compared += 1
        first, second, lead = found
        for s in comparable(sightings):
            carried[s.feed_id] = carried.get(s.feed_id, 0) + 1
        firsts.setdefault(first.feed_id, []).append(lead)
        if latest is None or second.seen_at > latest[0]:
            latest = (second.seen_at, first.feed_name, second.feed_name, lead)
    per_feed = {
        feed_id: FeedLatency(
            cards=len(seen.get(feed_id, ())),
            from_published=_median(published.get(feed_id)),
            from_first_seen=_median(seen.get(feed_id)),
            first=len(firsts.get(feed_id, ())),
            shared=carried.get(feed_id, 0),
            lead=_median(firsts.get(feed_id)),
        )
        for feed_id in seen.keys() | carried.keys()
    }
    return Summary(per_feed, compared, latest[1:] if latest else None)


def _median(values: Sequence[float] | None) -> float | None:
    return statistics.median(values) if values else None


def seconds_text(value: float) -> str:
    """42 s, 1.2 s, 3m 10s, 2h 5m: short, and precise where it matters."""
    if value < 10:
        return f"{value:.1f} s"
    if value < 120:
        return f"{value:.0f} s"
    whole = int(value)
    if whole < 7200:
        return f"{whole // 60}m {whole % 60}s"
    if whole < 172800:
        return f"{whole // 3600}h {whole % 3600 // 60}m"
    return f"{whole // 86400}d {whole % 86400 // 3600}h"


def feed_line(stats: FeedLatency | None) -> str:
    """What /feed list says of one feed's latency, e.g. "median 42 s from publish, 1.2 s from
    first seen to card; first on 12 of 30 shared stories"."""
    if stats is None or (not stats.cards and not stats.shared):
        return "no cards or shared stories in 7 days"
    parts = []
    if stats.cards:
        seen = seconds_text(stats.from_first_seen or 0.0)
        if stats.from_published is not None:
            publish = seconds_text(stats.from_published)
            parts.append(f"median {publish} from publish, {seen} from first seen to card")
        else:
            parts.append(f"median {seen} from first seen to card (no credible publish time)")
    if stats.shared:
        ahead = f" (median lead {seconds_text(stats.lead)})" if stats.lead is not None else ""
        stories = "story" if stats.shared == 1 else "stories"
        parts.append(f"first on {stats.first} of {stats.shared} shared {stories}{ahead}")
    return "; ".join(parts)


def summary_line(summary: Summary) -> str:
    if not summary.shared or summary.latest is None:
        return "No story carried by two feeds in 7 days."
    first, second, lead = summary.latest
    stories = "1 story" if summary.shared == 1 else f"{summary.shared} stories"
    return (
        f"{stories} carried by several feeds in 7 days; the latest was first on {first}, "
        f"{seconds_text(lead)} ahead of {second}."
    )
