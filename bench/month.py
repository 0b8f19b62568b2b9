"""The simulated month, in two child processes started by bench.pipeline:

    python -m bench.month populate SPEC.json   # the poll run's database + a month of history
    python -m bench.month measure SPEC.json    # the bot resumes on it: cycles, /recent, RSS

Each prints one JSON line of results. `measure` runs in a fresh process so that its peak RSS
(VmHWM) is the bot's alone, not the population's.
"""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import sqlite3
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import corpus
from bench.common import console_channel, files_mb, peak_rss_mb, percentile, workers_peak_rss_mb
from bench.feedserver import FeedServerClient
from bench.harness import Harness, bot_settings
from bot.core.commands import Actor
from bot.core.identity import fuzzy_keys, strong_keys
from bot.core.models import Story, dm_target
from bot.core.pipeline import IngestPlan, NewStory, PlannedDelivery, PlannedKey
from bot.core.ports import PollOutcome
from bot.core.routing import Route
from bot.core.text import summarise, truncate
from storage.sqlite import SqliteStorage

BATCH = 100  # stories per apply_ingest (one feed's poll, generously sized)
DAYS = 30  # the default [storage].retention
DELIVERIES = (0, 0, 1, 1, 1, 2, 2, 5)  # cards per story, drawn: 1.5 on average
SUBSCRIPTIONS_PER_USER = 5


def _rss_now_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _story(
    feed: str, index: int, serial: int, style: str, rng: random.Random, when: datetime
) -> Story:
    c = corpus.load()
    title = corpus.splice_title(c, rng)
    lead = corpus.description(c, rng, 1 if style == "short" else rng.randint(1, 3))
    if style == "long":
        content = truncate(" ".join(corpus.full_text(c, rng, rng.randint(3, 8))), 20_000)
    else:
        content = lead
    link = f"https://www.publisher{index % 40:02d}.example/news/{index}/story-{serial}"
    return Story(
        feed=feed,
        title=title,
        link=link,
        guid=link if index % 2 == 0 else f"p{index:04d}x{serial:07d}",
        summary=summarise(lead),
        content=content,
        published=when - timedelta(minutes=rng.randint(1, 90)),
        author=rng.choice(c.authors) if style != "short" else None,
        categories=tuple(rng.sample(c.categories, 2)) if style != "short" else (),
        image=f"https://www.publisher{index % 40:02d}.example/img/{serial}.jpg"
        if style != "short"
        else None,
    )


