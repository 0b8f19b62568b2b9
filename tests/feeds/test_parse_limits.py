"""The parse time limit: FeedReader against the local feed server, real feedparser in real worker
processes. A document still parsing at the limit has its worker killed and replaced, and is
reported with the reason; other documents parse on.

The slow document is 300,000 empty elements of a name feedparser does not know: about 7 s of
ordinary, linear feedparser work that no cap applies to, against a limit of half a second. Its
DOCTYPE sends it to feedparser: the lxml fast path (bot.feeds.fastparse) declines every
document with one, and would read this one in about 0.6 s, too close to the limit to test it.
The tests assert outcomes (which parse failed, with what reason, what the others returned),
never durations."""

from __future__ import annotations

import asyncio
import os
import signal
from datetime import timedelta

import pytest

from bot.core.models import FeedState, Origin
from bot.core.ports import FeedError, FetchResult, FetchStatus
from bot.feeds import FeedReader
from bot.feeds.fetch import FetchLimits, HttpFetcher
from bot.feeds.parse import PARSE_TIME_LIMIT, ParseLimits
from bot.feeds.pool import ParsePool
from tests.feedgen import Item, rss

pytestmark = pytest.mark.timeout(60)

TINY = ParseLimits(time_limit=timedelta(seconds=0.5))
ROOMY = ParseLimits(time_limit=timedelta(seconds=30))
HEALTHY = rss([Item("Pyongyang fires missile", "Towards the sea.", "https://ok.example/1", "ok")])
SLOW = (
    b'<?xml version="1.0"?><!DOCTYPE rss><rss version="2.0"><channel><title>Slow</title>'
    b"<item><title>Slow</title><guid>slow</guid>" + b"<x/>" * 300_000 + b"</item></channel></rss>"
)


@pytest.fixture
async def pool():
    pool = ParsePool(2)
    yield pool
    pool.close()


@pytest.fixture
async def reader(pool):
    reader = FeedReader(
        HttpFetcher(FetchLimits(timeout=timedelta(seconds=10))), limits=TINY, pool=pool
    )
    yield reader
    await reader.close()


async def fetched(reader: FeedReader, feed_server, path: str, body: bytes) -> FetchResult:
    feed_server.set(path, body)
    feed = FeedState(
        id=1,
        name=path,
        url=feed_server.url(path),
        interval=timedelta(minutes=1),
        origin=Origin.CONFIG,
    )
    result = await reader.fetch(feed)
    assert result.status == FetchStatus.OK
    return result


def test_the_default_limit_is_shorter_than_the_shortest_poll_interval():
    from config.settings import FetchSettings

    assert ParseLimits().time_limit == PARSE_TIME_LIMIT
    assert FetchSettings().min_interval > PARSE_TIME_LIMIT


async def test_a_document_over_the_limit_fails_with_the_reason_and_its_worker_is_replaced(
    feed_server, reader, pool
):
    slow = await fetched(reader, feed_server, "slow.xml", SLOW)
    healthy = await fetched(reader, feed_server, "ok.xml", HEALTHY)

    with pytest.raises(FeedError) as failure:
        await reader.parse(slow, "Slow")
    after = await reader.parse(healthy, "Healthy")

    assert str(failure.value) == "the document took too long to parse (stopped after 0.5 s)"
    assert pool.replaced == 1
    assert [s.title for s in after.stories] == ["Pyongyang fires missile"]


async def test_a_slow_document_does_not_hold_up_another_feed(feed_server, reader):
    slow = await fetched(reader, feed_server, "slow.xml", SLOW)
    healthy = await fetched(reader, feed_server, "ok.xml", HEALTHY)

    slow_parse = asyncio.create_task(reader.parse(slow, "Slow"))
    healthy_parse = asyncio.create_task(reader.parse(healthy, "Healthy"))
    done, _ = await asyncio.wait({slow_parse, healthy_parse}, return_when=asyncio.FIRST_COMPLETED)
    # The healthy one is answered by the other worker while the slow one is still parsing.
    assert done == {healthy_parse}
    assert [s.title for s in healthy_parse.result().stories] == ["Pyongyang fires missile"]
    with pytest.raises(FeedError, match="took too long to parse"):
        await slow_parse


