"""The console's digest: one line per story in a burst, each naming the watchlist(s) it matched."""

from __future__ import annotations

import io
import json

from bot.chat.console import ConsoleSender, render_digest_text
from bot.core.cards import Card, Digest


def card(headline: str, watchlists: tuple[str, ...], delivery_id: int) -> Card:
    return Card(
        headline=headline,
        url=f"https://wire.example/{delivery_id}",
        source="Wire",
        published=None,
        summary="",
        matched=("flood",),
        channel="console:desk",
        watchlists=watchlists,
        delivery_id=delivery_id,
    )


DIGEST = Digest(
    "console:desk",
    (
        card("Severn floods", ("Floods", "Rivers"), 1),
        card("Wye floods", ("Floods",), 2),
    ),
)


def test_each_text_digest_line_names_its_watchlists() -> None:
    lines = render_digest_text(DIGEST).splitlines()
    assert lines[1] == "• Severn floods (Wire) [Floods + Rivers] https://wire.example/1"
    assert lines[2] == "• Wye floods (Wire) [Floods] https://wire.example/2"


async def test_each_jsonl_digest_line_carries_its_watchlists() -> None:
    out = io.StringIO()
    assert (await ConsoleSender("jsonl", out).send_digest(DIGEST)).ok
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(line["digest"], line["watchlists"]) for line in lines] == [
        (True, ["Floods", "Rivers"]),
        (True, ["Floods"]),
    ]
