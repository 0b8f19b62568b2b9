"""How often each feed is polled: its interval follows its publishing rate, within a floor and
a ceiling, and the publisher's hints may only lengthen it (issue 17, adaptive polling).

Pure: the pipeline hands in what a poll saw (how many new stories, the document's dates and
hints, the server's cache headers) and stores the `PollSchedule` that comes out with the feed,
so a restart keeps it. The scheduler (one process) and the cluster's leases (several) both wait
`PollSchedule.interval` before the next poll, and skip the hours and days the feed asks.

The rate is an average of the gaps between new stories (EWMA, half weight on each new one);
the first poll, which finds every item new, reads it from the items' own dates instead. A feed
is polled twice per gap (a story waits half a gap on average), and a feed that has been silent
for more than two gaps is polled once per silence: a dead feed reaches the ceiling in a few
polls (the wait doubles), a wire that publishes every minute stays at the floor."""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.core.durations import format_duration

# A value past this is no hint but a mistake or a joke (a ttl of ten thousand years): kept as
# this much, so that storing it never overflows and the status can still say "capped".
LONGEST_HINT = timedelta(days=3650)
# Item dates further ahead than this are wrong clocks, not schedules: left out of the rate.
FUTURE_LEEWAY = timedelta(minutes=10)
# Gaps between the newest dated items that the first poll reads the rate from.
DATED_GAPS = 20
ALL_HOURS = frozenset(range(24))
ALL_DAYS = frozenset(range(7))
DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@dataclass(frozen=True, slots=True)
class PollingPolicy:
    """[polling] in the config file."""

    min_interval: timedelta = timedelta(seconds=30)
    max_interval: timedelta = timedelta(hours=1)
    adaptive: bool = True  # off: every feed at its configured interval (hints still apply)
    honour_http_hints: bool = True  # Cache-Control max-age, Retry-After
    honour_feed_hints: bool = True  # <ttl>, <skipHours>, <skipDays>


@dataclass(frozen=True, slots=True)
class FeedHints:
    """What a document says of its own polling (RSS 2.0 <ttl>, <skipHours>, <skipDays>).
    Already cleaned: a ttl that is no positive number is None; hours are 0-23 (UTC, as RSS
    says), days 0-6 from Monday."""

    ttl: timedelta | None = None
    skip_hours: frozenset[int] = frozenset()
    skip_days: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class PollSchedule:
    """A feed's polling, as stored with it: the wait before its next poll and why, what its
    rate was learnt from, and the document's last hints (a 304 carries none)."""

    interval: timedelta
    reason: str
    gap: timedelta | None = None  # average gap between new stories
    last_new_at: datetime | None = None  # when the newest story appeared (or was first seen)
    ttl: timedelta | None = None
    skip_hours: frozenset[int] = frozenset()
    skip_days: frozenset[int] = frozenset()

    def describe(self) -> str:
        """What the feed list shows: "every 30s (publishes every ~1m)"."""
        return f"every {format_duration(self.interval)} ({self.reason})"


@dataclass(frozen=True, slots=True)
class PollSeen:
    """What one successful poll saw, for the schedule."""

    new: int = 0  # new stories (the first poll's baseline included)
    parsed: bool = False  # the document was read (not a 304, not the same bytes)
    published: tuple[datetime, ...] = ()  # the document's item dates, when parsed
    hints: FeedHints | None = None  # the document's hints, when parsed
    max_age: float | None = None  # seconds, from Cache-Control
    retry_after: float | None = None  # seconds, from Retry-After on a success
    # A WebSub hub pushes the feed's stories (bot.feeds.websub): polls are only the safety
    # net, at the ceiling (a feed's own fixed interval, or adaptive polling off, still wins).
    pushed: bool = False


