"""Slash commands: Discord's input translated into bot.core.commands calls, replies rendered back.

The tree is built from bot.core.catalog: one slash command per declaration (a group's commands
as sub-commands of a slash group), each argument an option of the matching type, with its range,
length, description and, where the catalog offers suggestions, autocomplete.

No command logic lives here. The core validates input, refuses non-admins and writes the audit
log; this module refuses commands from servers the bot does not serve (guilds.py), decides who is
an admin from Discord's own data (server side: the ``default_permissions`` of a group only hides
it in Discord's UI), answers every interaction exactly once and ephemerally, and never leaves one
unanswered."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import re
from collections.abc import Awaitable, Callable, Collection, Coroutine, Iterable
from typing import Any, Literal

import discord
from discord import app_commands

from bot.chat.discord.destination import DESTINATION_FORM, PLATFORM
from bot.chat.discord.guilds import GuildGate
from bot.chat.discord.render import render_reply
from bot.core.catalog import (
    CATALOG,
    GROUPS,
    Arg,
    Command,
    Kind,
    group_admins_only,
)
from bot.core.commands import Actor, Commands, Reply, refused
from bot.core.destinations import Destination, DestinationKind
from bot.core.text import truncate

log = logging.getLogger(__name__)

APOLOGY = "Sorry, something went wrong while handling that command. It has been logged."
NOT_READY = "newsbot is still starting up; try again in a moment."
CHOICE_LIMIT = 100  # Discord: an autocomplete choice's name and value are 1-100 characters
ADMIN_HINT = "someone with the Manage Server permission"
# Who may see the admins' commands in Discord's own UI; who may run them is checked server side.
ADMIN_PERMISSIONS = discord.Permissions(manage_guild=True)

Handler = Callable[[Commands, Actor], Awaitable[Reply]]


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
        platform=PLATFORM,
        user_id=str(user.id),
        name=user.name,
        is_admin=is_admin(
            in_guild=interaction.guild_id is not None,
            manage_guild=permissions.manage_guild,
            administrator=permissions.administrator,
            role_ids=_role_ids(user),
            admin_role_ids=admin_role_ids,
        ),
        admin_hint=ADMIN_HINT + (" or an admin role" if admin_role_ids else ""),
        sees=_channels_of(interaction.guild, user),
    )


_ROLE_MENTION = re.compile(r"<@&(\d+)>")
_USER_MENTION = re.compile(r"<@!?(\d+)>")


def _channels_of(
    guild: discord.Guild | None, member: discord.Member | discord.User
) -> Callable[[str], bool] | None:
    """Whether a channel ("discord:<id>") is one of the server the command came from that the
    asker may view, as the gateway's cache knows it: a private channel, or a private thread,
    is not named to a member who cannot open it. In a DM there is none."""
    if guild is None or not isinstance(member, discord.Member):
        return None

    def sees(target: str) -> bool:
        platform, _, rest = target.partition(":")
        if platform != PLATFORM or not rest.isdigit():
            return False
        channel = guild.get_channel_or_thread(int(rest))
        if channel is None:
            return False
        allowed = channel.permissions_for(member)
        if isinstance(channel, discord.Thread) and channel.is_private():
            # Its members are not in the cache without the members intent: only those who
            # may manage threads see every private thread.
            return allowed.view_channel and allowed.manage_threads
        return allowed.view_channel

    return sees


def _annotation(arg: Arg) -> Any:
    """The option type discord.py reads off a callback's signature."""
    match arg.kind:
        case Kind.HOURS | Kind.INTEGER:
            annotation: Any = app_commands.Range[int, arg.low or 1, arg.high]
        case Kind.CHANNEL:
            annotation = PostableChannel
        case Kind.CHOICE:
            # A Literal of the words: Discord offers them as the option's choices.
            annotation = Literal.__getitem__(arg.choices)
        case _:
            annotation = app_commands.Range[str, 1, arg.high]
    return annotation if arg.required else annotation | None


