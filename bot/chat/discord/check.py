"""`newsbot check` for Discord: is the token valid, whose bot is it, and can it post a card in
every configured channel?

Over REST only (no gateway): the token by logging in, each channel by reading it, its server's
roles and the bot's own roles, and working out the bot's permissions there the way Discord does
(server roles, then the channel's overwrites for @everyone, the bot's roles and the bot itself).
A card needs View Channel, Send Messages (in a thread: Send Messages in Threads) and Embed
Links; without Embed Links Discord posts the message but drops the card in it. A channel that
a watchlist with `updates = "thread"` posts to also needs Create Public Threads and Send
Messages in Threads: each update is a reply in a thread started on the card."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

import aiohttp
import discord
import discord.gateway
import discord.http
import yarl

from bot.chat.discord.destination import DESTINATION_FORM
from bot.chat.discord.render import render_card
from bot.chat.discord.sender import parse_target, result_for
from bot.chat.preflight import Check
from bot.core.cards import Card
from bot.core.models import Updates
from config.schema import DiscordSettings, Settings

KIND = "discord"
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
EMBED_LINKS = 1 << 14
ADMINISTRATOR = 1 << 3
CREATE_PUBLIC_THREADS = 1 << 35
SEND_MESSAGES_IN_THREADS = 1 << 38
ALL = (1 << 53) - 1
THREAD_TYPES = (10, 11, 12)
PERMISSION_NAMES = {
    VIEW_CHANNEL: "View Channel",
    SEND_MESSAGES: "Send Messages",
    CREATE_PUBLIC_THREADS: "Create Public Threads",
    SEND_MESSAGES_IN_THREADS: "Send Messages in Threads",
    EMBED_LINKS: "Embed Links",
}


@contextlib.contextmanager
def pointed_at(config: DiscordSettings) -> Iterator[None]:
    """discord.py reads the API base and the gateway from class attributes: set, then put back."""
    saved = (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)
    discord.http.Route.BASE = config.api_base.rstrip("/")
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(config.gateway_url)
    try:
        yield
    finally:
        discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = saved


async def check_discord(
    settings: Settings, channels: Sequence[str], *, test_card: Card | None = None
) -> list[Check]:
    """One row for the token, one per channel. `test_card`: post it to each channel that
    passes (`newsbot check --send`)."""
    secret = settings.secrets.discord_token
    if secret is None:
        return [
            Check.failed(
                KIND,
                "token",
                f"DISCORD_TOKEN is not set, but {len(channels)} channel(s) are configured",
                "set DISCORD_TOKEN in the environment (docs/discord.md, step 2)",
            )
        ]
    intents = discord.Intents.none()
    intents.guilds = True  # none needed over REST; without it discord.py warns at login
    client = discord.Client(intents=intents)
    with pointed_at(settings.discord):
        try:
            try:
                await client.login(secret.get_secret_value())
            except discord.LoginFailure:
                return [
                    Check.failed(
                        KIND,
                        "token",
                        "Discord refused DISCORD_TOKEN (401 Unauthorized)",
                        "copy the token again (Developer Portal -> your app -> Bot -> Reset "
                        "Token) into DISCORD_TOKEN",
                    )
                ]
            except (discord.HTTPException, aiohttp.ClientError, OSError, TimeoutError) as exc:
                return [
                    Check.failed(
                        KIND,
                        "token",
                        f"cannot reach Discord at {settings.discord.api_base}: {_describe(exc)}",
                        "check the network (or [discord].api_base), then run the check again",
                    )
                ]
            rows = [_token_row(client)]
            guilds: dict[int, dict[str, Any]] = {}
            threaded = {
                channel
                for watchlist in settings.watchlists
                if watchlist.updates == Updates.THREAD
                for channel in watchlist.channels
            }
            for channel in channels:
                rows.append(
                    await _check_channel(
                        client, channel, guilds, test_card, threads=channel in threaded
                    )
                )
            return rows
        finally:
            await client.close()


def _token_row(client: discord.Client) -> Check:
    user, app = client.user, client.application
    detail = f"bot {user} (id {user.id if user else '?'})"
    if app is not None:
        detail += f", application {app.name!r}"
        if app.bot_public:
            detail += " (Public Bot is on: anyone can add it to a server; turn it off)"
    return Check.passed(KIND, "token", detail)


async def _check_channel(
    client: discord.Client,
    target: str,
    guilds: dict[int, dict[str, Any]],
    test_card: Card | None,
    *,
    threads: bool = False,
) -> Check:
    """`threads`: a watchlist posting here shows updates in threads started on its cards."""
    where = parse_target(target)
    if where is None:
        return Check.failed(
            KIND, target, "not a Discord channel", f'write it as "{DESTINATION_FORM.help}"'
        )
    if where.dm:
        return Check.passed(KIND, target, "a person's direct messages: not checked")
    http = client.http
    try:
        # Read as plain JSON: discord.py's TypedDicts per channel type do not share keys.
        channel: dict[str, Any] = dict(await http.get_channel(where.id))
        guild_id = channel.get("guild_id")
        if guild_id is None:
            return Check.passed(KIND, target, "a direct-message channel: not checked")
        source = channel
        if channel.get("type") in THREAD_TYPES and channel.get("parent_id"):
            # A thread's permissions are its parent channel's.
            source = dict(await http.get_channel(int(channel["parent_id"])))
        guild = guilds.get(int(guild_id))
        if guild is None:
            guild = dict(await http.get_guild(int(guild_id)))
            assert client.user is not None
            guild["_bot"] = await http.get_member(int(guild_id), client.user.id)
            guilds[int(guild_id)] = guild
    except discord.NotFound:
        return Check.failed(
            KIND,
            target,
            "no such channel, or it is in a server the bot is not in (404 Unknown Channel)",
            "copy the channel id again (Developer Mode on, right-click the channel, Copy "
            "Channel ID), and invite the bot to that server (docs/discord.md)",
        )
    except discord.Forbidden:
        return Check.failed(
            KIND,
            target,
            "the bot cannot see this channel (403 Missing Access)",
            "give the bot View Channel in it (channel settings -> Permissions -> add the bot "
            "or its role)",
        )
    except (discord.HTTPException, aiohttp.ClientError, OSError, TimeoutError) as exc:
        return Check.failed(
            KIND, target, f"could not check it: {_describe(exc)}", "run the check again"
        )
    name = f"#{channel.get('name', where.id)} in {guild.get('name', 'server ' + str(guild_id))}"
    thread = channel.get("type") in THREAD_TYPES
    needed: tuple[int, ...] = (
        VIEW_CHANNEL,
        SEND_MESSAGES_IN_THREADS if thread else SEND_MESSAGES,
        EMBED_LINKS,
    )
    if threads and not thread:
        needed += (CREATE_PUBLIC_THREADS, SEND_MESSAGES_IN_THREADS)
    allowed = permissions(guild, guild["_bot"], source)
    missing = [PERMISSION_NAMES[bit] for bit in needed if not allowed & bit]
    if missing:
        return Check.failed(
            KIND,
            target,
            f"{name}: the bot lacks {', '.join(missing)}",
            f"give the bot {', '.join(missing)} in {name} (channel settings -> Permissions "
            "-> add the bot or its role)",
        )
    detail = f"{name}: the bot can post cards ({', '.join(PERMISSION_NAMES[b] for b in needed)})"
    if test_card is None:
        return Check.passed(KIND, target, detail)
    card = dataclasses.replace(test_card, channel=target)
    try:
        # discord.py adds a random nonce: two checks in a row post two test cards.
        await client.get_partial_messageable(where.id).send(embed=render_card(card))
    except Exception as exc:
        return Check.failed(
            KIND,
            target,
            f"{name}: posting the test card failed: {result_for(exc).error}",
            "fix what the error says, then run the check again",
        )
    return Check.passed(KIND, target, f"{detail}; test card posted")


def permissions(guild: dict[str, Any], member: dict[str, Any], channel: dict[str, Any]) -> int:
    """The member's permissions in the channel, computed as Discord documents it (Permissions
    -> Permission Overwrites): owner and Administrator have everything; otherwise @everyone's
    and the member's roles, then the channel's overwrites for @everyone, for the member's
    roles (all denies, then all allows) and for the member."""
    user_id = str((member.get("user") or {}).get("id", ""))
    guild_id = str(guild.get("id"))
    if user_id and str(guild.get("owner_id")) == user_id:
        return ALL
    roles = {str(r["id"]): int(r.get("permissions") or 0) for r in guild.get("roles") or []}
    member_roles = {str(r) for r in member.get("roles") or []}
    allowed = roles.get(guild_id, 0)
    for role in member_roles:
        allowed |= roles.get(role, 0)
    if allowed & ADMINISTRATOR:
        return ALL
    overwrites = {str(o["id"]): o for o in channel.get("permission_overwrites") or []}

    def apply(value: int, deny: int, allow: int) -> int:
        return (value & ~deny) | allow

    everyone = overwrites.get(guild_id)
    if everyone is not None:
        allowed = apply(allowed, int(everyone["deny"]), int(everyone["allow"]))
    deny = allow = 0
    for role in member_roles:
        overwrite = overwrites.get(role)
        if overwrite is not None and int(overwrite.get("type", 0)) == 0:
            deny |= int(overwrite["deny"])
            allow |= int(overwrite["allow"])
    allowed = apply(allowed, deny, allow)
    own = overwrites.get(user_id)
    if own is not None and int(own.get("type", 1)) == 1:
        allowed = apply(allowed, int(own["deny"]), int(own["allow"]))
    if not allowed & VIEW_CHANNEL:
        return 0  # a channel one cannot see grants nothing in it
    return allowed


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
