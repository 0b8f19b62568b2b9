"""A burst for one channel: which stories get full cards and which become digest lines.

Through the real bot (local feed server, feedparser, SQLite, the delivery worker, console jsonl),
plus the choice itself on plain values."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.core.delivery import split_burst
from bot.core.models import Delivery, DeliveryStatus, StoredStory, Story
from tests.feedgen import Item, minutes_ago, rss

WATCHLISTS = [
    {"name": "Floods", "query": "flood", "channels": ["console:desk"]},
    {"name": "Rivers", "query": "Severn", "channels": ["console:desk"]},
]
# Feed order, top first. The urgent story is last and the one both watchlists match is in the
# middle: picking by feed order gives both of them only a digest line.
BURST = [
    ("Flood alert for Wye residents", "Sandbags handed out at the Hereford depot."),
    ("Ouse flood barrier raised in York", "The Foss barrier closed before dawn."),
    ("Tyne flood warning for quayside bars", "Licensees were told to move stock upstairs."),
    ("Severn flood defences tested at Bewdley", "Temporary barriers went up on Beale's Corner."),
    ("Trent flood gauges at record level", "Nottingham's Colwick gauge passed its 2000 mark."),
    ("BREAKING: Carlisle flood wall fails", "Water poured into Warwick Road within minutes."),
]
URGENT = BURST[-1][0]
BOTH = BURST[3][0]


async def test_a_burst_gives_full_cards_to_the_urgent_and_most_matched_stories(
    feed_server, bot_run
) -> None:
    feed_server.set("wire.xml", rss([]))
    run = bot_run(
        [{"name": "Wire", "url": feed_server.url("wire.xml")}],
        WATCHLISTS,
        alerts={"burst_limit": 2},
    )
    assert await run.poll() == []  # baseline
    feed_server.set(
        "wire.xml",
        rss(
            Item(
                title,
                lead,
                link=f"https://wire.example/{i}",
                guid=f"g{i}",
                published=minutes_ago(2),
            )
            for i, (title, lead) in enumerate(BURST)
        ),
    )
    lines = await run.poll()

    # Every story exactly once: as a full card or as a digest line, never both, none dropped.
    assert sorted(line["title"] for line in lines) == sorted(title for title, _ in BURST)
    full = [line for line in lines if not line.get("digest")]
    digest = [line for line in lines if line.get("digest")]
    assert {line["title"] for line in full} == {URGENT, BOTH}
    assert [line["urgent"] for line in full if line["title"] == URGENT] == [True]
    assert len(digest) == 4
    # Each digest line says which watchlist matched it.
    assert all(line["watchlists"] == ["Floods"] for line in digest), digest
    # The digest keeps the feed's order among the stories it lists.
    order = [title for title, _ in BURST]
    assert [line["title"] for line in digest] == [
        t for t in order if t in {d["title"] for d in digest}
    ]


def pair(index: int, title: str, watchlists: tuple[str, ...], matched: tuple[str, ...]):
    when = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    story = Story(
        feed="Wire",
        guid=f"g{index}",
        title=title,
        link=f"https://wire.example/{index}",
        summary="",
        published=when,
    )
    delivery = Delivery(
        id=index,
        story_id=index,
        target="console:desk",
        watchlists=watchlists,
        subscriber=None,
        matched=matched,
        status=DeliveryStatus.PENDING,
    )
    stored = StoredStory(
        id=index, feed_id=1, story=story, first_seen=when, revision=0, alertable=True
    )
    return delivery, stored


def ids(items) -> list[int]:
    return [d.id for d, _ in items]


def test_ranking_is_urgent_then_watchlists_then_terms_then_outbox_order() -> None:
    items = [
        pair(1, "Rain on Monday", ("Weather",), ("rain",)),
        pair(2, "Rain and floods on Tuesday", ("Weather",), ("rain", "flood")),
        pair(3, "Severn floods", ("Weather", "Rivers"), ("flood",)),
        pair(4, "Rain on Wednesday", ("Weather",), ("rain",)),
        pair(5, "FLASH - dam breach upstream", ("Weather",), ("rain",)),
    ]
    assert ids(split_burst(items, 1)[0]) == [5]
    assert ids(split_burst(items, 2)[0]) == [3, 5]  # full cards go out in outbox order
    assert ids(split_burst(items, 3)[0]) == [2, 3, 5]
    assert ids(split_burst(items, 4)[0]) == [1, 2, 3, 5]  # a tie goes to the earlier card


@pytest.mark.parametrize("room", [0, 1, 3, 5, 9])
def test_every_card_is_a_full_card_or_a_digest_line_never_both(room: int) -> None:
    items = [pair(i, f"Story {i}", ("Desk",), ("story",)) for i in range(1, 6)]
    full, digest = split_burst(items, room)
    assert len(full) == min(room, len(items))
    assert sorted(ids(full) + ids(digest)) == ids(items)
    assert ids(full) == sorted(ids(full)) and ids(digest) == sorted(ids(digest))
