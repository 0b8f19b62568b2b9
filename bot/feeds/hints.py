"""What a document and its server say about how often to poll it: RSS 2.0's <ttl>,
<skipHours> and <skipDays>, and HTTP's Cache-Control max-age.

Read with a few bounded scans of the channel's head (everything before its first item), not
by the parser: the parse worker's output is the stories, and these three
elements are at the top of the channel when a feed has them. Hostile values come out as
nothing (a ttl of -5, an hour of 99, a day named "Caturday"); what is kept is clamped later,
by bot.core.polling, which says so in the feed's status."""

from __future__ import annotations

import re
from datetime import timedelta

from bot.core.polling import LONGEST_HINT, FeedHints

# The channel's head is read up to its first item, and at most this much of it.
HEAD_BYTES = 64 * 1024
# A <skipHours> or <skipDays> block is read up to this long (24 hours take ~350 bytes).
BLOCK_BYTES = 4000
_HOUR = re.compile(rb"<hour\s*>\s*([^<]{0,20}?)\s*</hour\s*>", re.IGNORECASE)
_DAY = re.compile(rb"<day\s*>\s*([^<]{0,20}?)\s*</day\s*>", re.IGNORECASE)
_DAYS = {
    name: index
    for index, name in enumerate(
        (b"monday", b"tuesday", b"wednesday", b"thursday", b"friday", b"saturday", b"sunday")
    )
}
_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?([0-9]{1,15})\"?\s*(?:,|$)", re.IGNORECASE)


def document_hints(body: bytes) -> FeedHints:
    # Scanned with find, not regular expressions: a head of a thousand unclosed openers must
    # cost one pass (a few hundred microseconds for 64 KB of them).
    head = body[:HEAD_BYTES]
    # XML names are case-sensitive: RSS and Atom items are <item> and <entry> exactly.
    item = head.find(b"<item")
    entry = head.find(b"<entry", 0, item if item >= 0 else len(head))
    cut = entry if entry >= 0 else item
    if cut >= 0:
        head = head[:cut]
    head = head.lower()  # but publishers write <skiphours> and <SkipDays> too
    return FeedHints(ttl=_ttl(head), skip_hours=_hours(head), skip_days=_days(head))


def _block(head: bytes, name: bytes, limit: int = BLOCK_BYTES) -> bytes:
    """The text of the channel's first <name> element (`head` is in lower case)."""
    start = head.find(b"<" + name + b">")
    if start < 0:
        return b""
    start += len(name) + 2
    end = head.find(b"</" + name, start, start + limit)
    return head[start:end] if end >= 0 else b""


def _ttl(head: bytes) -> timedelta | None:
    text = _block(head, b"ttl", 40).strip()
    if not re.fullmatch(rb"[0-9]{1,12}", text):
        return None  # "-5", "soon", "1e9", nothing: no hint
    minutes = int(text)
    if minutes <= 0:
        return None
    return min(timedelta(minutes=min(minutes, 10**9)), LONGEST_HINT)


def _hours(head: bytes) -> frozenset[int]:
    hours = set()
    for value in _HOUR.findall(_block(head, b"skiphours")):
        value = value.strip()
        if re.fullmatch(rb"[0-9]{1,2}", value) and int(value) <= 24:
            hours.add(int(value) % 24)  # some feeds write 1-24: 24 is midnight
    return frozenset(hours)


def _days(head: bytes) -> frozenset[int]:
    return frozenset(
        _DAYS[value.strip()]
        for value in _DAY.findall(_block(head, b"skipdays"))
        if value.strip() in _DAYS
    )


def max_age(cache_control: str | None) -> float | None:
    """Cache-Control's max-age in seconds; None when absent or not a number."""
    if not cache_control:
        return None
    found = _MAX_AGE.search(cache_control)
    return None if found is None else float(found.group(1))
