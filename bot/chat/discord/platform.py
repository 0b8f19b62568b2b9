"""The Discord platform: one discord.py client, its slash commands and its sender, run in the
bot's own asyncio loop beside the scheduler and the delivery worker.

Lifecycle: `start()` points discord.py at the configured API base and gateway, logs in (REST),
syncs the slash commands and runs the gateway as a background task; it returns once the login is
known (or after `start_timeout`) and never raises. A dropped gateway reconnects (discord.py
resumes the session); alerts never wait for it, since they are posted over REST."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

import aiohttp
import discord
import discord.gateway
import discord.http
import yarl

from bot.chat.discord.guilds import GuildGate
from bot.chat.discord.sender import DiscordSender
from bot.chat.discord.slash import SlashCommands

if TYPE_CHECKING:
    from bot.core.commands import Commands
    from config.settings import Settings

log = logging.getLogger(__name__)

# discord.py refuses smaller values: a per-route 429 longer than this raises RateLimited instead of
# sleeping, so one long rate limit holds the card (the worker retries it) instead of the worker.
MAX_RATELIMIT_WAIT = 30.0


def intents() -> discord.Intents:
    """No privileged intent: interactions arrive without any, and `guilds` keeps the server and
    its roles in the cache (for the admin-role check)."""
    value = discord.Intents.none()
    value.guilds = True
    return value


class _Client(discord.Client):
    def __init__(self, platform: DiscordPlatform, **options: Any) -> None:
        super().__init__(**options)
        self._platform = platform

    async def on_connect(self) -> None:
        # discord.py dispatches this from READY, once the guild list of READY is in the cache.
        self._platform.gate.connected(g.id for g in self.guilds)
        self._platform._gateway_up = True
        log.info("Discord gateway connected as %s", self.user)

    async def on_ready(self) -> None:
        # After the GUILD_CREATEs (or guild_ready_timeout): the servers' names are known.
        self._platform.gate.report((g.id, g.name) for g in self.guilds)

    async def on_guild_join(self, guild: discord.Guild) -> None:
        self._platform.gate.joined(guild.id, guild.name)

    async def on_resumed(self) -> None:
        self._platform._gateway_up = True
        log.info("Discord gateway session resumed")

    async def on_disconnect(self) -> None:
        if self._platform._gateway_up:
            log.warning("Discord gateway disconnected; reconnecting")
        self._platform._gateway_up = False


class DiscordPlatform:
    """Implements bot.app.ChatPlatform."""

    name = "discord"

    def __init__(
        self,
        settings: Settings,
        *,
        start_timeout: float = 10.0,
        guild_ready_timeout: float = 2.0,
        defer_after: float = 1.5,
    ) -> None:
        self.settings = settings
        self.config = settings.discord
        self.start_timeout = start_timeout
        self.client = _Client(
            self,
            intents=intents(),
            # Nothing we post may ever ping: feed text is not trusted, and neither are replies.
            allowed_mentions=discord.AllowedMentions.none(),
            max_ratelimit_timeout=MAX_RATELIMIT_WAIT,
            chunk_guilds_at_startup=False,
            member_cache_flags=discord.MemberCacheFlags.none(),
            guild_ready_timeout=guild_ready_timeout,
        )
        self.gate = GuildGate(
            self.config.guild_ids, name_of=self._guild_name, is_member=self._is_member
        )
        self.slash = SlashCommands(
            self.client,
            gate=self.gate,
            admin_role_ids=self.config.admin_role_ids,
            defer_after=defer_after,
        )
        self.sender = DiscordSender(self.client, usable=self._unusable_reason)
        self.login_error: str | None = None
        self._logged_in = False
        self._gateway_up = False
        self._closing = False
        self._login_known = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._saved_endpoints: tuple[str, yarl.URL] | None = None
        self._our_endpoints: tuple[str, yarl.URL] | None = None

    # --- ChatPlatform -------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        ws = self.client.ws
        return self._gateway_up and not self.client.is_closed() and ws is not None and bool(ws.open)

    def attach(self, commands: Commands) -> None:
        self.slash.attach(commands)

    async def start(self) -> None:
        if self._task is not None:
            return
        secret = self.settings.secrets.discord_token
        if secret is None:
            self.login_error = "DISCORD_TOKEN is not set"
            log.error("Discord not started: %s", self.login_error)
            return
        self._point_endpoints()
        self._task = asyncio.create_task(
            self._run(secret.get_secret_value()), name="discord-gateway"
        )
        try:
            await asyncio.wait_for(self._login_known.wait(), self.start_timeout)
        except TimeoutError:
            log.warning(
                "Discord login is taking more than %.0fs; carrying on, alerts wait in the outbox",
                self.start_timeout,
            )

    async def close(self) -> None:
        self._closing = True
        with contextlib.suppress(Exception):
            await self.client.close()
        task = self._task
        if task is not None:
            if not self._logged_in:
                task.cancel()  # a login still retrying (or asleep between tries) is cut short
            # Otherwise client.close() has ended connect(), and the task ends by itself.
            await asyncio.wait({task}, timeout=5)
            if not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=1)
        # discord.py does not cancel the task that waits guild_ready_timeout before on_ready;
        # closed right after a connect, it would outlive the client (a pending-task warning).
        ready = getattr(self.client._connection, "_ready_task", None)
        if ready is not None and not ready.done():
            ready.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ready
        self._gateway_up = False
        self._restore_endpoints()

    # --- internals ----------------------------------------------------------------------------

    def _guild_name(self, guild_id: int) -> str | None:
        guild = self.client.get_guild(guild_id)
        return guild.name if guild is not None and guild.name else None

    async def _is_member(self, guild_id: int, user_id: int) -> bool:
        """Asked over REST: the member cache stays empty without the members intent."""
        try:
            await self.client.http.get_member(guild_id, user_id)
        except discord.NotFound:  # 10007 Unknown Member (or 10004: the bot left that server)
            return False
        return True

    def _unusable_reason(self) -> str | None:
        if self._closing or self.client.is_closed():
            return "the Discord connection is closed"
        if self.login_error is not None:
            return f"Discord login failed: {self.login_error}"
        if not self._logged_in:
            return "not logged in to Discord yet"
        return None

    def _point_endpoints(self) -> None:
        """discord.py reads both from class attributes (no constructor knob): the REST base per
        request, the gateway per connect. A REST proxy is configured this way."""
        base = self.config.api_base.rstrip("/")
        gateway = yarl.URL(self.config.gateway_url)
        self._saved_endpoints = (
            discord.http.Route.BASE,
            discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY,
        )
        discord.http.Route.BASE = base  # type: ignore[misc]
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = gateway
        self._our_endpoints = (base, gateway)

    def _restore_endpoints(self) -> None:
        # Only if nobody changed them since: another client in the process may own them now.
        if self._saved_endpoints is None or self._our_endpoints is None:
            return
        current = (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)
        if current == self._our_endpoints:
            discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = (
                self._saved_endpoints
            )
        self._saved_endpoints = self._our_endpoints = None

    async def _run(self, token: str) -> None:
        try:
            if not await self._login(token):
                return
            try:
                await self.slash.sync(self.config.guild_ids)
            except (discord.HTTPException, aiohttp.ClientError, OSError, TimeoutError) as exc:
                # Alerts do not need commands; say what to fix and carry on.
                hint = (
                    " (was the bot invited with the applications.commands scope to every guild "
                    "in discord.guild_ids?)"
                    if isinstance(exc, discord.Forbidden)
                    else ""
                )
                log.error("syncing Discord slash commands failed: %s%s", exc, hint)
            # reconnect=True: discord.py resumes or re-identifies after any network failure.
            await self.client.connect(reconnect=True)
        except discord.PrivilegedIntentsRequired:
            log.error("Discord refused the gateway intents; newsbot needs no privileged intent")
        except discord.ConnectionClosed as exc:
            if not self._closing:
                log.error("Discord gateway closed for good (code %s): %s", exc.code, exc.reason)
        except Exception:
            if not self._closing:
                log.exception("the Discord connection stopped")
        finally:
            self._gateway_up = False
            self._login_known.set()

    async def _login(self, token: str) -> bool:
        """Log in over REST, retrying while Discord is unreachable; False if it never will."""
        delay = 1.0
        while not self._closing:
            try:
                await self.client.login(token)
            except discord.LoginFailure as exc:
                # discord.py's message names no token ("Improper token has been passed.").
                self.login_error = str(exc)
                log.error("Discord login failed: %s Check DISCORD_TOKEN.", exc)
                self._login_known.set()
                return False
            except (discord.HTTPException, aiohttp.ClientError, OSError, TimeoutError) as exc:
                # Each login attempt opens a new HTTP session: close the failed one.
                with contextlib.suppress(Exception):
                    await self.client.http.close()
                log.warning("Discord login failed: %s; retrying in %.0fs", _describe(exc), delay)
                self._login_known.set()  # start() need not wait: alerts stay in the outbox
                await asyncio.sleep(delay)
                delay = min(delay * 2, 300.0)
                continue
            self._logged_in = True
            self._login_known.set()
            log.info("logged in to Discord as %s", self.client.user)
            return True
        return False


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
