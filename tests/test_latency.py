"""The latency a desk feels (issue 17), through a real NewsBot on SQLite with the console: one
story carried by two feeds polled at different (injected) times, and hostile publish dates. What
is asserted is what the desk sees: the cards, /metrics scraped over HTTP, and /feed list."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime, timedelta

import aiohttp

from bot.app import NewsBot
from bot.core.replies import Actor
from config.settings import settings_from_dict
from tests.feedgen import Item, rss

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
T1 = T0 + timedelta(minutes=10)  # wire A lists the story
T2 = T1 + timedelta(seconds=95)  # wire B lists it too
ADMIN = Actor("console", "1", "editor", is_admin=True)

OLD = Item(
    "Putin decree of 2009 back in the news",
    "x",
    "https://news.example/old",
    "old",
    datetime(2009, 1, 1, tzinfo=UTC),
)
SHARED = "Putin meets Kim in Vladivostok"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def metric(text: str, name: str, feed: str | None = None) -> float | None:
    labels = f'{{feed="{feed}"}}' if feed is not None else ""
    found = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else None


async def test_two_feeds_one_story_give_per_feed_latency_and_who_was_first(tmp_path, feed_server):
    clock = Clock(T0)
    out = io.StringIO()
    settings = settings_from_dict(
        {
            "storage": {"path": str(tmp_path / "bot.db")},
            "console": {"format": "jsonl"},
            "http": {"enabled": True, "port": 0},
            "feeds": [
                {"name": "Wire A", "url": feed_server.url("a.xml")},
                {"name": "Wire B", "url": feed_server.url("b.xml")},
            ],
            "watchlists": [{"name": "Putin", "query": "Putin", "channels": ["console:desk"]}],
        },
        {},
    )
    # Baselines: A already lists a story dated 2009 (recorded, never alerted).
    feed_server.set("a.xml", rss([OLD]))
    feed_server.set("b.xml", rss([Item("Weather", "sunny", "https://b.example/w", "w", T0)]))
    async with NewsBot(settings, stdout=out, clock=clock) as bot:
        assert await bot.ops.start("127.0.0.1", 0)
        feeds = {f.name: f for f in await bot.storage.list_feeds()}
        for feed in feeds.values():
            await bot._poll(feed)

        # A lists the story 40 s after it was published, and one dated three hours ahead.
        clock.now = T1
        feed_server.set(
            "a.xml",
            rss(
                [
                    OLD,
                    Item(
                        SHARED,
                        "talks",
                        "https://news.example/summit",
                        "a-1",
                        T1 - timedelta(seconds=40),
                    ),
                    Item(
                        "Putin future",
                        "x",
                        "https://news.example/future",
                        "a-2",
                        T1 + timedelta(hours=3),
                    ),
                ]
            ),
        )
        await bot._poll(await bot.storage.get_feed("Wire A"))
        clock.now = T1 + timedelta(seconds=2)
        await bot.worker.drain()

        # 95 s later B lists it too, and stamps every item with the time it was fetched; it
        # also carries the 2009 story with a fresh date, which alerts the stored story.
        clock.now = T2
        feed_server.set(
            "b.xml",
            rss(
                [
                    Item(SHARED, "talks", "https://news.example/summit", "b-1", T2),
                    Item("Putin speech", "y", "https://b.example/speech", "b-2", T2),
                    Item(OLD.title, "x", OLD.link, "b-3", T2),
                ]
            ),
        )
        await bot._poll(await bot.storage.get_feed("Wire B"))
        clock.now = T2 + timedelta(seconds=1)
        await bot.worker.drain()

        cards = [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]
        assert sorted(c["title"] for c in cards) == sorted(
            [SHARED, "Putin future", "Putin speech", OLD.title]
        )  # the shared story once

        url = f"http://127.0.0.1:{bot.ops.port}/metrics"
        async with aiohttp.ClientSession() as http, http.get(url) as response:
            text = await response.text()
        seen = "newsbot_feed_alert_delay_from_first_seen_seconds_count"
        published = "newsbot_feed_alert_delay_from_published_seconds"
        # A's cards: the shared story, the future-dated one, the 2009 one; B's: its speech.
        assert metric(text, seen, "Wire A") == 3
        assert metric(text, seen, "Wire B") == 1
        # Only the shared story's publish time is credible: 40 s + 2 s to its card.
        assert metric(text, published + "_count", "Wire A") == 1
        assert metric(text, published + "_sum", "Wire A") == 42
        assert metric(text, published + "_count", "Wire B") is None
        assert metric(text, "newsbot_alert_delay_from_published_seconds_count") == 1
        assert metric(text, "newsbot_alert_delay_from_first_seen_seconds_count") == 4
        # The shared story: A first, 95 s ahead of B. The 2009 one is not compared (A saw it
        # in its baseline poll, which says nothing of when A had it).
        assert metric(text, "newsbot_first_source_total", "Wire A") == 1
        assert metric(text, "newsbot_first_source_total", "Wire B") is None
        assert metric(text, "newsbot_first_source_lead_seconds_sum", "Wire A") == 95

        reply = await bot.commands.feed_list(ADMIN)
        assert "1 story carried by several feeds in 7 days" in reply.text
        assert "the latest was first on Wire A, 95 s ahead of Wire B" in reply.text
        lines = {item.text: item.detail for item in reply.items}
        assert (
            "median 42 s from publish, 2.0 s from first seen to card; "
            "first on 1 of 1 shared story (median lead 95 s)"
        ) in lines["Wire A"]
        assert (
            "median 1.0 s from first seen to card (no credible publish time); "
            "first on 0 of 1 shared story"
        ) in lines["Wire B"]
        await bot.ops.close()
