"""The Discord platform: one discord.py client, its slash commands and its sender, run in the
bot's own asyncio loop beside the scheduler and the delivery worker.

Lifecycle: `start()` points discord.py at the configured API base and gateway, logs in (REST),
syncs the slash commands and runs the gateway as a background task; it returns once the login is
known (or after `start_timeout`) and never raises. Alerts never wait for the gateway, since they
are posted over REST.

Every failure is retried, forever, with a capped and jittered backoff ([chat] reconnect_min and
reconnect_max): a login that cannot reach Discord or gets a 5xx, a gateway that drops or cannot
be reached. The one exception is a refused token (401 at login, 4004 on the gateway): retrying
cannot help, so it is said once, without the token, and Discord stays off until a restart.
`link` tells /healthz, /metrics and the delivery worker whether the gateway is up."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import aiohttp
import discord
import discord.gateway
import discord.http
import yarl

from bot.chat.discord.destination import DESTINATION_FORM, PLATFORM
from bot.chat.discord.guilds import GuildGate
from bot.chat.discord.sender import DiscordSender
from bot.chat.discord.slash import SlashCommands
from bot.chat.link import Backoff, Link

if TYPE_CHECKING:
    from bot.core.commands import Commands
    from config.schema import Settings

log = logging.getLogger(__name__)

STANDBY = "standby: another worker of this database holds the Discord gateway"
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
        log.info("Discord gateway connected as %s", self.user)
        self._platform._gateway_up()

    async def on_ready(self) -> None:
        # After the GUILD_CREATEs (or guild_ready_timeout): the servers' names are known.
        self._platform.gate.report((g.id, g.name) for g in self.guilds)

    async def on_guild_join(self, guild: discord.Guild) -> None:
        self._platform.gate.joined(guild.id, guild.name)

    async def on_resumed(self) -> None:
        log.info("Discord gateway session resumed")
        self._platform._gateway_up()

    async def on_disconnect(self) -> None:
        self._platform._gateway_down("the Discord gateway connection dropped; reconnecting")

    async def connect(self, *, reconnect: bool = True) -> None:
        """discord.py's own gateway loop (Client.connect in 2.7.1), changed in three ways: the
        wait between failed attempts is the platform's capped, jittered backoff (discord.py's
        grows to 17 minutes); any failure but a refused token or intent is retried (discord.py
        closes the client for good on an unexpected close code or exception); and the platform
        hears of each failed attempt, so that /healthz can say why the gateway is down."""
        backoff = self._platform.gateway_backoff
        params: dict[str, Any] = {"initial": True, "shard_id": self.shard_id}
        while not self.is_closed():
            if await self._platform._wait_turn():
                params = {"initial": False, "shard_id": self.shard_id}  # a session of its own
            try:
                coro = discord.gateway.DiscordWebSocket.from_client(self, **params)
                self.ws = await asyncio.wait_for(coro, timeout=60.0)
                params["initial"] = False
                if self._platform._standing_down:  # told to while it was connecting
                    await self.ws.close(code=1000)
                while True:
                    await self.ws.poll_event()
            except discord.gateway.ReconnectWebSocket as exc:
                if self._platform._standing_down:
                    self.dispatch("disconnect")
                    continue
                # Discord asked for it (op 7) or the socket closed in a resumable way: at once
                # after a working session, after a backoff when the last try never got that far.
                working = self._platform.link.is_up
                self.dispatch("disconnect")
                ws = self.ws
                if ws is not None:
                    params.update(sequence=ws.sequence, resume=exc.resume, session=ws.session_id)
                    if exc.resume:
                        params["gateway"] = ws.gateway
                if not working:
                    await asyncio.sleep(backoff.delay())
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.dispatch("disconnect")
                if self.is_closed():
                    return
                if self._platform._standing_down:
                    continue  # closed on purpose: another worker holds the gateway now
                if isinstance(exc, discord.ConnectionClosed):
                    if exc.code == 4014:
                        raise discord.PrivilegedIntentsRequired(exc.shard_id) from None
                    if exc.code == 4004:  # authentication failed: the token was revoked
                        raise
                delay = backoff.delay()
                self._platform._gateway_failed(exc, delay)
                await asyncio.sleep(delay)
                ws = self.ws
                if ws is not None and ws.session_id is not None:
                    # Always try to RESUME: events missed meanwhile are replayed, and a session
                    # Discord no longer knows is invalidated by it (then discord.py identifies).
                    params.update(
                        sequence=ws.sequence, gateway=ws.gateway, resume=True, session=ws.session_id
                    )


# With several workers on one database, one at a time holds the gateway (see `share`).
GATEWAY_ROLE = "discord-gateway"


class DiscordPlatform:
    """Implements bot.chat.platforms.ChatPlatform."""

    name = PLATFORM
    destination_form = DESTINATION_FORM
    held_role = GATEWAY_ROLE

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
        self.link = Link(self.name)
        chat = settings.chat
        self._backoff = lambda: Backoff(chat.reconnect_min, chat.reconnect_max)
        self.gateway_backoff = self._backoff()
        self.login_error: str | None = None
        self._logged_in = False
        self._synced = False
        self._sync_task: asyncio.Task[None] | None = None
        self._closing = False
        self._login_known = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._saved_endpoints: tuple[str, yarl.URL] | None = None
        self._our_endpoints: tuple[str, yarl.URL] | None = None
        self._turn: Callable[[], Awaitable[None]] | None = None
        self._standing_down = False
        self._waiting_turn = False

    # --- ChatPlatform -------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        ws = self.client.ws
        return self.link.is_up and not self.client.is_closed() and ws is not None and bool(ws.open)

    def attach(self, commands: Commands) -> None:
        self.slash.attach(commands)

    def share(self, turn: Callable[[], Awaitable[None]]) -> None:
        """Several workers share this bot's database, and Discord must send each slash command
        to one of them: only the worker that holds the gateway opens it (and syncs the
        commands); every worker logs in and posts cards over REST. `turn` returns once this
        worker holds the gateway. Call before `start`."""
        self._turn = turn

    async def stand_down(self) -> None:
        """This worker no longer holds the gateway (its hold lapsed): close the gateway, so
        that only the new holder answers commands, and wait for the turn again. Posting over
        REST goes on."""
        if self._turn is None or self._closing:
            return
        self._standing_down = True
        self.link.standby(STANDBY)
        ws = self.client.ws
        if ws is not None and ws.open:
            with contextlib.suppress(Exception):
                await ws.close(code=1000)

    async def start(self) -> None:
        if self._task is not None:
            return
        secret = self.settings.secrets.discord_token
        if secret is None:
            self.login_error = "DISCORD_TOKEN is not set"
            self.link.stop(self.login_error)
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
        for task in (self._task, self._sync_task):
            if task is None:
                continue
            if not self._logged_in or self._waiting_turn:
                # A login still retrying (or asleep between tries), or a worker waiting for
                # its turn at the gateway, is cut short.
                task.cancel()
            # Otherwise client.close() ends connect(), unless it sleeps between two attempts.
            await asyncio.wait({task}, timeout=2)
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
        if self.link.is_up:
            self.link.down("the Discord connection is closed")
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
        discord.http.Route.BASE = base
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

    # --- connection state ---------------------------------------------------------------------

    def _gateway_up(self) -> None:
        self.gateway_backoff.reset()
        self.link.up()
        if not self._synced and (self._sync_task is None or self._sync_task.done()):
            # The first try failed while Discord was unreachable; it is reachable now.
            self._sync_task = asyncio.create_task(self._sync_commands(), name="discord-sync")

    def _gateway_down(self, reason: str) -> None:
        if self.link.is_up and not self._closing:
            log.warning("Discord gateway disconnected; reconnecting")
        if not self._closing:
            self.link.down(reason)

    def _gateway_failed(self, exc: BaseException, delay: float) -> None:
        if isinstance(exc, discord.ConnectionClosed):
            problem = f"the Discord gateway closed the connection (code {exc.code})"
        else:
            problem = f"cannot reach the Discord gateway ({_describe(exc)})"
        self.link.down(f"{problem}; retrying in {_seconds(delay)}")
        if isinstance(exc, _NETWORK):
            log.warning("%s; retrying in %s", problem, _seconds(delay))
        else:
            log.error("%s; retrying in %s", problem, _seconds(delay), exc_info=exc)

    def _refused(self, what: str) -> None:
        """A refused token: said once, and nothing is retried (it would be refused again)."""
        self.login_error = what
        self.link.stop(f"{what}; fix DISCORD_TOKEN and restart newsbot")
        log.error(
            "Discord login failed: %s Check DISCORD_TOKEN; Discord stays off until newsbot is "
            "restarted with a valid token (alerts for it wait in the outbox).",
            what,
        )

    # --- the connection -----------------------------------------------------------------------

    async def _wait_turn(self) -> bool:
        """Before each gateway connect: when the gateway is shared, wait until this worker
        holds it. True when it had stood down (the next session starts afresh)."""
        if self._turn is None:
            return False
        stood_down = self._standing_down
        self.link.standby(STANDBY)
        self._waiting_turn = True
        try:
            await self._turn()
        finally:
            self._waiting_turn = False
        self._standing_down = False
        self.link.taking_over("holding the Discord gateway; connecting")
        log.info("this worker holds the Discord gateway now; connecting")
        return stood_down

    async def _run(self, token: str) -> None:
        try:
            if not await self._login(token):
                return
            if self._turn is None:
                # Shared: the holder syncs once its gateway is up (see _gateway_up).
                await self._sync_commands()
            await self.client.connect(reconnect=True)
        except discord.PrivilegedIntentsRequired:
            self.link.stop("Discord refused the gateway intents")
            log.error("Discord refused the gateway intents; newsbot needs no privileged intent")
        except discord.ConnectionClosed as exc:
            if not self._closing:
                if exc.code == 4004:
                    self._refused("the gateway refused the token (4004 Authentication failed).")
                else:
                    self.link.stop(f"the Discord gateway closed for good (code {exc.code})")
                    log.error("Discord gateway closed for good (code %s): %s", exc.code, exc.reason)
        except Exception:
            if not self._closing:
                self.link.stop("the Discord connection stopped after an unexpected error")
                log.exception("the Discord connection stopped")
        finally:
            self._login_known.set()

    async def _login(self, token: str) -> bool:
        """Log in over REST, retrying whatever goes wrong but a refused token; False if it
        never will (a refused token, or closing)."""
        backoff = self._backoff()
        while not self._closing:
            try:
                await self.client.login(token)
            except discord.LoginFailure as exc:
                # discord.py's message names no token ("Improper token has been passed.").
                self._refused(str(exc))
                self._login_known.set()
                return False
            except Exception as exc:
                await self._reset_http()
                delay = backoff.delay()
                problem = f"Discord login failed: {_describe(exc)}"
                self.link.down(f"{problem}; retrying in {_seconds(delay)}")
                log.warning("%s; retrying in %s", problem, _seconds(delay))
                self._login_known.set()  # start() need not wait: alerts stay in the outbox
                await asyncio.sleep(delay)
                continue
            self._logged_in = True
            self.login_error = None
            self.link.down("logged in to Discord; connecting to the gateway")
            self._login_known.set()
            log.info("logged in to Discord as %s", self.client.user)
            return True
        return False

    async def _reset_http(self) -> None:
        """Make discord.py's HTTP client fit for the next login. Each login opens a new session
        on the client's connector, and closing a failed session closes that connector too: the
        next session would be born closed ("Session is closed", for good). MISSING makes the
        next login build a fresh connector."""
        http = self.client.http
        with contextlib.suppress(Exception):
            await http.close()
        http.clear()
        http.connector = discord.utils.MISSING

    async def _sync_commands(self) -> None:
        try:
            await self.slash.sync(self.config.guild_ids)
        except (discord.HTTPException, aiohttp.ClientError, OSError, TimeoutError) as exc:
            # Alerts do not need commands; say what to fix and carry on.
            forbidden = isinstance(exc, discord.Forbidden)
            hint = (
                " (was the bot invited with the applications.commands scope to every guild "
                "in discord.guild_ids?)"
                if forbidden
                else "; trying again when the gateway is next connected"
            )
            # Refused: retrying cannot help until someone changes the invite.
            self._synced = forbidden
            log.error("syncing Discord slash commands failed: %s%s", exc, hint)
        else:
            self._synced = True


# Failures of the network or of Discord's side: a warning each. Anything else is a bug worth a
# traceback (and is retried all the same).
_NETWORK = (
    OSError,
    aiohttp.ClientError,
    TimeoutError,
    discord.HTTPException,
    discord.GatewayNotFound,
    discord.ConnectionClosed,
)


def _seconds(value: float) -> str:
    return f"{value:.1f}s" if value < 10 else f"{value:.0f}s"


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
