"""Urgent pings, opt-in: who a watchlist's cards may mention, and when.

A watchlist may name people or groups to ping (`ping = ["role:<id>", "user:<id>",
"usergroup:<id>"]`) and when (`ping_when = "urgent" | "always"`). Those are the only mentions a
card ever carries: feed text never pings (each platform escapes it), `@everyone`/`@here` are
never sent, and a watchlist without `ping` pings nobody, as before.

What a ping's id looks like is its platform's business (one platform's roles are numbers,
another's user groups start with a letter): each platform's DestinationForm lists the PingForms
it can send, and a ping is valid when some platform can send it. A watchlist that posts to two
platforms may name pings of both; each platform sends the pings it can and notes the rest in
the log.

Which pings a card carries is decided at delivery from the watchlists as they are then (a ping
added or removed in chat applies to every card not yet posted):
- a card owed to a channel by several watchlists pings the union of theirs, each only when its
  `ping_when` holds for that card;
- a revised card (an edit of one already posted) pings nobody again;
- a burst digest pings the union of what its cards would have pinged, once."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from bot.core.models import PingWhen, Watchlist

log = logging.getLogger(__name__)

# Far beyond any platform's ids, short of abuse; each platform's form is stricter.
_ID = re.compile(r"[A-Za-z0-9]{1,40}")
PING_LIMIT = 20  # pings per watchlist: a card that pings more than that is a broadcast


class PingKind(StrEnum):
    ROLE = "role"  # everyone holding a role (Discord)
    USER = "user"  # one person (Discord or Slack, by what the id looks like)
    USERGROUP = "usergroup"  # a user group (Slack)


@dataclass(frozen=True, slots=True)
class Ping:
    kind: PingKind
    id: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.id}"


@dataclass(frozen=True, slots=True)
class PingForm:
    """One kind of ping a platform can send, and what its ids look like (a whole-string
    regular expression); `help` shows how it is written, for messages."""

    kind: PingKind
    id: str
    help: str

    def accepts(self, ping: Ping) -> bool:
        return ping.kind == self.kind and re.fullmatch(self.id, ping.id) is not None


class PingError(ValueError):
    """A text that is not a ping; the message says why and how to write one."""


PING_HELP = '"role:<id>", "user:<id>" or "usergroup:<id>"'


def parse_ping(text: str) -> Ping:
    """The ping `text` names, by its shape alone (`kind:id`); which platform can send it is
    asked of the platforms (`Destinations.check_ping`)."""
    kind, colon, ident = str(text).strip().partition(":")
    try:
        known = PingKind(kind.strip().lower())
    except ValueError:
        known = None
    if known is None or not colon:
        raise PingError(f"{text!r} is not a ping: use {PING_HELP}")
    ident = ident.strip()
    if _ID.fullmatch(ident) is None:
        raise PingError(f"{text!r} is not a ping: {ident!r} is not an id (letters and digits)")
    return Ping(known, ident)


def parse_pings(texts: Iterable[str]) -> tuple[Ping, ...]:
    """Every ping of `texts`, in order, each once; PingError on the first that is not one."""
    found: dict[Ping, None] = {}
    for text in texts:
        found.setdefault(parse_ping(text))
    if len(found) > PING_LIMIT:
        raise PingError(f"at most {PING_LIMIT} pings per watchlist ({len(found)} given)")
    return tuple(found)


def ping_when(value: str) -> PingWhen:
    try:
        return PingWhen(str(value).strip().lower())
    except ValueError:
        raise PingError(
            f'{value!r} is not a ping_when: use "urgent" (urgent stories only) or "always"'
        ) from None


@dataclass(frozen=True, slots=True)
class _Rule:
    pings: tuple[Ping, ...]
    when: PingWhen


class PingBook:
    """Who each pinging watchlist's cards may ping, by name (in any letter case: a card names
    its watchlists as they were when it matched). Immutable; built with the matcher's book."""

    def __init__(self, watchlists: Iterable[Watchlist] = ()) -> None:
        self._rules: dict[str, _Rule] = {}
        for watchlist in watchlists:
            if not watchlist.ping:
                continue
            try:
                pings = parse_pings(watchlist.ping)
            except PingError as exc:
                # Checked when it was set; a row written by an older version must not stop
                # the watchlist's cards, only its pings.
                log.warning("watchlist %r pings nobody: %s", watchlist.name, exc)
                continue
            self._rules[watchlist.name.casefold()] = _Rule(pings, watchlist.ping_when)

    def __bool__(self) -> bool:
        return bool(self._rules)

    def for_card(self, watchlists: Sequence[str], *, urgent: bool) -> tuple[Ping, ...]:
        """The union of the pings the card's watchlists ask for, each watchlist's only when its
        `ping_when` holds (always, or the card is urgent); in order, each once."""
        found: dict[Ping, None] = {}
        for name in watchlists:
            rule = self._rules.get(name.casefold())
            if rule is None or (rule.when == PingWhen.URGENT and not urgent):
                continue
            for ping in rule.pings:
                found.setdefault(ping)
        return tuple(found)


def union(groups: Iterable[Iterable[Ping]]) -> tuple[Ping, ...]:
    """The pings of several cards (a digest), in order, each once."""
    return tuple(dict.fromkeys(ping for group in groups for ping in group))
