"""Discord: cards as embeds, slash commands, a discord.py client in the bot's own loop.

render.py is pure (Card -> Embed, Reply -> text); sender.py posts over REST and maps every
outcome to a SendResult; slash.py translates slash commands to bot.core.commands; platform.py
owns the client's lifecycle. Nothing here imports another chat platform."""

from bot.chat.discord.platform import DiscordPlatform
from bot.chat.discord.render import render_card, render_digest, render_reply
from bot.chat.discord.sender import DiscordSender

__all__ = ["DiscordPlatform", "DiscordSender", "render_card", "render_digest", "render_reply"]
