"""Block Kit rendering is pure: cards, digests, replies and the Home tab within Slack's limits,
with feed text that can neither mention, link nor format."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest

from bot.chat.slack.render import (
    ZWJ,
    escape,
    fit,
    href,
    render_card,
    render_digest,
    render_home,
    render_notice,
    render_reply,
    slack_date,
)
from bot.core.cards import Card, Digest
from bot.core.commands import Reply, ReplyItem
from bot.core.models import StoredStory, Story
from tests.fakes.slack_server import blocks_text, validate_blocks

WHEN = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
HUGE = ("Pyongyang fires missile " * 5000).strip()  # about 120 KB
HOSTILE = "<!channel> <!here> <@U123> <#C123|general> <https://evil.example|click> AT&T *bold*"


def card(**fields: object) -> Card:
    values: dict = {
        "headline": "Pyongyang fires missile",
        "url": "https://w.example/1",
        "source": "Wire",
        "published": WHEN,
        "summary": "Seoul says it landed at sea.",
        "matched": ("Pyongyang",),
        "channel": "slack:C0DESK",
        "watchlists": ("Korea",),
        "delivery_id": 7,
    }
    values.update(fields)
    return Card(**values)


def text_objects(blocks: list[dict]) -> list[dict]:
    found = []
    for block in blocks:
        if isinstance(block.get("text"), dict):
            found.append(block["text"])
        found.extend(e for e in block.get("elements", []) if "text" in e)
    return found


def live_markup(payload: object) -> list[str]:
    """The <...> sequences Slack would act on, other than our links and dates."""
    text = json.dumps(payload, ensure_ascii=False)
    return [m for m in re.findall(r"<[^<>]*>", text) if not m.startswith(("<http", "<!date^"))]


def assert_within_limits(payload: dict, max_blocks: int = 50) -> None:
    assert validate_blocks(payload["blocks"], max_blocks=max_blocks) == []
    for obj in text_objects(payload["blocks"]):
        assert 0 < len(obj["text"]) <= 3000
    if "text" in payload:
        assert 0 < len(payload["text"]) <= 3000


# --- escaping ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("<!channel>", "&lt;!channel&gt;"),
        ("<!here>", "&lt;!here&gt;"),
        ("<@U123>", "&lt;@U123&gt;"),
        ("<https://evil|click>", "&lt;https://evil|click&gt;"),
        ("AT&T", "AT&amp;T"),
        ("&amp;", "&amp;amp;"),  # already an entity in the text: shown as typed
        ("*bold*", f"{ZWJ}*{ZWJ}bold{ZWJ}*{ZWJ}"),
        (
            "_it_ ~gone~ `code`",
            f"{ZWJ}_{ZWJ}it{ZWJ}_{ZWJ} {ZWJ}~{ZWJ}gone{ZWJ}~{ZWJ} {ZWJ}`{ZWJ}code{ZWJ}`{ZWJ}",
        ),
        ("@here #general :smile:", "@here #general :smile:"),  # inert under verbatim
        ("Путин 普京", "Путин 普京"),
    ],
)
def test_escape_makes_feed_text_inert(raw: str, escaped: str) -> None:
    assert escape(raw) == escaped


@pytest.mark.parametrize(
    ("text", "limit"),
    [(HUGE, 3000), ("&" * 10_000, 3000), ("*" * 5000, 100), ("a&b " * 2000, 50), ("word", 3)],
)
def test_fit_cuts_escaped_text_to_the_limit(text: str, limit: int) -> None:
    out = fit(text, limit)
    assert 0 < len(out) <= limit
    assert "&" not in out.replace("&amp;", "")  # never an entity cut in half


def test_fit_cuts_at_a_word_boundary() -> None:
    out = fit(HUGE, 3000)
    assert out.endswith("…") and out[:-1].rsplit(" ", 1)[-1] in ("Pyongyang", "fires", "missile")


@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("https://w.example/a?x=1&y=2", "https://w.example/a?x=1&amp;y=2"),
        ("https://w.example/a|b", "https://w.example/a%7Cb"),
        ("javascript:alert(1)", None),
        ("https://w.example/<x>", None),
        ("https://w.example/" + "a" * 3000, None),
        (None, None),
    ],
)
def test_link_targets_are_http_only_and_cannot_break_out(url: str | None, target: str | None):
    assert href(url) == target


def test_slack_date_shows_local_time_with_a_utc_fallback() -> None:
    assert slack_date(WHEN) == (
        "<!date^1714566600^{date_short_pretty} {time}|01 May 2024 12:30 UTC>"
    )


# --- cards ------------------------------------------------------------------------------------


def test_card_layout() -> None:
    payload = render_card(card())

    assert_within_limits(payload)
    head, summary, ctx = payload["blocks"]
    assert head["text"]["text"] == "*<https://w.example/1|Pyongyang fires missile>*"
    assert "accessory" not in head
    assert summary["text"]["text"] == "Seoul says it landed at sea."
    assert [e["text"] for e in ctx["elements"]] == [
        f"Wire · {slack_date(WHEN)}",
        "Matched: Pyongyang",
        "Watchlist: Korea",
    ]
    assert payload["text"] == "Pyongyang fires missile (Wire)"
    assert all(o.get("verbatim") is True for o in text_objects(payload["blocks"]))


def test_image_is_an_accessory_only_when_the_story_has_one() -> None:
    with_image = render_card(card(image="https://img.example/1.jpg"))["blocks"][0]
    without = render_card(card(image=None))["blocks"][0]

    assert with_image["accessory"] == {
        "type": "image",
        "image_url": "https://img.example/1.jpg",
        "alt_text": "Pyongyang fires missile",
    }
    assert "accessory" not in without


@pytest.mark.parametrize(
    ("fields", "marks", "fallback"),
    [
        ({"urgent": True}, ":rotating_light: *URGENT*", "URGENT: "),
        ({"update": True}, ":pencil2: _Updated_", "Updated: "),
        (
            {"urgent": True, "update": True},
            ":rotating_light: *URGENT*  :pencil2: _Updated_",
            "URGENT: Updated: ",
        ),
    ],
)
def test_urgent_and_updated_marks(fields: dict, marks: str, fallback: str) -> None:
    payload = render_card(card(**fields))
    assert payload["blocks"][0]["text"]["text"].startswith(f"{marks}\n*<https://w.example/1|")
    assert payload["text"].startswith(fallback)


def test_subscription_card_says_so_and_has_no_watchlist() -> None:
    payload = render_card(card(subscriber="slack:U1", watchlists=(), channel="slack:dm:U1"))
    assert "For you (your subscription)" in blocks_text(payload["blocks"])
    assert "Watchlist" not in blocks_text(payload["blocks"])


def test_card_without_link_time_summary_or_terms() -> None:
    payload = render_card(card(url=None, published=None, summary=" ", matched=(), watchlists=()))
    assert_within_limits(payload)
    assert payload["blocks"][0]["text"]["text"] == "*Pyongyang fires missile*"
    assert len(payload["blocks"]) == 2
    assert payload["blocks"][1]["elements"][0]["text"] == "Wire · time unknown"


@pytest.mark.parametrize(
    "fields",
    [
        {"headline": HOSTILE},
        {"summary": HOSTILE},
        {"source": HOSTILE},
        {"matched": (HOSTILE, "<!everyone>")},
        {"watchlists": (HOSTILE,)},
        {"url": "https://w.example/x?a=<!channel>"},
    ],
    ids=["headline", "summary", "source", "matched", "watchlists", "url"],
)
def test_feed_text_forms_no_mention_link_or_format_anywhere(fields: dict) -> None:
    payload = render_card(card(**fields))

    assert live_markup(payload) == []
    dumped = json.dumps(payload, ensure_ascii=False)
    assert "*bold*" not in dumped
    assert "&lt;!channel&gt;" in dumped or "a=" not in dumped
    assert_within_limits(payload)


@pytest.mark.parametrize(
    "fields",
    [
        {"headline": HUGE},
        {"headline": "&" * 100_000},
        {"headline": "*" * 100_000},
        {"summary": HUGE},
        {"source": HUGE},
        {"matched": tuple(f"term{i}" for i in range(5000))},
        {"watchlists": tuple(f"list {i}" for i in range(5000))},
        {"url": "https://w.example/" + "a" * 5000, "headline": HUGE},
        {"image": "https://img.example/" + "a" * 5000},
    ],
    ids=["title", "ampersands", "asterisks", "summary", "source", "terms", "lists", "url", "img"],
)
def test_huge_fields_stay_within_slack_limits(fields: dict) -> None:
    payload = render_card(card(**fields))

    assert_within_limits(payload)
    head = payload["blocks"][0]
    if "url" in fields:  # a link longer than Slack can carry: the headline without it
        assert "<http" not in head["text"]["text"]
    if "image" in fields:
        assert "accessory" not in head


# --- digests ----------------------------------------------------------------------------------


def test_digest_of_80_cards_is_capped_at_50_blocks() -> None:
    cards = tuple(card(delivery_id=i, headline=f"Story {i} " + "word " * 700) for i in range(80))

    payload = render_digest(Digest("slack:C0DESK", cards))

    assert len(payload["blocks"]) == 50
    assert_within_limits(payload)
    assert payload["blocks"][0]["text"]["text"].startswith("*80 more stories* matching Korea")
    assert "Story 47 " in payload["blocks"][48]["text"]["text"]
    assert payload["blocks"][-1]["elements"][0]["text"].startswith("…and 32 more.")
    assert payload["text"].startswith("80 more stories: Story 0")


def test_small_digest_lists_every_card() -> None:
    payload = render_digest(Digest("slack:C0DESK", tuple(card(delivery_id=i) for i in range(5))))
    assert len(payload["blocks"]) == 6
    assert_within_limits(payload)
    assert live_markup(render_digest(Digest("x", (card(headline=HOSTILE),)))) == []


def test_each_digest_line_names_its_watchlists() -> None:
    cards = (
        card(headline="Kim visits Beijing", watchlists=("Korea", "China"), delivery_id=1),
        card(headline="Missile test", delivery_id=2),
    )
    blocks = render_digest(Digest("slack:C0DESK", cards))["blocks"]
    assert blocks[1]["text"]["text"].endswith(" · Korea + China")
    assert blocks[2]["text"]["text"].endswith(" · Korea")


# --- replies, notices, Home -------------------------------------------------------------------


def test_reply_is_ephemeral_escaped_and_links_its_items() -> None:
    reply = Reply(
        "2 stories matching <!here>:",
        (
            ReplyItem("Kim *visits*", "https://w.example/1", "Wire · 01 May 12:30 UTC"),
            ReplyItem("No link", "javascript:alert(1)"),
        ),
    )

    payload = render_reply(reply)

    assert payload["response_type"] == "ephemeral"
    assert_within_limits(payload)
    head, items = payload["blocks"]
    assert head["text"]["text"] == "2 stories matching &lt;!here&gt;:"
    assert items["text"]["text"] == (
        f"• <https://w.example/1|Kim {ZWJ}*{ZWJ}visits{ZWJ}*{ZWJ}>\n"
        "      Wire · 01 May 12:30 UTC\n"
        "• No link"
    )
    assert payload["text"] == "2 stories matching &lt;!here&gt;: (2 items)"


def test_refusal_with_a_query_error_shows_it_as_code() -> None:
    payload = render_reply(Reply("That query does not parse:", code="x ``` <@U1>\n  ^", ok=False))

    head, code = payload["blocks"]
    assert head["text"]["text"].startswith(":warning: That query")
    assert code["text"]["text"] == f"```x `{ZWJ}`{ZWJ}`{ZWJ} &lt;@U1&gt;\n  ^```"


def test_long_replies_are_packed_within_limits() -> None:
    items = tuple(
        ReplyItem("t " * 800, "https://w.example/" + "p" * 500, "d " * 800) for _ in range(25)
    )

    payload = render_reply(Reply("25 stories:", items))

    assert_within_limits(payload)
    assert len(payload["blocks"]) > 2
    assert blocks_text(payload["blocks"]).count("• ") == 25


def test_public_reply_is_in_channel() -> None:
    assert render_reply(Reply("hi", ephemeral=False))["response_type"] == "in_channel"


def test_notice_is_escaped() -> None:
    payload = render_notice("Feed '<!channel>' is failing: *500*")
    assert live_markup(payload) == []
    assert payload["blocks"][0]["text"]["text"].startswith(":warning: Feed '&lt;!channel&gt;'")


def stored(i: int, title: str = "Kremlin denies report") -> StoredStory:
    return StoredStory(
        id=i,
        feed_id=1,
        story=Story(feed="Wire", title=title, link=f"https://w.example/{i}", published=WHEN),
        first_seen=WHEN,
        revision=0,
        alertable=True,
    )


def test_home_lists_subscriptions_and_stories() -> None:
    view = render_home(["Kremlin", '"North Korea" OR <!here>'], [stored(1), stored(2, HOSTILE)])

    assert view["type"] == "home"
    assert_within_limits(view, max_blocks=100)
    text = blocks_text(view["blocks"])
    assert "Your subscriptions (2)" in text and "• Kremlin" in text
    assert '"North Korea" OR &lt;!here&gt;' in text
    assert "*<https://w.example/1|Kremlin denies report>*" in text
    assert live_markup(view) == []


def test_home_when_empty_says_how_to_subscribe() -> None:
    text = blocks_text(render_home([], [])["blocks"])
    assert "You have no subscriptions yet" in text
    assert "Nothing has matched your subscriptions yet." in text


def test_home_stays_within_100_blocks() -> None:
    view = render_home(["q " * 600] * 50, [stored(i, HUGE) for i in range(40)])
    assert len(view["blocks"]) <= 100
    assert_within_limits(view, max_blocks=100)


# --- links: the only ones are ours ------------------------------------------------------------

# Slack's own link markup from a feed or an HTTP reason phrase, and Markdown's (literal text in
# mrkdwn, which Slack never renders as a link; kept here so that it stays that way).
HOSTILE_LINKS = [
    "<https://evil.example|Read more>",
    "[1] <https://evil.example|Read more> <https://evil.example>",
    "[1] [Read more](https://evil.example)",
    "&lt;https://evil.example|Read more&gt;",  # already entities: shown as typed, not decoded
    "<https://evil.example|<https://w.example/1|x>>",
]


def link_targets(payload: object) -> list[str]:
    """Where every <target|label> or <target> Slack would act on points."""
    text = json.dumps(payload, ensure_ascii=False)
    return [m.split("|", 1)[0] for m in re.findall(r"<([^<>]*)>", text)]


@pytest.mark.parametrize("hostile", HOSTILE_LINKS)
@pytest.mark.parametrize(
    "where", ["headline", "summary", "source", "digest", "reply", "item", "notice", "home"]
)
def test_no_link_from_outside_survives_any_rendering(hostile: str, where: str) -> None:
    ours = {"https://w.example/1"}
    if where in ("headline", "summary", "source"):
        payload: object = render_card(card(**{where: hostile}))
    elif where == "digest":
        payload = render_digest(Digest("slack:C0DESK", (card(headline=hostile, summary=hostile),)))
    elif where == "notice":
        payload = render_notice(f"Feed 'Wire' is failing: HTTP 502 {hostile} (1 polls in a row).")
    elif where == "home":
        payload = render_home([hostile], [stored(1, hostile)])
    else:
        item = ReplyItem(hostile if where == "item" else "Story", "https://w.example/1", hostile)
        payload = render_reply(Reply(hostile if where == "reply" else "Stories:", (item,)))

    targets = [t for t in link_targets(payload) if not t.startswith("!date^")]
    assert set(targets) <= ours, targets
    assert "evil.example" in json.dumps(payload)  # shown, as text
