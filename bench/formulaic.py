"""First poll of 1,000 formulaic feeds: a real NewsBot against the naive feedparser loop.

    .venv/bin/python -m bench formulaic [--quick]

Formulaic feeds (earthquake bulletins, market closes, match results: a vocabulary of a few
dozen words and numbers) are the worst case for near-duplicate detection: most word pairs of
a bulletin occur in many others, so a new bulletin shares MinHash bands with a large share of
the stored ones. Issue 13: every such candidate used to be loaded and verified, and the first
poll of 1,000 such feeds x 50 items did not finish in 15 minutes.

What runs: bench/feedserver.py in a child process serves the feeds (50 short items each, on 40
"publisher" ports of 127.0.0.1, gzip); a real NewsBot (temporary SQLite file, 100 watchlists
over 10 console channels) runs `run_once()` once: every feed new. Right after it, in the same
run and against the same server, the naive loop: `feedparser.parse(url)` for each feed in turn
(urllib, no concurrency). Wall and CPU time of both; the bot's CPU counts every thread of its
process, the server's is not counted."""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from pathlib import Path

from bench.common import console_channel, feed_name, machine
from bench.feedserver import FeedServerProcess
from bench.harness import Harness, bot_settings
from bench.pipeline import naive_cycle

FEEDS, QUICK_FEEDS = 1000, 100
PUBLISHERS = 40
WATCHLISTS = (
    '"Nasdaq" AND falls',
    "Ridgecrest",
    '"magnitude 6*"',
    "Rovers AND United",
    "Tokyo OR Manila",
    "Dow -Friday",
)


def bench_watchlists() -> list[tuple[str, str, list[str]]]:
    """100 watchlists of the formulaic vocabulary over 10 console channels."""
    return [
        (f"watch-{i:03d}", WATCHLISTS[i % len(WATCHLISTS)], [console_channel(i, 10)])
        for i in range(100)
    ]


def run(quick: bool = False) -> str:
    return asyncio.run(_run(QUICK_FEEDS if quick else FEEDS))


async def _run(count: int) -> str:
    started = time.perf_counter()
    lines: list[str] = []
    say = lines.append
    server = FeedServerProcess(count, PUBLISHERS, formulaic=True).start()
    try:
        info = server.info()
        urls = server.urls()
        publishers: list[int] = info["publishers"]  # type: ignore[assignment]
        feeds = [(feed_name(i, p), urls[i]) for i, p in enumerate(publishers)]
        watchlists = bench_watchlists()
        order = list(range(len(urls)))
        random.Random(7).shuffle(order)
        with tempfile.TemporaryDirectory(prefix="newsbot-bench-") as tmp:
            settings = bot_settings(str(Path(tmp) / "newsbot.db"), feeds, watchlists)
            async with Harness(settings) as harness:
                cycle = await harness.cycle("every feed new")
                assert harness.bot.storage is not None
                stories = await harness.bot.storage.count_stories()
            naive = naive_cycle(urls, order, len(urls))
    finally:
        server.stop()
    mb = info["bytes_total"] / 1e6  # type: ignore[operator]
    say(f"Machine: {machine()}.")
    say(
        f"Feeds: {count:,} formulaic feeds x 50 items ({mb:.1f} MB of RSS), "
        f"on {PUBLISHERS} publisher ports; vocabulary of a few dozen words and numbers."
    )
    say("")
    say("| first poll of every feed | wall | CPU | items | stories recorded | errors |")
    say("|---|--:|--:|--:|--:|--:|")
    say(
        f"| NewsBot.run_once() | {cycle.wall:,.2f} s | {cycle.cpu:,.2f} s | "
        f"{count * 50:,} | {stories:,} | {len(cycle.errors)} |"
    )
    say(
        f"| naive: feedparser.parse(url) per feed in turn | {naive.wall:,.2f} s | "
        f"{naive.cpu:,.2f} s | {naive.entries:,} | - | - |"
    )
    say("")
    ratio = cycle.wall / naive.wall if naive.wall else float("inf")
    verdict = "met" if ratio <= 1.0 else "NOT met"
    say(f"Bot wall / naive wall = {ratio:.2f} (target: at most 1.0): {verdict}.")
    say(f"Whole benchmark: {time.perf_counter() - started:,.0f} s.")
    return "\n".join(lines)
