"""A replay of consecutive captures through a real NewsBot (issue 13's acceptance): live blogs
under a shared boilerplate lead, one story in two wordings from two feeds polled in both
orders, a story re-issued under a new GUID and link, and one listed twice in a document.
0 duplicate cards, 0 missed stories, and the same cards whatever the poll order."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.feedgen import Item, minutes_ago, rss
from tests.test_dedupe import HELPLINE, KIM_A, KIM_B

pytestmark = pytest.mark.usefixtures("feed_server")

Row = tuple[str, str, str, str]  # title, lead, link, guid

BLOGS: dict[str, Row] = {
    "victoria": (
        "Coronavirus Australia live news: Victoria records 113 new cases",
        HELPLINE,
        "https://www.smh.com.au/live/1",
        "p51rw",
    ),
    "nsw": (
        "Coronavirus Australia live news: NSW records 17 new cases as Victoria eases",
        HELPLINE,
        "https://www.smh.com.au/live/2",
        "p52rw",
    ),
    "qld": (
        "Coronavirus Australia live news: Queensland records 2 new cases",
        HELPLINE,
        "https://www.smh.com.au/live/3",
        "p53rw",
    ),
}
SMH_OTHERS: list[Row] = [
    (
        "Putin critic Navalny was poisoned with Novichok, Germany says",
        "The German government said tests showed Alexei Navalny was poisoned with a nerve agent.",
        "https://www.smh.com.au/world/navalny",
        "p55rw3",
    ),
    ("Tablet interactive: Coronavirus outbreak", HELPLINE, "https://www.smh.com.au/tab", "p55t"),
]
MERKEL_LEAD = (
    "President Biden will meet Chancellor Angela Merkel of Germany at the White House on "
    "Thursday, and is expected to press her on China and Russia."
)
MERKEL = (
    "Biden Will Press Merkel on China and Russia",
    MERKEL_LEAD,
    "https://www.nytimes.com/2021/07/15/us/biden-merkel-meeting.html",
    "https://www.nytimes.com/2021/07/15/us/biden-merkel-meeting.html",
)
MERKEL_REISSUED = (
    MERKEL[0],
    MERKEL_LEAD,
    "https://www.nytimes.com/2021/07/15/us/politics/biden-merkel-meeting.html",
    "https://www.nytimes.com/2021/07/15/us/politics/biden-merkel-meeting.html",
)
ALIVE = "Amid mounting speculation, South Korea says Kim Jong Un is 'alive and well'"
ALIVE_TWICE: list[Row] = [
    (
        ALIVE,
        "A top South Korean official said Kim Jong Un is alive and well and has been staying "
        "in the resort town of Wonsan since mid-April.",
        "https://edition.cnn.com/collections/north-korea-kim-international/",
        "cnn-collection",
    ),
    (
        ALIVE,
        "A top South Korean official said Kim Jong Un is alive and well and has been staying "
        "in the resort town of Wonsan since mid-April.",
        "https://edition.cnn.com/2020/04/26/asia/kim-jong-un-alive-intl/index.html",
        "cnn-asia",
    ),
]


def row(item: Item) -> Row:
    return (item.title, item.description, item.link or "", item.guid or "")


def replay(first: str) -> list[dict[str, list[Row]]]:
    """The documents each feed serves, poll after poll. `first`: the feed whose wording of the
    Chinese medical team story is polled first."""
    second = "b" if first == "a" else "a"
    wording = {"a": row(KIM_A), "b": row(KIM_B)}
    v, n, q = BLOGS["victoria"], BLOGS["nsw"], BLOGS["qld"]
    return [
        {"smh": [], "a": [], "b": []},
        {"smh": [v, *SMH_OTHERS], first: [wording[first]]},
        {"smh": [n, v, *SMH_OTHERS], second: [wording[second]]},
        {"smh": [q, n, *SMH_OTHERS], "a": [MERKEL, wording["a"]]},
        {"a": [MERKEL_REISSUED, wording["a"]], "b": [*ALIVE_TWICE, wording["b"]]},
        {},  # everything listed again: nothing to say
    ]


LABELS = {
    BLOGS["victoria"][0]: "victoria",
    BLOGS["nsw"][0]: "nsw",
    BLOGS["qld"][0]: "qld",
    SMH_OTHERS[0][0]: "navalny",
    KIM_A.title: "kim-care",
    KIM_B.title: "kim-care",
    MERKEL[0]: "merkel",
    ALIVE: "alive",
}

EXPECTED_NEW = {
    ("console:au", "victoria"),
    ("console:au", "nsw"),
    ("console:au", "qld"),
    ("console:russia", "navalny"),
    ("console:russia", "merkel"),
    ("console:nk", "kim-care"),
    ("console:kim", "kim-care"),
    ("console:kim", "alive"),
}
EXPECTED_UPDATES = {("console:russia", "merkel")}


async def run_replay(feed_server, bot_run, first: str) -> list[dict]:
    names = ("smh", "a", "b")
    run = bot_run(
        [{"name": name.upper(), "url": feed_server.url(f"{name}.xml")} for name in names],
        [
            {
                "name": "States",
                "query": "Victoria OR NSW OR Queensland",
                "channels": ["console:au"],
            },
            {"name": "North Korea", "query": '"North Korea"', "channels": ["console:nk"]},
            {"name": "Kim", "query": "Kim", "channels": ["console:kim"]},
            {
                "name": "Russia",
                "query": "Russia OR Putin OR Kremlin",
                "channels": ["console:russia"],
            },
        ],
    )
    current: dict[str, list[Row]] = {name: [] for name in names}
    cards: list[dict] = []
    for step, documents in enumerate(replay(first)):
        current.update(documents)
        for name, rows in current.items():
            items = [Item(t, lead, link, guid, minutes_ago(30)) for t, lead, link, guid in rows]
            feed_server.set(f"{name}.xml", rss(items, title=f"{name} poll {step}"))
        cards.extend(await run.poll())  # each poll is a restart: state lives in the database
    return cards


def summary(cards: list[dict]) -> tuple[Counter, Counter]:
    new = Counter((c["channel"], LABELS[c["title"]]) for c in cards if not c["update"])
    updates = Counter((c["channel"], LABELS[c["title"]]) for c in cards if c["update"])
    return new, updates


async def test_replay_gives_every_story_once_whatever_the_poll_order(
    feed_server, bot_run, tmp_path
):
    outcomes = {}
    for first in ("a", "b"):
        cards = await run_replay(feed_server, bot_run, first)
        new, updates = summary(cards)
        assert max(new.values()) == 1, f"duplicate cards ({first} first): {new}"
        assert set(new) == EXPECTED_NEW, f"{first} first"
        assert set(updates) == EXPECTED_UPDATES and max(updates.values()) == 1
        outcomes[first] = (new, updates)
        (tmp_path / "newsbot.db").unlink()  # the other order starts from nothing too
    assert outcomes["a"] == outcomes["b"]
