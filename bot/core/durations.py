"""Human durations as written in the config and in chat: "90s", "2m", "1h30m", "30d"."""

from __future__ import annotations

import re
from datetime import timedelta

_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str | int | float | timedelta) -> timedelta:
    """Parse "90s", "2m", "1h", "1h30m", "30d"; a bare number means seconds.

    Raises ValueError with a message that says what a valid value looks like."""
    if isinstance(text, timedelta):
        return text
    if isinstance(text, bool):
        raise ValueError("expected a duration such as 90s, 2m, 1h or 30d")
    if isinstance(text, int | float):
        if text < 0:
            raise ValueError("a duration cannot be negative")
        return timedelta(seconds=text)
    raw = text.strip().lower()
    if not raw:
        raise ValueError("expected a duration such as 90s, 2m, 1h or 30d, got an empty value")
    if re.fullmatch(r"\d+(\.\d+)?", raw):
        return timedelta(seconds=float(raw))
    total = 0.0
    pos = 0
    for m in _PART.finditer(raw):
        if raw[pos : m.start()].strip():
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos == 0 or raw[pos:].strip():
        raise ValueError(f"invalid duration {text!r}: use e.g. 90s, 2m, 1h or 30d")
    return timedelta(seconds=total)


def format_duration(value: timedelta) -> str:
    """The short form people write: 90s -> "1m30s", 86400s -> "1d"."""
    seconds = int(value.total_seconds())
    if seconds <= 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
