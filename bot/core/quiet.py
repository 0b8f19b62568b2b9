"""Quiet hours and digests for people: when a person's cards may go out, and what waits.

A person sets a time zone, quiet hours ("22:00-07:00", across midnight), whether an urgent story
may come through them, and a mode: every card at once (`instant`), or one digest an hour
(`hourly`) or a day (`daily`, at `daily_at`). A card owed while the person does not want it
waits in the outbox (held until a moment computed here, in UTC) and goes out in one digest when
that moment comes. Local times are turned into instants by zoneinfo, so a window that spans a
change of the clocks ends at the right local time.

Pure: the delivery worker asks `plan` what to do with a person's cards, the commands ask the
parse functions what a setting typed in chat means."""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Generic, TypeVar

from bot.core.models import DigestMode, SubscriberSettings

TIMEZONE_LIMIT = 64  # characters: the longest IANA name is 32
MODES = tuple(m.value for m in DigestMode)
_CLOCK = re.compile(r"^(\d{1,2})(?::(\d{2}))?$")
_YES = {"yes", "y", "true", "on", "1"}
_NO = {"no", "n", "false", "off", "0"}
_OFF = {"off", "none", "no"}


class SettingError(ValueError):
    """A setting typed in chat that means nothing; the message says why, for the person."""


# --- reading what a person typed ------------------------------------------------------------------


def zone(name: str) -> tzinfo:
    """The time zone of a stored (already checked) name."""
    if name == "UTC":
        return UTC  # needs no time zone data on the host
    return zoneinfo.ZoneInfo(name)


def parse_timezone(text: str) -> str:
    """An IANA time zone name, as zoneinfo spells it ("europe/berlin" is taken as
    "Europe/Berlin")."""
    name = text.strip()
    shown = name[:TIMEZONE_LIMIT]
    hint = "Use an IANA name such as Europe/London, America/New_York, Asia/Tokyo or UTC."
    if not name or len(name) > TIMEZONE_LIMIT or any(ord(c) < 32 for c in name):
        raise SettingError(f"{shown!r} is not a time zone. {hint}")
    if name.upper() in {"UTC", "Z", "GMT"}:
        return "UTC"
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        # Only on a miss: the list is read from the disk each time.
        spelled = {z.casefold(): z for z in zoneinfo.available_timezones()}
        if name.casefold() in spelled:
            return spelled[name.casefold()]
        raise SettingError(f"{shown!r} is not a time zone I know. {hint}") from None
    return name


def parse_clock(text: str, what: str) -> int:
    """ "07:00" or "7" as minutes after midnight."""
    match = _CLOCK.match(text.strip())
    hours = int(match.group(1)) if match else -1
    minutes = int(match.group(2) or 0) if match else -1
    if not (0 <= hours <= 23 and 0 <= minutes <= 59):
        raise SettingError(
            f"{text.strip()[:20]!r} is not a time of day for {what}: use 24-hour HH:MM, "
            "00:00 to 23:59."
        )
    return hours * 60 + minutes


def parse_quiet(text: str) -> tuple[int, int] | None:
    """ "22:00-07:00" as (start, end) minutes; "off" as None (no quiet hours)."""
    raw = text.strip()
    if raw.casefold() in _OFF:
        return None
    start, dash, end = raw.replace("–", "-").replace("—", "-").partition("-")
    if not dash:
        raise SettingError(
            f"{raw[:40]!r} is not a span of quiet hours: give start-end, e.g. 22:00-07:00 (or off)."
        )
    first, last = parse_clock(start, "quiet hours"), parse_clock(end, "quiet hours")
    if first == last:
        raise SettingError("Quiet hours must start and end at different times.")
    return first, last


def parse_mode(text: str) -> DigestMode:
    word = text.strip().casefold()
    if word not in MODES:
        raise SettingError(f"Unknown mode {text.strip()[:20]!r}: use instant, hourly or daily.")
    return DigestMode(word)


def parse_yes_no(text: str, what: str) -> bool:
    word = text.strip().casefold()
    if word in _YES:
        return True
    if word in _NO:
        return False
    raise SettingError(f"{what} takes yes or no, not {text.strip()[:20]!r}.")


