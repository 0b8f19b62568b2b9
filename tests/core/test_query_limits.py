"""What one query may cost, whoever wrote it: the limits of the query language and of the matcher.

A query comes from anyone who can type `/subscribe`. Whatever they type, the parser answers with
a QueryError or a query whose cost is bounded; the matcher's work per story stays bounded; and a
query that cannot be compiled is left out without taking the others down."""

from __future__ import annotations

import contextlib
import random
import time
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.core.matcher import MAX_NEAR_POSITIONS, Matcher
from bot.core.models import Origin, Subscription, Watchlist
from bot.core.query import (
    MAX_DEPTH,
    MAX_NEAR_TERMS,
    MAX_QUERY_LENGTH,
    MAX_TERMS,
    And,
    Near,
    Not,
    Query,
    QueryError,
    Term,
    parse_query,
    query_cost,
)
from bot.core.routing import QueryBook
from bot.core.tokens import split_text

# The commonest English words: every position of a story made of them is a hit for a query
# made of them, the worst case for NEAR.
COMMON = "the of and to a in is it that was for on are with as his they be at one have this".split()  # noqa: SIM905 - a word list reads best as one line


@dataclass(frozen=True, slots=True)
class Story:
    title: str
    content: str = ""
    categories: tuple[str, ...] = ()
    feed: str = "Wire"


def refusal(text: str) -> QueryError:
    with pytest.raises(QueryError) as caught:
        parse_query(text)
    return caught.value


# --- the reviewer's query, and its relatives ------------------------------------------------------


def test_a_thousand_minus_signs_are_refused_with_the_column_not_a_recursion_error() -> None:
    text = "zzz " + "-" * 975 + "a"
    error = refusal(text)
    assert error.message.startswith(f"Nested too deeply (more than {MAX_DEPTH} levels")
    assert error.position == 4 + MAX_DEPTH  # the first '-' past the limit
    assert "^" in str(error)


@pytest.mark.parametrize(
    "text",
    [
        "(" * 400 + "a" + ")" * 400,
        "NOT " * 200 + "a b",
        "a AND " + "title:(" * 3 + "x" + ")" * 3,  # fields cannot nest, parentheses can
        "a " + "-(" * 300 + "b" + ")" * 300,
    ],
)
def test_deep_nesting_of_any_kind_is_a_query_error(text: str) -> None:
    with pytest.raises(QueryError):
        parse_query(text)


def test_nesting_up_to_the_limit_is_accepted_and_matches() -> None:
    text = "(" * (MAX_DEPTH - 1) + "putin NOT kremlin" + ")" * (MAX_DEPTH - 1)
    query = parse_query(text)
    matcher = Matcher([("q", query)])
    assert matcher.match(Story("Putin speaks")) == {"q": ("Putin",)}
    assert matcher.match(Story("Putin at the Kremlin")) == {}


def test_too_many_terms_are_refused_at_the_first_one_past_the_limit() -> None:
    words = [f"w{i}" for i in range(MAX_TERMS + 5)]
    text = ", ".join(words)
    error = refusal(text)
    assert "Too many terms" in error.message
    assert error.position == text.index(f"w{MAX_TERMS},")
    assert query_cost(parse_query(", ".join(words[:MAX_TERMS]))).terms == MAX_TERMS


def test_a_near_side_longer_than_the_limit_is_refused() -> None:
    many = ", ".join(f"w{i}" for i in range(MAX_NEAR_TERMS + 1))
    error = refusal(f"putin NEAR/5 ({many})")
    assert f"at most {MAX_NEAR_TERMS} alternatives" in error.message
    assert error.position == len("putin NEAR/5 ")
    ok = ", ".join(f"w{i}" for i in range(MAX_NEAR_TERMS))
    assert query_cost(parse_query(f"({ok}) NEAR/5 putin")).near == 1


def test_query_cost_counts_terms_and_near() -> None:
    cost = query_cost(parse_query('(putin, kremlin) NEAR/5 kim AND title:"north korea" -seoul'))
    assert (cost.terms, cost.near) == (5, 1)


# --- fuzz: nothing but QueryError, in bounded time ------------------------------------------------

_ALPHABET = st.sampled_from(
    [*'ab -(),"*:/“”', "NOT ", "AND ", "OR ", "NEAR/3 ", "NEAR/", "title:", "source:", "Пу", "普"]
)


@settings(
    max_examples=400,
    deadline=None,  # the bound is checked below, generously, so a loaded machine cannot fail it
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.lists(_ALPHABET, max_size=400).map("".join))
def test_fuzzed_queries_raise_only_query_errors(text: str) -> None:
    started = time.perf_counter()
    try:
        query = parse_query(text)
    except QueryError as error:
        str(error)  # the message with its caret renders too
    else:
        cost = query_cost(query)
        assert cost.terms <= MAX_TERMS + MAX_NEAR_TERMS  # NEAR sides count in the cost too
        Matcher([(0, query)]).match(Story(text, text, (text,)))
    assert time.perf_counter() - started < 5  # seconds; a quadratic parser takes minutes


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=MAX_QUERY_LENGTH + 10))
def test_fuzzed_unicode_raises_only_query_errors(text: str) -> None:
    with contextlib.suppress(QueryError):
        parse_query(text)


