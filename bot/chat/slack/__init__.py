"""Slack: Block Kit rendering (render), `/news` parsing (parse), the sender and the platform;
destination.py says how its channels and DMs are written.

What bot.chat.platforms reads: DESTINATION_FORM, build (a SlackPlatform when SLACK_BOT_TOKEN and
SLACK_APP_TOKEN are set) and ops_channel."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from bot.chat.slack.destination import DESTINATION_FORM
from bot.chat.slack.platform import SlackPlatform
from bot.chat.slack.sender import SlackSender

if TYPE_CHECKING:
    from config.schema import Settings

__all__ = ["DESTINATION_FORM", "SlackPlatform", "SlackSender", "build", "ops_channel"]

log = logging.getLogger(__name__)


def build(settings: Settings) -> SlackPlatform | None:
    bot_token, app_token = settings.secrets.slack_bot_token, settings.secrets.slack_app_token
    if bot_token is not None and app_token is not None:
        return SlackPlatform(settings)
    if bot_token is not None or app_token is not None:
        log.warning(
            "Slack needs both SLACK_BOT_TOKEN and SLACK_APP_TOKEN; only %s is set, so Slack stays off",
            "SLACK_BOT_TOKEN" if bot_token is not None else "SLACK_APP_TOKEN",
        )
    return None


def ops_channel(settings: Settings) -> str:
    return settings.slack.ops_channel
