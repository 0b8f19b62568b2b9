"""The bounds pass: what a hostile document is cut to before feedparser sees it, and that every
real feed comes through it untouched.

Each hostile shape here took feedparser seconds to minutes before the pass (100,000 categories:
434 s; a 50,000-character author: 13 s); the tests assert what is kept, never how long it took.
The documents go through the real feedparser (parse_document), in this process."""

from __future__ import annotations

import feedparser
import pytest

from bot.feeds.bounds import (
    ENTITY_LIMIT,
    FIELD_LIMIT,
    MAX_ATTRIBUTES,
    MAX_TAGS_PER_ITEM,
    bound_document,
)
from bot.feeds.parse import AUTHOR_LIMIT, MAX_CATEGORIES, MAX_ITEMS, parse_document
from tests.feedgen import corpus_files

pytestmark = pytest.mark.timeout(60)

NAMESPACES = (
    'xmlns:dc="http://purl.org/dc/elements/1.1/" '
    'xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd" '
    'xmlns:media="http://search.yahoo.com/mrss/" '
    'xmlns:odd="http://purl.org/dc/elements/1.1/"'
)


def item_doc(inner: str, prolog: str = "") -> bytes:
    return (
        f'<?xml version="1.0" encoding="utf-8"?>\n{prolog}<rss version="2.0" {NAMESPACES}>'
        "<channel><title>Wire</title><item><title>Pyongyang story</title><guid>g1</guid>"
        f"{inner}</item></channel></rss>"
    ).encode()


def parse_bounded(body: bytes):
    """feedparser on the bounded bytes: the tags and author it sees, and whether it had to
    recover from broken XML."""
    parsed = feedparser.parse(bound_document(body, max_items=MAX_ITEMS))
    return parsed, parsed.entries[0]


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: p.name)
def test_every_real_feed_comes_through_byte_for_byte(path):
    body = path.read_bytes()

    assert bound_document(body, max_items=MAX_ITEMS) is body


def test_100000_categories_keep_the_first_ones_and_stay_well_formed():
    body = item_doc("".join(f"<category>topic {n}</category>" for n in range(100_000)))

    parsed, entry = parse_bounded(body)
    story = parse_document(body, feed_name="Wire").stories[0]

    assert not parsed.bozo
    assert [t.term for t in entry.tags] == [f"topic {n}" for n in range(MAX_TAGS_PER_ITEM)]
    assert story.categories == tuple(f"topic {n}" for n in range(MAX_CATEGORIES))


@pytest.mark.parametrize(
    "element",
    [
        "<dc:subject>s{n}</dc:subject>",
        "<odd:subject>s{n}</odd:subject>",  # Dublin Core under a prefix of the feed's choosing
        "<media:category>s{n}</media:category>",
        "<category term='s{n}'/>",
        "<CATEGORY><![CDATA[s{n}]]></CATEGORY>",
        "<category>s{n}<b>child</b></category>",
        "<itunes:category text='s{n}'><itunes:category text='t{n}'/></itunes:category>",
    ],
    ids=["dc", "dc-other-prefix", "media", "attribute", "cdata-upper-case", "child", "nested"],
)
def test_every_spelling_of_a_tag_counts_towards_the_cap(element):
    body = item_doc("".join(element.format(n=n) for n in range(20_000)))

    parsed, entry = parse_bounded(body)

    assert not parsed.bozo
    assert len(entry.tags) <= MAX_TAGS_PER_ITEM
    assert entry.tags[0].term == "s0"


def test_each_item_has_its_own_tag_allowance_and_the_channel_one_more():
    items = "".join(
        f"<item><title>t{i}</title>{''.join(f'<category>c{n}</category>' for n in range(150))}"
        f"</item><category>channel {i}</category>"
        for i in range(3)
    )
    body = (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>W</title>{items}'
        + "".join(f"<category>more {n}</category>" for n in range(200))
        + "</channel></rss>"
    ).encode()

    parsed = feedparser.parse(bound_document(body, max_items=MAX_ITEMS))

    assert not parsed.bozo
    assert [len(e.tags) for e in parsed.entries] == [MAX_TAGS_PER_ITEM] * 3
    # Categories between and after items all belong to the channel: one allowance for all.
    assert len(parsed.feed.tags) == MAX_TAGS_PER_ITEM