def clock_text(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def describe(settings: SubscriberSettings) -> str:
    """The settings in one line, as /subscriptions shows them."""
    parts = [f"time zone {settings.timezone}"]
    if settings.quiet_start is not None and settings.quiet_end is not None:
        parts.append(
            f"quiet hours {clock_text(settings.quiet_start)}-{clock_text(settings.quiet_end)}"
        )
    else:
        parts.append("no quiet hours")
    if settings.mode is DigestMode.DAILY:
        parts.append(f"mode daily (digest at {clock_text(settings.daily_at)})")
    else:
        parts.append(f"mode {settings.mode.value}")
    if not settings.plain:
        parts.append(
            "urgent stories come at once" if settings.urgent_through else "urgent stories wait too"
        )
    return " · ".join(parts)


# --- when a person's cards may go out -------------------------------------------------------------


def _minute_of(moment: datetime, tz: tzinfo) -> int:
    local = moment.astimezone(tz)
    return local.hour * 60 + local.minute


def in_quiet(settings: SubscriberSettings, now: datetime) -> bool:
    start, end = settings.quiet_start, settings.quiet_end
    if start is None or end is None:
        return False
    minute = _minute_of(now, zone(settings.timezone))
    if start < end:
        return start <= minute < end
    return minute >= start or minute < end  # across midnight


def _at(day: date, minutes: int, tz: tzinfo) -> datetime:
    # A wall time the clocks skip (02:30 as they go forward) is taken as the same span past the
    # last one before the change (zoneinfo's fold=0); one they pass twice, as the first.
    return datetime.combine(day, time(minutes // 60, minutes % 60), tzinfo=tz).astimezone(UTC)


def next_local(now: datetime, minutes: int, tz: tzinfo) -> datetime:
    """The first instant after `now` when the clock on the wall in `tz` shows `minutes`."""
    today = now.astimezone(tz).date()
    for offset in range(3):  # today, tomorrow, or (past a skipped hour) the day after
        candidate = _at(today + timedelta(days=offset), minutes, tz)
        if candidate > now:
            return candidate
    raise AssertionError("unreachable: a wall time comes round within two days")


def release_after(settings: SubscriberSettings, now: datetime) -> datetime:
    """When a card owed at `now` that may not go at once goes out: the end of the quiet hours,
    or the next digest time (pushed to the end of the quiet hours if it falls in them)."""
    tz = zone(settings.timezone)
    if settings.mode is DigestMode.HOURLY:
        hour = now.astimezone(tz).replace(minute=0, second=0, microsecond=0)
        moment = hour.astimezone(UTC) + timedelta(hours=1)
    elif settings.mode is DigestMode.DAILY:
        moment = next_local(now, settings.daily_at, tz)
    else:
        moment = now
    if in_quiet(settings, moment) and settings.quiet_end is not None:
        moment = next_local(moment, settings.quiet_end, tz)
    return moment.astimezone(UTC)


T = TypeVar("T")

# A person's digest is recorded under a group named for why it was formed, so that one re-sent
# after a restart is worded as it was first (see bot.core.delivery).
_REASONS = {
    "quiet": "from your quiet hours",
    DigestMode.HOURLY.value: "in your hourly digest",
    DigestMode.DAILY.value: "in your daily digest",
}


def digest_group(kind: str, first_id: int, last_id: int) -> str:
    return f"{kind}:{first_id}-{last_id}"


def digest_reason(group: str | None) -> str:
    """How a digest is worded, from its group; "" for a channel's burst digest."""
    kind, colon, _ = (group or "").partition(":")
    return _REASONS.get(kind, "") if colon else ""


@dataclass
class Plan(Generic[T]):
    """What to do now with a person's cards: post some at once, gather some in one digest
    (recorded under a group of `kind`), hold the rest until `until`. Every card is in exactly
    one part, and each part keeps the order it was given."""

    now: list[T] = field(default_factory=list)
    digest: list[T] = field(default_factory=list)
    hold: list[T] = field(default_factory=list)
    until: datetime | None = None
    kind: str = "quiet"


def plan(
    settings: SubscriberSettings,
    now: datetime,
    cards: Sequence[T],
    *,
    held_until: Sequence[datetime | None],
    urgent: Sequence[bool],
) -> Plan[T]:
    """`cards`: a person's pending cards that are due, in outbox order; per card, when it was
    held until (None: never held) and whether it is urgent. A card held until `now` or earlier
    is ripe: its wait is over. One that was held until later (the person changed their settings
    since) is decided afresh, except that it joins the digest if one goes now."""
    quiet = in_quiet(settings, now)
    ripe: list[int] = []
    through: list[int] = []
    waiting: list[int] = []
    parts: tuple[list[int], list[int], list[int]]
    for i, until in enumerate(held_until):
        if until is not None and until <= now:
            ripe.append(i)
        elif settings.urgent_through and urgent[i]:
            through.append(i)
        else:
            waiting.append(i)
    if quiet:
        parts = (through, [], ripe + waiting)
    elif settings.mode is DigestMode.INSTANT:
        # Every card that waited goes in the digest, even one whose wait the person cut short
        # by changing their settings: a night's cards come as one message, not one by one.
        waited = [i for i in waiting if held_until[i] is not None]
        parts = ([i for i in through + waiting if i not in waited], ripe + waited, [])
    elif ripe:
        parts = (through, ripe + waiting, [])
    else:
        parts = (through, [], waiting)
    now_part, digest_part, hold_part = ([cards[i] for i in sorted(p)] for p in parts)
    return Plan(
        now=now_part,
        digest=digest_part,
        hold=hold_part,
        until=release_after(settings, now) if hold_part else None,
        kind="quiet" if settings.mode is DigestMode.INSTANT else settings.mode.value,
    )


def updated(
    current: SubscriberSettings | None,
    *,
    timezone: str | None = None,
    quiet: str | None = None,
    urgent: str | None = None,
    mode: str | None = None,
    at: str | None = None,
) -> SubscriberSettings:
    """The person's settings with what they typed applied (None: left as it was). Raises
    SettingError, naming the first value that means nothing; then nothing is to change."""
    changes: dict[str, object] = {}
    if timezone is not None:
        changes["timezone"] = parse_timezone(timezone)
    if quiet is not None:
        changes["quiet_start"], changes["quiet_end"] = parse_quiet(quiet) or (None, None)
    if urgent is not None:
        changes["urgent_through"] = parse_yes_no(urgent, "urgent")
    if mode is not None:
        changes["mode"] = parse_mode(mode)
    if at is not None:
        changes["daily_at"] = parse_clock(at, "the daily digest")
    return replace(current or SubscriberSettings(), **changes)  # type: ignore[arg-type]