async def test_with_every_worker_busy_on_slow_documents_the_next_waits_at_most_the_limit(
    feed_server, reader, pool
):
    slow = await fetched(reader, feed_server, "slow.xml", SLOW)
    healthy = await fetched(reader, feed_server, "ok.xml", HEALTHY)

    outcomes = await asyncio.gather(
        reader.parse(slow, "Slow 1"),
        reader.parse(slow, "Slow 2"),
        reader.parse(healthy, "Healthy"),
        return_exceptions=True,
    )

    assert [str(o) for o in outcomes[:2]] == [
        "the document took too long to parse (stopped after 0.5 s)"
    ] * 2
    assert [s.title for s in outcomes[2].stories] == ["Pyongyang fires missile"]
    assert pool.replaced == 2


async def test_a_worker_that_dies_is_reported_and_replaced(feed_server, pool):
    # A roomy limit: the kill, not the deadline, must be what stops this parse.
    reader = FeedReader(HttpFetcher(), limits=ROOMY, pool=pool)
    healthy = await fetched(reader, feed_server, "ok.xml", HEALTHY)
    slow = await fetched(reader, feed_server, "slow.xml", SLOW)

    slow_parse = asyncio.create_task(reader.parse(slow, "Slow"))
    for _ in range(1000):  # until a worker has the slow document
        if pool.busy_pids():
            break
        await asyncio.sleep(0.01)
    [pid] = pool.busy_pids()
    os.kill(pid, signal.SIGKILL)  # as the kernel's OOM killer would
    with pytest.raises(FeedError) as failure:
        await slow_parse
    after = await reader.parse(healthy, "Healthy")
    await reader.close()

    assert str(failure.value) == "the parser crashed on this document"
    assert [s.title for s in after.stories] == ["Pyongyang fires missile"]


async def test_a_parse_given_up_by_its_caller_frees_its_worker(feed_server, reader):
    slow = await fetched(reader, feed_server, "slow.xml", SLOW)
    healthy = await fetched(reader, feed_server, "ok.xml", HEALTHY)

    waits = [asyncio.create_task(reader.parse(slow, f"Slow {n}")) for n in range(4)]
    await asyncio.sleep(0)
    for wait in waits:
        wait.cancel()
    after = await reader.parse(healthy, "Healthy")

    assert [s.title for s in after.stories] == ["Pyongyang fires missile"]


async def test_closing_the_pool_stops_its_workers_and_answers_every_waiting_parse(feed_server):
    pool = ParsePool(1)
    reader = FeedReader(HttpFetcher(), limits=ROOMY, pool=pool)
    slow = await fetched(reader, feed_server, "slow.xml", SLOW)
    waits = [asyncio.create_task(reader.parse(slow, f"Slow {n}")) for n in range(3)]
    for _ in range(1000):  # until the first is being parsed
        if pool.busy_pids():
            break
        await asyncio.sleep(0.01)

    pool.close()
    outcomes = await asyncio.gather(*waits, return_exceptions=True)
    await reader.close()

    assert isinstance(outcomes[0], FeedError)  # its worker was stopped under it
    assert all(isinstance(o, asyncio.CancelledError) for o in outcomes[1:])
    assert pool.busy_pids() == []


async def test_a_warmed_pool_parses_the_first_document_in_a_worker_started_ahead_of_it(
    feed_server, reader, pool
):
    """Issue 13: a worker takes about half a second to start; a bot's first poll should not
    wait for it with its bodies fetched. NewsBot.open warms the pool; the workers start in the
    background, and the first documents go to them."""
    assert pool.pids() == []
    pool.warm()
    for _ in range(300):  # up to 30 s for two processes to start on a loaded machine
        if len(pool.pids()) == 2:
            break
        await asyncio.sleep(0.1)
    started = set(pool.pids())
    assert len(started) == 2

    one = await fetched(reader, feed_server, "one.xml", rss([Item("One", "First.")]))
    two = await fetched(reader, feed_server, "two.xml", rss([Item("Two", "Second.")]))
    parsed = await asyncio.gather(reader.parse(one, "one"), reader.parse(two, "two"))

    assert [p.stories[0].title for p in parsed] == ["One", "Two"]
    assert set(pool.pids()) == started  # no worker was started for them
    assert pool.replaced == 0
