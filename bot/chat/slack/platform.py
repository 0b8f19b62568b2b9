"""Slack as a chat platform: a slack_bolt AsyncApp over Socket Mode (no public URL), the `/news`
slash command, the App Home tab, and the sender the delivery worker posts cards through.

The bolt app only translates: command text is parsed by parse.py into a command of
bot.core.catalog, which refuses an admin-only one to anyone but an admin (from `Actor.is_admin`)
and runs its handler in bot.core.commands (which audits changes), and the answer is rendered by
render.py. Who is an admin is decided here, on the server side: workspace
admins and owners according to users.info, plus `[slack].admin_user_ids`.

Which workspaces are served is decided here too, for every command and event, before any
listener runs: those in `[slack].team_ids`, or, when that is empty, the one the bot token belongs
to (auth.test). The watchlists and feeds are one desk's, and a workspace admin of another
workspace that reaches the app (a distributed app, an org-wide install, a shared channel) is no
admin of this desk."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.web.async_client import AsyncWebClient

from bot.chat.link import Backoff, Link
from bot.chat.slack.destination import DESTINATION_FORM, PLATFORM
from bot.chat.slack.parse import (
    HELP,
    CommandSyntaxError,
    Invocation,
    help_reply,
    parse_command,
)
from bot.chat.slack.render import HOME_STORIES, render_home, render_reply
from bot.chat.slack.sender import SlackSender, make_client, retry_after
from bot.core.catalog import COMMANDS
from bot.core.commands import Actor, Commands, Reply
from bot.core.models import platform_of
from config.schema import Settings

log = logging.getLogger(__name__)

ADMIN_CACHE_SECONDS = 60.0  # a demoted admin loses rights within a minute
CONNECT_TIMEOUT = 10.0  # one attempt to open the socket, once Slack handed out its URL
WATCH_INTERVAL = 0.5  # how often a live socket is looked at, besides slack_sdk's own signals
# Errors that say the token itself is refused: the one failure not retried, since every retry
# would be refused the same way.
REFUSED_TOKEN = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "token_revoked",
        "token_expired",
        "account_inactive",
        "not_allowed_token_type",
        "missing_scope",
    }
)
ADMIN_HINT = "a workspace admin"
SORRY = (
    "Sorry, that did not work: something went wrong on newsbot's side. It has been logged; "
    "try again in a minute, or tell whoever runs the bot."
)


class _SocketClient(SocketModeClient):
    """slack_sdk's Socket Mode client, with reconnecting left to SlackPlatform. slack_sdk would
    retry every ping interval for ever, reuse a connection URL that may have expired, and log a
    traceback each time; the platform asks for a fresh URL, waits a capped and jittered backoff
    between failures, and knows (for /healthz) that the connection is down meanwhile."""

    on_lost: Callable[[str], None] | None = None  # set by the platform

    async def connect_to_new_endpoint(self, force: bool = False) -> None:
        # slack_sdk calls this when the socket closed or went stale, and with force=True when
        # Slack asks for a refresh ({"type": "disconnect"}, every few hours).
        if self.on_lost is not None and not self.closed:
            self.on_lost(
                "Slack asked for a new Socket Mode connection"
                if force
                else "the Socket Mode connection dropped"
            )


class _SocketHandler(AsyncSocketModeHandler):
    """bolt's handler (whose constructor is these lines) around a _SocketClient."""

    client: _SocketClient

    def __init__(self, app: AsyncApp, app_token: str, web_client: AsyncWebClient) -> None:
        self.app = app
        self.app_token = app_token
        self.client = _SocketClient(app_token=app_token, logger=app.logger, web_client=web_client)
        self.client.socket_mode_request_listeners.append(self.handle)  # type: ignore[arg-type]


