"""The query language, rule by rule: (story, query) -> matched terms, and queries it refuses.

Each row runs the real parser and the real matcher. `None` means "does not match"; a tuple is
what the match reports: the terms as they appear in the story, in order of first appearance.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from bot.core.matcher import Matcher
from bot.core.query import MAX_QUERY_LENGTH, QueryError, parse_query


@dataclass(frozen=True, slots=True)
class Story:
    title: str
    content: str = ""
    categories: tuple[str, ...] = ()
    feed: str = "AP Top News"


# The demo's seed story.
SEED = Story(
    title="Putin Visits North Korea, Pledges Cooperation Amid Sanctions Pressure",
    content=(
        "SEOUL (AP) — Russian President Vladimir Putin arrived in Pyongyang on Wednesday for "
        "his first visit to North Korea in 24 years, where Kim Jong Un greeted him at the "
        "airport. The two leaders pledged cooperation as Washington and its allies tighten "
        "sanctions over Moscow's war in Ukraine."
    ),
)
UKRAINIAN = Story(
    title="Росія атакувала Київ дронами",
    content="Уночі Росія випустила по Україні 30 дронів; росіяни також обстріляли Харків.",
)
RUSSIAN = Story(title="Путин провел переговоры", content="Президент России Владимир Путин заявил")
CHINESE = Story(title="普京访问朝鲜", content="俄罗斯总统普京周三抵达平壤，与金正恩举行会谈。")
JAPANESE = Story(title="プーチン大統領が平壌を訪問")
CATEGORIES = Story(
    title="Missile test condemned",
    content="The launch was the third this month.",
    categories=("World news", "North Korea", "Kim Jong-un"),
)
SPLIT_CATEGORIES = Story(title="Missile test condemned", categories=("North", "Korea"))


def case(name: str, query: str, expected: tuple[str, ...] | None, story: Story = SEED):
    return pytest.param(story, query, expected, id=name)


CASES = [
    # The demo's seed story.
    case("seed: a bare two-word phrase", "North Korea", ("North Korea",)),
    case("seed: a word", "Putin", ("Putin",)),
    case("seed: a word only in the content", "Pyongyang", ("Pyongyang",)),
    case("seed: a three-word phrase", "Kim Jong Un", ("Kim Jong Un",)),
    case(
        "seed: AND with an OR group",
        'Putin AND (Pyongyang OR "North Korea")',
        ("Putin", "North Korea", "Pyongyang"),
    ),
    case("seed: NEAR", "Putin NEAR/5 Pyongyang", ("Putin", "Pyongyang")),
    case("seed: a prefix", "Korea*", ("Korea",)),
    case("seed: a longer word is not the word", "Putinism", None),
    case("seed: an absent phrase minus a present word", '"South Korea" -Seoul', None),
    case("seed: a field the word is not in", "title:Kim", None),
    case("seed: OR of absent words", "Beijing OR Xi", None),
    # Case and accents.
    case("case: lower-case query, capitalised text", "pyongyang", ("Pyongyang",)),
    case(
        "case: query matches upper-case text",
        "Pyongyang",
        ("PYONGYANG",),
        Story("PYONGYANG HOSTS SUMMIT"),
    ),
    case("case: full case folding (ß = ss)", "Strasse", ("Straße",), Story("Straße gesperrt")),
    case(
        "accents: plain query matches accented text",
        "Zelenskyy",
        ("Zelenskyý",),
        Story("Zelenskyý meets allies"),
    ),
    case(
        "accents: accented query matches plain text",
        "Zelenskyý",
        ("ZELENSKYY",),
        Story("ZELENSKYY MEETS ALLIES"),
    ),
    case(
        "accents: decomposed combining accents",
        "Zelenskyy",
        ("Zelenskyy\u0301",),
        Story("Zelenskyy\u0301 meets allies"),
    ),
    case("accents: stroke letters (Łódź)", "Lodz", ("Łódź",), Story("Protest in Łódź")),
    case("accents: full-width letters", "Putin", ("ＰＵＴＩＮ",), Story("ＰＵＴＩＮ arrives")),
    # Other scripts.
    case("cyrillic: a Russian word", "Путин", ("Путин",), RUSSIAN),
    case("cyrillic: upper-case query", "ПУТИН", ("Путин",), RUSSIAN),
    case("cyrillic: Росія in Ukrainian text", "Росія", ("Росія",), UKRAINIAN),
    case("cyrillic: a longer word is not the word", "Росія", None, Story("росіяни обстріляли")),
    case("cyrillic: Київ in upper case", "Київ", ("КИЇВ",), Story("УДАР ПО КИЇВ")),
    case("cyrillic: OR of two cities", "Харків OR Одеса", ("Харків",), UKRAINIAN),
    case("cjk: 普京 inside a Chinese sentence", "普京", ("普京",), CHINESE),
    case("cjk: 俄罗斯 inside a Chinese sentence", "俄罗斯", ("俄罗斯",), CHINESE),
    case("cjk: part of a word matches as a substring", "罗斯", ("罗斯",), CHINESE),
    case("cjk: AND of two names", "普京 AND 平壤", ("普京", "平壤"), CHINESE),
    case("cjk: an absent name", "习近平", None, CHINESE),
    case("cjk: katakana inside a Japanese sentence", "プーチン", ("プーチン",), JAPANESE),
    # Word splitting.
    case(
        "split: spaces in the query match a hyphen",
        "Kim Jong Un",
        ("Kim Jong-un",),
        Story("Kim Jong-un appears in public"),
    ),
    case(
        "split: a hyphen in the query matches spaces",
        "Kim Jong-un",
        ("Kim Jong Un",),
        Story("Kim Jong Un appears in public"),
    ),
    case("split: upper-case phrase", "Kim Jong Un", ("KIM JONG UN",), Story("KIM JONG UN SPEAKS")),
    case("split: a possessive", "Putin", ("Putin",), Story("Putin's visit")),
    case("split: a typographic apostrophe", "Putin", ("Putin",), Story("Putin’s visit")),
    case("split: apostrophe in the query", "Putin's", ("Putin’s",), Story("Putin’s visit")),
    case("split: a word is not a part of a word", "Korea", None, Story("Koreans vote")),
    case(
        "phrase: words must be adjacent",
        "North Korea",
        None,
        Story("North and South Korea talk"),
    ),
    case(
        "phrase: whitespace between words is reported collapsed",
        "North Korea",
        ("North Korea",),
        Story("North\n   Korea fires missile"),
    ),
    case("phrase: typographic quotes", "“North Korea”", ("North Korea",)),
    # Prefixes.
    case("prefix: a longer form", "Korea*", ("Koreans",), Story("Koreans vote")),
    case(
        "prefix: every form once, in order",
        "Korea*",
        ("Korean", "Korea", "Koreans"),
        Story("Korean leaders", "Korea and Koreans; KOREA"),
    ),
    case(
        "prefix: the last word of a quoted phrase",
        '"Kim Jong*"',
        ("Kim Jong",),
        Story("Kim Jong-un appears"),
    ),
    case("prefix: only at the start of a word", "orea*", None),
    # Operators.
    case(
        "operators: lower-case 'and' is a word",
        "Putin and Kim",
        ("Putin and Kim",),
        Story("Putin and Kim meet"),
    ),
    case("operators: lower-case 'and' needs the word", "Putin and Kim", None, Story("Putin, Kim")),
    case(
        "operators: lower-case 'not' is a word",
        "not guilty",
        ("not guilty",),
        Story("He pleaded not guilty"),
    ),
    case("operators: -term excludes", "Putin -Kremlin", ("Putin",), Story("Putin speaks")),
    case("operators: -term excludes a story", "Putin -Kremlin", None, Story("Putin, Kremlin")),
    case("operators: NOT excludes", "Putin NOT Kremlin", None, Story("Putin, Kremlin")),
    case("operators: comma is OR", "North Korea, Pyongyang, DPRK", ("DPRK",), Story("DPRK test")),
    case(
        "operators: comma reports every term present",
        "North Korea, Pyongyang, DPRK",
        ("North Korea", "Pyongyang"),
    ),
    case("precedence: AND before OR (left)", "Xi AND Beijing OR Putin", ("Putin",)),
    case("precedence: AND before OR (right)", "Putin OR Xi AND Beijing", ("Putin",)),
    case("precedence: NOT before AND", "Putin AND NOT Seoul OR Kim", ("Kim",)),
    case("precedence: parentheses first", "Putin AND (NOT Seoul OR Kim)", ("Putin", "Kim")),
    case(
        "implicit AND: quoted phrases side by side",
        '"North Korea" "Kim Jong Un"',
        ("North Korea", "Kim Jong Un"),
    ),
    case("implicit AND: a word and a group", "Putin (Beijing OR Xi)", None),
    case(
        "implicit AND: a quoted phrase and a word",
        '"Kim Jong Un" Washington',
        ("Kim Jong Un", "Washington"),
    ),
    # NEAR.
    case("near: the other order", "Pyongyang NEAR/5 Putin", ("Putin", "Pyongyang")),
    case("near: exactly n words between", "Putin NEAR/2 Pyongyang", ("Putin", "Pyongyang")),
    case("near: more than n words between", "Putin NEAR/1 Pyongyang", None),
    case(
        "near: phrases as operands",
        '"Vladimir Putin" NEAR/3 Pyongyang',
        ("Vladimir Putin", "Pyongyang"),
    ),
    case("near: an OR list as operand", "(Xi, Kim) NEAR/3 greeted", ("Kim", "greeted")),
    case("near: never across title and content", "Pressure NEAR/3 Seoul", None),
    case(
        "near: one occurrence is not near itself",
        "Putin NEAR/3 Putin",
        None,
        Story("Putin speaks"),
    ),
    # Fields.
    case("fields: title", "title:Putin", ("Putin",)),
    case("fields: title phrase", 'title:"North Korea"', ("North Korea",)),
    case("fields: a field covers the bare phrase after it", "title:North Korea", ("North Korea",)),
    case("fields: content", "content:Kim", ("Kim",)),
    case("fields: a word only in the content is not in the title", "title:Pyongyang", None),
    case("fields: a field on a group", "title:(Xi OR Putin)", ("Putin",)),
    case("fields: category", 'category:"North Korea"', ("North Korea",), CATEGORIES),
    case(
        "fields: no field searches the categories too",
        "Kim Jong Un",
        ("Kim Jong-un",),
        CATEGORIES,
    ),
    case("fields: a phrase never spans two categories", "North Korea", None, SPLIT_CATEGORIES),
    case(
        "fields: title phrase split between title and content",
        "title:North Korea",
        None,
        Story("North Dakota", "Korea"),
    ),
    # source:
    case(
        "source: the feed and a word",
        'source:"BBC World" Putin',
        ("Putin",),
        Story("Putin speaks", feed="BBC World"),
    ),
    case(
        "source: case-insensitive",
        'source:"BBC World" Putin',
        ("Putin",),
        Story("Putin speaks", feed="bbc world"),
    ),
    case(
        "source: another feed",
        'source:"BBC World" Putin',
        None,
        Story("Putin speaks", feed="BBC News"),
    ),
    case(
        "source: with only a NOT reports no term",
        "source:AP -Beijing",
        (),
        Story("Putin speaks", feed="AP"),
    ),
    case(
        "source: as one alternative of an OR",
        "Putin OR source:Reuters",
        (),
        Story("Xi speaks", feed="Reuters"),
    ),
    # What is reported.
    case(
        "report: first spelling, once, whatever the case",
        "Putin",
        ("PUTIN",),
        Story("PUTIN SPEAKS", "Putin said; putin added"),
    ),
    case(
        "report: each way of writing it",
        "Kim Jong Un",
        ("Kim Jong-un", "Kim Jong Un"),
        Story("Kim Jong-un", "Kim Jong Un said"),
    ),
]


@pytest.mark.parametrize(("story", "query", "expected"), CASES)
def test_query_matches_story_and_reports_terms_as_written(
    story: Story, query: str, expected: tuple[str, ...] | None
) -> None:
    matcher = Matcher([("q", parse_query(query))])
    assert matcher.match(story).get("q") == expected


def refusal(name: str, query: str, message: str, position: int):
    return pytest.param(query, message, position, id=name)


REFUSALS = [
    refusal("empty query", "", "Empty query", 0),
    refusal("only spaces", "   ", "Empty query", 0),
    refusal("too long", "a" * (MAX_QUERY_LENGTH + 1), "Query is too long", MAX_QUERY_LENGTH),
    refusal("unclosed parenthesis", "Putin AND (Kim", "Unclosed '('", 10),
    refusal("unclosed parenthesis at the end", "Putin (", "Unclosed '('", 6),
    refusal("unmatched closing parenthesis", "Putin) AND Kim", "Unmatched ')'", 5),
    refusal("unclosed quote", '"North Korea', "Unclosed quote", 0),
    refusal("unclosed quote after a word", 'Putin AND "North Korea', "Unclosed quote", 10),
    refusal("dangling AND", "Putin AND", "AND needs a word", 6),
    refusal("leading OR", "OR Putin", "OR needs a word", 0),
    refusal("dangling comma", "Putin,", "A comma needs a word", 5),
    refusal("two operators in a row", "Putin AND OR Kim", "AND needs a word", 6),
    refusal("dangling NOT", "Putin NOT", "NOT needs a word", 6),
    refusal("lone minus", "Putin - Kim", "'-' must be followed directly", 6),
    refusal("empty parentheses", "Putin ()", "Empty parentheses", 6),
    refusal("empty quotes", 'Putin ""', "Empty quotes", 6),
    refusal("punctuation only", '"--"', "Nothing to search for", 0),
    refusal("bare star", "*", "A prefix needs at least 3 letters", 0),
    refusal("too short a prefix", "ab*", "A prefix needs at least 3 letters", 2),
    refusal("star inside a word", "Ko*rea", "only allowed at the end of a word", 2),
    refusal("star before the end of a phrase", "Korea* Pyongyang", "last word of a phrase", 5),
    refusal("unknown field", "author:Smith", "Unknown field 'author:'", 0),
    refusal("field without a value", "title: Putin", "must be followed directly", 0),
    refusal("nested fields", "title:(content:Kim)", "Fields cannot be nested", 7),
    refusal("NEAR without a number", "Putin NEAR Kim", "NEAR needs a distance", 6),
    refusal("NEAR with something else", "Putin NEAR/x Kim", "NEAR needs a distance", 6),
    refusal("NEAR too far", "Putin NEAR/500 Kim", "at most 100 words", 6),
    refusal("NEAR of no words", "Putin NEAR/0 Kim", "at least 1 word", 6),
    refusal("NEAR chained", "a NEAR/2 b NEAR/2 c", "NEAR cannot be chained", 11),
    refusal("NEAR on an AND group", "(Putin AND Kim) NEAR/5 Xi", "NEAR needs a word, a phrase", 0),
    refusal("only a NOT term", "-Putin", "cannot be made only of NOT terms", 0),
    refusal("only NOT terms", "NOT Putin -Kremlin", "cannot be made only of NOT terms", 0),
    refusal("NOT of a group", "NOT (Putin OR Kim)", "cannot be made only of NOT terms", 0),
    refusal("an OR branch of only NOT", "Putin OR -Kremlin", "OR alternative made only of NOT", 9),
    refusal("source with a prefix", "source:BBC*", "without '*'", 10),
]


@pytest.mark.parametrize(("query", "message", "position"), REFUSALS)
def test_invalid_query_is_refused_with_where(query: str, message: str, position: int) -> None:
    with pytest.raises(QueryError) as caught:
        parse_query(query)
    error = caught.value
    assert message in error.message
    assert error.position == position
    assert error.query == query
    assert f"at column {position + 1}:" in str(error)


def test_refusal_shows_the_query_with_a_caret_under_the_problem() -> None:
    with pytest.raises(QueryError) as caught:
        parse_query("Putin AND (Kim")
    assert str(caught.value) == (
        "Unclosed '(' at column 11:\n  Putin AND (Kim\n            ^\nAdd the ')' that closes it."
    )


def test_caret_accounts_for_double_width_characters() -> None:
    with pytest.raises(QueryError) as caught:
        parse_query("普京 AND (俄罗斯")
    lines = str(caught.value).splitlines()
    # 普京 takes four columns in a monospace block, so '(' sits under column 2 + 4 + 5.
    assert lines[2] == "  " + " " * 9 + "^"


def test_refusal_of_a_long_query_shows_the_part_around_the_problem() -> None:
    query = "Putin OR " * 20 + "(Kim"
    with pytest.raises(QueryError) as caught:
        parse_query(query)
    excerpt, caret = str(caught.value).splitlines()[1:3]
    assert len(excerpt) < 70
    assert excerpt[len(caret) - 1] == "("


def test_query_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="Empty query"):
        parse_query("")


def test_parsed_query_keeps_the_text_as_typed() -> None:
    assert parse_query("  North Korea, Pyongyang ").text == "  North Korea, Pyongyang "


def test_equivalent_spellings_parse_to_equal_trees() -> None:
    assert parse_query("North  Korea").root == parse_query('"north korea"').root
    assert parse_query("Putin -Kremlin").root == parse_query("Putin AND NOT Kremlin").root
    assert hash(parse_query("a, b").root) == hash(parse_query("a OR b").root)


def test_query_of_the_maximum_length_is_accepted() -> None:
    query = "Putin".ljust(MAX_QUERY_LENGTH)
    assert parse_query(query).text == query


@pytest.mark.parametrize(
    ("text", "meant"),
    [
        ("putin or kremlin", "putin OR kremlin"),
        ("Trinidad and Tobago", "Trinidad AND Tobago"),
        ("kim not jong", "kim NOT jong"),
        ("putin near/5 kim", "putin NEAR/5 kim"),
    ],
)
def test_a_lowercase_operator_inside_a_phrase_gets_a_hint_and_stays_a_phrase(
    text: str, meant: str
) -> None:
    query = parse_query(text)
    [hint] = query.hints
    assert f"write it in capitals: {meant}" in hint
    assert f'quote it: "{text}"' in hint
    story = Story(title=f"On {text} today")
    assert Matcher([(0, query)]).match(story) == {0: (text,)}  # still the phrase


@pytest.mark.parametrize("text", ['"Trinidad and Tobago"', "Putin OR Kremlin", "and", "or Putin"])
def test_quoted_phrases_and_real_operators_get_no_hint(text: str) -> None:
    assert parse_query(text).hints == ()
