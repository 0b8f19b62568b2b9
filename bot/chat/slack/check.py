"""`newsbot check` for Slack: are both tokens valid, whose app is it, and can it post in every
configured channel?

The bot token by auth.test, the app-level token by asking for a Socket Mode URL (nothing is
connected), each channel by reading its latest message, as the sender does before a re-send (the
duplicate check): the channel must exist and have the bot as a member, and the app needs the
*:history scopes. Its name and whether it is archived come from conversations.info when the app
may call it."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.chat.preflight import Check
from bot.chat.slack.destination import DESTINATION_FORM
from bot.chat.slack.render import render_card
from bot.chat.slack.sender import PERMANENT, api_error, make_client
from bot.core.cards import Card
from bot.core.destinations import DestinationError, DestinationKind
from config.schema import Settings

KIND = "slack"


async def check_slack(
    settings: Settings, channels: Sequence[str], *, test_card: Card | None = None
) -> list[Check]:
    """One row per token, one per channel. `test_card`: post it to each channel that passes."""
    secrets = settings.secrets
    missing = [
        name
        for name, value in (
            ("SLACK_BOT_TOKEN", secrets.slack_bot_token),
            ("SLACK_APP_TOKEN", secrets.slack_app_token),
        )
        if value is None
    ]
    if missing:
        return [
            Check.failed(
                KIND,
                "tokens",
                f"{' and '.join(missing)} not set, but {len(channels)} channel(s) are configured",
                "set SLACK_BOT_TOKEN and SLACK_APP_TOKEN in the environment (docs/slack.md)",
            )
        ]
    assert secrets.slack_bot_token is not None and secrets.slack_app_token is not None
    api_base = settings.slack.api_base
    web = make_client(api_base, secrets.slack_bot_token.get_secret_value())
    try:
        auth = await web.auth_test()
    except SlackApiError as exc:
        error = api_error(exc)
        return [
            Check.failed(
                KIND,
                "bot token",
                f"Slack refused SLACK_BOT_TOKEN ({error})",
                "copy the Bot User OAuth Token (xoxb-...) from OAuth & Permissions into "
                "SLACK_BOT_TOKEN",
            )
        ]
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        return [
            Check.failed(
                KIND,
                "bot token",
                f"cannot reach Slack at {api_base}: {type(exc).__name__}: {exc}",
                "check the network (or [slack].api_base), then run the check again",
            )
        ]
    who = f"@{auth.get('user')} in {auth.get('team')} ({auth.get('team_id')})"
    scopes = _scopes(auth.headers)
    if scopes is not None and "chat:write" not in scopes:
        token_row = Check.failed(
            KIND,
            "bot token",
            f"{who}, but the app lacks the chat:write scope",
            "add chat:write under OAuth & Permissions (or create the app from "
            "slack/manifest.yml) and reinstall it",
        )
    else:
        token_row = Check.passed(KIND, "bot token", who)
    rows = [
        token_row,
        await _check_app_token(api_base, secrets.slack_app_token.get_secret_value()),
    ]
    bot = f"@{auth.get('user') or 'newsbot'}"
    for channel in channels:
        rows.append(await _check_channel(web, channel, bot, test_card))
    return rows


def _scopes(headers: object) -> set[str] | None:
    """The scopes Slack says the token has (the X-OAuth-Scopes header), when it says."""
    for key, value in dict(headers or {}).items():  # type: ignore[call-overload]
        if key.lower() == "x-oauth-scopes":
            raw = value[0] if isinstance(value, list | tuple) else value
            return {s.strip() for s in str(raw).split(",") if s.strip()}
    return None


async def _check_app_token(api_base: str, token: str) -> Check:
    try:
        # Hands out a Socket Mode URL that is never used: the only test of an app-level token.
        await AsyncWebClient(base_url=api_base, token=token).apps_connections_open(app_token=token)
    except SlackApiError as exc:
        error = api_error(exc)
        return Check.failed(
            KIND,
            "app token",
            f"Slack refused SLACK_APP_TOKEN ({error})",
            "turn Socket Mode on and make an app-level token (xapp-...) with connections:write "
            "under Basic Information -> App-Level Tokens; put it in SLACK_APP_TOKEN",
        )
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        return Check.failed(
            KIND,
            "app token",
            f"cannot reach Slack: {type(exc).__name__}: {exc}",
            "check the network, then run the check again",
        )
    return Check.passed(KIND, "app token", "Socket Mode connections allowed")


async def _check_channel(
    web: AsyncWebClient, target: str, bot: str, test_card: Card | None
) -> Check:
    try:
        where = DESTINATION_FORM.parse(target)
    except DestinationError:
        return Check.failed(
            KIND, target, "not a Slack channel", f'write it as "{DESTINATION_FORM.help}"'
        )
    if where.kind == DestinationKind.DM:
        return Check.passed(KIND, target, "a person's direct messages: not checked")
    channel_id = name = where.id
    try:
        # For the name and the archived flag, if the app may read them (channels:read is not
        # among newsbot's scopes; whatever goes wrong here, the history read below decides).
        info = (await web.conversations_info(channel=channel_id))["channel"]
        name = f"#{info.get('name') or channel_id}"
        if info.get("is_archived"):
            return Check.failed(
                KIND,
                target,
                f"{name} is archived",
                "unarchive it, or point the watchlist at another channel",
            )
    except SlackApiError:
        pass
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        return Check.failed(
            KIND, target, f"could not check it: {type(exc).__name__}: {exc}", "run it again"
        )
    try:
        # What the sender does before a re-send (the duplicate check): it needs the bot to be a
        # member, and the *:history scopes.
        await web.conversations_history(channel=channel_id, limit=1, include_all_metadata=True)
    except SlackApiError as exc:
        error = api_error(exc)
        if error == "channel_not_found":
            return Check.failed(
                KIND,
                target,
                "no such channel, or a private one the bot is not in (channel_not_found)",
                "copy the channel id again (channel name -> About, at the bottom); in a private "
                f"channel, /invite {bot} first",
            )
        if error == "not_in_channel":
            return Check.failed(
                KIND, target, f"{name}: the bot is not a member", f"type /invite {bot} in {name}"
            )
        if error == "missing_scope":
            needed = exc.response.get("needed") or "channels:history, groups:history"
            return Check.failed(
                KIND,
                target,
                f"{name}: the app may not read the channel's history (missing_scope: {needed})",
                "add the scope under OAuth & Permissions and reinstall the app (docs/slack.md)",
            )
        return Check.failed(
            KIND,
            target,
            f"could not check it: {PERMANENT.get(error, 'Slack said ' + error)} [{error}]",
            "fix what the error says, then run the check again",
        )
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        return Check.failed(
            KIND, target, f"could not check it: {type(exc).__name__}: {exc}", "run it again"
        )
    detail = f"{name}: the bot is a member and can post"
    if test_card is None:
        return Check.passed(KIND, target, detail)
    payload = render_card(dataclasses.replace(test_card, channel=target))
    try:
        await web.chat_postMessage(
            channel=channel_id,
            text=payload["text"],
            blocks=payload["blocks"],
            unfurl_links=False,
            unfurl_media=False,
        )
    except SlackApiError as exc:
        error = api_error(exc)
        return Check.failed(
            KIND,
            target,
            f"{name}: posting the test card failed: {PERMANENT.get(error, error)} [{error}]",
            "fix what the error says, then run the check again",
        )
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        return Check.failed(
            KIND,
            target,
            f"{name}: posting the test card failed: {type(exc).__name__}: {exc}",
            "run the check again",
        )
    return Check.passed(KIND, target, f"{detail}; test card posted")
