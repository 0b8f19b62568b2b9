"""Discord: cards as embeds, slash commands, a discord.py client in the bot's own loop.

render.py is pure (Card -> Embed, Reply -> text); sender.py posts over REST and maps every
outcome to a SendResult; slash.py translates slash commands to bot.core.commands; platform.py
owns the client's lifecycle; destination.py says how its channels and DMs are written. Nothing
here imports another chat platform. What bot.chat.platforms reads: DESTINATION_FORM, build and
ops_channel."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.chat.discord.destination import DESTINATION_FORM
from bot.chat.discord.platform import DiscordPlatform
from bot.chat.discord.render import render_card, render_digest, render_reply
from bot.chat.discord.sender import DiscordSender

if TYPE_CHECKING:
    from config.schema import Settings

__all__ = [
    "DESTINATION_FORM",
    "DiscordPlatform",
    "DiscordSender",
    "build",
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
