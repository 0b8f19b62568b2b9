"""The Slack sender: cards posted with chat.postMessage, revisions made with chat.update.

Thin around render.py. It turns targets into channels ("slack:C123"; "slack:dm:U123" through
conversations.open), paces posts to Slack's one message per second per channel, makes a re-send
after a crash idempotent, and turns every outcome into a SendResult: it never raises and never
returns None.

Idempotency. Every message carries Slack message metadata naming its delivery id(s). A crash
between chat.postMessage and the worker's mark_sent leaves a delivery pending that is already in
the channel; before posting, the channel's recent history is read (include_all_metadata) and a
message found there is returned instead of posting again. The history read is made once per
channel per process, not once per card: everything a previous process posted is already in that
channel's history when we first look, and what this process posts is remembered in memory. It is
repeated only for a delivery whose earlier post in this process may have landed without us
hearing of it (a timeout, a dropped connection, a 5xx). That keeps conversations.history (Tier 3,
about 50 calls a minute) far below chat.postMessage's pace, yet closes the crash window. The
window searched is the channel's last HISTORY_LIMIT messages; a restart after the channel moved
on by more than that could re-post, which is the accepted bound."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient

from bot.chat.slack.destination import DESTINATION_FORM
from bot.chat.slack.render import (
    card_pings,
    digest_pings,
    render_card,
    render_digest,
    render_mentions,
    render_notice,
)
from bot.core.cards import Card, Digest
from bot.core.destinations import DestinationError, DestinationKind
from bot.core.pings import Ping
from bot.core.ports import SendResult

log = logging.getLogger(__name__)

EVENT_ALERT = "newsbot_alert"
EVENT_DIGEST = "newsbot_digest"
EVENT_UPDATE = "newsbot_update"  # a thread reply: one per card and story revision
PACE = 1.0  # seconds between posts to one channel (docs.slack.dev: 1 message/s/channel)
HISTORY_LIMIT = 200
MAX_INLINE_RETRY_AFTER = 10.0
REMEMBERED = 10_000
TIMEOUT = 15

# Retrying cannot help: the channel, the person or the token has to change first.
PERMANENT: dict[str, str] = {
    "channel_not_found": "the channel does not exist or the bot cannot see it (a private "
    "channel must invite the bot; check the channel id)",
    "not_in_channel": "the bot is not a member of the channel; invite it with /invite @newsbot",
    "is_archived": "the channel is archived",
    "user_not_found": "there is no such Slack user",
    "user_disabled": "that Slack user is deactivated",
    "cannot_dm_bot": "that user is a bot, and bots cannot receive direct messages",
    "invalid_auth": "Slack refused the bot token; check SLACK_BOT_TOKEN",
    "not_authed": "no Slack bot token was sent; set SLACK_BOT_TOKEN",
    "token_revoked": "the Slack bot token was revoked; reinstall the app and update "
    "SLACK_BOT_TOKEN",
    "account_inactive": "the Slack bot token belongs to a deactivated app or workspace",
    "missing_scope": "the Slack app lacks a permission; add it in the app's settings and reinstall",
    "restricted_action": "the workspace does not let the bot post in that channel",
    "ekm_access_denied": "the workspace's key management refused access",
    "message_not_found": "the message to edit no longer exists",
    "thread_not_found": "the card to reply under no longer exists",
    "cant_update_message": "Slack does not allow editing that message",
    "edit_window_closed": "the message is too old to edit",
}
# Worth another try later; Slack may or may not have acted on the request.
TRANSIENT = frozenset(
    {"internal_error", "fatal_error", "service_unavailable", "request_timeout", "ratelimited"}
)


class ShortRateLimitRetry(AsyncRateLimitErrorRetryHandler):
    """Retries a 429 in place, but only when Slack asks for a short wait: a long Retry-After
    goes back to the delivery worker as SendResult.retry(retry_after=...), so that no send
    sleeps for minutes (the worker's shutdown grace is seconds)."""

    def __init__(self, max_wait: float = MAX_INLINE_RETRY_AFTER, max_retry_count: int = 2):
        super().__init__(max_retry_count=max_retry_count)
        self.max_wait = max_wait

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if response is None or response.status_code != 429:
            return False
        wait = retry_after(response.headers)
        return wait is None or wait <= self.max_wait


def make_client(api_base: str, token: str, *, timeout: int = TIMEOUT) -> AsyncWebClient:
    """The bot-token Web API client. Connection errors are deliberately not retried by the
    SDK: a post whose answer was lost may have landed, and only our history check can tell."""
    return AsyncWebClient(
        base_url=api_base,
        token=token,
        timeout=timeout,
        retry_handlers=[ShortRateLimitRetry()],
    )


def retry_after(headers: Mapping[str, Any] | None) -> float | None:
    for key, value in (headers or {}).items():
        if key.lower() == "retry-after":
            raw = value[0] if isinstance(value, list | tuple) else value
            try:
                return max(0.0, float(raw))
            except (TypeError, ValueError):
                return None
    return None


def api_error(exc: SlackApiError) -> str:
    """Slack's error code for a failed Web API call (`channel_not_found`), or the HTTP status
    when the answer carried none."""
    response = exc.response
    status = getattr(response, "status_code", 200) or 200
    return str(response.get("error") or f"HTTP {status}")


def classify(exc: BaseException) -> tuple[SendResult, bool]:
    """What a failed Web API call means: (the result, whether the request may have taken
    effect anyway)."""
    if isinstance(exc, SlackApiError):
        response = exc.response
        status = getattr(response, "status_code", 200) or 200
        error = api_error(exc)
        if status == 429 or error == "ratelimited":
            return SendResult.retry(
                "Slack rate limit (ratelimited)", retry_after=retry_after(response.headers)
            ), False
        if status >= 500 or error in TRANSIENT:
            return SendResult.retry(f"Slack is having trouble (HTTP {status}, {error})"), True
        if error in PERMANENT:
            reason = PERMANENT[error]
            if error == "missing_scope" and response.get("needed"):
                reason += f" (needs {response.get('needed')})"
            return SendResult.failed(f"{reason} [{error}]"), False
        # Anything else Slack refused (invalid_blocks, msg_too_long...) will be refused again.
        return SendResult.failed(f"Slack refused the request [{error}]"), False
    if isinstance(exc, TimeoutError):
        return SendResult.retry("Slack did not answer in time"), True
    if isinstance(exc, aiohttp.ClientError | OSError):
        return SendResult.retry(f"cannot reach Slack ({type(exc).__name__}: {exc})"), True
    return SendResult.retry(f"{type(exc).__name__}: {exc}"), True


class _Stop(Exception):
    """Ends a send early with its result."""

    def __init__(self, result: SendResult) -> None:
        super().__init__(result.error)
        self.result = result


def message_id(channel: str, ts: str) -> str:
    """DMs post into a D-channel, so the id carries the channel as well as the ts."""
    return f"{channel}/{ts}"


def _delivery_ids(metadata: Any) -> list[int]:
    if not isinstance(metadata, dict) or metadata.get("event_type") not in (
        EVENT_ALERT,
        EVENT_DIGEST,
    ):
        return []
    payload = metadata.get("event_payload") or {}
    ids = [payload.get("delivery_id"), *(payload.get("delivery_ids") or [])]
    return [i for i in ids if isinstance(i, int) and not isinstance(i, bool)]


class SlackSender:
    platform = "slack"

    def __init__(
        self,
        client: AsyncWebClient,
        *,
        pace: float = PACE,
        history_limit: int = HISTORY_LIMIT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.pace = pace
        self.history_limit = history_limit
        self.clock = clock
        self._locks: dict[str, asyncio.Lock] = {}
        self._next_post: dict[str, float] = {}
        self._dm_channels: dict[str, str] = {}
        self._history: dict[str, dict[int, str]] = {}  # channel -> delivery id -> message id
        self._uncertain: set[int] = set()  # posts that may have landed unheard
        self._posted: OrderedDict[int, str] = OrderedDict()  # by this process
        self._unchecked: set[str] = set()  # channels whose history we may not read
        self._replied: OrderedDict[tuple[int, int], str] = OrderedDict()  # by this process

    # --- the Sender protocol -----------------------------------------------------------------

    async def send(self, card: Card) -> SendResult:
        _note_skipped(card_pings(card), card.channel, f"delivery {card.delivery_id}")
        return await self._guard(self._send(card), card.channel)

    async def edit(self, card: Card, message_id: str) -> SendResult:
        return await self._guard(self._edit(card, message_id), card.channel)

    async def reply(self, card: Card, message_id: str) -> SendResult:
        return await self._guard(self._reply(card, message_id), card.channel)

    async def send_digest(self, digest: Digest) -> SendResult:
        _note_skipped(digest_pings(digest), digest.channel, f"digest of {len(digest.cards)}")
        return await self._guard(self._send_digest(digest), digest.channel)

    async def notify(self, target: str, text: str) -> SendResult:
        return await self._guard(self._notify(target, text), target)

    # --- the work ----------------------------------------------------------------------------

    async def _send(self, card: Card) -> SendResult:
        if card.delivery_id in self._posted:
            return SendResult.sent(self._posted[card.delivery_id])
        channel = await self.channel_for(card.channel)
        async with self._lock(channel):
            found = await self._already_posted(channel, [card.delivery_id])
            if card.delivery_id in found:
                log.info(
                    "delivery %d is already in %s as %s (a re-send after a restart); not "
                    "posting it again",
                    card.delivery_id,
                    channel,
                    found[card.delivery_id],
                )
                posted = found[card.delivery_id]
            else:
                posted = await self._post(
                    channel, render_card(card), _alert_metadata(card), [card.delivery_id]
                )
        self._remember([card.delivery_id], posted)
        return SendResult.sent(posted)

    async def _edit(self, card: Card, message: str) -> SendResult:
        channel, _, ts = message.partition("/")
        if not channel or not ts:
            return SendResult.failed(f"{message!r} is not a Slack message id (channel/ts)")
        payload = render_card(card)
        async with self._lock(channel):
            await self._wait_turn(channel)
            try:
                await self.client.chat_update(
                    channel=channel,
                    ts=ts,
                    text=payload["text"],
                    blocks=payload["blocks"],
                    metadata=_alert_metadata(card),
                )
            except Exception as exc:
                raise _Stop(classify(exc)[0]) from exc
            finally:
                self._next_post[channel] = self.clock() + self.pace
        return SendResult.sent(message)

    async def _reply(self, card: Card, message: str) -> SendResult:
        """The update as a reply in the card's thread (chat.postMessage with thread_ts). The
        thread is read first (conversations.replies, every time: a card gets a few replies
        at most): a reply already there for this revision (a re-send after a crash) is not
        posted again, and a card that is gone fails here, before anything is posted."""
        channel, _, ts = message.partition("/")
        if not channel or not ts:
            return SendResult.failed(f"{message!r} is not a Slack message id (channel/ts)")
        key = (card.delivery_id, card.revision)
        if key in self._replied:
            return SendResult.sent(self._replied[key])
        async with self._lock(channel):
            found = await self._reply_in_thread(channel, ts, key)
            if found is not None:
                log.info(
                    "the update of delivery %d (revision %d) is already in its thread; not "
                    "posting it again",
                    *key,
                )
                posted = found
            else:
                posted = await self._post(
                    channel, render_card(card), _update_metadata(card), [], thread_ts=ts
                )
        self._replied[key] = posted
        while len(self._replied) > REMEMBERED:
            self._replied.popitem(last=False)
        return SendResult.sent(posted)

    async def _reply_in_thread(self, channel: str, ts: str, key: tuple[int, int]) -> str | None:
        try:
            response = await self.client.conversations_replies(
                channel=channel, ts=ts, limit=self.history_limit, include_all_metadata=True
            )
        except SlackApiError as exc:
            error = exc.response.get("error")
            if error == "missing_scope":
                log.warning(
                    "cannot read the thread of %s in %s (missing_scope, needs %s): replying "
                    "without the duplicate check",
                    ts,
                    channel,
                    exc.response.get("needed"),
                )
                return None
            if error == "message_not_found":  # what some workspaces say for a deleted parent
                error = "thread_not_found"
                raise _Stop(SendResult.failed(f"{PERMANENT[error]} [{error}]")) from exc
            raise _Stop(classify(exc)[0]) from exc
        except Exception as exc:
            raise _Stop(classify(exc)[0]) from exc
        for reply in response.get("messages") or []:
            metadata = reply.get("metadata")
            if not isinstance(metadata, dict) or metadata.get("event_type") != EVENT_UPDATE:
                continue
            payload = metadata.get("event_payload") or {}
            if (payload.get("delivery_id"), payload.get("revision")) == key:
                return message_id(channel, reply["ts"])
        return None

    async def _send_digest(self, digest: Digest) -> SendResult:
        ids = [c.delivery_id for c in digest.cards]
        known = {i: self._posted[i] for i in ids if i in self._posted}
        channel = await self.channel_for(digest.channel)
        async with self._lock(channel):
            known.update(await self._already_posted(channel, [i for i in ids if i not in known]))
            rest = [c for c in digest.cards if c.delivery_id not in known]
            if not rest:
                posted = known[ids[0]]
            elif len(rest) == 1:
                posted = await self._post(
                    channel, render_card(rest[0]), _alert_metadata(rest[0]), [rest[0].delivery_id]
                )
            else:
                rest_ids = [c.delivery_id for c in rest]
                posted = await self._post(
                    channel,
                    render_digest(Digest(digest.channel, tuple(rest), digest.reason)),
                    {"event_type": EVENT_DIGEST, "event_payload": {"delivery_ids": rest_ids}},
                    rest_ids,
                )
        if known:
            log.info("digest for %s: %d of its cards were already posted", channel, len(known))
        self._remember([c.delivery_id for c in rest], posted)
        return SendResult.sent(posted)

    async def _notify(self, target: str, text: str) -> SendResult:
        channel = await self.channel_for(target)
        async with self._lock(channel):
            posted = await self._post(channel, render_notice(text), None, [])
        return SendResult.sent(posted)

    # --- helpers -----------------------------------------------------------------------------

    async def _guard(self, work: Awaitable[SendResult], target: str) -> SendResult:
        try:
            return await work
        except _Stop as stop:
            return stop.result
        except Exception as exc:
            # A bug or a failure nobody foresaw: the card must not be lost, so retry it later.
            log.exception("sending to %s failed unexpectedly", target)
            return SendResult.retry(f"{type(exc).__name__}: {exc}")

    def _lock(self, channel: str) -> asyncio.Lock:
        return self._locks.setdefault(channel, asyncio.Lock())

    async def channel_for(self, target: str) -> str:
        """The channel id for "slack:C123", or the DM channel for "slack:dm:U123"."""
        try:
            where = DESTINATION_FORM.parse(target)
        except DestinationError:
            raise _Stop(SendResult.failed(f"{target!r} is not a Slack destination")) from None
        if where.kind != DestinationKind.DM:
            return where.id
        user = where.id
        if user not in self._dm_channels:
            try:
                response = await self.client.conversations_open(users=user)
            except Exception as exc:
                raise _Stop(classify(exc)[0]) from exc
            self._dm_channels[user] = response["channel"]["id"]
        return self._dm_channels[user]

    async def _wait_turn(self, channel: str) -> None:
        wait = self._next_post.get(channel, 0.0) - self.clock()
        if wait > 0:
            await asyncio.sleep(wait)

    async def _post(
        self,
        channel: str,
        payload: dict[str, Any],
        metadata: dict[str, Any] | None,
        ids: Sequence[int],
        *,
        thread_ts: str | None = None,
    ) -> str:
        await self._wait_turn(channel)
        try:
            response = await self.client.chat_postMessage(
                channel=channel,
                text=payload["text"],
                blocks=payload["blocks"],
                unfurl_links=False,
                unfurl_media=False,
                metadata=metadata,
                thread_ts=thread_ts,
            )
        except Exception as exc:
            result, maybe_landed = classify(exc)
            if maybe_landed:
                self._uncertain.update(ids)
            raise _Stop(result) from exc
        finally:
            self._next_post[channel] = self.clock() + self.pace
        self._uncertain.difference_update(ids)
        return message_id(response.get("channel") or channel, response["ts"])

    async def _already_posted(self, channel: str, ids: Sequence[int]) -> dict[int, str]:
        """Which of `ids` are already in the channel (see the module docstring for when the
        history is read)."""
        if not ids:
            return {}
        if channel not in self._history or (
            channel not in self._unchecked and self._uncertain.intersection(ids)
        ):
            await self._read_history(channel)
        seen = self._history[channel]
        return {i: seen[i] for i in ids if i in seen}

    async def _read_history(self, channel: str) -> None:
        try:
            response = await self.client.conversations_history(
                channel=channel, limit=self.history_limit, include_all_metadata=True
            )
        except SlackApiError as exc:
            if exc.response.get("error") == "missing_scope":
                # Without channels:history (groups:, im:) we cannot look; an alert posted twice
                # after a crash beats an alert never posted, so post without the check.
                self._unchecked.add(channel)
                self._history.setdefault(channel, {})
                log.warning(
                    "cannot read the history of %s (missing_scope, needs %s): posting there "
                    "without the duplicate check; add the scope and reinstall the app",
                    channel,
                    exc.response.get("needed"),
                )
                return
            raise _Stop(classify(exc)[0]) from exc
        except Exception as exc:
            raise _Stop(classify(exc)[0]) from exc
        # Only a successful read counts: a channel never read is read before its next post.
        seen = self._history.setdefault(channel, {})
        for message in response.get("messages") or []:
            for delivery_id in _delivery_ids(message.get("metadata")):
                seen.setdefault(delivery_id, message_id(channel, message["ts"]))

    def _remember(self, ids: Iterable[int], posted: str) -> None:
        for delivery_id in ids:
            self._posted[delivery_id] = posted
            self._posted.move_to_end(delivery_id)
        while len(self._posted) > REMEMBERED:
            self._posted.popitem(last=False)


def _update_metadata(card: Card) -> dict[str, Any]:
    return {
        "event_type": EVENT_UPDATE,
        "event_payload": {
            "delivery_id": card.delivery_id,
            "revision": card.revision,
            "story_id": card.story_id,
        },
    }


def _note_skipped(pings: Sequence[Ping], target: str, what: str) -> None:
    """A watchlist that posts to Slack and Discord may name pings of both: Slack sends its
    own and says which it left out (not a failure: the card goes out)."""
    _, skipped = render_mentions(pings)
    if skipped:
        log.info(
            "Slack %s to %s: not pinging %s (not a Slack user group or user id; Slack pings "
            "are usergroup:S... or user:U...)",
            what,
            target,
            ", ".join(str(p) for p in skipped),
        )


def _alert_metadata(card: Card) -> dict[str, Any]:
    return {
        "event_type": EVENT_ALERT,
        "event_payload": {"delivery_id": card.delivery_id, "story_id": card.story_id},
    }
