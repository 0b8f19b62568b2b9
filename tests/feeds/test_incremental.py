"""Incremental parsing gives exactly what a whole parse gives.

Every document of the corpus, then re-issued variants of it (one item changed, one added at the
top, one removed, the channel's metadata changed, and those at once), goes through
bot.feeds.items with the memo the previous document left, as FeedReader's polls do; each result is compared with the
whole-document parse the worker made before (parse_document, then identify): same Stories,
same order, same title and warning, same identity. Only the items that changed are parsed."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from bot.core.identity import identify
from bot.core.ports import FeedError, ParsedFeed
from bot.feeds.incremental import load
from bot.feeds.items import Split, parse_items, split
from bot.feeds.parse import parse_document
from tests.feedgen import Item, corpus_files, minutes_ago, rss

FILES = corpus_files()
URL = "https://news.example/feed.xml"
HEADERS = {"Content-Type": "application/rss+xml"}
_TITLE = re.compile(rb"(<(?:[\w.-]+:)?title\b[^>]*>)")
_ID_END = re.compile(rb"(</(?:guid|id|link)>)")
_ITEM_END = re.compile(rb"(</(?:[\w.-]+:)?(?:item|entry)\s*>)$", re.IGNORECASE)


def whole(body: bytes) -> ParsedFeed | str:
    """What the worker made of the body before: the parse and its identity, or the error."""
    try:
        parsed = parse_document(body, feed_name="Wire", url=URL, headers=HEADERS)
    except FeedError as exc:
        return f"FeedError: {exc}"
    return replace(parsed, identity=identify(parsed.stories))


class Memos(dict):
    """What FeedReader holds: the feed's memo."""


def incremental(memos: Memos, body: bytes) -> tuple[ParsedFeed | str, int | None]:
    """What the bot makes of the body now, and how many items were parsed (None: whole)."""
    try:
        outcome = parse_items(
            body, feed_name="Wire", url=URL, headers=HEADERS, memo=memos.get("Wire")
        )
    except FeedError as exc:
        return f"FeedError: {exc}", None
    if outcome.memo is None:
        memos.pop("Wire", None)
        return outcome.parsed, None
    memos["Wire"] = outcome.memo
    return outcome.parsed, outcome.items_parsed


def changed(item: bytes, words: bytes) -> bytes:
    """The item with its headline changed, or a category added when it has no headline."""
    if _TITLE.search(item):
        return _TITLE.sub(rb"\1" + words + b" ", item, count=1)
    return _ITEM_END.sub(b"<category>" + words + rb"</category>\1", item)


def renamed(item: bytes) -> bytes:
    """Another story: another headline, and its guid, id and link changed too."""
    return _ID_END.sub(rb"-new\1", changed(item, b"Breaking:"))


def join(parts: Split, items: list[bytes], head: bytes | None = None) -> bytes:
    return (parts.head if head is None else head) + b"\n".join(items) + parts.tail


def variants(body: bytes) -> list[tuple[str, bytes, int]]:
    """(name, re-issued body, items that must be parsed for it after `body`)."""
    parts = split(body)
    if parts is None:
        return []
    items = parts.items
    target = 1 if len(items) > 1 else 0
    head = _TITLE.sub(rb"\1Renamed ", parts.head, count=1)
    out = [
        ("same items", join(parts, items), 0),
        ("one item changed", join(parts, [*items[:target], changed(items[target], b"Update:"), *items[target + 1 :]]), 1),
        ("one added at the top", join(parts, [renamed(items[0]), *items]), 1),
        ("metadata changed", join(parts, items, head), 1),
        ("one added, one changed, metadata changed", join(parts, [renamed(items[0]), *items[:target], changed(items[target], b"Update:"), *items[target + 1 :]], head), 2),
    ]  # fmt: skip
    if len(items) > 1:
        out.append(("one removed", join(parts, items[:target] + items[target + 1 :]), 0))
    return out


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_the_incremental_parse_is_the_whole_parse(path):
    body = path.read_bytes()
    cache = Memos()
    first, itemized = incremental(cache, body)
    assert first == whole(body)
    for name, variant, must_parse in variants(body):
        expected = whole(variant)
        got, parsed = incremental(cache, variant)
        assert got == expected, name
        if itemized is not None:  # a variant of a document parsed item by item is too
            assert parsed == must_parse, name
        # The next variant is re-issued after the original again.
        incremental(cache, body)


def test_most_of_the_corpus_is_parsed_item_by_item():
    """The comparison above is not vacuous: most documents go item by item."""
    itemized = []
    for path in FILES:
        cache = Memos()
        if incremental(cache, path.read_bytes())[1] is not None:
            itemized.append(path.name)
    assert len(itemized) >= 30, itemized


def test_a_body_that_does_not_cut_cleanly_is_parsed_whole():
    base = rss(
        [Item(f"Story {n}", "Lead.", f"https://wire.example/{n}", f"g{n}") for n in range(3)]
    )
    broken = [
        base.replace(b"<?xml", b'<!DOCTYPE rss [<!ENTITY x "y">]><?xml', 1),  # a DOCTYPE
        base.replace(b"</item>\n<item>", b"</item><br/><item>", 1),  # markup between items
        base.replace(b"<item>", b'<item xmlns:x="urn:x">', 1),  # a namespace in an item
        base.replace(b"</item>", b"<item>nested</item></item>", 1),  # an item in an item
        base.replace(b"</channel>", b"</channel", 1),  # not XML
        base.replace(b'"UTF-8"', b'"UTF-16"', 1).decode().encode("utf-16"),  # no ASCII `<`
    ]
    for body in broken:
        assert parse_items(body, feed_name="Wire", url=URL, headers=HEADERS).memo is None, body[:80]
        cache = Memos()
        assert incremental(cache, body)[0] == whole(body)


def test_an_item_reads_as_in_the_whole_document_after_channel_content():
    """feedparser's hasContent, set by content in the channel, changes how the first item's
    second description reads: such a feed is parsed whole, and still the same."""
    body = (
        rss(
            [
                Item("First", "One.", "https://wire.example/1", "g1"),
                Item("Second", "Two.", "https://wire.example/2", "g2"),
            ]
        )
        .replace(
            b"<description>test feed</description>",
            b"<description>test feed</description><content:encoded>x</content:encoded>",
        )
        .replace(
            b'<rss version="2.0">',
            b'<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/">',
        )
    )
    body = body.replace(
        b"<description>One.</description>", b"<summary>S</summary><description>One.</description>"
    )
    cache = Memos()
    assert incremental(cache, body)[0] == whole(body)
    again = body.replace(b"<title>Second", b"<title>Second, updated")
    assert incremental(cache, again)[0] == whole(again)


def test_only_new_and_changed_items_are_parsed():
    items = [
        Item(
            f"Story number {n} of the wire",
            f"Lead {n}.",
            f"https://wire.example/{n}",
            f"g{n}",
            minutes_ago(n),
        )
        for n in range(50)
    ]
    cache = Memos()
    first, parsed = incremental(cache, rss(items))
    assert parsed == 50 and isinstance(first, ParsedFeed) and len(first.stories) == 50
    items[10] = replace(items[10], title="Story number 10 of the wire, updated")
    items.insert(
        0, Item("A new story", "New lead.", "https://wire.example/new", "new", minutes_ago(0))
    )
    body = rss(items, title="Test Wire")
    got, parsed = incremental(cache, body)
    assert parsed == 2
    assert got == whole(body)
    memo = load(cache["Wire"])
    assert memo is not None and len(memo.items) == 51  # only the last document's items
