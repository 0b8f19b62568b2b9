"""Which servers the bot serves, decided without a network: Discord's answers about members come
from a dictionary standing in for GET /guilds/{guild}/members/{user}."""

from __future__ import annotations

import logging

import pytest

from bot.chat.discord.guilds import (
    MEMBER_CACHE_SECONDS,
    STARTING,
    STRANGER_CACHE_SECONDS,
    GuildGate,
)

DESK, OTHER, ELSEWHERE = 101, 202, 303
NAMES = {DESK: "Newsroom", OTHER: "Second desk", ELSEWHERE: "Elsewhere"}
MEMBER, STRANGER = 1, 2


class Discord:
    """Members per guild; `down` makes every look-up fail the way a network error would."""

    def __init__(self) -> None:
        self.members = {DESK: {MEMBER}, OTHER: set(), ELSEWHERE: {STRANGER}}
        self.asked: list[tuple[int, int]] = []
        self.down = False
        self.now = 0.0

    async def is_member(self, guild_id: int, user_id: int) -> bool:
        self.asked.append((guild_id, user_id))
        if self.down:
            raise OSError("Discord is unreachable")
        return user_id in self.members[guild_id]

    def gate(self, configured: tuple[int, ...] = ()) -> GuildGate:
        return GuildGate(
            configured, name_of=NAMES.get, is_member=self.is_member, clock=lambda: self.now
        )


async def test_configured_servers_are_served_from_the_start_and_only_they() -> None:
    gate = Discord().gate((DESK,))
    assert gate.served == {DESK}
    gate.connected([DESK, ELSEWHERE])
    assert gate.served == {DESK}
    assert await gate.refusal(DESK, STRANGER) is None
    assert await gate.refusal(ELSEWHERE, STRANGER) == (
        "This bot serves Newsroom only; it does nothing in this server. "
        "Ask the admins of Newsroom if you need it."
    )


async def test_without_configuration_the_first_ready_decides_for_good() -> None:
    gate = Discord().gate()
    assert gate.served is None
    assert await gate.refusal(DESK, MEMBER) == STARTING  # fails closed until it knows
    gate.connected([DESK])
    gate.connected([DESK, ELSEWHERE])  # a later READY (a new session) adds nothing
    assert gate.served == {DESK}
    assert await gate.refusal(ELSEWHERE, STRANGER) is not None


async def test_no_server_at_all_refuses_everything() -> None:
    gate = Discord().gate()
    gate.connected([])
    assert await gate.refusal(DESK, MEMBER) == (
        "This bot serves no server yet; ask whoever runs it to set it up."
    )


async def test_dms_need_membership_of_a_served_server_which_is_remembered() -> None:
    discord = Discord()
    gate = discord.gate((DESK, OTHER))
    assert await gate.refusal(None, MEMBER) is None
    assert await gate.refusal(None, STRANGER) == (
        "This bot answers direct messages only from members of Newsroom and Second desk. "
        "Ask the admins of Newsroom and Second desk if you need it."
    )
    asked = list(discord.asked)
    assert (ELSEWHERE, STRANGER) not in asked  # a server not served does not count
    await gate.refusal(None, MEMBER)
    await gate.refusal(None, STRANGER)
    assert discord.asked == asked  # cached

    discord.members[DESK].add(STRANGER)  # joins the desk's server
    discord.now += STRANGER_CACHE_SECONDS + 1
    assert await gate.refusal(None, STRANGER) is None
    discord.members[DESK].discard(MEMBER)  # leaves it
    discord.now += MEMBER_CACHE_SECONDS + 1
    assert await gate.refusal(None, MEMBER) is not None


async def test_when_discord_cannot_say_the_dm_is_refused_and_asked_again_next_time() -> None:
    discord = Discord()
    gate = discord.gate((DESK,))
    discord.down = True
    assert await gate.refusal(None, MEMBER) == (
        "Could not check with Discord that you are a member of Newsroom; try again in a minute."
    )
    discord.down = False
    assert await gate.refusal(None, MEMBER) is None


@pytest.mark.parametrize(
    ("guilds", "level", "says"),
    [
        ([], logging.WARNING, "the bot is in no server and discord.guild_ids is empty"),
        ([DESK], logging.INFO, "serving Newsroom (101), the server the bot is in at start-up"),
        (
            [DESK, OTHER],
            logging.WARNING,
            "the bot is in 2 servers at start-up: Newsroom (101) and Second desk (202). "
            "It serves every one of them",
        ),
    ],
    ids=["none", "one", "two"],
)
def test_start_up_says_what_is_served(caplog, guilds: list[int], level: int, says: str) -> None:
    caplog.set_level(logging.INFO)
    gate = Discord().gate()
    gate.connected(guilds)
    gate.report((g, NAMES[g]) for g in guilds)
    gate.report((g, NAMES[g]) for g in guilds)  # once only
    [record] = caplog.records
    assert record.levelno == level
    assert says in record.getMessage()


def test_configured_servers_missing_or_extra_are_named_at_start_up(caplog) -> None:
    caplog.set_level(logging.INFO)
    gate = Discord().gate((DESK, OTHER))
    gate.connected([DESK, ELSEWHERE])
    gate.report([(DESK, "Newsroom"), (ELSEWHERE, "Elsewhere")])
    messages = [r.getMessage() for r in caplog.records]
    assert "serving Newsroom (101) and Second desk (202) (discord.guild_ids)" in messages[0]
    assert "lists 202, but the bot is not in that server" in messages[1]
    assert "also in Elsewhere (303), not listed in discord.guild_ids" in messages[2]