def _value(arg: Arg, value: Any, interaction: discord.Interaction) -> Any:
    """An option's value as the core takes it."""
    if arg.kind is Kind.PINGS and isinstance(value, str):
        # A role or a person picked as you type arrives as <@&id> or <@id>: the ping it names.
        return _ROLE_MENTION.sub(r"role:\1", _USER_MENTION.sub(r"user:\1", value))
    if arg.kind is Kind.CHANNEL:
        # Left out: the channel the command was typed in.
        channel = value.id if value is not None else interaction.channel_id
        return DESTINATION_FORM.format(Destination(PLATFORM, DestinationKind.CHANNEL, str(channel)))
    return value


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

    async def _suggestions(
        self, interaction: discord.Interaction, arg: Arg, current: str
    ) -> list[app_commands.Choice[str]]:
        commands = self.commands
        if commands is None or arg.suggest is None:
            return []
        actor = actor_for(interaction, self.admin_role_ids)
        try:
            # Within Discord's 3 s for an autocomplete answer; a refused asker gets no choices.
            async with asyncio.timeout(2.0):
                if await self.gate.refusal(interaction.guild_id, interaction.user.id):
                    return []
            found = await arg.suggest(commands, actor, current)
        except Exception:
            log.exception("autocomplete of /%s failed", _name(interaction))
            return []
        return [
            app_commands.Choice(name=truncate(value, CHOICE_LIMIT), value=value)
            for value in found
            if 0 < len(value) <= CHOICE_LIMIT  # longer ones cannot be a choice; type them
        ][:25]

    # --- the commands, from the catalog ---------------------------------------------------------

    def _register(self) -> None:
        groups: dict[str, app_commands.Group] = {}
        for command in CATALOG:
            group = command.group
            if group is None:
                self.tree.add_command(self._slash(command))
                continue
            if group not in groups:
                admins = group_admins_only(group)
                groups[group] = app_commands.Group(
                    name=group,
                    description=GROUPS[group].summary + (" (admins)" if admins else ""),
                    guild_only=admins,
                    default_permissions=ADMIN_PERMISSIONS if admins else None,
                )
                self.tree.add_command(groups[group])
            groups[group].add_command(self._slash(command))

    def _slash(self, command: Command) -> app_commands.Command[Any, ..., None]:
        run = self.run

        async def callback(interaction: discord.Interaction, **options: Any) -> None:
            args = {a.name: _value(a, options.get(a.name), interaction) for a in command.args}
            await run(interaction, lambda c, actor: command.run(c, actor, args))

        # discord.py reads the options off the callback's signature: one parameter per argument.
        callback.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [
                inspect.Parameter(
                    "interaction",
                    inspect.Parameter.POSITIONAL_OR_KEYWORD,
                    annotation=discord.Interaction,
                ),
                *(
                    inspect.Parameter(
                        a.name,
                        inspect.Parameter.KEYWORD_ONLY,
                        annotation=_annotation(a),
                        default=inspect.Parameter.empty if a.required else None,
                    )
                    for a in command.args
                ),
            ]
        )
        if command.args:
            callback = app_commands.describe(**{a.name: a.help for a in command.args})(callback)
        suggested = {a.name: self._suggester(a) for a in command.args if a.suggest is not None}
        if suggested:
            callback = app_commands.autocomplete(**suggested)(callback)
        if command.admins_only and command.group is None:  # a group says it for its commands
            callback = app_commands.guild_only()(callback)
            callback = app_commands.default_permissions(ADMIN_PERMISSIONS)(callback)
        return app_commands.Command(
            name=command.action if command.group else command.name,
            description=command.summary,
            callback=callback,
        )

    def _suggester(
        self, arg: Arg
    ) -> Callable[[discord.Interaction, str], Coroutine[Any, Any, list[app_commands.Choice[str]]]]:
        async def suggest(
            interaction: discord.Interaction, current: str
        ) -> list[app_commands.Choice[str]]:
            return await self._suggestions(interaction, arg, current)

        return suggest
