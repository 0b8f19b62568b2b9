"""Which Discord servers this bot serves, and who may use it in direct messages.

Watchlists, feeds and subscriptions belong to one desk, while admin rights come from the server a
command is sent from (Manage Server there, or a role of `admin_role_ids`). So a command from a
server the desk did not choose must do nothing at all: an admin there is no admin here. Global
slash commands are offered in every server that has the app, including one that installed only
its commands (no bot user), so the check is made on every command, server side.

The rule:

- `[discord] guild_ids` set: exactly those servers.
- `guild_ids` empty: the servers the bot is in when it first connects (the READY of this
  process). A server that adds the bot later is refused until it is listed in `guild_ids` (or,
  after a restart, served like the others: hence the loud warning at start-up when the bot is in
  more than one server, and "Public Bot: off" in docs/discord.md).
- Direct messages: only from members of a served server, asked of Discord over REST
  (GET /guilds/{guild}/members/{user}, which needs no privileged intent) and remembered for a
  while, since a DM carries no server to judge by.

Everything here fails closed: before the bot knows its servers, or when Discord cannot say
whether someone is a member, the command is refused with a reason to try again."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable

log = logging.getLogger(__name__)

MEMBER_CACHE_SECONDS = 600.0  # someone who left a served server keeps DMs this long at most
STRANGER_CACHE_SECONDS = 60.0  # someone who just joined waits this long at most

STARTING = "newsbot is still connecting to Discord; try again in a moment."


class GuildGate:
    """The servers served, and the refusal (or None) for one command."""

    def __init__(
        self,
        configured: Iterable[int],
        *,
        name_of: Callable[[int], str | None],
        is_member: Callable[[int, int], Awaitable[bool]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`name_of(guild_id)`: the server's name if the bot knows it. `is_member(guild_id,
        user_id)`: asks Discord; raises when it cannot tell."""
        self.configured = frozenset(configured)
        self._served: frozenset[int] | None = self.configured or None
        self._name_of = name_of
        self._is_member = is_member
        self._clock = clock
        self._members: dict[int, tuple[float, bool]] = {}
        self._reported = False

    @property
    def served(self) -> frozenset[int] | None:
        """None until the bot has connected once with an empty `guild_ids`."""
        return self._served

    def connected(self, guild_ids: Iterable[int]) -> None:
        """The guilds of a READY. Only the first one counts: a server that adds the bot while it
        runs is not served by that alone."""
        if self._served is None:
            self._served = frozenset(guild_ids)

    def report(self, guilds: Iterable[tuple[int, str]]) -> None:
        """Say at start-up (once) which servers are served and what is refused."""
        if self._reported or self._served is None:
            return
        self._reported = True
        present = dict(guilds)
        served = self._describe(self._served)
        if self.configured:
            log.info(
                "Discord: serving %s (discord.guild_ids); commands from any other server are "
                "refused, and direct messages are answered only for their members",
                served,
            )
            for gid in sorted(self.configured - present.keys()):
                log.warning(
                    "Discord: discord.guild_ids lists %d, but the bot is not in that server; "
                    "invite it (docs/discord.md)",
                    gid,
                )
            others = sorted(present.keys() - self.configured)
            if others:
                log.warning(
                    "Discord: the bot is also in %s, not listed in discord.guild_ids: commands "
                    "from there are refused",
                    self._describe(others),
                )
            return
        if not self._served:
            log.warning(
                "Discord: the bot is in no server and discord.guild_ids is empty, so it serves "
                "none and refuses every command. Invite it to the desk's server "
                "(docs/discord.md), then list that server in discord.guild_ids or restart newsbot."
            )
        elif len(self._served) == 1:
            log.info(
                "Discord: serving %s, the server the bot is in at start-up (discord.guild_ids is "
                "empty). A server that adds the bot later is refused until it is listed in "
                "discord.guild_ids.",
                served,
            )
        else:
            log.warning(
                "Discord: discord.guild_ids is empty and the bot is in %d servers at start-up: "
                "%s. It serves every one of them, so an admin (Manage Server) of any of them "
                "can change this desk's watchlists and feeds. If that is not intended, set "
                "discord.guild_ids to the desk's server(s), remove the bot from the others and "
                "turn Public Bot off (docs/discord.md).",
                len(self._served),
                served,
            )

    def joined(self, guild_id: int, name: str) -> None:
        """The bot was added to a server while running."""
        if self._served is not None and guild_id not in self._served:
            log.warning(
                "Discord: the bot was added to %s (%d), which it does not serve: commands from "
                "there are refused until it is listed in discord.guild_ids",
                name,
                guild_id,
            )

    async def refusal(self, guild_id: int | None, user_id: int) -> str | None:
        """Why this command may not run here, or None when it may."""
        served = self._served
        if served is None:
            return STARTING
        names = self._describe(served, ids=False)
        if not served:
            return "This bot serves no server yet; ask whoever runs it to set it up."
        if guild_id is not None:
            if guild_id in served:
                return None
            return (
                f"This bot serves {names} only; it does nothing in this server. "
                f"Ask the admins of {names} if you need it."
            )
        try:
            if await self._member_of_served(served, user_id):
                return None
        except Exception as exc:
            log.warning("Discord: could not check whether %d is a member: %s", user_id, exc)
            return (
                f"Could not check with Discord that you are a member of {names}; "
                "try again in a minute."
            )
        return (
            f"This bot answers direct messages only from members of {names}. "
            f"Ask the admins of {names} if you need it."
        )

    async def _member_of_served(self, served: frozenset[int], user_id: int) -> bool:
        now = self._clock()
        cached = self._members.get(user_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        member = False
        for gid in sorted(served):
            if await self._is_member(gid, user_id):
                member = True
                break
        ttl = MEMBER_CACHE_SECONDS if member else STRANGER_CACHE_SECONDS
        self._members[user_id] = (now + ttl, member)
        return member

    def _describe(self, guild_ids: Iterable[int], *, ids: bool = True) -> str:
        """For the log, names with ids; for people, the names (a server unknown to the bot by
        name is "the desk's server")."""
        names = []
        for gid in sorted(guild_ids):
            name = self._name_of(gid)
            if not ids:
                names.append(name or "the desk's server")
            else:
                names.append(f"{name} ({gid})" if name else f"server {gid}")
        if len(names) <= 1:
            return "".join(names) or "no server"
        return ", ".join(names[:-1]) + " and " + names[-1]
