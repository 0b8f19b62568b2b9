"""What a Discord answer means for a delivery, and who counts as an admin: pure decisions, checked
as tables. (The end-to-end tests show the same outcomes through the real client and the fake.)"""

from __future__ import annotations

from types import SimpleNamespace

import aiohttp
import discord
import pytest

from bot.chat.discord.sender import parse_target, result_for
from bot.chat.discord.slash import is_admin


def http_error(cls: type[discord.HTTPException], status: int, code: int, **headers: str):
    # discord.py builds these from an aiohttp response; only status, reason and headers are read.
    response = SimpleNamespace(status=status, reason="x", headers=headers)
    return cls(response, {"code": code, "message": f"error {code}"})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("exc", "permanent", "reason", "retry_after"),
    [
        (http_error(discord.Forbidden, 403, 50013), True, "50013 Missing Permissions", None),
        (http_error(discord.Forbidden, 403, 50001), True, "50001 Missing Access", None),
        (http_error(discord.Forbidden, 403, 50007), True, "direct messages", None),
        (http_error(discord.NotFound, 404, 10003), True, "10003 Unknown Channel", None),
        (http_error(discord.NotFound, 404, 10008), True, "10008 Unknown Message", None),
        (http_error(discord.HTTPException, 400, 50035), True, "rejected the message", None),
        (http_error(discord.DiscordServerError, 503, 0), False, "server error 503", None),
        (http_error(discord.DiscordServerError, 500, 0), False, "server error 500", None),
        (http_error(discord.HTTPException, 429, 0, **{"Retry-After": "7"}), False, "429", 7.0),
        (http_error(discord.HTTPException, 401, 0), False, "DISCORD_TOKEN", None),
        (discord.RateLimited(45.0), False, "rate limited", 45.0),
        (aiohttp.ClientConnectionError("refused"), False, "cannot reach Discord", None),
        (ConnectionResetError("reset"), False, "cannot reach Discord", None),
        (TimeoutError(), False, "timed out", None),
        (RuntimeError("Session is closed"), False, "Session is closed", None),
    ],
)
def test_failures_map_to_permanent_or_retry(exc, permanent, reason, retry_after) -> None:
    result = result_for(exc)
    assert result.ok is False
    assert result.permanent is permanent
    assert reason in (result.error or "")
    assert result.retry_after == retry_after


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("discord:1400000000000000001", (1400000000000000001, False)),
        ("discord:dm:2000000000000000001", (2000000000000000001, True)),
        ("discord:general", None),
        ("slack:C123", None),
        ("discord:dm:", None),
    ],
)
def test_targets(target: str, expected) -> None:
    parsed = parse_target(target)
    assert (None if parsed is None else (parsed.id, parsed.dm)) == expected


@pytest.mark.parametrize(
    ("in_guild", "manage_guild", "administrator", "roles", "admin"),
    [
        (True, True, False, [], True),
        (True, False, True, [], True),
        (True, False, False, [77], True),  # an admin role
        (True, False, False, [78], False),
        (True, False, False, [], False),
        (False, True, True, [77], False),  # never in DMs
    ],
)
def test_who_is_an_admin(in_guild, manage_guild, administrator, roles, admin) -> None:
    assert (
        is_admin(
            in_guild=in_guild,
            manage_guild=manage_guild,
            administrator=administrator,
            role_ids=roles,
            admin_role_ids={77},
        )
        is admin
    )
