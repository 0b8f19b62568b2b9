"""The console channel: cards on stdout, as readable text or one JSON object per line.

Logs go to stderr, so `newsbot run --once | jq` sees only cards. Its channels are names
("console:desk"), each a label on the cards it prints. What bot.chat.platforms reads:
DESTINATION_FORM, build, ops_channel and check."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TextIO

from bot.chat.preflight import Check
from bot.core.cards import Card, Digest, sources_line
from bot.core.destinations import PrefixedForm
from bot.core.pings import union
from bot.core.ports import SendResult
from bot.core.text import truncate

if TYPE_CHECKING:
    from config.schema import Settings

PLATFORM = "console"
DESTINATION_FORM = PrefixedForm(
    PLATFORM, channel=r"[\w.-]{1,64}", user=r"[\w.-]{1,64}", channel_help="<name>"
)
TEXT_WIDTH = 100


def build(settings: Settings) -> None:
    """No connection to make: the bot gives its ConsoleSender its own standard output."""
    return None


def ops_channel(settings: Settings) -> str:
    return ""  # operational notices go to the log, which is the console's already


async def check(
    settings: Settings, channels: Sequence[str], *, test_card: Card | None = None
) -> list[Check]:
    """`newsbot check`: nothing to connect to; each channel is a label on standard output (a
    test card is not printed into the table)."""
    return [
        Check.passed(PLATFORM, channel, "printed on newsbot's standard output")
        for channel in channels
    ]


def card_json(card: Card) -> dict[str, Any]:
    """The jsonl contract: channel, watchlist or subscriber, title, url, source, published,
    summary, matched, update (plus a few extras)."""
    data: dict[str, Any] = {"channel": card.channel}
    if card.subscriber:
        data["subscriber"] = card.subscriber
    else:
        data["watchlist"] = ", ".join(card.watchlists)
        data["watchlists"] = list(card.watchlists)
    data.update(
        title=card.headline,
        url=card.url,
        source=card.source,
        published=card.published.isoformat().replace("+00:00", "Z") if card.published else None,
        summary=card.summary,
        matched=list(card.matched),
        update=card.update,
        urgent=card.urgent,
        image=card.image,
        delivery_id=card.delivery_id,
        # Who the card would ping on a chat platform (a watchlist's opt-in pings).
        pings=[str(p) for p in card.pings],
    )
    if card.sources:
        data["sources"] = list(card.sources)
    return data


def render_text(card: Card) -> str:
    marks = []
    if card.urgent:
        marks.append("URGENT")
    if card.update:
        marks.append("UPDATED")
    who = f"for {card.subscriber}" if card.subscriber else " + ".join(card.watchlists)
    when = card.published.strftime("%Y-%m-%d %H:%M UTC") if card.published else "time unknown"
    head = f"[{' '.join(marks)}] " if marks else ""
    lines = [
        f"── {card.channel} · {who} " + "─" * max(3, TEXT_WIDTH - len(card.channel) - len(who) - 7),
        f"{head}{card.headline}",
        f"{card.source} · {when}",
    ]
    if card.summary:
        lines.append(truncate(card.summary, 300))
    if card.matched:
        lines.append("matched: " + ", ".join(card.matched))
    sources = sources_line(card.sources)
    if sources:
        lines.append(sources)
    if card.pings:
        lines.append("would ping: " + ", ".join(str(p) for p in card.pings))
    if card.url:
        lines.append(card.url)
    return "\n".join(lines) + "\n"


def render_digest_text(digest: Digest) -> str:
    what = "more stories in a burst"
    if digest.reason:
        what = f"{'story' if len(digest.cards) == 1 else 'stories'} {digest.reason}"
    lines = [f"── {digest.channel} · {len(digest.cards)} {what} " + "─" * 20]
    pings = union(c.pings for c in digest.cards if not c.update)
    if pings:
        lines.append("would ping: " + ", ".join(str(p) for p in pings))
    for card in digest.cards:
        who = f"for {card.subscriber}" if card.subscriber else " + ".join(card.watchlists)
        lines.append(
            f"• {card.headline} ({card.source})"
            + (f" [{who}]" if who else "")
            + (f" {card.url}" if card.url else "")
        )
    return "\n".join(lines) + "\n"


class ConsoleSender:
    platform = PLATFORM

    def __init__(self, fmt: str = "text", stream: TextIO | None = None) -> None:
        self.format = fmt
        self.stream = stream or sys.stdout

    def _write(self, text: str) -> SendResult:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError) as exc:  # closed pipe, closed stream
            return SendResult.retry(f"cannot write to the console: {exc}")
        return SendResult(ok=True)

    async def send(self, card: Card) -> SendResult:
        result = self._write(self._render(card))
        return SendResult.sent(f"console:{card.delivery_id}") if result.ok else result

    async def edit(self, card: Card, message_id: str) -> SendResult:
        # A terminal cannot edit a line already printed: print the revision, marked update.
        result = self._write(self._render(card))
        return SendResult.sent(message_id) if result.ok else result

    async def reply(self, card: Card, message_id: str) -> SendResult:
        # A terminal has no threads: the edit already printed the update, marked as one.
        return SendResult.sent(message_id)

    async def send_digest(self, digest: Digest) -> SendResult:
        if self.format == "jsonl":
            text = "".join(
                json.dumps({**card_json(c), "digest": True}, ensure_ascii=False) + "\n"
                for c in digest.cards
            )
        else:
            text = render_digest_text(digest)
        result = self._write(text)
        return (
            SendResult.sent(f"console:digest:{digest.cards[0].delivery_id}")
            if result.ok
            else result
        )

    async def notify(self, target: str, text: str) -> SendResult:
        if self.format == "jsonl":
            line = json.dumps({"channel": target, "notice": text}, ensure_ascii=False) + "\n"
        else:
            line = f"!! {target}: {text}\n"
        result = self._write(line)
        return SendResult.sent("console:notice") if result.ok else result

    def _render(self, card: Card) -> str:
        if self.format == "jsonl":
            return json.dumps(card_json(card), ensure_ascii=False) + "\n"
        return render_text(card)