def test_keyword_lists_count_each_term():
    terms = ",".join(f"k{n}" for n in range(50_000))
    body = item_doc(f"<itunes:keywords>{terms}</itunes:keywords>" * 3)

    parsed, entry = parse_bounded(body)

    assert not parsed.bozo
    assert 0 < len(entry.tags) <= MAX_TAGS_PER_ITEM
    assert entry.tags[0].term == "k0"


@pytest.mark.parametrize(
    "field",
    [
        "<author>{text}</author>",
        "<author><![CDATA[{text}]]></author>",
        "<dc:creator>{text}</dc:creator>",
        "<itunes:author>{text}</itunes:author>",
        "<author>{text}<b/>{text}<!-- c -->{text}</author>",
    ],
    ids=["author", "cdata", "dc-creator", "itunes-author", "in-pieces"],
)
def test_a_50000_character_author_is_cut_before_parsing(field):
    body = item_doc(field.format(text="Kim " * 12_500))

    parsed, entry = parse_bounded(body)
    story = parse_document(body, feed_name="Wire").stories[0]

    assert not parsed.bozo
    assert 0 < len(entry.author) <= FIELD_LIMIT
    assert entry.author.startswith("Kim Kim")
    assert story.author is not None and len(story.author) <= AUTHOR_LIMIT


def test_a_long_author_is_cut_on_a_character_boundary():
    body = item_doc("<author>" + "é" * 25_000 + "</author>")

    parsed, entry = parse_bounded(body)

    assert not parsed.bozo
    assert parsed.encoding == "utf-8"
    assert set(entry.author) == {"é"}


def test_an_entity_cannot_multiply_an_author_past_the_cap():
    # A few kilobytes that feedparser would expand to a 1,000,000-character author.
    prolog = '<!DOCTYPE rss [\n<!ENTITY big "' + "a" * 1000 + '">\n]>\n'
    body = item_doc("<author>" + "&big;" * 1000 + "</author>", prolog=prolog)

    parsed, entry = parse_bounded(body)

    assert not parsed.bozo
    assert 0 < len(entry.author) <= FIELD_LIMIT
    assert set(entry.author) == {"a"}


def test_entity_values_are_capped_and_short_ones_kept():
    prolog = '<!DOCTYPE rss [\n<!ENTITY wire "Wire">\n<!ENTITY big "' + "b" * 500 + '">\n]>\n'
    body = item_doc("<description>&wire; &big;</description>", prolog=prolog)

    parsed, entry = parse_bounded(body)

    assert not parsed.bozo
    assert entry.summary == "Wire " + "b" * ENTITY_LIMIT


def test_an_element_with_20000_attributes_keeps_the_first_ones():
    attributes = " ".join(f'a{n}=">{n}"' for n in range(20_000))
    body = item_doc(f'<enclosure url="https://wire.example/a.mp3" {attributes}/>')

    bounded = bound_document(body, max_items=MAX_ITEMS)
    parsed = feedparser.parse(bounded)

    assert not parsed.bozo
    assert bounded.count(b'=">') == MAX_ATTRIBUTES - 1
    assert parsed.entries[0].enclosures[0].href == "https://wire.example/a.mp3"


def test_items_past_the_limit_are_dropped_before_parsing():
    items = "".join(f"<item><title>Item {n}</title><guid>g{n}</guid></item>" for n in range(5_000))
    body = (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>W</title>{items}</channel></rss>'
    )

    bounded = bound_document(body.encode(), max_items=MAX_ITEMS)
    parsed = feedparser.parse(bounded)

    assert not parsed.bozo
    assert len(parsed.entries) == MAX_ITEMS
    assert parsed.entries[-1].title == f"Item {MAX_ITEMS - 1}"


def test_markup_inside_cdata_and_comments_is_text_not_tags():
    categories = "<category>x</category>" * (MAX_TAGS_PER_ITEM + 10)
    body = item_doc(
        f"<description><![CDATA[{categories}]]></description><!-- {categories} -->"
        "<category>real</category>"
    )

    _, entry = parse_bounded(body)

    assert bound_document(body, max_items=MAX_ITEMS) is body
    assert entry.summary.count("x") == MAX_TAGS_PER_ITEM + 10  # the CDATA text, all of it
    assert [t.term for t in entry.tags] == ["real"]


def test_utf16_documents_are_passed_through_for_the_time_limit_to_bound():
    body = item_doc("<category>x</category>" * 10).decode().encode("utf-16")

    assert bound_document(body, max_items=MAX_ITEMS) is body
