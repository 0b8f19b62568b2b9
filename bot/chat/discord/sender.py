"""The delivery side of Discord: posts rendered cards over REST and says what happened.

Thin on purpose: render is pure (render.py), and every outcome is a SendResult - the core's
worker decides about retries from it. Nothing here raises out of send/edit/send_digest/notify.

Sends go through ``client.get_partial_messageable``: REST only, no gateway cache needed, so alerts
flow while the gateway reconnects."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

import aiohttp
import discord

from bot.chat.discord.destination import DESTINATION_FORM, PLATFORM
from bot.chat.discord.render import (
    Mentions,
    card_mentions,
    delivery_nonce,
    digest_mentions,
    digest_nonce,
    render_card,
    render_digest,
    render_notice,
    thread_name,
    update_nonce,
)
from bot.core.cards import Card, Digest
from bot.core.destinations import DestinationError, DestinationKind
from bot.core.ports import SendResult

log = logging.getLogger(__name__)

# Discord JSON error codes (discord.com/developers/docs/topics/opcodes-and-status-codes).
UNKNOWN_CHANNEL = 10003
UNKNOWN_MESSAGE = 10008
UNKNOWN_USER = 10013
MISSING_ACCESS = 50001
CANNOT_DM = 50007
MISSING_PERMISSIONS = 50013
THREAD_EXISTS = 160004  # "A thread has already been created for this message"
THREAD_ARCHIVE_MINUTES: Literal[10080] = (
    10080  # a week; a reply to an archived thread opens it again
)

_PERMANENT_REASONS = {
    MISSING_PERMISSIONS: (
        "the bot lacks permission to post there (50013 Missing Permissions): give it View "
        "Channel, Send Messages and Embed Links in that channel"
    ),
    MISSING_ACCESS: (
        "the bot cannot see that channel (50001 Missing Access): add it to the channel or give "
        "it View Channel"
    ),
    CANNOT_DM: "the user does not accept direct messages from the bot (50007)",
    UNKNOWN_CHANNEL: "the channel does not exist or was deleted (10003 Unknown Channel)",
    UNKNOWN_MESSAGE: "the message was deleted (10008 Unknown Message)",
    UNKNOWN_USER: "the user does not exist (10013 Unknown User)",
}


@dataclass(frozen=True, slots=True)
class Target:
    id: int
    dm: bool  # id is a user id: deliver into that person's direct messages


def parse_target(target: str) -> Target | None:
    """'discord:<channel id>' or 'discord:dm:<user id>' (as destination.py reads them)."""
    try:
        where = DESTINATION_FORM.parse(target)
    except DestinationError:
        return None
    return Target(int(where.id), dm=where.kind == DestinationKind.DM)


def _retry_after(exc: discord.HTTPException) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    try:
        return float(headers.get("Retry-After"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def result_for(exc: BaseException) -> SendResult:
    """An exception from discord.py or the network, as the SendResult the worker acts on:
    permanent when retrying cannot help, retry otherwise."""
    if isinstance(exc, discord.RateLimited):
        # Longer than max_ratelimit_timeout: the worker waits instead of blocking a send.
        return SendResult.retry(
            f"rate limited by Discord for {exc.retry_after:.0f}s", exc.retry_after
        )
    if isinstance(exc, discord.HTTPException):
        code = exc.code
        if isinstance(exc, discord.Forbidden | discord.NotFound):
            reason = _PERMANENT_REASONS.get(code)
            if reason is None:
                reason = f"Discord refused it ({exc.status} {code}: {exc.text or 'no detail'})"
            return SendResult.failed(reason)
        if exc.status == 429:
            # A 429 discord.py did not wait out itself (a Cloudflare ban has no Via header).
            return SendResult.retry("rate limited by Discord (429)", _retry_after(exc) or 60.0)
        if exc.status >= 500:
            return SendResult.retry(f"Discord server error {exc.status}")
        if exc.status == 401:
            # The token was revoked: no card is at fault; keep them until the token is fixed.
            return SendResult.retry("Discord rejected the bot token (401); fix DISCORD_TOKEN")
        # 400 and friends: Discord will refuse this exact message every time.
        return SendResult.failed(
            f"Discord rejected the message ({exc.status} {code}: {exc.text or 'no detail'})"
        )
    if isinstance(exc, TimeoutError):
        return SendResult.retry("timed out talking to Discord")
    if isinstance(exc, aiohttp.ClientError | OSError):
        return SendResult.retry(f"cannot reach Discord: {type(exc).__name__}: {exc}")
    return SendResult.retry(f"{type(exc).__name__}: {exc}")


_THREAD_PERMISSIONS = (
    "the bot may not reply in a thread there (50013 Missing Permissions): give it Create "
    "Public Threads and Send Messages in Threads in that channel"
)


def _thread_result(exc: discord.HTTPException) -> SendResult:
    """A thread reply's failure: as any send's, but a missing permission names the thread
    permissions, not those of posting a card."""
    if isinstance(exc, discord.Forbidden) and exc.code == MISSING_PERMISSIONS:
        return SendResult.failed(_THREAD_PERMISSIONS)
    return result_for(exc)


def _note_skipped(mentions: Mentions, target: str, what: str) -> None:
    """A watchlist that posts to Discord and Slack may name pings of both: Discord sends its
    own and says which it left out (not a failure: the card goes out)."""
    if mentions.skipped:
        log.info(
            "Discord %s to %s: not pinging %s (not a Discord role or user id; Discord pings "
            "are role:<digits> or user:<digits>)",
            what,
            target,
            ", ".join(str(p) for p in mentions.skipped),
        )


class DiscordSender:
    """Implements bot.core.ports.Sender for Discord."""

    platform = PLATFORM

    def __init__(
        self,
        client: discord.Client,
        *,
        usable: Callable[[], str | None],
        timeout: float = 90.0,
    ) -> None:
        """`usable()` says why REST cannot be used now (not logged in yet, login failed), or
        None. `timeout` bounds one send, discord.py's own 429/5xx waits included (re-sending
        after a timeout is safe: the nonce makes it idempotent)."""
        self.client = client
        self._usable = usable
        self.timeout = timeout
        self._dm_channels: dict[int, int] = {}  # user id -> DM channel id

    # --- Sender -------------------------------------------------------------------------------

    async def send(self, card: Card) -> SendResult:
        embed = render_card(card)
        mentions = card_mentions(card)
        _note_skipped(mentions, card.channel, f"delivery {card.delivery_id}")

        async def post(channel: discord.PartialMessageable) -> SendResult:
            message = await channel.send(
                mentions.content,
                embed=embed,
                nonce=delivery_nonce(card.delivery_id),
                allowed_mentions=mentions.allowed,
            )
            return SendResult.sent(str(message.id))

        return await self._call(card.channel, post, f"delivery {card.delivery_id}")

    async def edit(self, card: Card, message_id: str) -> SendResult:
        if not message_id.isdigit():
            return SendResult.failed(f"no Discord message to edit ({message_id!r})")
        embed = render_card(card)

        async def patch(channel: discord.PartialMessageable) -> SendResult:
            # discord.py leaves the client-wide allowed_mentions out of an edit without content;
            # say it explicitly, so that no edit can ever turn on a ping.
            await channel.get_partial_message(int(message_id)).edit(
                embed=embed, allowed_mentions=discord.AllowedMentions.none()
            )
            return SendResult.sent(message_id)

        return await self._call(card.channel, patch, f"update of delivery {card.delivery_id}")

    async def reply(self, card: Card, message_id: str) -> SendResult:
        """The update in the thread on the card: the thread is started from the card the first
        time (its id is the card's message id, so nothing needs recording), then the update is
        posted in it with a nonce per card and revision. A card that was deleted fails with
        10008 when the thread is started: nothing is posted anywhere."""
        if not message_id.isdigit():
            return SendResult.failed(f"no Discord message to reply under ({message_id!r})")
        embed = render_card(card)
        parent = int(message_id)

        async def post(channel: discord.PartialMessageable) -> SendResult:
            try:
                await self.client.http.start_thread_with_message(
                    channel.id,
                    parent,
                    name=thread_name(card),
                    auto_archive_duration=THREAD_ARCHIVE_MINUTES,
                )
                thread = self.client.get_partial_messageable(
                    parent, type=discord.ChannelType.public_thread
                )
            except discord.HTTPException as exc:
                if exc.code != THREAD_EXISTS:
                    return _thread_result(exc)
                thread = self.client.get_partial_messageable(
                    parent, type=discord.ChannelType.public_thread
                )
            try:
                message = await thread.send(
                    embed=embed, nonce=update_nonce(card.delivery_id, card.revision)
                )
            except discord.HTTPException as exc:
                return _thread_result(exc)
            return SendResult.sent(str(message.id))

        return await self._call(card.channel, post, f"thread reply of delivery {card.delivery_id}")

    async def send_digest(self, digest: Digest) -> SendResult:
        embed = render_digest(digest)
        nonce = digest_nonce(c.delivery_id for c in digest.cards)
        mentions = digest_mentions(digest)
        _note_skipped(mentions, digest.channel, f"digest of {len(digest.cards)} cards")

        async def post(channel: discord.PartialMessageable) -> SendResult:
            message = await channel.send(
                mentions.content, embed=embed, nonce=nonce, allowed_mentions=mentions.allowed
            )
            return SendResult.sent(str(message.id))

        return await self._call(digest.channel, post, f"digest of {len(digest.cards)} cards")

    async def notify(self, target: str, text: str) -> SendResult:
        content = render_notice(text)

        async def post(channel: discord.PartialMessageable) -> SendResult:
            message = await channel.send(content)
            return SendResult.sent(str(message.id))

        return await self._call(target, post, "ops notice")

    # --- plumbing -----------------------------------------------------------------------------

    async def _call(
        self,
        target: str,
        action: Callable[[discord.PartialMessageable], Awaitable[SendResult]],
        what: str,
    ) -> SendResult:
        where = parse_target(target)
        if where is None:
            return SendResult.failed(
                f"{target!r} is not a Discord destination (discord:<channel id> or "
                "discord:dm:<user id>)"
            )
        why_not = self._usable()
        if why_not is not None:
            return SendResult.retry(why_not)
        try:
            async with asyncio.timeout(self.timeout):
                channel = await self._channel(where)
                return await action(channel)
        except Exception as exc:
            result = result_for(exc)
            expected = discord.HTTPException | discord.RateLimited | TimeoutError | OSError
            if isinstance(exc, expected | aiohttp.ClientError):
                # The worker logs the outcome with its retry plan; this adds the detail.
                log.info("Discord %s to %s: %s", what, target, result.error)
            else:
                log.warning("Discord %s to %s raised", what, target, exc_info=exc)
            return result

    async def _channel(self, where: Target) -> discord.PartialMessageable:
        if not where.dm:
            return self.client.get_partial_messageable(where.id)
        channel_id = self._dm_channels.get(where.id)
        if channel_id is None:
            # Opening a DM channel works even when the person has DMs closed; the 50007 comes
            # with the message. The id is stable, so it is cached for good.
            dm = await self.client.create_dm(discord.Object(id=where.id))
            channel_id = self._dm_channels[where.id] = dm.id
        return self.client.get_partial_messageable(channel_id, type=discord.ChannelType.private)
