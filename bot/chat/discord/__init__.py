"""Discord: cards as embeds, slash commands, a discord.py client in the bot's own loop.

render.py is pure (Card -> Embed, Reply -> text); sender.py posts over REST and maps every
outcome to a SendResult; slash.py translates slash commands to bot.core.commands; platform.py
owns the client's lifecycle; destination.py says how its channels and DMs are written; check.py
is its part of `newsbot check`. Nothing here imports another chat platform. What
bot.chat.platforms reads: DESTINATION_FORM, build, ops_channel and check."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from bot.chat.discord.check import check_discord
from bot.chat.discord.destination import DESTINATION_FORM
from bot.chat.discord.platform import DiscordPlatform
from bot.chat.discord.render import render_card, render_digest, render_reply
from bot.chat.discord.sender import DiscordSender

if TYPE_CHECKING:
    from bot.chat.preflight import Check
    from bot.core.cards import Card
    from config.schema import Settings

__all__ = [
    "DESTINATION_FORM",
    "DiscordPlatform",
    "DiscordSender",
    "build",
    "check",
    "ops_channel",
    "render_card",
    "render_digest",
    "render_reply",
]


def build(settings: Settings) -> DiscordPlatform | None:
    """Connected when DISCORD_TOKEN is set."""
    return DiscordPlatform(settings) if settings.secrets.discord_token is not None else None


def ops_channel(settings: Settings) -> str:
    return settings.discord.ops_channel


async def check(
    settings: Settings, channels: Sequence[str], *, test_card: Card | None = None
) -> list[Check]:
    """`newsbot check`: the token and each of `channels`, when either is configured."""
    if not channels and settings.secrets.discord_token is None:
        return []
    return await check_discord(settings, channels, test_card=test_card)
