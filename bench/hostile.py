"""Hostile queries: what the worst NEAR a person may still write costs per story.

    .venv/bin/python -m bench hostile

The review's shape within today's limits: NEAR/100 with 10 of the commonest words on each side,
against stories of about 19,000 characters of those words (every position is a hit). The
baseline is the NEAR of the first stretch: every occurrence of one side compared with every
occurrence of the other, pair by pair (it cost 0.56 s per query per story with 49 words a side).
Both run over the same scan of the story, so the difference is the NEAR algorithm alone.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from bot.core import matcher as matcher_module
from bot.core.matcher import Matcher
from bot.core.query import MAX_NEAR_TERMS, parse_query

COMMON = (  # noqa: SIM905 - a word list reads best as lines of words
    "the of and to a in is it you that he was for on are with as his they be at one have this "
    "from or had by but what some we can out other were all there when up use your how said"
).split()
QUERIES = (1, 10, 50)
STORIES = 3
WORDS = 4800  # about 19,000 characters


@dataclass(frozen=True, slots=True)
class Story:
    title: str
    content: str
    categories: tuple[str, ...] = ()
    feed: str = "Wire"


def _pairwise_close(self, scan):  # the first stretch's NEAR, kept here as the baseline
    left = [span for t in self.left for span in scan.spans(t.term, t.mask)]
    right = [span for t in self.right for span in scan.spans(t.term, t.mask)]
    close = []
    for a in left:
        for b in right:
            if a[0] == b[0] and a != b and max(b[1] - a[2], a[1] - b[2]) - 1 <= self.distance:
                close += (a, b)
    return tuple(close)


def _time(matcher: Matcher[int], stories: list[Story]) -> float:
    started = time.perf_counter()
    for story in stories:
        matcher.match(story)
    return (time.perf_counter() - started) / len(stories)


def run(quick: bool = False) -> str:
    rng = random.Random(20261203)
    stories = [
        Story(f"t{i}", " ".join(rng.choice(COMMON) for _ in range(WORDS))) for i in range(STORIES)
    ]
    lines = [
        f"{STORIES} stories of {len(stories[0].content):,} characters; each query is "
        f"({MAX_NEAR_TERMS} common words) NEAR/100 ({MAX_NEAR_TERMS} common words), all different.",
        "",
        "| queries | now, per story | pair-by-pair baseline, per story | baseline / now |",
        "|---:|---:|---:|---:|",
    ]
    for count in QUERIES[:2] if quick else QUERIES:
        queries = []
        for i in range(count):
            left, right = rng.sample(COMMON, MAX_NEAR_TERMS), rng.sample(COMMON, MAX_NEAR_TERMS)
            queries.append((i, parse_query(f"({', '.join(left)}) NEAR/100 ({', '.join(right)})")))
        now = _time(Matcher(queries), stories)
        fast = matcher_module._NearTest._close
        matcher_module._NearTest._close = _pairwise_close  # type: ignore[method-assign]
        try:
            naive = _time(Matcher(queries), stories[:1])
        finally:
            matcher_module._NearTest._close = fast  # type: ignore[method-assign]
        lines.append(
            f"| {count} | {now * 1000:,.1f} ms | {naive * 1000:,.0f} ms | {naive / now:,.0f}x |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(run())