class SlackPlatform:
    """bot.chat.platforms.ChatPlatform for Slack. `start` returns at once and connects in the
    background; the sender works without the socket (it only needs the Web API).

    The socket comes back by itself after any failure (Slack unreachable at start-up or later,
    5xx, a dropped or stale socket), retried forever with a capped, jittered backoff ([chat]
    reconnect_min and reconnect_max); a refused token is said once and not retried. `link`
    tells /healthz, /metrics and the delivery worker whether the socket is up."""

    name = PLATFORM
    destination_form = DESTINATION_FORM

    def __init__(
        self,
        settings: Settings,
        *,
        admin_cache_seconds: float = ADMIN_CACHE_SECONDS,
        connect_timeout: float = CONNECT_TIMEOUT,
        watch_interval: float = WATCH_INTERVAL,
    ):
        secrets = settings.secrets
        self._bot_token = (
            secrets.slack_bot_token.get_secret_value() if secrets.slack_bot_token else ""
        )
        self._app_token = (
            secrets.slack_app_token.get_secret_value() if secrets.slack_app_token else ""
        )
        self.api_base = settings.slack.api_base
        self.admin_user_ids = frozenset(settings.slack.admin_user_ids)
        self.team_ids = frozenset(settings.slack.team_ids)
        # None until auth.test says whose token this is (when team_ids is empty).
        self.served_teams: frozenset[str] | None = self.team_ids or None
        self._team_names: dict[str, str] = {}
        self.admin_cache_seconds = admin_cache_seconds
        self.web = make_client(self.api_base, self._bot_token)
        self.sender = SlackSender(self.web)
        self.commands: Commands | None = None
        self.app: AsyncApp | None = None
        self.handler: _SocketHandler | None = None
        self.bot_user_id: str | None = None
        self.login_error: str | None = None
        self.link = Link(self.name)
        self._chat = settings.chat
        self.connect_timeout = connect_timeout
        self.watch_interval = watch_interval
        self._lost = asyncio.Event()
        self._lost_reason = ""
        self._connected_once = False
        self._task: asyncio.Task[None] | None = None
        self._admin_cache: dict[str, tuple[float, bool]] = {}
        self._first: Callable[[str], Awaitable[bool]] | None = None

    def __repr__(self) -> str:  # never the tokens
        return f"SlackPlatform(api_base={self.api_base!r}, connected={self.connected})"

    # --- ChatPlatform ------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        client = self.handler.client if self.handler is not None else None
        if client is None or client.closed or client.stale:
            return False
        session = client.current_session
        return session is not None and not session.closed

    def attach(self, commands: Commands) -> None:
        self.commands = commands

    def handle_once_with(self, first_to_handle: Callable[[str], Awaitable[bool]]) -> None:
        """Several workers share this bot's database, each with its own socket, and Slack may
        send a command or event (or its retry) to any of them: each is handled by the worker
        for which `first_to_handle(key)` is true, and acknowledged and ignored by the rest."""
        self._first = first_to_handle

    async def start(self) -> None:
        if self._task is not None:
            return
        if not self._bot_token or not self._app_token:
            self.login_error = "SLACK_BOT_TOKEN and SLACK_APP_TOKEN must both be set"
            self.link.stop(self.login_error)
            log.error("Slack login failed: %s", self.login_error)
            return
        self.app = self.build_app()
        self.handler = _SocketHandler(
            self.app,
            self._app_token,
            AsyncWebClient(base_url=self.api_base, token=self._app_token),
        )
        self.handler.client.on_lost = self._on_lost
        self._task = asyncio.create_task(self._connect(), name="slack-connect")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self.handler is not None:
            await self.handler.close_async()
        if self.link.is_up:
            self.link.down("the Slack connection is closed")

    # --- connecting --------------------------------------------------------------------------

    async def _connect(self) -> None:
        try:
            await self._supervise()
        except asyncio.CancelledError:
            raise
        except Exception:
            # Background work logs its own failures; cards keep waiting in the outbox.
            self.link.stop("the Slack connection stopped after an unexpected error")
            log.exception("Slack connection failed; Slack commands are unavailable")

    def _on_lost(self, reason: str) -> None:
        self._lost_reason = reason
        self._lost.set()

    async def _supervise(self) -> None:
        """Check both tokens, then open the socket; when it is lost, open another. A refused
        token stops here with one clear log line; anything else is retried with backoff."""
        assert self.handler is not None
        client = self.handler.client
        backoff = Backoff(self._chat.reconnect_min, self._chat.reconnect_max)
        authed = False
        while True:
            which = "SLACK_BOT_TOKEN"
            wait_at_least = 0.0
            try:
                if not authed:
                    auth = await self.web.auth_test()
                    self.bot_user_id = auth.get("user_id")
                    self._serve(str(auth.get("team_id") or ""), str(auth.get("team") or ""))
                    authed = True
                which = "SLACK_APP_TOKEN"
                # Also proves the app-level token. A fresh URL each time: an old one may have
                # expired while Slack was away.
                opened = await client.web_client.apps_connections_open(app_token=self._app_token)
                client.wss_uri = opened["url"]
                async with asyncio.timeout(self.connect_timeout):
                    await client.connect()
                # slack_sdk's watchers of the old socket may have called it lost meanwhile.
                self._lost.clear()
            except SlackApiError as exc:
                error = str(exc.response.get("error") or "")
                status = getattr(exc.response, "status_code", 200) or 200
                if error in REFUSED_TOKEN or status in (401, 403):
                    self._refused(which, error or f"HTTP {status}")
                    return
                problem = error or f"HTTP {status}"
                wait_at_least = retry_after(exc.response.headers) or 0.0
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            except Exception as exc:
                # Not foreseen: worth a traceback, and retried like the rest.
                log.exception("connecting to Slack failed unexpectedly")
                problem = f"{type(exc).__name__}: {exc}"
            else:
                backoff.reset()
                first = not self._connected_once
                self._connected_once = True
                self.link.up()
                if first:
                    log.info(
                        "Slack connected as @%s in %s (Socket Mode)",
                        auth.get("user"),
                        auth.get("team"),
                    )
                else:
                    log.info("Slack Socket Mode reconnected")
                reason = await self._until_lost()
                self.link.down(f"{reason}; reconnecting")
                log.warning("Slack: %s; reconnecting", reason)
                # A socket Slack closes at once, again and again, must not become a busy loop.
                await asyncio.sleep(backoff.delay())
                continue
            delay = max(backoff.delay(), wait_at_least)
            self.link.down(f"Slack is not reachable ({problem}); retrying in {_seconds(delay)}")
            log.warning("Slack is not reachable yet (%s); retrying in %s", problem, _seconds(delay))
            await asyncio.sleep(delay)

    async def _until_lost(self) -> str:
        """Returns when the socket is gone: slack_sdk said so, or it is plainly closed."""
        while True:
            try:
                async with asyncio.timeout(self.watch_interval):
                    await self._lost.wait()
            except TimeoutError:
                if not self.connected:
                    return "the Socket Mode connection dropped"
            else:
                return self._lost_reason

    def _refused(self, which: str, error: str) -> None:
        self.login_error = f"{which} was refused ({error})"
        self.link.stop(f"{self.login_error}; fix the token and restart newsbot")
        log.error(
            "Slack login failed: %s was refused by %s (%s). Slack stays disconnected; fix the "
            "token and restart.",
            which,
            self.api_base,
            error,
        )

    def _serve(self, team_id: str, team_name: str) -> None:
        """The token's own workspace is served when team_ids is empty; say which are."""
        if team_id and team_name:
            self._team_names[team_id] = team_name
        if self.team_ids:
            log.info(
                "Slack: serving %s (slack.team_ids); commands and events from any other "
                "workspace are refused",
                self._describe(self.team_ids, ids=True),
            )
            if team_id and team_id not in self.team_ids:
                log.warning(
                    "Slack: the bot token belongs to %s, which is not in slack.team_ids: "
                    "commands from there are refused",
                    self._describe([team_id], ids=True),
                )
            return
        self.served_teams = frozenset([team_id]) if team_id else frozenset()
        log.info(
            "Slack: serving %s, the workspace the bot token belongs to (slack.team_ids is "
            "empty); commands and events from any other workspace are refused",
            self._describe(self.served_teams, ids=True),
        )

    def _describe(self, team_ids: Any, *, ids: bool = False) -> str:
        names = [
            f"{self._team_names.get(t, t)} ({t})" if ids else self._team_names.get(t, t)
            for t in sorted(team_ids)
        ]
        if len(names) <= 1:
            return "".join(names) or "no workspace"
        return ", ".join(names[:-1]) + " and " + names[-1]

    def team_refusal(self, body: dict[str, Any], context: AsyncBoltContext) -> str | None:
        """Why a request from this workspace is not served, or None. Every team the request
        names counts (the workspace it came through and, in a shared channel, the actor's own),
        and a request that names none is refused: fail closed."""
        served = self.served_teams
        if served is None:
            return "newsbot is still starting; try again in a moment."
        teams = {context.team_id, context.actor_team_id, body.get("user_team")}
        event = body.get("event")
        if isinstance(event, dict):
            teams.add(event.get("user_team"))
        teams.discard(None)
        if teams and teams <= served:
            return None
        name = self._describe(served)
        return (
            f"This bot serves the {name} workspace only; it does nothing here. "
            f"Ask the admins of {name} if you need it."
        )

    # --- the bolt app ------------------------------------------------------------------------

    def build_app(self) -> AsyncApp:
        # client=, not token=: bolt copies this client's base_url (and retry handlers) into
        # the client it builds per request, so a GovSlack or test api_base applies everywhere.
        app = AsyncApp(client=self.web, logger=logging.getLogger("bot.chat.slack.bolt"))
        app.use(self._only_served_teams)  # before every listener, for every request
        app.use(self._only_once)
        app.command("/news")(self._on_news)
        app.event("app_home_opened")(self._on_home_opened)
        return app

    async def _only_served_teams(
        self, body: dict[str, Any], context: AsyncBoltContext, next_: Any
    ) -> BoltResponse | None:
        refusal = self.team_refusal(body, context)
        if refusal is None:
            return await next_()
        log.info(
            "refused a Slack %s from team %s (user %s): not a served workspace",
            "command" if body.get("command") else "event",
            context.team_id,
            context.user_id,
        )
        # Acknowledged, so that Slack does not retry; a command's answer says why.
        if body.get("command"):
            return BoltResponse(status=200, body=render_reply(Reply(refusal, ok=False)))
        return BoltResponse(status=200, body="")

    async def _only_once(self, body: dict[str, Any], next_: Any) -> BoltResponse | None:
        # The ids a retry keeps: a command's trigger_id, an event's event_id (a retry comes
        # in a new envelope, so the envelope id would not do).
        key = body.get("trigger_id") or body.get("event_id")
        if self._first is None or not key:
            return await next_()
        try:
            first = await self._first(f"slack:{key}")
        except Exception as exc:
            # Answered twice is better than not at all.
            log.warning("cannot tell whether another worker has %s (%s); handling it", key, exc)
            first = True
        if first:
            return await next_()
        log.info("Slack %s is handled by another worker; acknowledged here", key)
        return BoltResponse(status=200, body="")

    async def _on_news(self, ack: Any, command: dict[str, Any], respond: Any) -> None:
        # Ack at once with nothing (Slack wants an answer within 3 s), then answer through
        # response_url, which stays valid for 30 minutes.
        await ack()
        reply = await self.handle_command(
            command.get("text") or "", command.get("user_id") or "", command.get("user_name") or ""
        )
        try:
            response = await respond(**render_reply(reply))
        except Exception:
            log.exception("could not answer /news for %s", command.get("user_id"))
            return
        if getattr(response, "status_code", 200) != 200:
            log.warning(
                "Slack refused the /news answer for %s: HTTP %s %s",
                command.get("user_id"),
                response.status_code,
                getattr(response, "body", ""),
            )

    async def handle_command(self, text: str, user_id: str, user_name: str = "") -> Reply:
        """Parse, decide who is asking, run; never raises."""
        try:
            try:
                invocation = parse_command(text)
            except CommandSyntaxError as exc:
                return Reply(f"{exc.problem}\n{exc.usage}", ok=False)
            command = COMMANDS.get(invocation.command)
            # Only admin sub-commands (and those that show admins more) pay for the users.info
            # look-up.
            asks = invocation.admin or (command is not None and command.admins_see_more)
            actor = Actor(
                PLATFORM,
                user_id,
                name=user_name,
                is_admin=await self.is_admin(user_id) if asks else False,
                admin_hint=ADMIN_HINT,
                # The app serves one workspace: every Slack channel is the asker's.
                sees=_in_workspace,
            )
            return await self.run(invocation, actor)
        except Exception:
            log.exception("/news %r from %s failed", text[:200], user_id)
            return Reply(SORRY, ok=False)

    async def run(self, invocation: Invocation, actor: Actor) -> Reply:
        commands = self.commands
        if commands is None:
            return Reply("newsbot is still starting; try again in a moment.", ok=False)
        if invocation.command == HELP:
            return help_reply(invocation.args.get("topic"))
        return await COMMANDS[invocation.command].run(commands, actor, invocation.args)

    async def is_admin(self, user_id: str) -> bool:
        """Listed in admin_user_ids, or a workspace admin or owner (users.info, cached)."""
        if user_id in self.admin_user_ids:
            return True
        now = time.monotonic()
        cached = self._admin_cache.get(user_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            user = (await self.web.users_info(user=user_id))["user"]
        except Exception as exc:
            # Not cached: the next command asks again.
            log.warning(
                "users.info for %s failed (%s); treating them as not an admin", user_id, exc
            )
            return False
        admin = bool(
            not user.get("deleted")
            and (user.get("is_admin") or user.get("is_owner") or user.get("is_primary_owner"))
        )
        self._admin_cache[user_id] = (now + self.admin_cache_seconds, admin)
        return admin

    async def _on_home_opened(self, event: dict[str, Any]) -> None:
        if event.get("tab", "home") != "home":
            return
        user_id = event.get("user") or ""
        try:
            await self.publish_home(user_id)
        except Exception:
            log.exception("could not publish the App Home for %s", user_id)

    async def publish_home(self, user_id: str) -> None:
        if self.commands is None:
            return
        home = await self.commands.home(Actor(PLATFORM, user_id), HOME_STORIES)
        view = render_home(home.subscriptions, home.stories)
        await self.web.views_publish(user_id=user_id, view=view)


def _in_workspace(target: str) -> bool:
    return platform_of(target) == PLATFORM


def _seconds(value: float) -> str:
    return f"{value:.1f}s" if value < 10 else f"{value:.0f}s"
