"""A hostile reporter: queries typed to crash or freeze the bot, through the real commands.

The real bot, discord.py and slack_bolt against the fakes; the real SQLite; a local feed server.
What is checked is what a desk sees: the refusal in chat, the card that still arrives, the one
notice in the ops channel, and what /status says."""

from __future__ import annotations

import asyncio
import io
import json
import random
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from xml.sax.saxutils import escape

import pytest

from bot.app import NewsBot
from bot.core.commands import MAX_SUBSCRIPTION_NEAR, MAX_SUBSCRIPTIONS
from bot.core.query import MAX_NEAR_TERMS
from config.settings import ConfigError, settings_from_dict
from tests.chat.discord import test_discord_e2e as discord_e2e
from tests.chat.discord.test_discord_e2e import CH_DESK, READER, Desk, Item, ops_notices
from tests.chat.slack import test_slack_e2e as slack_e2e
from tests.core.test_query_limits import COMMON

# The fixtures of the platforms' own end-to-end tests: a fake Discord and a desk on it, a fake Slack.
fake = discord_e2e.fake
desk_factory = discord_e2e.desk_factory
desk = discord_e2e.desk
slack_fake = slack_e2e.fake

pytestmark = pytest.mark.timeout(60)

# The review's query: accepted by /subscribe, then RecursionError in every poll, for good.
HOSTILE = "zzz " + "-" * 975 + "a"


async def subscriptions(desk: Desk) -> list[str]:
    assert desk.bot is not None and desk.bot.storage is not None
    return [s.query for s in await desk.bot.storage.list_subscriptions()]


async def test_a_query_nested_past_the_limit_is_refused_at_subscribe(desk: Desk) -> None:
    reply = await desk.invoke("subscribe", {"query": HOSTILE})
    assert reply.ephemeral
    text = reply.content or ""
    assert text.startswith("That query does not parse:")
    assert "Nested too deeply (more than 10 levels of parentheses and NOT) at column 15" in text
    assert "^" in text
    assert await subscriptions(desk) == []


async def test_the_same_query_is_refused_through_slack(tmp_path, slack_fake, feed_server) -> None:
    desk = slack_e2e.Desk(tmp_path, slack_fake, feed_server)
    try:
        await desk.start()
        reply = await slack_fake.slash_command(f"subscribe {HOSTILE}", user_id=slack_e2e.REPORTER)
        assert "Nested too deeply" in reply.text
        assert desk.sql("SELECT query FROM subscriptions") == []
    finally:
        await desk.stop()


async def test_a_stored_hostile_query_is_skipped_reported_once_and_every_other_alert_goes_out(
    desk: Desk, fake
) -> None:
    # A row written before the limit existed (or by hand): the matcher must leave it out.
    assert desk.bot is not None and desk.bot.storage is not None
    await desk.bot.storage.add_subscription(f"discord:{READER}", HOSTILE, desk.clock())
    ok = await desk.invoke("subscribe", {"query": "Severn"})
    assert "Subscribed" in (ok.content or "")

    await desk.publish(Item("Flood warning for the Severn", "f1"))
    [card] = fake.messages_in(CH_DESK)
    assert card.embeds[0]["title"] == "Flood warning for the Severn"
    [dm] = fake.dms_to(READER)  # the reader's other subscription still works
    assert dm.embeds[0]["title"] == "Flood warning for the Severn"
    [notice] = [n for n in ops_notices(fake) if "skipped" in n]
    assert f"subscription of discord:{READER}" in notice
    assert "Nested too deeply" in notice
    assert "Every other watchlist and subscription still alerts" in notice

    await desk.publish(Item("Second flood on the Severn", "f2"))
    assert len(fake.messages_in(CH_DESK)) == 2
    assert len([n for n in ops_notices(fake) if "skipped" in n]) == 1  # said once

    status = await desk.as_editor("status")
    assert "Skipped queries: 1 (they alert nobody until fixed)" in (status.content or "")
    assert f"Skipped: subscription of discord:{READER}" in (status.content or "")
    plain = await desk.invoke("status")  # anyone sees the count, only admins see whose
    assert "Skipped queries: 1" in (plain.content or "")
    assert "Skipped: subscription" not in (plain.content or "")


async def test_a_config_watchlist_past_the_limit_stops_start_up_naming_the_key(tmp_path) -> None:
    raw = {
        "storage": {"path": str(tmp_path / "n.db")},
        "feeds": [],
        "watchlists": [{"name": "x", "query": HOSTILE, "channels": ["console:desk"]}],
    }
    with pytest.raises(ConfigError, match=r"watchlists\[0\]\.query") as caught:
        settings_from_dict(raw, {})
    assert "Nested too deeply" in str(caught.value)


