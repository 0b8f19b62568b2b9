"""Which part of a query kept it from matching a story (bot.core.query_explain), as /why names it:
the first failing clause or term, spelt as the query spells it, judged by the real matcher."""

from __future__ import annotations

import pytest

from bot.core.matcher import Matcher
from bot.core.models import Story
from bot.core.query import parse_query
from bot.core.query_explain import failing_part

STORY = Story(
    feed="BBC News",
    title="North Korea fires missile toward Sea of Japan",
    content="Pyongyang launched the missile early on Sunday, Seoul said. Sport was cancelled.",
    categories=("Asia",),
)


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ('"Kim Jong Un" AND NOT sport', '"Kim Jong Un" not found in the story'),
        ("North Korea -sport", '"sport" is in the story, and the query excludes it'),
        (
            "Korea NOT (Seoul OR Tokyo)",
            '"Seoul" OR "Tokyo" is in the story, and the query excludes it',
        ),
        ("title:Pyongyang", 'title:"Pyongyang" not found in the title'),
        ("missile category:Europe", 'category:"Europe" not found in the categories'),
        (
            "Putin OR Kremlin",
            'no alternative matched: "Putin" not found in the story; "Kremlin" '
            "not found in the story",
        ),
        (
            "A OR B OR C OR D OR E",
            'no alternative matched: "A" not found in the story; "B" not '
            'found in the story; "C" not found in the story; and 2 more',
        ),
        ("Seoul NEAR/2 Japan", '"Seoul" and "Japan" are never within 2 words of each other'),
        (
            "(Putin, Kremlin) NEAR/5 missile",
            'no alternative matched: "Putin" not found in the '
            'story; "Kremlin" not found in the story',
        ),
        ('missile source:"Reuters"', 'the story is from "BBC News", not source:"reuters"'),
        ("Korea* AND launch* AND NOT Tokyo", ""),  # it matches: nothing failed
    ],
)
def test_the_first_failing_part_is_named(query: str, reason: str) -> None:
    parsed = parse_query(query)
    assert failing_part(parsed, STORY) == (reason or None)
    # The same verdict as the matcher that alerts.
    assert bool(Matcher([(0, parsed)]).match(STORY)) is (not reason)


def test_hostile_query_text_comes_back_as_typed_not_interpreted() -> None:
    parsed = parse_query('"<@123> @everyone" OR "[x](https://evil.example)"')
    reason = failing_part(parsed, STORY)
    assert reason is not None
    # Plain text: each platform escapes it when it renders the reply.
    assert '"<@123> @everyone" not found in the story' in reason