async def populate(spec: dict[str, Any]) -> dict[str, Any]:
    """Adds a month of history to a copy of the poll run's database: that one already holds the
    feeds (with their ETags, dates and hashes) and the stories they carry now, so the bot
    resumes on it as after a restart, not as on its very first poll."""
    started = time.perf_counter()
    rng = random.Random(30)
    storage = await SqliteStorage.open(spec["db"])
    now = datetime.now(UTC)
    start = now - timedelta(days=DAYS) + timedelta(hours=1)
    feeds = await storage.list_feeds()
    before = await storage.count_stories()
    positions = {name: i for i, (name, _) in enumerate(spec["feeds"])}
    styles = {f.id: rng.choices(("short", "medium", "long"), (0.4, 0.4, 0.2))[0] for f in feeds}
    in_file = len(spec["config_watchlists"])
    chat_watchlists, subscriptions = spec["watchlists"] - in_file, spec["subscriptions"]
    queries = corpus.make_queries(chat_watchlists + subscriptions, seed=2)
    # Made in chat (the database owns them), as most would be in a newsroom with this many.
    for i in range(chat_watchlists):
        await storage.add_watchlist(
            f"desk-watch-{i:05d}",
            queries[i],
            [console_channel(i, spec["channels"])],
            "bench",
            start,
        )
    users = max(1, subscriptions // SUBSCRIPTIONS_PER_USER)
    for j in range(subscriptions):
        await storage.add_subscription(
            f"console:user{j % users:05d}", queries[chat_watchlists + j], start
        )

    total = spec["stories"]
    batches = -(-total // BATCH)
    span = (now - timedelta(minutes=1)) - start
    fuzzy_from = now - timedelta(hours=48)
    serial = deliveries = keys = 0
    for b in range(batches):
        feed = feeds[b % len(feeds)]
        when = start + span * (b / batches)
        plan = IngestPlan()
        for k in range(min(BATCH, total - b * BATCH)):
            serial += 1
            ref = -(k + 1)
            story = _story(feed.name, positions[feed.name], serial, styles[feed.id], rng, when)
            plan.new_stories.append(NewStory(ref, story, alertable=True))
            story_keys = strong_keys(story, feed.id, guid_unique=True)
            if when >= fuzzy_from:
                story_keys += fuzzy_keys(story)
            plan.keys.extend(PlannedKey(ref, key) for key in story_keys)
            term = story.title.split()[0] if story.title.split() else story.title
            targets: set[str] = set()
            for _ in range(rng.choice(DELIVERIES)):
                if rng.random() < 0.7:
                    w = rng.randrange(chat_watchlists)
                    route = Route(
                        console_channel(w, spec["channels"]),
                        (f"desk-watch-{w:05d}",),
                        None,
                        (term,),
                    )
                else:
                    user = f"console:user{rng.randrange(users):05d}"
                    route = Route(dm_target(user), (), user, (term,))
                if route.target not in targets:
                    targets.add(route.target)
                    plan.deliveries.append(PlannedDelivery(ref, route))
            deliveries += len(targets)
            keys += len(story_keys)
        # The feed's own fetch state stays as the poll run left it (ETag, date, body hash).
        outcome = PollOutcome(
            ok=True, etag=feed.etag, last_modified=feed.last_modified, body_hash=feed.body_hash
        )
        await storage.apply_ingest(feed, plan, outcome, when)
    await storage.close()
    # The worker would have sent them: one plain UPDATE instead of a million mark_sent calls.
    with sqlite3.connect(spec["db"]) as db:
        db.execute(
            "UPDATE deliveries SET status = 'sent', sent_at = created_at + 2, "
            "message_id = 'console:' || id WHERE status = 'pending'"
        )
    db.close()
    storage = await SqliteStorage.open(spec["db"])
    await storage.prune(
        now, stories=timedelta(days=DAYS), keys=timedelta(days=365), window=timedelta(hours=48)
    )
    stories = await storage.count_stories()
    await storage.close()
    return {
        "seconds": time.perf_counter() - started,
        "stories": stories,
        "history": stories - before,
        "current": before,
        "watchlists": spec["watchlists"],
        "chat_watchlists": chat_watchlists,
        "subscriptions": subscriptions,
        "deliveries": deliveries,
        "deliveries_per_story": deliveries / max(1, total),
        "keys": keys,
        "batch": BATCH,
        "db_mb": files_mb(spec["db"]),
        "populate_peak_rss_mb": peak_rss_mb(),
    }


async def measure(spec: dict[str, Any]) -> dict[str, Any]:
    server = FeedServerClient(spec["ports"])
    settings = bot_settings(
        spec["db"],
        [tuple(f) for f in spec["feeds"]],
        [tuple(w) for w in spec["config_watchlists"]],
    )
    cycles = []
    async with Harness(settings, keep_lines=False) as harness:
        bot = harness.bot
        await bot.query_book()
        rss_after_open = _rss_now_mb()
        for name, change in (
            ("every feed 304 / unchanged", False),
            ("10% of feeds changed", True),
        ):
            if change:
                server.change(0.10)
            c = await harness.cycle(name)
            cycles.append(
                {
                    "name": name,
                    "wall": c.wall,
                    "cpu": c.cpu,
                    "lag_p99": percentile(c.lag, 99),
                    "lag_max": max(c.lag, default=0.0),
                    "new": c.new,
                    "alerts": c.alerts,
                    "errors": len(c.errors),
                }
            )
        assert bot.commands is not None and bot.storage is not None
        actor = Actor("console", "bench")
        timings, query_timings = [], []
        reply = None
        for _ in range(5):
            t = time.perf_counter()
            reply = await bot.commands.recent(actor)
            timings.append(time.perf_counter() - t)
        for _ in range(5):
            t = time.perf_counter()
            await bot.commands.recent(actor, "Putin")
            query_timings.append(time.perf_counter() - t)
        since = datetime.now(UTC) - timedelta(hours=24)
        rows = sum((await bot.storage.stories_per_feed(since)).values())
        stories = await bot.storage.count_stories()
        workers = workers_peak_rss_mb()
    return {
        "cycles": cycles,
        "rss_after_open_mb": rss_after_open,
        "peak_rss_mb": peak_rss_mb(),
        "workers_peak_rss_mb": workers,
        "recent_calls": len(timings),
        "recent_p50": percentile(timings, 50),
        "recent_min": min(timings),
        "recent_max": max(timings),
        "recent_query_p50": percentile(query_timings, 50),
        "recent_rows": rows,
        "recent_reply": reply.text if reply else "",
        "stories": stories,
        "db_mb": files_mb(spec["db"]),
    }


def main() -> None:
    command, path = sys.argv[1], sys.argv[2]
    spec = json.loads(Path(path).read_text())
    if command == "populate":
        for suffix in ("", "-wal"):
            source = Path(spec["source_db"] + suffix)
            if source.exists():
                shutil.copyfile(source, spec["db"] + suffix)
    action = {"populate": populate, "measure": measure}[command]
    print(json.dumps(asyncio.run(action(spec))))


if __name__ == "__main__":
    main()
