"""Slack: Block Kit rendering (render), `/news` parsing (parse), the sender and the platform;
destination.py says how its channels and DMs are written; check.py is its part of `newsbot check`.

What bot.chat.platforms reads: DESTINATION_FORM, build (a SlackPlatform when SLACK_BOT_TOKEN and
SLACK_APP_TOKEN are set), ops_channel and check."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from bot.chat.slack.check import check_slack
from bot.chat.slack.destination import DESTINATION_FORM
from bot.chat.slack.platform import SlackPlatform
from bot.chat.slack.sender import SlackSender

if TYPE_CHECKING:
    from bot.chat.preflight import Check
    from bot.core.cards import Card
    from config.schema import Settings

__all__ = [
    "DESTINATION_FORM",
    "SlackPlatform",
    "SlackSender",
    "build",
    "check",
    "ops_channel",
]

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


async def check(
    settings: Settings, channels: Sequence[str], *, test_card: Card | None = None
) -> list[Check]:
    """`newsbot check`: both tokens and each of `channels`, when any of them is configured."""
    secrets = settings.secrets
    tokens = secrets.slack_bot_token is not None or secrets.slack_app_token is not None
    if not channels and not tokens:
        return []
    return await check_slack(settings, channels, test_card=test_card)
