"""One story, one card: de-duplication and updates on the real corpus and on replayed captures,
through the real pipeline (local feed server, feedparser, SQLite, console jsonl)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from tests.feedgen import CORPUS, Item, minutes_ago, rss

pytestmark = pytest.mark.usefixtures("feed_server")


def fresh(path: str, now: datetime | None = None) -> bytes:
    """A corpus capture with its dates moved so that its newest is a minute ago, so `max_age`
    lets its stories alert whatever the time of day. Relative spacing between items is kept.
    (Whole days were shifted once: between 17:22 and 20:15 UTC the CNN capture's older copy of
    its Kim story was then just over a day old, and the test failed for three hours a day.)"""
    text = (CORPUS / path).read_text("utf-8")
    now = now or datetime.now(UTC)
    months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    pattern = re.compile(r"(\w{3}, )?(\d{1,2}) (\w{3}) (\d{4}) (\d\d:\d\d:\d\d)")
    dates = [
        datetime.strptime(
            f"{m.group(2)} {m.group(3)} {m.group(4)} {m.group(5)}", "%d %b %Y %H:%M:%S"
        )
        for m in pattern.finditer(text)
        if m.group(3) in months
    ]
    shift = now.replace(tzinfo=None) - max(dates) - timedelta(minutes=1) if dates else timedelta()

    def move(m: re.Match[str]) -> str:
        if m.group(3) not in months:
            return m.group(0)
        old = datetime.strptime(
            f"{m.group(2)} {m.group(3)} {m.group(4)} {m.group(5)}", "%d %b %Y %H:%M:%S"
        )
        new = old + shift
        return new.strftime("%a, %d %b %Y %H:%M:%S")

    return pattern.sub(move, text).encode("utf-8")


def empty_rss() -> bytes:
    return rss([])


async def test_cnn_story_under_two_guids_gives_one_card(feed_server, bot_run):
    feed_server.set("cnn.xml", empty_rss())
    run = bot_run(
        [{"name": "CNN", "url": feed_server.url("cnn.xml")}],
        [{"name": "Kim", "query": '"Kim Jong Un"', "channels": ["console:desk"]}],
    )
    assert await run.poll() == []  # baseline
    feed_server.set("cnn.xml", fresh("cnn_edition_2020-04-27_same_story_two_guids.xml"))
    cards = await run.poll()
    titles = [c["title"] for c in cards]
    assert (
        titles.count("Amid mounting speculation, South Korea says Kim Jong Un is 'alive and well'")
        == 1
    )
    assert len(cards) == 1
    # Listed twice again: the card stays on its link instead of moving to the other and back.
    feed_server.set(
        "cnn.xml",
        fresh("cnn_edition_2020-04-27_same_story_two_guids.xml") + b"\n<!-- re-served -->",
    )
    assert await run.poll() == []


async def test_nyt_reissue_under_new_guid_is_an_update_not_a_second_card(feed_server, bot_run):
    feed_server.set("nyt.xml", empty_rss())
    run = bot_run(
        [{"name": "NYT US", "url": feed_server.url("nyt.xml")}],
        [{"name": "Russia", "query": "Russia", "channels": ["console:desk"]}],
    )
    await run.poll()
    now = datetime.now(UTC)
    feed_server.set("nyt.xml", fresh("nyt_us_2021-07-15_before_guid_change.xml", now))
    first = await run.poll()
    assert [c["title"] for c in first] == ["Biden Will Press Merkel on China and Russia"]
    assert first[0]["update"] is False
    assert first[0]["url"] == "https://www.nytimes.com/2021/07/15/us/biden-merkel-meeting.html"

    feed_server.set("nyt.xml", fresh("nyt_us_2021-07-16_after_guid_change.xml", now))
    second = await run.poll()
    # The re-issue moved the article to a new URL: the posted card is revised to point there,
    # and no second card is posted.
    assert len(second) == 1
    assert second[0]["update"] is True
    assert second[0]["title"] == "Biden Will Press Merkel on China and Russia"
    assert (
        second[0]["url"]
        == "https://www.nytimes.com/2021/07/15/us/politics/biden-merkel-meeting.html"
    )
    assert second[0]["delivery_id"] == first[0]["delivery_id"]


@pytest.mark.parametrize(
    ("capture", "query"),
    [
        (
            "dailymail_news_2020-04-22_dup_guid_north_korea.xml",
            '"North Korea" OR Trump OR Coronavirus',
        ),
        ("apnews_thirdparty_feedgen_2025-07-06.xml", "Russia OR Trump OR AP"),
        ("suspilne_ukrnet_2023-12-22_cyrillic.xml", "Росі*"),
    ],
    ids=["dailymail-dup-guid", "ap-thirdparty-dup-links", "suspilne-dup-link"],
)
async def test_duplicate_items_in_one_document_alert_once(feed_server, bot_run, capture, query):
    feed_server.set("feed.xml", empty_rss())
    run = bot_run(
        [{"name": "Wire", "url": feed_server.url("feed.xml")}],
        [{"name": "Desk", "query": query, "channels": ["console:desk", "console:night"]}],
        alerts={"max_age": "3650d", "burst_limit": 100},
    )
    await run.poll()
    feed_server.set("feed.xml", (CORPUS / capture).read_bytes())
    cards = await run.poll()
    assert cards, "the capture should match something"
    per_channel = [(c["channel"], c["url"], c["title"]) for c in cards]
    assert len(per_channel) == len(set(per_channel))
    # Every story that reached one channel reached the other, exactly once.
    desk = sorted((u, t) for ch, u, t in per_channel if ch == "console:desk")
    night = sorted((u, t) for ch, u, t in per_channel if ch == "console:night")
    assert desk == night
    # Polling the same document again posts nothing.
    feed_server.set("feed.xml", (CORPUS / capture).read_bytes() + b"\n<!-- re-served -->")
    assert await run.poll() == []


async def test_same_story_in_two_feeds_gives_one_card_naming_the_first(feed_server, bot_run):
    lead = (
        "SEOUL (AP) — Russian President Vladimir Putin arrived in Pyongyang on Wednesday for his "
        "first visit to North Korea in 24 years, where Kim Jong Un greeted him at the airport. "
        "The two leaders pledged cooperation as Washington and its allies tighten sanctions."
    )
    title = "Putin Visits North Korea, Pledges Cooperation Amid Sanctions Pressure"
    feed_server.set("ap.xml", empty_rss())
    feed_server.set("korea.xml", empty_rss())
    run = bot_run(
        [
            {"name": "AP", "url": feed_server.url("ap.xml")},
            {"name": "Korea Wire", "url": feed_server.url("korea.xml")},
        ],
        [
            {
                "name": "North Korea",
                "query": '"North Korea" OR Pyongyang',
                "channels": ["console:desk"],
            },
            {"name": "Putin", "query": "Putin", "channels": ["console:desk"]},
        ],
    )
    await run.poll()
    feed_server.set(
        "ap.xml", rss([Item(title, lead, "https://ap.example/a1", "ap-1", minutes_ago(3))])
    )
    cards = await run.poll()
    assert len(cards) == 1
    assert cards[0]["watchlists"] == ["North Korea", "Putin"]
    assert cards[0]["matched"] == ["Putin", "North Korea", "Pyongyang"]
    # The second wire carries the same story with its lead cut short, under its own link.
    cut = lead[:150].rsplit(" ", 1)[0] + "..."
    feed_server.set(
        "korea.xml", rss([Item(title, cut, "https://korea.example/n/77", "kw-77", minutes_ago(1))])
    )
    assert await run.poll() == []


async def test_headline_rewrite_under_same_guid_updates_the_card(feed_server, bot_run):
    feed_server.set("ap.xml", empty_rss())
    run = bot_run(
        [{"name": "AP", "url": feed_server.url("ap.xml")}],
        [{"name": "Putin", "query": "Putin", "channels": ["console:desk"]}],
    )
    await run.poll()
    feed_server.set(
        "ap.xml",
        rss(
            [
                Item(
                    "Putin arrives in Pyongyang",
                    "Putin landed at dawn.",
                    "https://ap.example/p",
                    "ap-p",
                    minutes_ago(5),
                )
            ]
        ),
    )
    [card] = await run.poll()
    feed_server.set(
        "ap.xml",
        rss(
            [
                Item(
                    "Putin and Kim sign defence pact",
                    "The leaders signed a pact.",
                    "https://ap.example/p",
                    "ap-p",
                    minutes_ago(5),
                )
            ]
        ),
    )
    [update] = await run.poll()
    assert update["update"] is True
    assert update["title"] == "Putin and Kim sign defence pact"
    assert update["delivery_id"] == card["delivery_id"]
    # The same text again: nothing.
    feed_server.set(
        "ap.xml",
        rss(
            [
                Item(
                    "Putin and Kim sign defence pact",
                    "The leaders signed a pact.",
                    "https://ap.example/p",
                    "ap-p",
                    minutes_ago(5),
                )
            ],
            title="x",
        ),
    )
    assert await run.poll() == []


async def test_updates_stop_after_max_updates(feed_server, bot_run):
    feed_server.set("ap.xml", empty_rss())
    run = bot_run(
        [{"name": "AP", "url": feed_server.url("ap.xml")}],
        [{"name": "Putin", "query": "Putin", "channels": ["console:desk"]}],
        alerts={"max_updates": 2},
    )
    await run.poll()
    seen = []
    for n in range(5):
        feed_server.set(
            "ap.xml",
            rss(
                [
                    Item(
                        f"Putin story, version {n} with new words {'x' * n}",
                        f"Lead number {n}.",
                        "https://ap.example/p",
                        "g",
                        minutes_ago(5),
                    )
                ]
            ),
        )
        seen.extend(await run.poll())
    assert [c["update"] for c in seen] == [False, True, True]


async def test_rewrite_that_newly_matches_alerts_normally(feed_server, bot_run):
    feed_server.set("ap.xml", empty_rss())
    run = bot_run(
        [{"name": "AP", "url": feed_server.url("ap.xml")}],
        [{"name": "Putin", "query": "Putin", "channels": ["console:desk"]}],
    )
    await run.poll()
    feed_server.set(
        "ap.xml",
        rss(
            [
                Item(
                    "Leaders meet in Pyongyang",
                    "A summit began.",
                    "https://ap.example/s",
                    "s1",
                    minutes_ago(5),
                )
            ]
        ),
    )
    assert await run.poll() == []
    feed_server.set(
        "ap.xml",
        rss(
            [
                Item(
                    "Putin and Kim meet in Pyongyang",
                    "Putin arrived for a summit.",
                    "https://ap.example/s",
                    "s1",
                    minutes_ago(5),
                )
            ]
        ),
    )
    [card] = await run.poll()
    assert card["update"] is False and card["title"] == "Putin and Kim meet in Pyongyang"


async def test_distinct_missile_stories_on_different_days_both_alert(feed_server, bot_run):
    feed_server.set("w.xml", empty_rss())
    run = bot_run(
        [{"name": "Wire", "url": feed_server.url("w.xml")}],
        [{"name": "NK", "query": '"North Korea"', "channels": ["console:desk"]}],
    )
    await run.poll()
    feed_server.set(
        "w.xml",
        rss(
            [
                Item(
                    "North Korea fires ballistic missile towards sea, South Korea says",
                    "North Korea fired a short-range ballistic missile off its east coast on Sunday, "
                    "South Korea's military said, days after Pyongyang warned of stronger measures.",
                    "https://wire.example/nk-missile-sunday",
                    "m1",
                    minutes_ago(30),
                )
            ]
        ),
    )
    assert len(await run.poll()) == 1
    feed_server.set(
        "w.xml",
        rss(
            [
                Item(
                    "North Korea fires two ballistic missiles, Japan says",
                    "North Korea launched two ballistic missiles into the sea off its east coast on Tuesday, "
                    "Japan's defence ministry said, the latest in a string of weapons tests this month.",
                    "https://wire.example/nk-missiles-tuesday",
                    "m2",
                    minutes_ago(5),
                )
            ]
        ),
    )
    assert len(await run.poll()) == 1


async def test_old_item_reappearing_never_alerts(feed_server, bot_run):
    feed_server.set(
        "w.xml",
        rss([Item("Putin old news", "old", "https://w.example/old", "old", minutes_ago(60))]),
    )
    run = bot_run(
        [{"name": "Wire", "url": feed_server.url("w.xml")}],
        [{"name": "Putin", "query": "Putin", "channels": ["console:desk"]}],
    )
    await run.poll()  # baseline records it
    feed_server.set("w.xml", empty_rss())
    await run.poll()
    feed_server.set(
        "w.xml",
        rss(
            [
                Item(
                    "Putin old news",
                    "old",
                    "https://w.example/old?utm_source=x",
                    "old",
                    minutes_ago(60),
                )
            ]
        ),
    )
    assert await run.poll() == []


async def test_stories_older_than_max_age_never_alert(feed_server, bot_run):
    feed_server.set("w.xml", empty_rss())
    run = bot_run(
        [{"name": "Wire", "url": feed_server.url("w.xml")}],
        [{"name": "Putin", "query": "Putin", "channels": ["console:desk"]}],
        alerts={"max_age": "2h"},
    )
    await run.poll()
    feed_server.set(
        "w.xml",
        rss(
            [
                Item("Putin yesterday", "a", "https://w.example/1", "1", minutes_ago(60 * 5)),
                Item("Putin today", "b", "https://w.example/2", "2", minutes_ago(10)),
            ]
        ),
    )
    assert [c["title"] for c in await run.poll()] == ["Putin today"]


REPLAY = [
    # (feed, items) per poll; each Item: (title, lead, link, guid)
    {"a": [], "b": []},
    {
        "a": [
            (
                "Putin meets Kim in Pyongyang",
                "Putin and Kim Jong Un met on Wednesday in the North Korean capital.",
                "https://a.example/1",
                "a1",
            ),
            (
                "Markets rally on rate hopes",
                "Stocks rose on Wednesday.",
                "https://a.example/2",
                "a2",
            ),
        ]
    },
    {
        "b": [
            (
                "Putin meets Kim in Pyongyang",
                "Putin and Kim Jong Un met on Wednesday in the North Korean capital.",
                "https://b.example/x?utm_source=rss",
                "b1",
            )
        ]
    },
    {
        "a": [
            (
                "Putin and Kim sign defence pact in Pyongyang",
                "Putin and Kim Jong Un signed a mutual defence pact on Wednesday.",
                "https://a.example/1",
                "a1",
            ),
            (
                "Markets rally on rate hopes",
                "Stocks rose on Wednesday.",
                "https://a.example/2",
                "a2",
            ),
            (
                "Kremlin says pact is defensive",
                "The Kremlin said on Thursday the pact with North Korea threatens no one.",
                "https://a.example/3",
                "a3",
            ),
        ]
    },
    {
        "a": [
            (
                "Putin and Kim sign defence pact in Pyongyang",
                "Putin and Kim Jong Un signed a mutual defence pact on Wednesday.",
                "https://a.example/1/",
                "a1-reissued",
            ),
            (
                "Kremlin says pact is defensive",
                "The Kremlin said on Thursday the pact with North Korea threatens no one.",
                "https://a.example/3",
                "a3",
            ),
        ],
        "b": [
            (
                "Kremlin: pact with Pyongyang is defensive",
                "The Kremlin said on Thursday the pact with North Korea threatens no one.",
                "https://b.example/y",
                "b2",
            )
        ],
    },
    {
        "b": [
            (
                "Seoul protests Russia-North Korea pact",
                "South Korea summoned the Russian ambassador over the pact with North Korea.",
                "https://b.example/z",
                "b3",
            )
        ]
    },
]


async def test_replay_of_consecutive_captures_gives_each_story_exactly_once(
    feed_server, bot_run, tmp_path
):
    run = bot_run(
        [
            {"name": "A", "url": feed_server.url("a.xml")},
            {"name": "B", "url": feed_server.url("b.xml")},
        ],
        [
            {
                "name": "NK",
                "query": '"North Korea" OR Pyongyang OR Kim',
                "channels": ["console:desk"],
            },
            {
                "name": "Russia",
                "query": "Putin OR Kremlin OR Russia*",
                "channels": ["console:russia"],
            },
        ],
    )
    current: dict[str, list] = {"a": [], "b": []}
    cards: list[dict] = []
    for step in REPLAY:
        current.update(step)
        for name, items in current.items():
            feed_server.set(
                f"{name}.xml",
                rss([Item(t, lead, link, guid, minutes_ago(10)) for t, lead, link, guid in items]),
            )
        cards.extend(await run.poll())  # each poll is a restart: state lives in the database
    new = sorted((c["channel"], c["title"]) for c in cards if not c["update"])
    assert new == sorted(
        [
            ("console:desk", "Putin meets Kim in Pyongyang"),
            ("console:russia", "Putin meets Kim in Pyongyang"),
            ("console:desk", "Kremlin says pact is defensive"),
            ("console:russia", "Kremlin says pact is defensive"),
            ("console:desk", "Seoul protests Russia-North Korea pact"),
            ("console:russia", "Seoul protests Russia-North Korea pact"),
        ]
    )
    updates = sorted((c["channel"], c["title"]) for c in cards if c["update"])
    assert updates == sorted(
        [
            ("console:desk", "Putin and Kim sign defence pact in Pyongyang"),
            ("console:russia", "Putin and Kim sign defence pact in Pyongyang"),
        ]
    )


# --- issue 13: co-listed live blogs, duplicates that route their own matches --------------------

# SMH ran several live blogs at once, every one under the same lead (captured 2020-09-03).
HELPLINE = (
    "If you suspect you or a family member has coronavirus, call the National Coronavirus "
    "Health Information Line on 1800 020 080 for advice and testing locations."
)


def live_blog(n: int, title: str) -> Item:
    return Item(title, HELPLINE, f"https://www.smh.com.au/live/{n}", f"p5{n}rw", minutes_ago(20))


SMH_OTHERS = [
    Item(
        "Putin critic Navalny was poisoned with Novichok, Germany says",
        "The German government said tests showed Alexei Navalny was poisoned with a nerve agent.",
        "https://www.smh.com.au/world/navalny",
        "p55rw3",
        minutes_ago(90),
    ),
    Item(
        "Tablet interactive: Coronavirus outbreak",
        HELPLINE,
        "https://www.smh.com.au/interactive/tablet",
        "p55tab",
        minutes_ago(120),
    ),
]


async def test_co_listed_live_blogs_under_a_shared_lead_stay_apart(feed_server, bot_run):
    feed_server.set("smh.xml", empty_rss())
    run = bot_run(
        [{"name": "SMH", "url": feed_server.url("smh.xml")}],
        [{"name": "States", "query": "Victoria OR NSW OR Queensland", "channels": ["console:au"]}],
    )
    await run.poll()
    victoria = live_blog(1, "Coronavirus Australia live news: Victoria records 113 new cases")
    feed_server.set("smh.xml", rss([victoria, *SMH_OTHERS]))
    assert [c["title"] for c in await run.poll()] == [victoria.title]
    # A second blog opens while the first is still listed: its own card, not an update.
    nsw = live_blog(
        2, "Coronavirus Australia live news: NSW records 17 new cases as Victoria eases"
    )
    feed_server.set("smh.xml", rss([nsw, victoria, *SMH_OTHERS]))
    cards = await run.poll()
    assert [(c["title"], c["update"]) for c in cards] == [(nsw.title, False)]
    # Both stay listed: nothing flip-flops between the two headlines.
    feed_server.set("smh.xml", rss([nsw, victoria, *SMH_OTHERS], title="again"))
    assert await run.poll() == []
    # The Victoria blog closes as a Queensland one opens: the shared lead does not make the new
    # blog a moved copy of the closed one.
    qld = live_blog(3, "Coronavirus Australia live news: Queensland records 2 new cases")
    feed_server.set("smh.xml", rss([qld, nsw, *SMH_OTHERS]))
    cards = await run.poll()
    assert [(c["title"], c["update"]) for c in cards] == [(qld.title, False)]


KIM_A = Item(
    "Chinese medical experts sent to advise on NKorea's Kim",
    "China has sent a team including medical experts to Pyongyang to advise on leader Kim "
    "Jong Un, three people familiar with the situation said on Saturday.",
    "https://a.example/china-kim",
    "a-kim",
)
KIM_B = Item(
    "Chinese medical team dispatched to North Korea to advise on Kim Jong-un's care",
    "China has sent a team including medical experts to North Korea to advise on leader Kim "
    "Jong Un, three people familiar with the situation said on Saturday.",
    "https://b.example/nk/kim-care",
    "b-kim",
)


@pytest.mark.parametrize("order", ["AB", "BA"])
async def test_a_duplicate_from_another_feed_alerts_its_own_matches_whatever_the_order(
    feed_server, bot_run, order
):
    feed_server.set("a.xml", empty_rss())
    feed_server.set("b.xml", empty_rss())
    run = bot_run(
        [
            {"name": "A", "url": feed_server.url("a.xml")},
            {"name": "B", "url": feed_server.url("b.xml")},
        ],
        [
            {"name": "North Korea", "query": '"North Korea"', "channels": ["console:nk"]},
            {"name": "Kim", "query": "Kim", "channels": ["console:kim"]},
        ],
    )
    await run.poll()
    items = {"A": KIM_A, "B": KIM_B}
    cards = []
    for name in order:
        item = items[name]
        item.published = minutes_ago(10)
        feed_server.set(f"{name.lower()}.xml", rss([item]))
        cards += await run.poll()
    # Either way, each desk hears of the story once; nobody is told twice.
    assert sorted((c["channel"], c["update"]) for c in cards) == [
        ("console:kim", False),
        ("console:nk", False),
    ]
    assert [c["matched"] for c in cards if c["channel"] == "console:nk"] == [["North Korea"]]
