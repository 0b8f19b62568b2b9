"""The cycle collector's thresholds for the bot's processes (the bot and its parse workers).

CPython collects cycles after every 700 new containers and rescans the older generations every
10 and 100 collections. The bot keeps a large long-lived heap (stories' fingerprints, parse
memos, query books) and makes millions of short-lived tuples on a first poll: at the defaults,
collecting was about a sixth of the writing process's CPU on a first poll of 1,000 formulaic
feeds (issue 13), and a parse worker spent a tenth of its time there too. Reference counting
frees almost everything the bot drops; these thresholds only make the cycle collector's
passes rarer.

The young generation stays small enough that one pass is short: on that first poll, 10,000 /
20 / 100 cost as little CPU as 50,000 / 20 / 100 (about 0.8 s of collecting in all, against
3.1 s at the defaults) with the longest pause 68 ms instead of 188 ms; at the defaults, full
collections of the large heap paused the event loop up to 324 ms."""

from __future__ import annotations

import gc

THRESHOLDS = (10_000, 20, 100)


def tune_garbage_collector() -> None:
    """Rarer cycle collections (THRESHOLDS); never lowers a threshold already set higher."""
    current = gc.get_threshold()
    gc.set_threshold(*(max(a, b) for a, b in zip(current, THRESHOLDS, strict=True)))
