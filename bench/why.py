"""How long /why takes on a full week: a SQLite database holding STORIES stories first seen over
the last seven days (the window headline words are looked for in), WATCHLISTS watchlists, a card
for one story in ten. Asked by link (one key look-up) and by headline words (a scan of the
week's headlines, off the event loop), as an admin (every watchlist's query is judged).

    .venv/bin/python -m bench.why            # about a minute, most of it filling the database

Wall time, best of ROUNDS; printed, never asserted."""

from __future__ import annotations

import asyncio
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.core.explain import Viewer, WhySettings, explain
from bot.core.identity import strong_keys
from bot.core.models import FeedSpec, Story
from bot.core.pipeline import IngestPlan, NewStory, PlannedDelivery, PlannedKey
from bot.core.ports import PollOutcome
from bot.core.routing import Route
from storage.sqlite import SqliteStorage

STORIES = 50_000
WATCHLISTS = 200
ROUNDS = 5
BATCH = 1000
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
WORDS = [
    "flood",
    "storm",
    "election",
    "budget",
    "minister",
    "court",
    "strike",
    "market",
    "talks",
    "summit",
    "missile",
    "border",
    "police",
    "trial",
    "vote",
    "rates",
    "inflation",
    "energy",
    "health",
    "school",
    "river",
    "fire",
    "wind",
    "port",
    "rail",
]


def _story(n: int) -> Story:
    a, b, c = WORDS[n % len(WORDS)], WORDS[(n // 7) % len(WORDS)], WORDS[(n // 49) % len(WORDS)]
    title = f"{a.title()} {b} {c} report number {n}"
    return Story(
        feed="Wire",
        title=title,
        link=f"https://wire.example/{n}",
        guid=f"g{n}",
        summary=title,
        content=f"{title}. Officials said more would follow on {b} and {c}.",
        published=NOW,
    )


async def _fill(store: SqliteStorage) -> None:
    await store.sync_config_feeds([FeedSpec("Wire", "https://wire.example/rss", timedelta(1))], NOW)
    await store.sync_config_watchlists(
        [
            (f"W{i}", f"{WORDS[i % len(WORDS)]} AND NOT {WORDS[(i + 3) % len(WORDS)]}", ["x:c"])
            for i in range(WATCHLISTS)
        ],
        NOW,
    )
    feed = await store.get_feed("Wire")
    assert feed is not None
    step = timedelta(days=7) / STORIES
    for start in range(0, STORIES, BATCH):
        plan = IngestPlan()
        for i in range(start, min(start + BATCH, STORIES)):
            ref = -(i - start + 1)
            story = _story(i)
            plan.new_stories.append(NewStory(ref, story, True))
            plan.keys.extend(
                PlannedKey(ref, k) for k in strong_keys(story, feed.id, guid_unique=True)
            )
            if i % 10 == 0:
                plan.deliveries.append(
                    PlannedDelivery(ref, Route("x:c", ("W0",), None, ("flood",)))
                )
        seen = NOW - timedelta(days=7) + step * (start + BATCH)
        await store.apply_ingest(feed, plan, PollOutcome(ok=True), seen)


async def _best(store: SqliteStorage, asked: str) -> tuple[float, str]:
    times = []
    reply = None
    for _ in range(ROUNDS):
        started = time.perf_counter()
        reply = await explain(store, asked, Viewer("x:admin", admin=True), WhySettings(), NOW)
        times.append(time.perf_counter() - started)
    assert reply is not None
    return min(times), reply.text


async def _run() -> str:
    with tempfile.TemporaryDirectory() as folder:
        store = await SqliteStorage.open(Path(folder) / "why.db")
        try:
            started = time.perf_counter()
            await _fill(store)
            filled = time.perf_counter() - started
            link, by_link = await _best(store, "https://wire.example/31337?utm_source=x")
            words, by_words = await _best(store, "flood budget report 31337")
            missing, nothing = await _best(store, "zebra giraffe")
        finally:
            await store.close()
    return "\n".join(
        [
            f"{STORIES:,} stories over 7 days, {WATCHLISTS} watchlists (filled in {filled:.0f} s)",
            f"by link:            {link * 1000:7.1f} ms  ({by_link[:60]})",
            f"by headline words:  {words * 1000:7.1f} ms  ({by_words[:60]})",
            f"words found nowhere:{missing * 1000:7.1f} ms  ({nothing[:60]})",
        ]
    )


def run() -> str:
    return asyncio.run(_run())


if __name__ == "__main__":
    print(run())
