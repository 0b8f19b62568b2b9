"""The one matcher: many queries at once behave exactly like each query on its own."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

import pytest

from bot.core.matcher import Matcher
from bot.core.query import Not, Query, Term, parse_query


@dataclass(frozen=True, slots=True)
class Story:
    title: str
    content: str = ""
    categories: tuple[str, ...] = ()
    feed: str = "AP Top News"


STORIES = [
    Story(
        "Putin Visits North Korea, Pledges Cooperation Amid Sanctions Pressure",
        "SEOUL (AP) — Russian President Vladimir Putin arrived in Pyongyang on Wednesday for "
        "his first visit to North Korea in 24 years, where Kim Jong Un greeted him at the "
        "airport. The two leaders pledged cooperation as Washington and its allies tighten "
        "sanctions over Moscow's war in Ukraine.",
    ),
    Story(
        "Kim Jong-un appears in public, North Korean state media report",
        "KIM JONG-UN cut a ribbon at a fertiliser factory near Pyongyang, KCNA said.",
        ("Asia", "North Korea"),
        "BBC News",
    ),
    Story(
        "Kremlin says Putin’s talks with Xi were 'productive'",
        "The Kremlin said Putin and Xi Jinping discussed Ukraine. Beijing did not comment.",
        ("World", "Russia", "China"),
        "Reuters World",
    ),
    Story("Росія атакувала Київ дронами", "Уночі Росія випустила 30 дронів; Путін мовчить."),
    Story("普京访问朝鲜", "俄罗斯总统普京周三抵达平壤，与金正恩举行会谈。", (), "BBC 中文"),
    Story("Zelenskyý visits Łódź", "Zelenskyy and Duda met in Lodz on Tuesday.", ("Europe",)),
    Story("Markets rally", "Stocks rose for a third day; no mention of any leader.", (), "AP"),
]

QUERIES = [
    "North Korea",
    "Putin",
    "putin",
    "Pyongyang",
    "Kim Jong Un",
    "Kim Jong-un",
    'Putin AND (Pyongyang OR "North Korea")',
    "Putin NEAR/5 Pyongyang",
    "Pyongyang NEAR/3 Kim",
    "(Putin, Xi) NEAR/2 Kremlin",
    "Korea*",
    "Putinism",
    '"South Korea" -Seoul',
    "title:Kim",
    "title:Putin",
    "content:Putin",
    'category:"North Korea"',
    "category:Russia OR category:China",
    "Beijing OR Xi",
    "North Korea, Pyongyang, DPRK",
    "Putin -Kremlin",
    "Putin AND NOT (Kremlin OR Moscow)",
    "(Putin -Kremlin) OR (Kim -Seoul)",
    "source:AP -Putin",
    "source:AP",
    'source:"BBC News" Kim',
    "Putin OR source:Reuters",
    "Путін OR Росія",
    "普京",
    "俄罗斯 NEAR/2 普京",
    "Zelenskyy",
    "Lodz OR Łódź",
    "Xi AND Beijing OR Putin",
    "Ukraine",
    "Ukrain*",
]


def alone(query: Query, story: Story) -> tuple[str, ...] | None:
    return Matcher([(0, query)]).match(story).get(0)


def test_many_queries_at_once_equal_each_query_alone() -> None:
    parsed = [parse_query(text) for text in QUERIES]
    matcher = Matcher(list(enumerate(parsed)))
    for story in STORIES:
        expected = {i: alone(q, story) for i, q in enumerate(parsed)}
        assert matcher.match(story) == {i: t for i, t in expected.items() if t is not None}


def test_results_come_in_the_order_the_queries_were_given() -> None:
    parsed = [parse_query(text) for text in QUERIES]
    keys = [("watchlist", i) for i in range(len(parsed))]
    matcher = Matcher(zip(reversed(keys), parsed, strict=True))
    found = list(matcher.match(STORIES[0]))
    assert found == sorted(found, reverse=True)
    assert len(found) > 5


def test_not_branch_matches_when_the_excluded_term_is_absent() -> None:
    matcher = Matcher([("p", parse_query("Putin -Kremlin"))])
    assert matcher.match(STORIES[0]) == {"p": ("Putin",)}  # Putin, no Kremlin
    assert matcher.match(STORIES[2]) == {}  # Putin and Kremlin
    assert matcher.match(STORIES[6]) == {}  # neither


def test_not_inside_an_or_branch_is_evaluated_per_branch() -> None:
    matcher = Matcher([("q", parse_query("(Putin -Kremlin) OR (Kim -Seoul)"))])
    assert matcher.match(STORIES[0]) == {"q": ("Putin",)}  # Kim is there, but so is SEOUL
    assert matcher.match(STORIES[1]) == {"q": ("Kim",)}
    assert matcher.match(STORIES[2]) == {}


def test_query_without_positive_terms_matches_through_its_source() -> None:
    matcher = Matcher([("ap", parse_query("source:AP -Putin"))])
    assert matcher.match(STORIES[6]) == {"ap": ()}
    assert matcher.match(STORIES[0]) == {}  # AP Top News is another feed


def test_source_inside_a_query_triggered_by_a_word() -> None:
    matcher = Matcher([("k", parse_query('Kim AND source:"bbc news"'))])
    assert matcher.match(STORIES[1]) == {"k": ("Kim",)}
    assert matcher.match(STORIES[0]) == {}


def test_hand_built_query_made_only_of_not_is_still_evaluated() -> None:
    # parse_query refuses it; a Query built in code must still not be silently ignored.
    matcher = Matcher([("x", Query("-putin", Not(Term(("putin",)))))])
    assert matcher.match(STORIES[6]) == {"x": ()}
    assert matcher.match(STORIES[0]) == {}


def test_terms_are_reported_as_written_in_the_story() -> None:
    matcher = Matcher(
        [
            ("kim", parse_query("kim jong un")),
            ("korea", parse_query("Korea*")),
            ("putin", parse_query("PUTIN")),
        ]
    )
    assert matcher.match(STORIES[1]) == {
        "kim": ("Kim Jong-un",),  # the title's spelling comes first; "KIM JONG-UN" is the same
        "korea": ("Korean", "Korea"),  # "North Korean" in the title, "North Korea" a category
    }
    assert matcher.match(STORIES[2]) == {"putin": ("Putin",)}


def test_or_list_reports_every_term_present_when_others_share_its_terms() -> None:
    matcher = Matcher(
        [(1, parse_query("Pyongyang")), (2, parse_query("Pyongyang, Kim Jong Un, Xi"))]
    )
    assert matcher.match(STORIES[0]) == {1: ("Pyongyang",), 2: ("Pyongyang", "Kim Jong Un")}


def test_same_term_with_different_fields_in_different_queries() -> None:
    matcher = Matcher(
        [
            ("t", parse_query("title:Kim")),
            ("c", parse_query("content:Kim")),
            ("a", parse_query("Kim")),
        ]
    )
    assert matcher.match(STORIES[0]) == {"c": ("Kim",), "a": ("Kim",)}
    assert matcher.match(STORIES[1]) == {
        "t": ("Kim",),
        "c": ("KIM",),
        "a": ("Kim",),
    }


def test_empty_matcher_matches_nothing() -> None:
    matcher: Matcher[int] = Matcher([])
    assert len(matcher) == 0
    assert all(matcher.match(story) == {} for story in STORIES)


def test_duplicate_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="duplicate query key"):
        Matcher([(1, parse_query("Putin")), (1, parse_query("Kim"))])


def test_match_has_no_memory_between_stories() -> None:
    matcher = Matcher([(i, parse_query(text)) for i, text in enumerate(QUERIES)])
    first = [matcher.match(story) for story in STORIES]
    again = [matcher.match(story) for story in reversed(STORIES)]
    assert first == list(reversed(again))


def test_the_bot_story_model_is_matchable() -> None:
    from bot.core.models import Story as BotStory

    story = BotStory(
        feed="BBC News",
        title="Kim Jong-un appears in public",
        content="He was seen near Pyongyang.",
        categories=("Asia",),
    )
    matcher = Matcher([("w", parse_query('source:"BBC News" AND (Pyongyang OR category:Asia)'))])
    assert matcher.match(story) == {"w": ("Pyongyang", "Asia")}


# --- many queries: a rebuild on every watchlist change must stay cheap --------------------------

NAMES = [
    "Putin", "Kim Jong Un", "Pyongyang", "North Korea", "Xi Jinping", "Beijing", "Kremlin",
    "Moscow", "Ukraine", "Kyiv", "Zelenskyy", "Washington", "Seoul", "Tokyo", "Biden", "Trump",
    "Navalny", "Lavrov", "Shoigu", "Wagner", "NATO", "United Nations", "European Union",
    "Sanctions", "Missile", "Nuclear", "Taiwan", "Hong Kong", "Macron", "Scholz", "Sunak",
    "Erdogan", "Modi", "Netanyahu", "Gaza", "Iran", "Tehran", "Syria", "Assad", "Duda",
]  # fmt: skip


def many_queries(count: int) -> list[str]:
    """`count` distinct queries in every shape the language has."""
    rng = random.Random(7)
    shapes = [
        "{a}",
        '"{a}"',
        "{a}, {b}",
        "{a} OR {b} OR {c}",
        "{a} AND ({b} OR {c})",
        "{a} -{b}",
        "{a} NEAR/{n} {b}",
        "title:{a}",
        "content:{a} AND NOT {b}",
        'source:"AP Top News" {a}',
    ]
    queries: dict[str, None] = {}  # insertion-ordered set
    for shape in itertools.cycle(shapes):
        a, b, c = rng.sample(NAMES, 3)
        queries[shape.format(a=a, b=f'"{b}"', c=c, n=rng.randint(1, 9))] = None
        stem = a.split()[0][:5]
        if len(stem) >= 3:
            queries[shape.format(a=stem + "*", b=b, c=c, n=rng.randint(1, 9))] = None
        if len(queries) >= count:
            return list(queries)[:count]
    raise AssertionError("unreachable")


def test_ten_thousand_queries_build_into_one_matcher_that_still_agrees() -> None:
    texts = many_queries(10_000)
    parsed = [parse_query(text) for text in texts]
    matcher = Matcher(list(enumerate(parsed)))
    assert len(matcher) == 10_000
    # Every query alone is too slow for a unit test at this size; a spread sample is enough.
    sample = range(0, 10_000, 97)
    matches = 0
    for story in STORIES:
        found = matcher.match(story)
        matches += len(found)
        for index in sample:
            assert found.get(index) == alone(parsed[index], story), texts[index]
    assert matches > 100  # the stories mention names the queries use