# --- costly queries: refused by size, bounded per person ------------------------------------------


def near_list(rng: random.Random) -> str:
    left, right = rng.sample(COMMON, MAX_NEAR_TERMS), rng.sample(COMMON, MAX_NEAR_TERMS)
    return f"({', '.join(left)}) NEAR/100 ({', '.join(right)})"


async def test_the_reviews_costly_query_is_refused_and_near_is_budgeted_per_person(
    desk: Desk,
) -> None:
    review = f"({', '.join(COMMON[:20])}) NEAR/100 ({', '.join(COMMON[:20])})"
    refused = await desk.invoke("subscribe", {"query": review})
    assert f"NEAR takes at most {MAX_NEAR_TERMS} alternatives on each side" in (
        refused.content or ""
    )

    rng = random.Random(3)
    for _ in range(MAX_SUBSCRIPTION_NEAR):
        reply = await desk.invoke("subscribe", {"query": near_list(rng)})
        assert "Subscribed" in (reply.content or ""), reply.content
    over = await desk.invoke("subscribe", {"query": near_list(rng)})
    assert f"the limit is {MAX_SUBSCRIPTION_NEAR}" in (over.content or "")
    plain = await desk.invoke("subscribe", {"query": "Severn"})  # NEAR-free ones still fit
    assert "Subscribed" in (plain.content or "")
    assert len(await subscriptions(desk)) == MAX_SUBSCRIPTION_NEAR + 1


async def test_a_burst_of_concurrent_subscribes_stores_no_more_than_the_limit(desk: Desk) -> None:
    replies = await asyncio.gather(
        *(desk.invoke("subscribe", {"query": f"word{i}"}) for i in range(MAX_SUBSCRIPTIONS + 30))
    )
    accepted = [r for r in replies if (r.content or "").startswith("Subscribed")]
    assert len(accepted) == MAX_SUBSCRIPTIONS
    assert len(await subscriptions(desk)) == MAX_SUBSCRIPTIONS
    assert all("the most allowed" in (r.content or "") for r in replies if r not in accepted)


# --- matching never holds up the loop ----------------------------------------------------------


def long_rss(stories: int, words: int, rng: random.Random) -> bytes:
    now = datetime.now(UTC) - timedelta(minutes=1)
    items = "".join(
        f"<item><title>Story {i}</title><link>https://wire.example/{i}</link>"
        f"<guid>g{i}</guid><pubDate>{format_datetime(now, usegmt=True)}</pubDate>"
        f"<description>{escape(' '.join(rng.choice(COMMON) for _ in range(words)))}"
        "</description></item>"
        for i in range(stories)
    )
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Long</title>'
        f"<link>https://wire.example/</link>{items}</channel></rss>"
    ).encode()


async def test_matching_costly_queries_leaves_the_event_loop_free(tmp_path, feed_server) -> None:
    """While a poll matches long stories against many NEAR queries, the loop keeps turning:
    chat heartbeats and commands are served. Measured as the longest the loop went without
    running a ticker, against how long the poll took, so the machine's speed does not matter."""
    rng = random.Random(11)
    watchlists = [
        {"name": f"w{i}", "query": near_list(rng), "channels": ["console:desk"]} for i in range(20)
    ]
    raw = {
        "storage": {"path": str(tmp_path / "n.db")},
        "console": {"format": "jsonl"},
        "http": {"enabled": False},
        "fetch": {"allow_networks": ["127.0.0.1/32"]},
        "alerts": {"burst_limit": 100},
        "feeds": [{"name": "Long", "url": feed_server.url("long.xml")}],
        "watchlists": watchlists,
    }
    feed_server.set("long.xml", long_rss(0, 0, rng))
    out = io.StringIO()
    async with NewsBot(settings_from_dict(raw, {}), stdout=out) as bot:
        await bot.run_once()  # the baseline
        feed_server.set("long.xml", long_rss(20, 3000, rng))
        gaps: list[float] = []
        running = True

        async def ticker() -> None:
            last = time.perf_counter()
            while running:
                await asyncio.sleep(0.002)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        ticks = asyncio.create_task(ticker())
        started = time.perf_counter()
        [report] = await bot.run_once()
        took = time.perf_counter() - started
        running = False
        await ticks
    assert report.alerts == 20, report  # one card per story, naming every watchlist
    cards = [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]
    assert [len(c["watchlists"]) for c in cards] == [20] * 20
    assert max(gaps) < took / 4, (max(gaps), took)
