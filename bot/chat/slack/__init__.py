"""Slack: Block Kit rendering (render), `/news` parsing (parse), the sender and the platform.

bot.app builds `SlackPlatform(settings)` when SLACK_BOT_TOKEN and SLACK_APP_TOKEN are set."""

from bot.chat.slack.platform import SlackPlatform
from bot.chat.slack.sender import SlackSender

__all__ = ["SlackPlatform", "SlackSender"]
