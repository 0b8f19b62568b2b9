"""The writing process alone: ingest of 1,000 parsed documents, against feedparser reading them.

    .venv/bin/python -m bench ingest [--quick]

On a first poll the bot's one writing process (identity lookups, near-duplicate checks, the
plan, the SQLite writes) is the part that cannot spread over the cores; the full benchmarks
(`bench formulaic`, `bench pipeline`) measure it together with fetching, the parse workers and
a feed server sharing the machine, and vary by several seconds from run to run. This one takes
those out: the documents of the benchmark's feeds, formulaic and ordinary, are parsed up front
(as the parse workers would, `parse_items`), then a real NewsBot (temporary SQLite file, 100
watchlists) ingests all of them through `Pipeline.ingest`, 96 at a time as polls would arrive.
Its process CPU is the writing process's work. The naive baseline, in the same run: the same
bodies read by `feedparser.parse` in a plain loop (no network either)."""

from __future__ import annotations

import asyncio
import gc
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import feedparser

from bench.common import machine
from bench.feedserver import FeedSet
from bench.formulaic import bench_watchlists
from bench.harness import Harness, bot_settings
from bot.core.ports import ParsedFeed, PollOutcome
from bot.feeds.items import parse_items

FEEDS, QUICK_FEEDS = 1000, 100
PUBLISHERS = 40
AT_ONCE = 96  # polls in flight, as [fetch] concurrency plus the ingest backlog allow


def run(quick: bool = False) -> str:
    return asyncio.run(_run(QUICK_FEEDS if quick else FEEDS))


async def _run(count: int) -> str:
    started = time.perf_counter()
    lines = [f"Machine: {machine()}.", ""]
    lines.append("| documents | items | writer: wall | writer: CPU | stories | naive CPU | ratio |")
    lines.append("|---|--:|--:|--:|--:|--:|--:|")
    for label, formulaic in (("formulaic", True), ("ordinary", False)):
        feeds = FeedSet(count, PUBLISHERS, datetime.now(UTC), formulaic=formulaic)
        bodies = [feed.body for feed in feeds.feeds]
        wall, cpu, stories, items = await _ingest(bodies)
        naive = _naive(bodies)
        lines.append(
            f"| {count:,} {label} | {items:,} | {wall:,.2f} s | {cpu:,.2f} s | {stories:,} | "
            f"{naive:,.2f} s | {cpu / naive:.2f} |"
        )
    lines += [
        "",
        "Writer: `Pipeline.ingest` of the parsed documents (process CPU: the event loop, the "
        "planner's thread and SQLite's). Naive: `feedparser.parse(body)` of the same bodies in "
        "turn. Ratio: writer CPU / naive CPU.",
        f"Whole benchmark: {time.perf_counter() - started:,.0f} s.",
    ]
    return "\n".join(lines)


async def _ingest(bodies: list[bytes]) -> tuple[float, float, int, int]:
    names = [f"feed-{i:04d}" for i in range(len(bodies))]
    parsed = [
        parse_items(body, feed_name=name, url=f"https://example.org/{name}").parsed
        for body, name in zip(bodies, names, strict=True)
    ]
    with tempfile.TemporaryDirectory(prefix="newsbot-bench-") as tmp:
        feeds = [(name, f"http://127.0.0.1:9/{name}") for name in names]
        settings = bot_settings(str(Path(tmp) / "newsbot.db"), feeds, bench_watchlists())
        async with Harness(settings) as harness:
            storage = harness.bot.storage
            assert storage is not None
            states = {feed.name: feed for feed in await storage.list_feeds()}
            slots = asyncio.Semaphore(AT_ONCE)

            async def one(name: str, document: ParsedFeed) -> None:
                async with slots:
                    await harness.bot.pipeline.ingest(
                        states[name], document.stories, PollOutcome(ok=True), document.identity
                    )

            gc.collect()
            wall, cpu = time.perf_counter(), time.process_time()
            await asyncio.gather(*map(one, names, parsed))
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            stories = await storage.count_stories()
    return wall, cpu, stories, sum(len(p.stories) for p in parsed)


def _naive(bodies: list[bytes]) -> float:
    cpu = time.process_time()
    for body in bodies:
        feedparser.parse(body)
    return time.process_time() - cpu