def schedule_after(
    policy: PollingPolicy,
    *,
    interval: timedelta,
    fixed: bool,
    baseline: bool,
    prior: PollSchedule | None,
    seen: PollSeen,
    now: datetime,
) -> PollSchedule:
    """The feed's schedule after a successful poll. `interval`: the feed's configured one (its
    own when `fixed`, else the default, used until the rate is known); `baseline`: this was the
    feed's first poll."""
    gap = prior.gap if prior else None
    last_new = prior.last_new_at if prior else None
    hints = seen.hints
    if hints is None and prior is not None:
        hints = FeedHints(prior.ttl, prior.skip_hours, prior.skip_days)
    if baseline and seen.parsed:
        dated = _plausible(seen.published, now)
        gap = _median_gap(dated) or gap
        last_new = dated[-1] if dated else now
    elif seen.new > 0:
        since = last_new or now
        if since < now:
            # Each new story is one gap observed: a poll that finds twenty of them trusts
            # their average (nearly) alone, one that finds a single story moves half way.
            sample = (now - since) / seen.new
            keep = 0.5 ** min(seen.new, 30)
            gap = sample if gap is None else gap * keep + sample * (1 - keep)
        last_new = now
    elif last_new is None:
        last_new = now  # polled before this was known: count the silence from here
    base, reason = _base(policy, interval, fixed, gap, now - last_new, pushed=seen.pushed)
    base, reason = _lengthen(policy, base, reason, seen, hints)
    notes = _skip_notes(hints) if policy.honour_feed_hints and hints else ""
    return PollSchedule(
        interval=timedelta(seconds=round(base.total_seconds())),  # as the store keeps it
        reason=reason + notes,
        gap=gap,
        last_new_at=last_new,
        ttl=hints.ttl if hints else None,
        skip_hours=hints.skip_hours if hints else frozenset(),
        skip_days=hints.skip_days if hints else frozenset(),
    )


def _base(
    policy: PollingPolicy,
    interval: timedelta,
    fixed: bool,
    gap: timedelta | None,
    silence: timedelta,
    *,
    pushed: bool = False,
) -> tuple[timedelta, str]:
    if fixed:
        return interval, "fixed"
    if not policy.adaptive:
        return interval, "adaptive polling off"
    if pushed:
        return policy.max_interval, "pushed by its WebSub hub"
    if gap is None:
        wait, reason = interval, "rate not known yet"
        if silence > interval:
            wait, reason = silence, f"silent for {_rough(silence)}"
    elif silence > 2 * gap:
        wait, reason = silence, f"silent for {_rough(silence)}"
    else:
        wait, reason = gap / 2, f"publishes every ~{_rough(gap)}"
    if wait >= policy.max_interval and reason.startswith("silent"):
        reason = "silent"  # "every 1h (silent)": how long exactly no longer matters
    return _clamp(wait, policy), reason


def _lengthen(
    policy: PollingPolicy,
    base: timedelta,
    reason: str,
    seen: PollSeen,
    hints: FeedHints | None,
) -> tuple[timedelta, str]:
    """The publisher's hints only ever lengthen the wait, and only up to the ceiling (a feed's
    own longer fixed interval stays as it is): a hostile ttl of ten years must not silence a
    feed. A hint cut to the ceiling says so."""
    asked: list[tuple[timedelta, str]] = []
    if policy.honour_http_hints:
        for seconds, name in ((seen.max_age, "max-age"), (seen.retry_after, "Retry-After")):
            if seconds is not None and seconds > 0:
                asked.append((min(timedelta(seconds=seconds), LONGEST_HINT), name))
    if policy.honour_feed_hints and hints is not None and hints.ttl is not None:
        asked.append((min(hints.ttl, LONGEST_HINT), "ttl"))
    capped = ""
    for wait, name in sorted(asked, key=lambda a: a[0]):
        if wait <= base:
            continue
        if wait > policy.max_interval:
            ceiling = max(base, policy.max_interval)
            capped = f"{name} of {_rough(wait)} capped at {format_duration(ceiling)}"
            if ceiling > base:
                base, reason, capped = ceiling, capped, ""
            continue
        base, reason = wait, name
    if capped:  # already at the ceiling for its own reasons: the hint was cut all the same
        reason = f"{reason}; {capped}"
    return base, reason


