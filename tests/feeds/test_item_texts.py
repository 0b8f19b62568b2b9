"""Every text a publisher gives for an item is matched; the description is the lead.

NYT items carry a photo caption (media:description, which feedparser lists in `content`) next to
the description, and the caption is often the longer of the two. Issue 13: a "Trump" watchlist
never heard of an item whose description said "...require the Trump administration..." because
only the longer text was matched."""

from __future__ import annotations

from xml.sax.saxutils import escape

import pytest

from bot.core.models import Origin, Story, Watchlist
from bot.core.routing import QueryBook
from bot.core.text import PARAGRAPH
from bot.feeds.parse import parse_document
from tests.feedgen import CORPUS, minutes_ago

NYT = "nyt_us_2021-07-15_before_guid_change.xml"


def book(*queries: str) -> QueryBook:
    return QueryBook(
        [
            Watchlist(i, f"w{i}", query, ("console:desk",), Origin.CONFIG)
            for i, query in enumerate(queries, 1)
        ],
        [],
    )


def nyt_story(title_start: str) -> Story:
    stories = parse_document((CORPUS / NYT).read_bytes(), feed_name="NYT US").stories
    (story,) = [s for s in stories if s.title.startswith(title_start)]
    return story


@pytest.mark.parametrize(
    ("title_start", "query", "description", "caption_start"),
    [
        (
            "Court Overturns F.D.A. Ban",
            "Massachusetts",
            "The ban sought to stop a school in Massachusetts from using shock therapy to"
            " prevent harmful behaviors in students with disabilities.",
            "Students wear a special fanny pack",
        ),
        (
            "At the White House, Olivia Rodrigo",
            "Biden",
            None,  # only checked for the match
            "The pop star Olivia Rodrigo spoke about coronavirus vaccines",
        ),
    ],
    ids=["massachusetts", "biden"],
)
def test_nyt_description_next_to_a_longer_caption_is_matched(
    title_start, query, description, caption_start
):
    story = nyt_story(title_start)
    # The watched word is in the description only: not in the headline, not in the caption.
    assert query not in story.title
    assert [r.watchlists for r in book(query).route(story)] == [("w1",)]
    # The caption is matched too, after the description; the lead is the description's.
    assert caption_start in story.content
    assert story.content.index(caption_start) > 0
    assert not story.summary.startswith(caption_start)
    if description is not None:
        assert story.summary == description
        assert story.content.startswith(description + PARAGRAPH)


def _item(description: str, *contents: str, captions: tuple[str, ...] = ()) -> bytes:
    """One RSS item shaped like the NYT's: description, content:encoded, media captions."""
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/"'
        ' xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel>',
        "<title>Wire</title><link>https://wire.example/</link><description>d</description>",
        "<item><title>Senate passes the bill</title><link>https://wire.example/a</link>",
        f"<description>{escape(description)}</description>",
        *(f"<content:encoded>{escape(c)}</content:encoded>" for c in contents),
        *(
            # As the NYT writes them: the caption beside media:content, not inside it.
            f'<media:content url="https://img.example/{i}.jpg" medium="image"></media:content>'
            f"<media:description>{escape(c)}</media:description>"
            for i, c in enumerate(captions)
        ),
        "</item></channel></rss>",
    ]
    return "\n".join(parts).encode("utf-8")


def _one(body: bytes) -> Story:
    (story,) = parse_document(body, feed_name="Wire").stories
    return story


def test_a_description_inside_the_full_text_is_kept_once():
    lead = "The bill would require the Trump administration to report."
    full = f"<p>{lead}</p><p>It passed 60 to 40 after a long night.</p>"
    story = _one(_item(lead, full))
    assert story.content == PARAGRAPH.join([lead, "It passed 60 to 40 after a long night."])
    assert story.summary == lead