# --- the matcher: one bad query is left out, the others alert -----------------------------------


def _deep(levels: int) -> Query:
    node: object = Term(("putin",))
    for _ in range(levels):
        node = Not(And((Term(("zzz",)), node)))  # type: ignore[arg-type]
    return Query("deep", node)  # type: ignore[arg-type]


def test_a_query_that_cannot_compile_is_skipped_and_the_others_still_match() -> None:
    matcher = Matcher([("bad", _deep(5000)), ("good", parse_query("putin"))])
    assert matcher.match(Story("Putin speaks")) == {"good": ("Putin",)}
    [(key, reason)] = matcher.skipped
    assert key == "bad" and "RecursionError" in reason


def test_the_book_skips_stored_queries_that_no_longer_parse_and_says_whose() -> None:
    hostile = "zzz " + "-" * 975 + "a"  # stored before the depth limit existed
    book = QueryBook(
        [Watchlist(1, "Floods", "flood", ("console:desk",), Origin.CONFIG)],
        [Subscription(7, "discord:42", hostile)],
    )
    [skipped] = book.skipped
    assert skipped.what == "subscription of discord:42"
    assert skipped.query == hostile
    assert "Nested too deeply" in skipped.reason
    [route] = book.route(Story("Flood warning"))
    assert route.target == "console:desk"


# --- NEAR: fast, and the same answers as the obvious algorithm ----------------------------------


def _naive_near(story: Story, query: Near) -> bool:
    """Every position of the left side against every position of the right: the definition."""
    for text in (story.title, story.content, *story.categories):
        tokens = split_text(text)[1]

        def spans(terms: tuple[Term, ...], tokens: list[str] = tokens) -> list[tuple[int, int]]:
            found = []
            for term in terms:
                n = len(term.words)
                for i in range(len(tokens) - n + 1):
                    if tuple(tokens[i : i + n]) == term.words:
                        found.append((i, i + n - 1))
            return found

        for a in spans(query.left):
            for b in spans(query.right):
                if a != b and max(b[0] - a[1], a[0] - b[1]) - 1 <= query.distance:
                    return True
    return False


_WORDS = ["putin", "kim", "north", "korea", "talks", "the"]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(_WORDS), min_size=0, max_size=60),
    st.lists(st.sampled_from(_WORDS), min_size=0, max_size=20),
    st.lists(
        st.sampled_from(["putin", "kim", "north korea", "korea talks", "the"]),
        min_size=1,
        max_size=3,
    ),
    st.lists(
        st.sampled_from(["kim", "putin", "talks", "the north", "korea"]), min_size=1, max_size=3
    ),
    st.integers(min_value=1, max_value=8),
)
def test_near_agrees_with_comparing_every_pair(
    content: list[str], title: list[str], left: list[str], right: list[str], distance: int
) -> None:
    story = Story(" ".join(title), " ".join(content))
    side = lambda terms: "(" + ", ".join(f'"{t}"' for t in terms) + ")"  # noqa: E731
    query = parse_query(f"{side(left)} NEAR/{distance} {side(right)}")
    assert isinstance(query.root, Near)
    found = Matcher([(0, query)]).match(story)
    assert bool(found) == _naive_near(story, query.root)


def test_near_over_lists_of_common_words_on_a_long_story_reports_what_is_close() -> None:
    # The review's shape, within the limits: the commonest words on both sides of a NEAR, on a
    # story of 19,000 characters (what it costs is in bench/matcher.py, not here).
    rng = random.Random(7)
    story = Story("t", " ".join(rng.choice(COMMON) for _ in range(3200)))
    queries = []
    for i in range(50):
        left, right = rng.sample(COMMON, MAX_NEAR_TERMS), rng.sample(COMMON, MAX_NEAR_TERMS)
        text = f"({', '.join(left)}) NEAR/100 ({', '.join(right)})"
        queries.append((i, parse_query(text)))
    matcher = Matcher(queries)
    matched = matcher.match(story)
    assert len(matched) == 50
    for key, terms in matched.items():
        assert 2 <= len(terms) <= 2 * MAX_NEAR_TERMS
        assert {t.casefold() for t in terms} <= set(COMMON), key


def test_near_looks_at_a_bounded_number_of_positions_per_side() -> None:
    # "kim" only after MAX_NEAR_POSITIONS occurrences of "putin": past the bound, not looked at.
    far = Story("t", "putin " * (MAX_NEAR_POSITIONS + 2) + "kim")
    near = Story("t", "kim putin " + "putin " * MAX_NEAR_POSITIONS)
    matcher = Matcher([(0, parse_query("putin NEAR/1 kim"))])
    assert matcher.match(near) == {0: ("kim", "putin")}
    assert matcher.match(far) == {}
