"""`newsbot check`: before news breaks, check what can be checked, and say what to fix.

The config (it loaded; what it names), every feed fetched once (status, item count, the newest
item's age), each chat token (valid? whose bot?), and every channel the config posts to (exists,
the bot sees it and may post a card there). Printed as a short table; each failure is followed
by what to do about it. `send`: one test card to each channel that passed. The feeds are checked
here; each chat platform checks its own token and channels (its package's `check`, see
bot/chat/platforms.py), so this module names no platform.

Nothing is stored: the database is not opened, so a running bot is left alone."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TextIO

from bot.chat.platforms import PLATFORMS, ops_channels
from bot.chat.preflight import Check
from bot.core.cards import Card
from bot.core.durations import format_duration
from bot.core.models import FeedState, Origin, platform_of
from bot.core.ports import FeedError, FetchStatus
from bot.feeds import FeedReader
from bot.runtime import make_reader
from config.settings import FeedEntry, Settings


def sample_card(now: datetime) -> Card:
    return Card(
        headline="newsbot check: test card",
        url=None,
        source="newsbot check",
        published=now,
        summary=(
            "If you can read this card, newsbot can post its alerts in this channel. "
            "It was sent by `newsbot check --send`; nothing else will follow it."
        ),
        matched=(),
        channel="",
        watchlists=("newsbot check",),
    )


def configured_channels(settings: Settings) -> dict[str, list[str]]:
    """Every channel the config file posts to (watchlists and ops channels), by platform, in
    the order written. Channels added in chat live in the database and are not checked."""
    channels: dict[str, list[str]] = {}
    named = [c for w in settings.watchlists for c in w.channels]
    named += ops_channels(settings)
    for channel in named:
        if channel and channel not in channels.get(platform_of(channel), []):
            channels.setdefault(platform_of(channel), []).append(channel)
    return channels


async def run_check(settings: Settings, out: TextIO, *, send: bool = False) -> int:
    """Print the table; 0 when every check passed, 1 otherwise."""
    now = datetime.now(UTC)
    channels = configured_channels(settings)
    card = sample_card(now) if send else None
    rows = [_config_row(settings, channels)]
    rows += await check_feeds(settings, now)
    for platform in PLATFORMS:
        # Each platform checks its own token and channels (none: it is not configured).
        name = platform.DESTINATION_FORM.platform
        rows += await platform.check(settings, channels.get(name, []), test_card=card)
    print_table(rows, out)
    return 0 if all(row.ok for row in rows) else 1


def _config_row(settings: Settings, channels: dict[str, list[str]]) -> Check:
    where = ", ".join(f"{len(v)} {k}" for k, v in sorted(channels.items())) or "none"
    return Check.passed(
        "config",
        "file",
        f"{settings.source}: {_count(len(settings.feeds), 'feed')}, "
        f"{_count(len(settings.watchlists), 'watchlist')}; channels: {where}",
    )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


async def check_feeds(settings: Settings, now: datetime) -> list[Check]:
    reader = make_reader(settings)  # the bot's own: its limits and its address guard
    try:
        return list(
            await asyncio.gather(
                *(
                    _check_feed(reader, settings, entry, n, now)
                    for n, entry in enumerate(settings.feeds)
                )
            )
        )
    finally:
        await reader.close()


async def _check_feed(
    reader: FeedReader, settings: Settings, entry: FeedEntry, number: int, now: datetime
) -> Check:
    # As the bot polls it: a feed from the config file may be a file:// or a private address.
    feed = FeedState(
        id=number,
        name=entry.name,
        url=entry.url,
        interval=settings.feed_interval(entry),
        origin=Origin.CONFIG,
    )
    fix = f'check the url of the feed named "{entry.name}" in {settings.source}, or remove it'
    result = await reader.fetch(feed)
    status = f"HTTP {result.http_status}" if result.http_status else "read"
    if result.status != FetchStatus.OK:
        code = result.http_status or 0
        if code >= 500 or code == 429:
            advice = "the publisher's server is failing; try again later (the bot retries it)"
        elif code:
            advice = f"the address is wrong or the feed moved: {fix}"
        else:
            advice = f"check that this machine can reach it (network, DNS, proxy); if so, {fix}"
        return Check.failed("feed", entry.name, f"{result.error or result.status}", advice)
    try:
        parsed = await reader.parse(result, entry.name)
    except FeedError as exc:
        return Check.failed(
            "feed",
            entry.name,
            f"{status}, but not a feed: {exc}",
            f"{fix} (the address must serve the RSS or Atom document itself)",
        )
    dates = [s.published for s in parsed.stories if s.published is not None]
    if not parsed.stories:
        return Check.passed("feed", entry.name, f"{status}, no items yet (nothing to alert)")
    newest = f"newest {_age(now - max(dates))} old" if dates else "items carry no dates"
    return Check.passed(
        "feed", entry.name, f"{status}, {_count(len(parsed.stories), 'item')}, {newest}"
    )


def _age(age: timedelta) -> str:
    if age < timedelta(0):
        return "0s (dated in the future)"
    return format_duration(age) if age >= timedelta(seconds=1) else "0s"


def print_table(rows: Sequence[Check], out: TextIO) -> None:
    """CHECK / NAME / RESULT / DETAIL, one row each; a failure's fix on the line below it."""
    kind_width = max([len("CHECK"), *(len(r.kind) for r in rows)])
    name_width = min(max([len("NAME"), *(len(r.name) for r in rows)]), 40)
    print(f"{'CHECK':<{kind_width}}  {'NAME':<{name_width}}  RESULT  DETAIL", file=out)
    for row in rows:
        name = row.name if len(row.name) <= name_width else row.name[: name_width - 1] + "…"
        result = "ok" if row.ok else "FAIL"
        print(
            f"{row.kind:<{kind_width}}  {name:<{name_width}}  {result:<6}  {row.detail}", file=out
        )
        if not row.ok and row.fix:
            print(f"{'':<{kind_width}}  {'':<{name_width}}  {'':<6}  -> {row.fix}", file=out)
    failed = [r for r in rows if not r.ok]
    if not failed:
        print(f"\nall {len(rows)} checks passed", file=out)
        return
    names = ", ".join(
        r.name if r.name.startswith(f"{r.kind}:") else f"{r.kind} {r.name}" for r in failed
    )
    print(f"\n{len(failed)} of {len(rows)} checks failed: {names}", file=out)
