"""A person's digest (quiet hours, hourly, daily) as each platform renders it: worded for why it
came, every card counted, and capped to the platform's limits with "and N more"."""

from __future__ import annotations

import re

from bot.chat.console import render_digest_text
from bot.chat.discord.render import render_digest as discord_digest
from bot.chat.slack.render import render_digest as slack_digest
from bot.core.cards import Digest
from tests.chat.discord import test_render as discord_render
from tests.chat.slack import test_slack_render as slack_render

NIGHT = 200  # cards that waited through one night: far more than any message shows


def test_discord_words_a_persons_digest_and_counts_what_does_not_fit() -> None:
    cards = tuple(
        discord_render.card(
            headline=f"Story {i} " + "word " * 30,
            delivery_id=i,
            watchlists=(),
            subscriber="discord:2",
        )
        for i in range(NIGHT)
    )
    embed = discord_digest(Digest("discord:dm:2", cards, "from your quiet hours"))
    discord_render.assert_within_limits(embed)
    assert embed.title == "200 stories from your quiet hours"
    assert re.search(r"… and \d+ more$", embed.description or "")
    assert embed.footer.text == "Your subscription"
    one = discord_digest(Digest("discord:dm:2", cards[:1], "in your daily digest"))
    assert one.title == "1 story in your daily digest"


def test_slack_words_a_persons_digest_within_fifty_blocks() -> None:
    cards = tuple(
        slack_render.card(delivery_id=i, headline=f"Story {i}", watchlists=(), subscriber="s:U1")
        for i in range(NIGHT)
    )
    payload = slack_digest(Digest("slack:dm:U1", cards, "in your hourly digest"))
    slack_render.assert_within_limits(payload)
    assert payload["blocks"][0]["text"]["text"] == "*200 stories* in your hourly digest"
    assert payload["blocks"][-1]["elements"][0]["text"].startswith("…and 152 more.")
    assert payload["text"].startswith("200 stories in your hourly digest: Story 0")


def test_the_console_words_a_persons_digest_too() -> None:
    cards = tuple(discord_render.card(headline=f"Story {i}", delivery_id=i) for i in range(3))
    text = render_digest_text(Digest("console:dm:rita", cards, "from your quiet hours"))
    assert text.startswith("── console:dm:rita · 3 stories from your quiet hours ")
