"""Fakes of the core's ports for its unit tests: a clock that moves only when told, a platform of
the tests' own ("toy": rooms and nicknames, no chat library) and a sender that records what it is
given and answers what each test scripts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot.core.cards import Card, Digest
from bot.core.destinations import Destinations, PrefixedForm
from bot.core.pings import PingForm, PingKind
from bot.core.ports import SendResult

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

# Rooms are "toy:<room>"; a person's direct messages are "toy:dm:<nickname>". A card may ping a
# crew ("role:<crew>", upper case) or a person ("user:<nickname>").
TOY_FORM = PrefixedForm(
    "toy",
    channel=r"[a-z][a-z0-9-]{1,30}",
    user=r"[a-z]{2,16}",
    pings=(
        PingForm(PingKind.ROLE, r"[A-Z]{2,16}", "role:<CREW>"),
        PingForm(PingKind.USER, r"[a-z]{2,16}", "user:<nickname>"),
    ),
)
# A second platform, to show that one platform's state leaves the other's alone.
PAGER_FORM = PrefixedForm("pager", channel=r"\d{3,8}", user=r"\d{3,8}")
DESTINATIONS = Destinations([TOY_FORM, PAGER_FORM])


class Clock:
    """Stands still until a test moves it."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass(frozen=True, slots=True)
class Call:
    """One thing a sender was asked to do."""

    kind: str  # "send", "edit", "reply", "digest" or "notify"
    channel: str
    headlines: tuple[str, ...]
    message_id: str | None = None  # the message an edit (or a reply) was for
    card: Card | None = None
    digest: Digest | None = None


Script = Callable[[Call], SendResult | None]


class RecordingSender:
    """The Sender protocol (bot.core.ports) for one platform. Every call is recorded in order;
    `script` may answer a call with a failure (None: the call succeeds)."""

    def __init__(self, platform: str, script: Script | None = None) -> None:
        self.platform = platform
        self.script = script
        self.calls: list[Call] = []
        self.results: list[SendResult] = []  # what each call was answered, in the same order
        self._ids = 0

    def _answer(self, call: Call) -> SendResult:
        self.calls.append(call)
        result = self.script(call) if self.script is not None else None
        if result is None and call.kind == "edit":
            result = SendResult.sent(call.message_id or "")
        elif result is None:
            self._ids += 1
            result = SendResult.sent(f"{self.platform}-msg-{self._ids}")
        self.results.append(result)
        return result

    async def send(self, card: Card) -> SendResult:
        return self._answer(Call("send", card.channel, (card.headline,), card=card))

    async def edit(self, card: Card, message_id: str) -> SendResult:
        return self._answer(Call("edit", card.channel, (card.headline,), message_id, card=card))

    async def reply(self, card: Card, message_id: str) -> SendResult:
        return self._answer(Call("reply", card.channel, (card.headline,), message_id, card=card))

    async def send_digest(self, digest: Digest) -> SendResult:
        headlines = tuple(c.headline for c in digest.cards)
        return self._answer(Call("digest", digest.channel, headlines, digest=digest))

    async def notify(self, target: str, text: str) -> SendResult:
        return self._answer(Call("notify", target, (text,)))

    # --- what a test reads -------------------------------------------------------------------

    def attempts(self, channel: str, kind: str = "send") -> list[str]:
        """Headlines of every call of `kind` for `channel`, failed ones included, in order."""
        return [
            h for c in self.calls if (c.kind, c.channel) == (kind, channel) for h in c.headlines
        ]

    def delivered_to(self, channel: str, kind: str = "send") -> list[str]:
        """Headlines the platform accepted for `channel` in calls of `kind`, in order."""
        return [
            h
            for c, r in zip(self.calls, self.results, strict=True)
            if (c.kind, c.channel) == (kind, channel) and r.ok
            for h in c.headlines
        ]

    def kinds(self) -> list[str]:
        return [c.kind for c in self.calls]
