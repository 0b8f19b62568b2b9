"""FeedReader parses only the items of a changed body that are new or changed: counted by the
reader itself (`items_parsed`, `items_reused`), with real worker processes, no mocks."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from bot.core.identity import identify
from bot.core.ports import FetchResult, FetchStatus
from bot.feeds import FeedReader
from bot.feeds.fetch import FetchLimits, HttpFetcher
from bot.feeds.hints import document_hints
from bot.feeds.incremental import load
from bot.feeds.parse import parse_document
from bot.feeds.pool import ParsePool
from tests.feedgen import Item, minutes_ago, rss

pytestmark = pytest.mark.timeout(60)

URL = "https://wire.example/feed.xml"


@pytest.fixture
async def reader():
    pool = ParsePool(1)
    reader = FeedReader(HttpFetcher(FetchLimits(timeout=timedelta(seconds=10))), pool=pool)
    yield reader
    await reader.close()
    pool.close()


def body(items: list[Item], title: str = "Test Wire") -> FetchResult:
    return FetchResult(FetchStatus.OK, URL, rss(items, title=title), {"Content-Type": "text/xml"})


def wire(count: int) -> list[Item]:
    return [
        Item(
            f"Story number {n} on the wire today",
            f"The lead of story {n}.",
            f"https://wire.example/{n}",
            f"wire-{n}",
            minutes_ago(n + 1),
        )
        for n in range(count)
    ]


def whole(result: FetchResult, feed_name: str = "Wire"):
    assert result.body is not None
    parsed = parse_document(result.body, feed_name=feed_name, url=URL, headers=result.headers)
    # The reader adds the channel's polling hints (bot.feeds.hints) to what the parser gives.
    return replace(parsed, identity=identify(parsed.stories), hints=document_hints(result.body))


async def test_a_repoll_parses_only_the_new_and_the_changed_item(reader):
    items = wire(50)
    first = await reader.parse(body(items), "Wire")
    assert len(first.stories) == 50
    assert (reader.items_parsed, reader.items_reused) == (50, 0)

    items[20] = replace(items[20], title="Story number 20 on the wire today, updated")
    items.insert(0, Item("A new story", "Its lead.", "https://wire.example/new", "new"))
    second = body(items, title="Test Wire, rebuilt")  # the channel changed too
    parsed = await reader.parse(second, "Wire")

    assert reader.items_parsed - 50 == 2  # the new item and the changed one, nothing else
    assert reader.items_reused == 49
    assert parsed == whole(second)
    assert parsed.title == "Test Wire, rebuilt"


async def test_each_feed_holds_its_own_items(reader):
    items = wire(5)
    await reader.parse(body(items), "One")
    await reader.parse(body(items), "Two")
    assert reader.items_parsed == 10  # the same bytes under another feed are parsed again
    again = await reader.parse(body(items[1:]), "One")
    assert reader.items_parsed == 10 and reader.items_reused == 4
    assert again == whole(body(items[1:]), "One")
    held = {name: load(memo) for name, memo in reader.memos.items()}
    # Per feed, only the items of its last document.
    assert {name: len(memo.items) for name, memo in held.items() if memo} == {"One": 4, "Two": 5}


async def test_without_incremental_every_item_is_parsed():
    pool = ParsePool(1)
    reader = FeedReader(HttpFetcher(FetchLimits()), pool=pool, incremental=False)
    try:
        items = wire(10)
        await reader.parse(body(items), "Wire")
        await reader.parse(body(items[1:]), "Wire")
        assert reader.items_parsed == 19 and reader.items_reused == 0
    finally:
        await reader.close()
        pool.close()
