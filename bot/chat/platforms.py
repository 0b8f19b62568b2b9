"""The chat platforms, in one list, and what the rest of the bot needs from each.

A platform is a sub-package of bot.chat offering, by these names:
- DESTINATION_FORM: how its channels and direct messages are written and which are valid
  (a bot.core.destinations.DestinationForm);
- build(settings): its ChatPlatform, or None when it is not configured (no token);
- ops_channel(settings): where it posts operational notices, "" for nowhere;
- check(settings, channels, test_card=None): its rows of `newsbot check` (its token, each of
  the config's channels on it), none when it is neither configured nor posted to.

A new platform is its folder and one more entry in PLATFORMS: the config file's channels, chat's
`watchlist add`, the delivery worker, the ops notices and `newsbot check` then know it. (Its
settings section and its tokens are still written in config/schema.py.) Explicit on purpose:
nothing registers itself by being imported."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from bot.chat import console, discord, slack
from bot.chat.link import Link
from bot.chat.preflight import Check
from bot.core.cards import Card
from bot.core.commands import Commands
from bot.core.destinations import DestinationForm, Destinations
from bot.core.models import Watchlist, platform_of
from bot.core.ports import Sender

if TYPE_CHECKING:
    from config.schema import Settings

log = logging.getLogger(__name__)


class ChatPlatform(Protocol):
    """A chat platform: its sender for the delivery worker, and its command front end.

    `attach` hands it the command handlers once storage is open; `start` must return quickly
    (connect in the background: polling never waits for chat, and a lost connection comes back
    by itself); `close` disconnects. `link` says whether it is up, why not, and who hears when
    it comes back. `destination_form` says how its destinations are written: the bot adds it
    to those it knows, so a platform handed to NewsBot needs no entry in PLATFORMS."""

    name: str
    link: Link

    @property  # read-only, so a platform's own sender class satisfies it
    def sender(self) -> Sender: ...

    @property
    def destination_form(self) -> DestinationForm: ...

    @property
    def connected(self) -> bool: ...

    def attach(self, commands: Commands) -> None: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...


class PlatformModule(Protocol):
    """What a platform's package offers (a module satisfies a protocol by its attributes)."""

    @property  # read-only: the module's constant, spelt as it is there
    def DESTINATION_FORM(self) -> DestinationForm: ...

    def build(self, settings: Settings) -> ChatPlatform | None: ...

    def ops_channel(self, settings: Settings) -> str: ...

    async def check(
        self, settings: Settings, channels: Sequence[str], *, test_card: Card | None = None
    ) -> list[Check]: ...


PLATFORMS: tuple[PlatformModule, ...] = (console, discord, slack)


def known_destinations(*more: DestinationForm) -> Destinations:
    """Every listed platform's destinations, and `more`'s: what a watchlist may post to."""
    return Destinations([*(platform.DESTINATION_FORM for platform in PLATFORMS), *more])


def build_platforms(settings: Settings) -> list[ChatPlatform]:
    """The platforms whose tokens are set. None: the console is the channel."""
    built = (platform.build(settings) for platform in PLATFORMS)
    return [platform for platform in built if platform is not None]


def ops_channels(settings: Settings) -> list[str]:
    """Where operational notices go, each platform's in the order of PLATFORMS."""
    return [channel for platform in PLATFORMS if (channel := platform.ops_channel(settings))]


def warn_unroutable(
    watchlists: Sequence[Watchlist],
    settings: Settings,
    platforms: Sequence[ChatPlatform],
    senders: dict[str, Sender],
) -> None:
    """Say at start what would silently go nowhere: a connected platform no watchlist posts to,
    a watchlist that posts to a platform with no connection."""
    posted_to = {platform_of(c) for w in watchlists for c in w.channels}
    for platform in platforms:
        if platform.name not in posted_to:
            # A token and the default config (`docker run -e DISCORD_TOKEN=...`): connected,
            # but every card would go to the console, which nobody reads.
            log.warning(
                "%s is configured, but no watchlist posts to a %s: channel, so no card goes "
                'there; set a watchlist\'s channels (e.g. channels = ["%s"]) '
                "in %s, or add one in chat with /watchlist add",
                platform.name,
                platform.name,
                platform.destination_form.help,
                settings.source,
            )
    for watchlist in watchlists:
        for channel in watchlist.channels:
            if platform_of(channel) not in senders:
                log.warning(
                    "watchlist %r posts to %s, but no %s connection is configured: those "
                    "cards will be marked failed",
                    watchlist.name,
                    channel,
                    platform_of(channel),
                )