def _skip_notes(hints: FeedHints) -> str:
    notes = []
    if hints.skip_hours >= ALL_HOURS:
        notes.append("skipHours lists every hour: ignored")
    elif hints.skip_hours:
        notes.append(f"skips {len(hints.skip_hours)}h of the day (UTC)")
    if hints.skip_days >= ALL_DAYS:
        notes.append("skipDays lists every day: ignored")
    elif hints.skip_days:
        notes.append("skips " + ", ".join(DAY_NAMES[d] for d in sorted(hints.skip_days)))
    return "".join(f"; {note}" for note in notes)


def skipped(
    schedule: PollSchedule | None,
    policy: PollingPolicy,
    at: datetime,
    last_poll_at: datetime | None = None,
) -> bool:
    """Whether the feed asked not to be polled at `at` (UTC). A list naming every hour (or
    every day) would stop the feed for ever: it is ignored. Hints only lengthen the wait up to
    the ceiling: a feed last polled `max_interval` ago or more is polled whatever its lists say
    (a wire skipping Monday to Saturday is still heard hourly)."""
    if schedule is None or not policy.honour_feed_hints:
        return False
    if last_poll_at is not None and at - last_poll_at >= policy.max_interval:
        return False
    hours, days = _effective(schedule)
    return at.hour in hours or at.weekday() in days


def next_allowed(schedule: PollSchedule | None, policy: PollingPolicy, at: datetime) -> datetime:
    """`at`, or the start of the first hour after it that the feed does not skip, but never
    more than `max_interval` after `at` (hints only lengthen the wait up to the ceiling)."""
    if not skipped(schedule, policy, at):
        return at
    start = at.replace(minute=0, second=0, microsecond=0)
    ceiling = at + policy.max_interval
    for hours in range(1, 24 * 7 + 1):
        candidate = start + timedelta(hours=hours)
        if candidate >= ceiling or not skipped(schedule, policy, candidate):
            return min(candidate, ceiling)
    return ceiling  # unreachable: _effective never skips every hour of every day


def _effective(schedule: PollSchedule) -> tuple[frozenset[int], frozenset[int]]:
    hours = schedule.skip_hours if not schedule.skip_hours >= ALL_HOURS else frozenset()
    days = schedule.skip_days if not schedule.skip_days >= ALL_DAYS else frozenset()
    return hours, days


def _plausible(dates: Iterable[datetime], now: datetime) -> list[datetime]:
    """The dates no later than now (give or take a wrong clock), oldest first, capped at now."""
    return sorted(min(d, now) for d in dates if d.tzinfo is not None and d <= now + FUTURE_LEEWAY)


def _median_gap(dated: list[datetime]) -> timedelta | None:
    """The median gap between the newest dated items; None when there are too few, or when
    they all share one date (a feed stamping every item with its build time says nothing)."""
    newest = dated[-(DATED_GAPS + 1) :]
    gaps = [later - earlier for earlier, later in itertools.pairwise(newest)]
    if not gaps:
        return None
    middle = statistics.median_low(gaps)
    return middle if middle > timedelta(0) else None


def _clamp(wait: timedelta, policy: PollingPolicy) -> timedelta:
    return max(policy.min_interval, min(wait, policy.max_interval))


def _rough(value: timedelta) -> str:
    """A duration as people say it roughly: "45s", "1m", "3h", "12d"."""
    seconds = value.total_seconds()
    if seconds < 60:
        return f"{max(0, round(seconds))}s"
    if seconds < 2 * 3600:
        return f"{round(seconds / 60)}m"
    if seconds < 2 * 86400:
        return f"{round(seconds / 3600)}h"
    return f"{round(seconds / 86400)}d"