def test_a_caption_is_matched_after_the_description():
    lead = "The bill would require the Trump administration to report."
    caption = "Senators leaving the chamber on Tuesday night after the vote, which ran long."
    story = _one(_item(lead, captions=(caption,)))
    assert story.content == PARAGRAPH.join([lead, caption])
    assert story.summary == lead


@pytest.mark.parametrize("with_full_text", [False, True], ids=["captions", "full-text-too"])
def test_more_captions_never_replace_the_description(with_full_text):
    # feedparser on its own makes the second caption (or a caption after content:encoded) the
    # item's description.
    lead = "The bill would require the Trump administration to report."
    full = ("<p>It passed 60 to 40 after a long night.</p>",) if with_full_text else ()
    first = "Senators leaving the chamber on Tuesday night after the vote, which ran long."
    second = "The Capitol at dawn."
    story = _one(_item(lead, *full, captions=(first, second, first)))
    assert story.summary == lead
    texts = [lead, *(["It passed 60 to 40 after a long night."] if full else []), first, second]
    assert story.content == PARAGRAPH.join(texts)


def test_a_caption_repeating_the_description_is_not_repeated():
    lead = "Senators leaving the chamber on Tuesday night."
    story = _one(_item(lead, captions=(lead,)))
    assert story.content == lead


def test_a_caption_is_the_lead_only_when_there_is_nothing_else():
    caption = "Senators leaving the chamber on Tuesday night."
    story = _one(_item("", captions=(caption,)))
    assert story.summary == caption
    assert story.content == caption


def test_reparsing_an_unchanged_item_gives_the_same_story():
    body = _item(
        "The bill would require the Trump administration to report.",
        captions=("Senators leaving the chamber on Tuesday night after the vote, at length.",),
    )
    assert _one(body) == _one(body)


# --- end to end: a real bot, a local feed server, jsonl cards -----------------------------------


def _nyt_shaped_capture(pub_date: str) -> bytes:
    description = (
        "The measure would require the Trump administration to disclose how it spent the"
        " pandemic relief funds."
    )
    caption = (
        "Members of the House Oversight Committee walked to a hearing on Capitol Hill in"
        " Washington on Wednesday, where lawmakers questioned officials from several agencies"
        " about relief spending."
    )
    assert len(caption) > len(description)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/"><channel>'
        "<title>NYT &gt; U.S. News</title><link>https://www.nytimes.com/</link>"
        "<description></description>"
        "<item><title>House Panel Presses for Relief Spending Records</title>"
        "<link>https://www.nytimes.com/2021/07/15/us/relief-records.html</link>"
        '<guid isPermaLink="true">https://www.nytimes.com/2021/07/15/us/relief-records.html</guid>'
        f"<description>{description}</description>"
        f"<pubDate>{pub_date}</pubDate>"
        '<media:content height="151" medium="image" url="https://static01.nyt.com/a.jpg"'
        ' width="151"></media:content>'
        "<media:credit>Stefani Reynolds for The New York Times</media:credit>"
        f"<media:description>{caption}</media:description>"
        "</item></channel></rss>"
    ).encode()


async def test_watched_word_only_in_the_description_alerts_with_the_description_as_lead(
    feed_server, bot_run
):
    from email.utils import format_datetime

    feed_server.set("nyt.xml", b'<?xml version="1.0"?><rss version="2.0"><channel></channel></rss>')
    run = bot_run(
        [{"name": "NYT US", "url": feed_server.url("nyt.xml")}],
        [{"name": "Trump", "query": "Trump", "channels": ["console:desk"]}],
    )
    assert await run.poll() == []  # the first poll is a baseline
    feed_server.set("nyt.xml", _nyt_shaped_capture(format_datetime(minutes_ago(5), usegmt=True)))
    cards = await run.poll()
    assert [c["title"] for c in cards] == ["House Panel Presses for Relief Spending Records"]
    assert cards[0]["summary"].startswith("The measure would require the Trump administration")
    assert "Oversight Committee" not in cards[0]["summary"]
    # Polled again unchanged: the same story, no second card.
    assert await run.poll() == []
