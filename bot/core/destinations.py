"""Where a card goes, as a value, and the registry that reads and writes each platform's.

A destination is `Destination(platform, kind, id)`: a channel, or a person's direct messages. How
one is written down ("<platform>:<channel id>" in the config file, the database and chat) and what
a valid one looks like belong to its platform, which hands a DestinationForm to the registry; the
composition root lists the platforms (bot.chat.platforms), and everyone who reads or checks a
destination asks the `Destinations` it was given. So the core names no platform, and a new one
adds its form instead of editing the core.

The registry itself fixes two things, both already written in every database:
- a destination's text starts with its platform's name and a colon: that is how a stored string
  finds the form that reads the rest (`models.platform_of`);
- a subscription belongs to "<platform>:<user id>" (`Actor.key`) and is delivered to
  "<platform>:dm:<user id>" (`models.dm_target`, written by the matcher's routing for every
  platform alike), so each form must write a person's destination that way; the registry checks
  it when a form is registered."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from bot.core.models import dm_target, platform_of
from bot.core.pings import Ping, PingError, PingForm, parse_ping

# A platform's name starts every destination of it: no colon, nothing a config file must quote.
_PLATFORM_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")


class DestinationKind(StrEnum):
    CHANNEL = "channel"  # where a watchlist posts; many people read it
    DM = "dm"  # one person's direct messages, where their subscriptions go


@dataclass(frozen=True, slots=True)
class Destination:
    platform: str
    kind: DestinationKind
    id: str  # the platform's own id of the channel or of the person


class DestinationError(ValueError):
    """A text that is not a destination; the message says why and how to write one."""


class DestinationForm(Protocol):
    """One platform's destinations: how they are written, and which are valid."""

    @property
    def platform(self) -> str:
        """The name that starts each of its destinations, before the first colon."""
        ...

    @property
    def help(self) -> str:
        """How one of its channels is written, for messages: "<platform>:<channel id>"."""
        ...

    def parse(self, text: str) -> Destination:
        """The destination `text` names; DestinationError (saying why) if it names none."""
        ...

    def format(self, destination: Destination) -> str:
        """The text of a destination of this platform (the inverse of `parse`)."""
        ...

    @property
    def pings(self) -> tuple[PingForm, ...]:
        """The pings a card on this platform can carry (bot.core.pings); none: it pings
        nobody."""
        ...


@dataclass(frozen=True, slots=True)
class PrefixedForm:
    """The form the platforms so far share: "<platform>:<channel id>" for a channel and
    "<platform>:dm:<user id>" for a person. Each platform gives what its ids look like (whole-
    string regular expressions) and how its help writes a channel id."""

    platform: str
    channel: str  # a channel id
    user: str  # a user id
    channel_help: str = "<channel id>"
    pings: tuple[PingForm, ...] = ()  # the mentions its cards can carry

    @property
    def help(self) -> str:
        return f"{self.platform}:{self.channel_help}"

    def parse(self, text: str) -> Destination:
        prefix, colon, rest = text.partition(":")
        if prefix != self.platform or not colon:
            raise DestinationError(f"{text!r} is not a {self.platform} destination")
        if rest.startswith("dm:"):
            user = rest.removeprefix("dm:")
            if re.fullmatch(self.user, user) is None:
                raise DestinationError(
                    f"{text!r} is not a {self.platform} direct message: {user!r} is not a user id"
                )
            return Destination(self.platform, DestinationKind.DM, user)
        if re.fullmatch(self.channel, rest) is None:
            raise DestinationError(f'{text!r} is not a {self.platform} channel: use "{self.help}"')
        return Destination(self.platform, DestinationKind.CHANNEL, rest)

    def format(self, destination: Destination) -> str:
        if destination.platform != self.platform:
            raise DestinationError(f"{destination} is not a {self.platform} destination")
        if destination.kind == DestinationKind.DM:
            return f"{self.platform}:dm:{destination.id}"
        return f"{self.platform}:{destination.id}"


class Destinations:
    """The registry: platform name -> its DestinationForm, in the order they were given (which is
    the order help lists them in). Immutable; `with_forms` gives a registry with more."""

    def __init__(self, forms: Iterable[DestinationForm] = ()) -> None:
        self._forms: dict[str, DestinationForm] = {}
        for form in forms:
            self._add(form)

    def _add(self, form: DestinationForm) -> None:
        name = form.platform
        if _PLATFORM_NAME.fullmatch(name) is None:
            raise ValueError(
                f"{name!r} cannot name a platform: use lower-case letters, digits, - and _"
            )
        known = self._forms.get(name)
        if known is not None:
            if known == form:  # a platform handed in that is also listed: the same form twice
                return
            raise ValueError(f"two destination forms claim the platform {name!r}")
        person = Destination(name, DestinationKind.DM, "0")
        if form.format(person) != dm_target(f"{name}:0"):
            raise ValueError(
                f"the {name} form writes a person's destination as {form.format(person)!r}; "
                f"subscriptions are delivered to {dm_target(f'{name}:<user id>')!r}"
            )
        self._forms[name] = form

    def with_forms(self, *forms: DestinationForm) -> Destinations:
        return Destinations([*self._forms.values(), *forms])

    @property
    def platforms(self) -> tuple[str, ...]:
        return tuple(self._forms)

    def __contains__(self, platform: object) -> bool:
        return platform in self._forms

    def form(self, platform: str) -> DestinationForm | None:
        return self._forms.get(platform)

    @property
    def help(self) -> str:
        """How a channel may be written, every platform's way: 'use "a:<x>" or "b:<y>"'."""
        ways = [f'"{form.help}"' for form in self._forms.values()]
        if not ways:
            return "no chat platform is registered"
        if len(ways) == 1:
            return f"use {ways[0]}"
        return f"use {', '.join(ways[:-1])} or {ways[-1]}"

    def parse(self, text: str) -> Destination:
        """The destination `text` names, read by its platform's form."""
        form = self._forms.get(platform_of(text)) if ":" in text else None
        if form is None:
            raise DestinationError(f"{text!r} names no platform this bot knows: {self.help}")
        return form.parse(text)

    def channel(self, text: str) -> Destination:
        """A destination a watchlist may post to: a channel, not a person's direct messages."""
        destination = self.parse(text)
        if destination.kind != DestinationKind.CHANNEL:
            raise DestinationError(f"{text!r} is a person, not a channel: {self.help}")
        return destination

    def is_channel(self, text: str) -> bool:
        try:
            self.channel(text)
        except DestinationError:
            return False
        return True

    def format(self, destination: Destination) -> str:
        form = self._forms.get(destination.platform)
        if form is None:
            raise DestinationError(f"no platform {destination.platform!r} is registered")
        return form.format(destination)

    @property
    def ping_help(self) -> str:
        """How each platform writes the pings it can send: 'a: "role:<id>"; b: ...'."""
        ways = [
            f"{form.platform}: {' or '.join(p.help for p in form.pings)}"
            for form in self._forms.values()
            if form.pings
        ]
        return "; ".join(ways) or "no chat platform here can ping"

    def check_ping(self, text: str) -> Ping:
        """The ping `text` names, if some platform can send it (a watchlist may post to
        several platforms: each sends the pings it can). PingError says why not."""
        ping = parse_ping(text)
        if not any(p.accepts(ping) for form in self._forms.values() for p in form.pings):
            raise PingError(f"{text!r} is not a ping any platform here can send ({self.ping_help})")
        return ping
