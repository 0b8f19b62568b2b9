"""Discord rendering is pure: cards, digests and replies checked against Discord's limits and
against hostile feed text, without a client or a network."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime

import pytest

from bot.chat.discord.render import (
    CONTENT_LIMIT,
    DESCRIPTION_LIMIT,
    EMBED_LIMIT,
    FIELD_NAME_LIMIT,
    FIELD_VALUE_LIMIT,
    FOOTER_LIMIT,
    NONCE_LIMIT,
    NORMAL_COLOUR,
    TITLE_LIMIT,
    UPDATED_COLOUR,
    URGENT_COLOUR,
    delivery_nonce,
    digest_nonce,
    embed_size,
    escape,
    render_card,
    render_digest,
    render_notice,
    render_reply,
)
from bot.core.cards import Card, Digest
from bot.core.commands import Reply, ReplyItem
from tests.chat.discord.markdown import masked_link_targets

HUGE = ("word " * 20_000).strip()  # 100 KB of text with word boundaries
HUGE_MARKDOWN = "**bold** __x__ `code` " * 5_000  # escaping makes it longer still
PUBLISHED = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)


def card(**overrides) -> Card:
    base = Card(
        headline="Flood warnings issued for the Severn",
        url="https://news.example/severn",
        source="Wire",
        published=PUBLISHED,
        summary="Rivers rose overnight after heavy rain.",
        matched=("flood",),
        channel="discord:1400000000000000001",
        watchlists=("Floods",),
        delivery_id=7,
    )
    return dataclasses.replace(base, **overrides)


def rendered_text(embed) -> str:
    data = embed.to_dict()
    parts = [data.get("title", ""), data.get("description", "")]
    parts += [f["name"] + "\n" + f["value"] for f in data.get("fields", [])]
    parts += [data.get("footer", {}).get("text", ""), data.get("author", {}).get("name", "")]
    return "\n".join(parts)


def assert_within_limits(embed) -> None:
    data = embed.to_dict()
    assert len(data.get("title", "")) <= TITLE_LIMIT
    assert len(data.get("description", "")) <= DESCRIPTION_LIMIT
    assert len(data.get("fields", [])) <= 25
    for field in data.get("fields", []):
        assert 0 < len(field["name"]) <= FIELD_NAME_LIMIT
        assert 0 < len(field["value"]) <= FIELD_VALUE_LIMIT
    assert len(data.get("footer", {}).get("text", "")) <= FOOTER_LIMIT
    assert len(data.get("author", {}).get("name", "")) <= 256
    assert embed_size(embed) <= EMBED_LIMIT


# --- limits ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"headline": HUGE}, id="title"),
        pytest.param({"summary": HUGE}, id="description"),
        pytest.param({"source": HUGE}, id="author"),
        pytest.param({"matched": tuple(f"term{i}" for i in range(5000))}, id="matched-field"),
        pytest.param({"watchlists": tuple(f"watchlist {i}" for i in range(5000))}, id="footer"),
        pytest.param({"headline": HUGE_MARKDOWN, "summary": HUGE_MARKDOWN}, id="escaped-growth"),
        pytest.param(
            {
                "headline": HUGE,
                "summary": HUGE,
                "source": HUGE,
                "matched": (HUGE,),
                "watchlists": (HUGE,),
                "update": True,
            },
            id="everything-at-once",
        ),
    ],
)
def test_card_respects_every_discord_limit(overrides) -> None:
    embed = render_card(card(**overrides))
    assert_within_limits(embed)


def test_long_title_is_cut_at_a_word_boundary_with_an_ellipsis() -> None:
    title = render_card(card(headline=HUGE)).title
    assert title is not None
    assert title.endswith("word…")
    assert len(title) <= TITLE_LIMIT


def test_escaping_never_leaves_a_dangling_backslash_when_cut() -> None:
    title = render_card(card(headline="*" * 10_000)).title
    assert title is not None
    assert len(title) <= TITLE_LIMIT
    body = title.removesuffix("…")
    assert re.fullmatch(r"(\\\*)+", body), body[-10:]
    assert len(body) > 200  # the allowance is used, not thrown away


def test_the_whole_embed_stays_under_6000_even_when_every_part_is_full() -> None:
    embed = render_card(
        card(headline=HUGE, summary=HUGE, source=HUGE, matched=(HUGE,), watchlists=(HUGE,))
    )
    assert EMBED_LIMIT - 100 <= embed_size(embed) <= EMBED_LIMIT  # full, and not over


# --- hostile text ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("**bold**", r"\*\*bold\*\*"),
        ("__x__", r"\_\_x\_\_"),
        ("`code`", r"\`code\`"),
        ("[link](javascript:alert(1))", r"\[link\](javascript:alert(1))"),
        ("> quote", r"\> quote"),
        ("# heading", r"\# heading"),
        ("~~gone~~", r"\~\~gone\~\~"),
        ("||spoiler||", r"\|\|spoiler\|\|"),
    ],
)
@pytest.mark.parametrize("where", ["headline", "summary", "matched"])
def test_markdown_in_feed_text_is_escaped(raw: str, escaped: str, where: str) -> None:
    value = (raw,) if where == "matched" else raw
    text = rendered_text(render_card(card(**{where: value})))
    assert escaped in text
    # The raw form appears nowhere unless its first markup character is escaped.
    assert not re.search(r"(?<!\\)" + re.escape(raw), text)


# Masked links from outside. discord.utils.escape_markdown escaped only the first "[" of a greedy
# match, so the first of these kept a live link to evil.example; the others try the edges.
HOSTILE_LINKS = [
    "[1] [Read more](https://evil.example)",
    "[Read more](https://evil.example)",
    "\\[Read more](https://evil.example)",  # a backslash of the feed's own, to undo our escape
    "[a [b] c](https://evil.example)",
    "[Read more](<https://evil.example>)",
    "https://news.example/[Read more](https://evil.example)",
    "[https://news.example/](https://evil.example)",
    "**[Read more](https://evil.example)**",
    "> [Read more](https://evil.example)",
]


def test_the_masked_link_detector_sees_what_discord_would_link() -> None:
    evil = ["https://evil.example"]
    assert masked_link_targets("[Read more](https://evil.example)") == evil
    assert masked_link_targets("\\[1] [Read more](https://evil.example)") == evil
    assert masked_link_targets("\\\\[Read more](<https://evil.example>)") == evil
    assert masked_link_targets("\\[a [b] c](https://evil.example)") == evil  # "[b] c" is the text
    assert masked_link_targets("\\[Read more\\](https://evil.example)") == []


def test_the_greedy_case_is_escaped_bracket_by_bracket() -> None:
    assert escape("[1] [Read more](https://evil.example)") == (
        "\\[1\\] \\[Read more\\](https://evil.example)"
    )
    # A backslash of the feed's own is shown, and cannot escape our escape.
    assert escape("\\[x](https://evil.example)") == "\\\\\\[x\\](https://evil.example)"
    # A bare address stays clickable as itself; brackets in it are percent-encoded.
    assert escape("see https://news.example/a_b[1]/c now") == (
        "see https://news.example/a_b%5B1%5D/c now"
    )
    assert escape("1. first\n-# small\n  - item") == "1\\. first\n\\-# small\n  \\- item"


@pytest.mark.parametrize("hostile", HOSTILE_LINKS)
@pytest.mark.parametrize(
    "where", ["headline", "summary", "matched", "digest", "reply", "item", "detail", "notice"]
)
def test_no_masked_link_from_outside_survives_any_rendering(hostile: str, where: str) -> None:
    ours: list[str] = []
    if where in ("headline", "summary", "matched"):
        value = (hostile,) if where == "matched" else hostile
        text = rendered_text(render_card(card(**{where: value})))
    elif where == "digest":
        cards = (card(headline=hostile), card(headline="Story", url="https://news.example/b"))
        text = render_digest(Digest("discord:1", cards)).description or ""
        ours = ["https://news.example/severn", "https://news.example/b"]  # each headline's link
    elif where == "notice":
        text = render_notice(f"Feed 'Wire' is failing: HTTP 503 {hostile} (1 polls in a row).")
    else:
        item = ReplyItem(
            hostile if where == "item" else "Story",
            "https://news.example/a",
            hostile if where == "detail" else "Wire",
        )
        text = render_reply(Reply(hostile if where == "reply" else "Stories:", (item,)))
    targets = masked_link_targets(text)
    assert all(t in ours for t in targets) and (targets or not ours), text
    assert "evil.example" in text  # still shown: as text, never as a masked link


@pytest.mark.parametrize(
    "mention",
    ["@everyone", "@here", "<@123>", "<@!123>", "<@&456>", "<#789>", "<@123456789012345678>"],
)
@pytest.mark.parametrize("where", ["headline", "summary", "source", "matched", "watchlists"])
def test_mentions_in_feed_text_are_neutralised(mention: str, where: str) -> None:
    value: object = f"Story {mention} text"
    if where in ("matched", "watchlists"):
        value = (value,)
    text = rendered_text(render_card(card(**{where: value})))
    assert mention not in text
    assert mention.strip("<>@#!&") in text  # still readable


def test_only_http_links_are_used() -> None:
    embed = render_card(card(url="javascript:alert(1)", image="data:image/png;base64,xx"))
    assert embed.url is None
    assert embed.thumbnail.url is None


@pytest.mark.parametrize(
    ("headline", "urgent", "update", "colour"),
    [
        ("Flood warnings issued", False, False, NORMAL_COLOUR),
        ("BREAKING: Flood warnings issued", False, False, URGENT_COLOUR),
        ("URGENT - dam fails", False, False, URGENT_COLOUR),
        ("FLASH: quake", False, False, URGENT_COLOUR),
        ("alert: river bursts", False, False, URGENT_COLOUR),
        ("Calm headline", True, False, URGENT_COLOUR),
        ("Alerting residents is hard", False, False, NORMAL_COLOUR),
        ("Flood warnings issued", False, True, UPDATED_COLOUR),
    ],
)
def test_urgency_and_updates_have_their_colour(headline, urgent, update, colour) -> None:
    embed = render_card(card(headline=headline, urgent=urgent, update=update))
    assert embed.colour == colour


def test_an_updated_story_is_marked() -> None:
    title = render_card(card(update=True)).title
    assert title is not None and title.startswith("Updated: ")
    assert not (render_card(card(update=False)).title or "").startswith("Updated: ")


def test_card_fields_timestamp_thumbnail_and_footer() -> None:
    embed = render_card(card(image="https://img.example/a.jpg", matched=("flood", "Severn")))
    assert embed.title == "Flood warnings issued for the Severn"
    assert embed.url == "https://news.example/severn"
    assert embed.description == "Rivers rose overnight after heavy rain."
    assert embed.author.name == "Wire"
    assert embed.timestamp == PUBLISHED
    fields = {f.name: f.value for f in embed.fields}
    assert fields["Published"] == f"<t:{int(PUBLISHED.timestamp())}:R>"
    assert fields["Matched"] == "flood, Severn"
    assert embed.thumbnail.url == "https://img.example/a.jpg"
    assert embed.footer.text == "Watchlist: Floods"


@pytest.mark.parametrize(
    ("overrides", "footer"),
    [
        ({"watchlists": ("Floods", "Rivers")}, "Watchlists: Floods, Rivers"),
        ({"watchlists": (), "subscriber": "discord:42"}, "Your subscription"),
    ],
)
def test_footer_names_the_watchlists_or_the_subscription(overrides, footer) -> None:
    assert render_card(card(**overrides)).footer.text == footer


def test_no_thumbnail_no_timestamp_when_the_feed_gave_none() -> None:
    embed = render_card(card(image=None, published=None))
    assert embed.thumbnail.url is None
    assert embed.timestamp is None
    assert "Published" not in {f.name for f in embed.fields}


# --- digests --------------------------------------------------------------------------------------


def test_digest_of_fifty_cards_lists_headlines_as_links_within_limits() -> None:
    cards = tuple(
        card(
            headline=f"Story {i} **bold** @everyone " + "long " * 60,
            url=f"https://news.example/{i}?q=(x)",
            delivery_id=i,
        )
        for i in range(50)
    )
    embed = render_digest(Digest("discord:1", cards))
    assert_within_limits(embed)
    description = embed.description or ""
    assert "[Story 0 \\*\\*bold\\*\\*" in description
    assert "(https://news.example/0?q=%28x%29)" in description
    assert "@everyone" not in description
    assert re.search(r"… and \d+ more$", description)  # what did not fit is counted
    assert embed.title == "50 more stories in a burst"
    assert embed.footer.text == "Watchlist: Floods"


def test_digest_of_a_few_cards_lists_them_all() -> None:
    cards = tuple(card(headline=f"Story [{i}]", delivery_id=i) for i in range(3))
    description = render_digest(Digest("discord:1", cards)).description or ""
    assert description.count("\n") == 2
    assert "[Story \\[0\\]](https://news.example/severn)" in description


def test_each_digest_line_names_its_watchlists() -> None:
    cards = (
        card(headline="Severn floods", watchlists=("Floods", "Rivers"), delivery_id=1),
        card(headline="Wye floods", url=None, watchlists=("Floods",), delivery_id=2),
        card(headline="Trent floods", watchlists=("Rivers_*x*",), delivery_id=3),
    )
    lines = (render_digest(Digest("discord:1", cards)).description or "").split("\n")
    assert " · Floods + Rivers" in lines[0]
    assert lines[1].startswith("• Wye floods · Wire · Floods")
    assert " · Rivers\\_\\*x\\*" in lines[2]  # a name from chat is escaped like feed text


# --- replies --------------------------------------------------------------------------------------


def test_reply_with_a_code_block_containing_backticks() -> None:
    reply = Reply(
        "That query does not parse:",
        code='Unclosed quote at column 4:\n  a ```"b` **c**\n     ^',
        ok=False,
    )
    text = render_reply(reply)
    assert text.startswith("That query does not parse:\n```\n")
    assert text.endswith("\n```")
    inner = text.split("```\n", 1)[1].rsplit("\n```", 1)[0]
    assert "```" not in inner  # the block cannot be closed early
    assert "**c**" in inner  # markdown is inert in a code block: shown as typed
    assert "     ^" in inner  # the caret keeps its column


def test_reply_items_are_bullets_with_preview_free_links_and_escaped_text() -> None:
    reply = Reply(
        "2 stories matching flood in the last 1d:",
        (
            ReplyItem("**Flood** @everyone <@123>", "https://news.example/a", "Wire · 01 May"),
            ReplyItem("Bad link", "javascript:alert(1)", "x"),
        ),
    )
    lines = render_reply(reply).splitlines()
    assert (
        lines[1]
        == "• \\*\\*Flood\\*\\* @\u200beveryone <\u200b@123> · Wire · 01 May <https://news.example/a>"
    )
    assert lines[2] == "• Bad link · x"


def test_reply_stays_within_2000_characters() -> None:
    reply = Reply(
        HUGE,
        tuple(ReplyItem(HUGE, "https://news.example/" + "p" * 400, HUGE) for _ in range(25)),
        code=HUGE,
    )
    text = render_reply(reply)
    assert len(text) <= CONTENT_LIMIT
    assert text.count("```") == 2


def test_long_item_list_says_how_many_were_left_out() -> None:
    reply = Reply("Many:", tuple(ReplyItem("x " * 140, detail="d") for _ in range(25)))
    text = render_reply(reply)
    assert len(text) <= CONTENT_LIMIT
    assert re.search(r"… and \d+ more$", text)


# --- idempotency keys -----------------------------------------------------------------------------


def test_nonces_are_deterministic_and_short() -> None:
    assert delivery_nonce(42) == "newsbot-42"
    assert delivery_nonce(42) == delivery_nonce(42)
    assert len(delivery_nonce(10**30)) <= NONCE_LIMIT
    assert digest_nonce([3, 1, 2]) == digest_nonce([1, 2, 3])
    assert digest_nonce([1, 2, 3]) != digest_nonce([1, 2, 3, 4])
    assert len(digest_nonce(range(1000))) <= NONCE_LIMIT
