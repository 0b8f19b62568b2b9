"""Slash commands: Discord's input translated into bot.core.commands calls, replies rendered back.

No command logic lives here. The core validates input, refuses non-admins and writes the audit
log; this module refuses commands from servers the bot does not serve (guilds.py), decides who is
an admin from Discord's own data (server side: the ``default_permissions`` of a group only hides
it in Discord's UI), answers every interaction exactly once and ephemerally, and never leaves one
unanswered."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Collection, Iterable
from typing import Any

import discord
from discord import app_commands

from bot.chat.discord.guilds import GuildGate
from bot.chat.discord.render import render_reply
from bot.core.commands import (
    MAX_HOURS,
    MAX_LIMIT,
    NAME_LIMIT,
    URL_LIMIT,
    Actor,
    Commands,
    Reply,
    refused,
)
from bot.core.text import truncate

log = logging.getLogger(__name__)

APOLOGY = "Sorry, something went wrong while handling that command. It has been logged."
NOT_READY = "newsbot is still starting up; try again in a moment."
QUERY_LIMIT = 1000
CHOICE_LIMIT = 100  # Discord: an autocomplete choice's name and value are 1-100 characters

Handler = Callable[[Commands, Actor], Awaitable[Reply]]

Query = app_commands.Range[str, 1, QUERY_LIMIT]
Name = app_commands.Range[str, 1, NAME_LIMIT]
Url = app_commands.Range[str, 1, URL_LIMIT]
Hours = app_commands.Range[int, 1, MAX_HOURS]
Limit = app_commands.Range[int, 1, MAX_LIMIT]
Interval = app_commands.Range[str, 1, 20]


class PostableChannel(app_commands.Transformer):
    """A text or announcement channel, straight from the interaction's resolved data: the id is
    all we need, so no gateway cache is involved (discord.TextChannel would need one)."""

    @property
    def type(self) -> discord.AppCommandOptionType:
        return discord.AppCommandOptionType.channel

    @property
    def channel_types(self) -> list[discord.ChannelType]:
        return [discord.ChannelType.text, discord.ChannelType.news]

    async def transform(self, interaction: discord.Interaction, value: Any, /) -> Any:
        return value


def is_admin(
    *,
    in_guild: bool,
    manage_guild: bool,
    administrator: bool,
    role_ids: Iterable[int],
    admin_role_ids: Collection[int],
) -> bool:
    """Manage Server (or Administrator) in the interaction's permissions, or an admin role.
    Never in DMs: there is no server to manage there."""
    if not in_guild:
        return False
    if manage_guild or administrator:
        return True
    return any(role in admin_role_ids for role in role_ids)


def _role_ids(user: discord.abc.User) -> set[int]:
    ids = {role.id for role in getattr(user, "roles", ())}
    # Member.roles drops roles missing from the guild cache (a role created while the gateway
    # was reconnecting); Member._roles holds the ids exactly as the interaction carried them.
    ids.update(int(r) for r in getattr(user, "_roles", ()) or ())
    return ids


def actor_for(interaction: discord.Interaction, admin_role_ids: Collection[int]) -> Actor:
    user = interaction.user
    permissions = interaction.permissions
    return Actor(
        platform="discord",
        user_id=str(user.id),
        name=user.name,
        is_admin=is_admin(
            in_guild=interaction.guild_id is not None,
            manage_guild=permissions.manage_guild,
            administrator=permissions.administrator,
            role_ids=_role_ids(user),
            admin_role_ids=admin_role_ids,
        ),
    )


async def _respond(interaction: discord.Interaction, text: str) -> None:
    try:
        if interaction.response.is_done():
            await interaction.edit_original_response(content=text)
        else:
            await interaction.response.send_message(text, ephemeral=True)
    except discord.HTTPException as exc:
        # Expired (10062) or already answered: nothing more can be said to this person.
        log.warning("could not answer /%s: %s", _name(interaction), exc)


def _name(interaction: discord.Interaction) -> str:
    command = interaction.command
    return command.qualified_name if command is not None else "?"


class NewsTree(app_commands.CommandTree):
    async def on_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        # Raised before our handler ran (an option discord.py could not convert, say).
        log.error("/%s failed", _name(interaction), exc_info=error)
        await _respond(interaction, APOLOGY)


class SlashCommands:
    """The command tree and the glue from each slash command to the core's handlers."""

    def __init__(
        self,
        client: discord.Client,
        *,
        gate: GuildGate,
        admin_role_ids: Collection[int] = (),
        defer_after: float = 1.5,
    ) -> None:
        """`gate`: which servers (and DM senders) are served. `defer_after`: a handler still
        running after this long gets a deferred ("thinking") answer first, then the reply;
        Discord drops interactions not answered within 3 s."""
        self.tree = NewsTree(client)
        self.gate = gate
        self.admin_role_ids = frozenset(admin_role_ids)
        self.defer_after = defer_after
        self.commands: Commands | None = None
        self._register()

    def attach(self, commands: Commands) -> None:
        self.commands = commands

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.tree.get_commands()]

    async def sync(self, guild_ids: Iterable[int]) -> None:
        """Global commands reach every server within about an hour; guild commands at once."""
        guilds = [discord.Object(id=g) for g in guild_ids]
        if not guilds:
            synced = await self.tree.sync()
            log.info("synced %d global slash commands", len(synced))
            return
        for guild in guilds:
            self.tree.copy_global_to(guild=guild)
            synced = await self.tree.sync(guild=guild)
            log.info("synced %d slash commands to guild %d", len(synced), guild.id)

    # --- running one command ------------------------------------------------------------------

    async def run(self, interaction: discord.Interaction, handler: Handler) -> None:
        commands = self.commands
        if commands is None:
            await _respond(interaction, NOT_READY)
            return
        actor = actor_for(interaction, self.admin_role_ids)
        task = asyncio.ensure_future(self._guarded(interaction, handler, commands, actor))
        try:
            done, _ = await asyncio.wait({task}, timeout=self.defer_after)
            if not done:
                with contextlib.suppress(discord.HTTPException):
                    await interaction.response.defer(ephemeral=True, thinking=True)
            text = render_reply(await task)
        except Exception:
            log.exception("/%s failed (user %s)", _name(interaction), actor.user_id)
            text = APOLOGY
        finally:
            if not task.done():  # we were cancelled (shutting down)
                task.cancel()
        await _respond(interaction, text)

    async def _guarded(
        self, interaction: discord.Interaction, handler: Handler, commands: Commands, actor: Actor
    ) -> Reply:
        """The handler, if this server (or, in a DM, this person) is served. Runs inside the
        deferrable task: the DM check may ask Discord."""
        refusal = await self.gate.refusal(interaction.guild_id, interaction.user.id)
        if refusal is not None:
            log.info(
                "refused /%s from user %s in %s: not a served server or member",
                _name(interaction),
                actor.user_id,
                f"guild {interaction.guild_id}" if interaction.guild_id else "a DM",
            )
            return refused(refusal)
        return await handler(commands, actor)

    async def _choices(self, interaction: discord.Interaction, current: str) -> list[str]:
        commands = self.commands
        if commands is None:
            return []
        actor = actor_for(interaction, self.admin_role_ids)
        try:
            # Within Discord's 3 s for an autocomplete answer; a refused asker gets no choices.
            async with asyncio.timeout(2.0):
                if await self.gate.refusal(interaction.guild_id, interaction.user.id):
                    return []
            return await commands.subscription_choices(actor, current)
        except Exception:
            log.exception("autocomplete of /%s failed", _name(interaction))
            return []

    # --- the commands -------------------------------------------------------------------------

    def _register(self) -> None:
        tree, run = self.tree, self.run

        @tree.command(
            name="subscribe", description="Get a direct message for new stories matching a query"
        )
        @app_commands.describe(query='What to watch, e.g. "North Korea" OR Pyongyang')
        async def subscribe(interaction: discord.Interaction, query: Query) -> None:
            await run(interaction, lambda c, a: c.subscribe(a, query))

        @tree.command(name="unsubscribe", description="Stop one of your subscriptions")
        @app_commands.describe(query="The subscription to stop")
        async def unsubscribe(interaction: discord.Interaction, query: Query) -> None:
            await run(interaction, lambda c, a: c.unsubscribe(a, query))

        @unsubscribe.autocomplete("query")
        async def unsubscribe_choices(
            interaction: discord.Interaction, current: str
        ) -> list[app_commands.Choice[str]]:
            mine = await self._choices(interaction, current)
            return [
                app_commands.Choice(name=truncate(q, CHOICE_LIMIT), value=q)
                for q in mine
                if 0 < len(q) <= CHOICE_LIMIT  # longer ones cannot be a choice; type them
            ][:25]

        @tree.command(name="subscriptions", description="List your subscriptions")
        async def subscriptions(interaction: discord.Interaction) -> None:
            await run(interaction, lambda c, a: c.subscriptions(a))

        @tree.command(name="recent", description="Recent stories, newest first")
        @app_commands.describe(
            query="Only stories matching this query (default: what the watchlists match)",
            hours="How far back to look (default 24)",
            limit="How many stories to show (default 10)",
        )
        async def recent(
            interaction: discord.Interaction,
            query: Query | None = None,
            hours: Hours | None = None,
            limit: Limit | None = None,
        ) -> None:
            await run(interaction, lambda c, a: c.recent(a, query, hours, limit))

        @tree.command(name="status", description="Feeds, deliveries and connections at a glance")
        async def status(interaction: discord.Interaction) -> None:
            await run(interaction, lambda c, a: c.status(a))

        admin = discord.Permissions(manage_guild=True)
        watchlist = app_commands.Group(
            name="watchlist",
            description="Manage the desk's watchlists (admins)",
            guild_only=True,
            default_permissions=admin,
        )

        @watchlist.command(name="add", description="Post stories matching a query to a channel")
        @app_commands.describe(
            name="A name for the watchlist",
            query='e.g. Putin OR Kremlin, "North Korea" NEAR/10 missile',
            channel="Where the alerts go (default: this channel)",
        )
        async def watchlist_add(
            interaction: discord.Interaction,
            name: Name,
            query: Query,
            channel: PostableChannel | None = None,
        ) -> None:
            channel_id = channel.id if channel is not None else interaction.channel_id
            target = f"discord:{channel_id}"
            await run(interaction, lambda c, a: c.watchlist_add(a, name, query, target))

        @watchlist.command(name="edit", description="Change a watchlist's query")
        @app_commands.describe(name="The watchlist", query="Its new query")
        async def watchlist_edit(
            interaction: discord.Interaction, name: Name, query: Query
        ) -> None:
            await run(interaction, lambda c, a: c.watchlist_edit(a, name, query))

        @watchlist.command(name="remove", description="Delete a watchlist made in chat")
        @app_commands.describe(name="The watchlist")
        async def watchlist_remove(interaction: discord.Interaction, name: Name) -> None:
            await run(interaction, lambda c, a: c.watchlist_remove(a, name))

        @watchlist.command(name="list", description="All watchlists and where they post")
        async def watchlist_list(interaction: discord.Interaction) -> None:
            await run(interaction, lambda c, a: c.watchlist_list(a))

        @watchlist.command(
            name="test", description="What a query would have matched (saves nothing)"
        )
        @app_commands.describe(query="The query to try", hours="How far back to look (default 24)")
        async def watchlist_test(
            interaction: discord.Interaction, query: Query, hours: Hours | None = None
        ) -> None:
            await run(interaction, lambda c, a: c.watchlist_test(a, query, hours))

        feed = app_commands.Group(
            name="feed",
            description="Manage the polled feeds (admins)",
            guild_only=True,
            default_permissions=admin,
        )

        @feed.command(name="add", description="Poll a new RSS or Atom feed")
        @app_commands.describe(
            url="The feed's http(s) address",
            name="A short name (default: the feed's title)",
            interval="How often to poll, e.g. 5m (default from the config)",
        )
        async def feed_add(
            interaction: discord.Interaction,
            url: Url,
            name: Name | None = None,
            interval: Interval | None = None,
        ) -> None:
            await run(interaction, lambda c, a: c.feed_add(a, url, name, interval))

        @feed.command(name="remove", description="Stop polling a feed added in chat")
        @app_commands.describe(name="The feed")
        async def feed_remove(interaction: discord.Interaction, name: Name) -> None:
            await run(interaction, lambda c, a: c.feed_remove(a, name))

        @feed.command(name="list", description="Feeds and their health")
        async def feed_list(interaction: discord.Interaction) -> None:
            await run(interaction, lambda c, a: c.feed_list(a))

        tree.add_command(watchlist)
        tree.add_command(feed)
