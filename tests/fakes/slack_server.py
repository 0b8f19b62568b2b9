"""A fake Slack for end-to-end tests: Web API over HTTP plus the Socket Mode websocket.

The real slack_sdk ``AsyncWebClient`` and the real slack_bolt ``AsyncApp`` with
``AsyncSocketModeHandler`` talk to it over 127.0.0.1, so a test exercises the same wire
traffic production does. Only the far side of the network is fake.

What the real clients send (read from slack_sdk 3.48 / slack_bolt 1.30), and so what is
parsed here:

* ``AsyncWebClient`` puts ``params=`` arguments in the *query string* even for POST
  (aiohttp semantics), sends ``json=`` methods (chat.*, views.publish) as a JSON body, and
  ``data=`` as a form body. The fake merges all three. Structured fields that arrive as
  JSON strings (form-encoded ``blocks``/``metadata``/``view``) are decoded.
* The token arrives as ``Authorization: Bearer ...``; ``apps.connections.open`` carries the
  app-level token the same way (slack_sdk pops it out of the params).
* Errors are HTTP 200 with ``{"ok": false}`` except rate limits (429 + ``Retry-After``) and
  injected failures; slack_sdk raises ``SlackApiError`` for anything not ``200 && ok``.
* The aiohttp Socket Mode client answers a CLOSE frame by calling
  ``apps.connections.open`` again and reconnecting at once, and answers a
  ``{"type": "disconnect"}`` message the same way (closing the old socket itself first).

Start it with ``await fake.start()`` and stop it with ``await fake.close()`` *after* the
Socket Mode handler is closed; otherwise the handler keeps trying to reconnect to a
server that has gone away.
"""

# ASYNC109 wants callers to wrap calls in asyncio.timeout() instead of passing timeout=.
# Here the timeout is a deadline shared by several waits (ACK, response_url POSTs, the quiet
# period) and it lets the TimeoutError say which step never happened, so it stays a parameter.

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import WSMsgType, web

__all__ = [
    "FakeSlack",
    "FakeSlackCall",
    "FakeSlackEphemeral",
    "FakeSlackMessage",
    "FakeSlackUpdate",
    "FakeSlackUser",
    "SlashReply",
    "SlashResponse",
    "blocks_text",
    "validate_blocks",
    "visible_text",
]

APP_ID = "A0001"
BOT_ID = "B0001"
TEAM_DOMAIN = "fake-newsroom"
TEAM_NAME = "Fake Newsroom"

# Limits as documented by Slack (https://docs.slack.dev/reference/block-kit/blocks).
MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_SECTION_TEXT = 3000
MAX_SECTION_FIELDS = 10
MAX_FIELD_TEXT = 2000
MAX_HEADER_TEXT = 150
MAX_CONTEXT_ELEMENTS = 10
MAX_MESSAGE_TEXT = 40000
MAX_RESPONSE_URL_USES = 5
KNOWN_BLOCK_TYPES = frozenset(
    {
        "actions",
        "context",
        "divider",
        "file",
        "header",
        "image",
        "input",
        "markdown",
        "rich_text",
        "section",
        "video",
    }
)
# The JSON-valued arguments that arrive as strings when a caller form-encodes them.
JSON_ARGS = ("blocks", "attachments", "metadata", "view")
_TS_BASE = 1_700_000_000


class _ApiError(Exception):
    """An ``{"ok": false, "error": ...}`` answer, raised from inside a method handler."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


# --------------------------------------------------------------------------- records


@dataclass
class FakeSlackUser:
    id: str
    name: str
    is_admin: bool = False
    is_owner: bool = False
    is_bot: bool = False


@dataclass
class FakeSlackMessage:
    """A message the app posted with chat.postMessage.

    The record is the *current* state of the message: chat.update edits ``text``,
    ``blocks`` and ``metadata`` in place (each update is also kept in ``FakeSlack.updates``)
    and ``args`` keeps the original chat.postMessage arguments.
    """

    channel: str
    ts: str
    text: str | None
    blocks: list[dict] | None
    metadata: dict | None
    user: str
    bot_id: str
    thread_ts: str | None = None
    reply_broadcast: bool = False
    unfurl_links: bool | None = None
    unfurl_media: bool | None = None
    args: dict = field(default_factory=dict)
    edits: int = 0
    deleted: bool = False

    @property
    def event_type(self) -> str | None:
        return (self.metadata or {}).get("event_type")

    @property
    def event_payload(self) -> dict | None:
        return (self.metadata or {}).get("event_payload")

    @property
    def visible_text(self) -> str:
        """What a person sees: the blocks when there are any, else the text."""
        return visible_text({"text": self.text, "blocks": self.blocks})

    def to_api(self, *, include_metadata: bool) -> dict:
        message: dict[str, Any] = {
            "type": "message",
            "user": self.user,
            "bot_id": self.bot_id,
            "app_id": APP_ID,
            "text": self.text or "",
            "ts": self.ts,
            "team": None,  # filled in by FakeSlack, which knows the team id
        }
        if self.blocks:
            message["blocks"] = self.blocks
        if self.thread_ts:
            message["thread_ts"] = self.thread_ts
        if self.edits:
            message["edited"] = {"user": self.user, "ts": self.ts}
        if include_metadata and self.metadata is not None:
            message["metadata"] = self.metadata
        return message


@dataclass
class FakeSlackUpdate:
    """One chat.update call that succeeded."""

    channel: str
    ts: str
    text: str | None
    blocks: list[dict] | None
    metadata: dict | None
    args: dict = field(default_factory=dict)


@dataclass
class FakeSlackEphemeral:
    """One chat.postEphemeral call that succeeded."""

    channel: str
    user: str
    ts: str
    text: str | None
    blocks: list[dict] | None
    args: dict = field(default_factory=dict)


@dataclass
class FakeSlackCall:
    """One Web API request with its outcome (``FakeSlack.calls`` has the same requests as
    plain ``(method, args)`` tuples)."""

    method: str
    args: dict
    token: str | None
    status: int = 0
    error: str | None = None


@dataclass
class SlashResponse:
    """One reply the user could see: the envelope ACK payload or one response_url POST."""

    source: str  # "ack" | "response_url"
    payload: dict

    @property
    def text(self) -> str:
        return visible_text(self.payload)

    @property
    def ephemeral(self) -> bool:
        # Slash-command replies are ephemeral unless they ask for "in_channel".
        return self.payload.get("response_type") != "in_channel"


@dataclass
class SlashReply:
    """What came back for one slash command.

    ``replies`` holds the ACK (when it carried anything) followed by the response_url POSTs
    in arrival order; ``texts`` and ``ephemeral`` are parallel to ``replies``.
    """

    envelope_id: str
    response_url: str
    ack_payload: dict | None
    responses: list[dict]  # raw response_url bodies, in order
    replies: list[SlashResponse]

    @property
    def texts(self) -> list[str]:
        return [reply.text for reply in self.replies]

    @property
    def ephemeral(self) -> list[bool]:
        return [reply.ephemeral for reply in self.replies]

    @property
    def text(self) -> str:
        """Every visible text joined by newlines: handy for ``"x" in reply.text``."""
        return "\n".join(self.texts)


@dataclass
class _Fault:
    status: int
    error: str
    retry_after: int | None = None


# --------------------------------------------------------------------------- helpers


def _truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"1", "true", "yes"}


def _as_decimal(value: Any, default: Decimal) -> Decimal:
    if value in (None, ""):
        return default
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise _ApiError("invalid_ts_oldest" if default == 0 else "invalid_ts_latest") from None


def _text_of(obj: Any) -> str:
    if isinstance(obj, dict):
        text = obj.get("text")
        return text if isinstance(text, str) else ""
    return ""


def _rich_text(element: Any) -> str:
    if isinstance(element, dict):
        if isinstance(element.get("text"), str):
            return element["text"]
        return "".join(_rich_text(child) for child in element.get("elements", []))
    return ""


def blocks_text(blocks: list[dict] | None) -> str:
    """The text a person sees in Block Kit blocks, one line per text-bearing part."""
    parts: list[str] = []
    for block in blocks or []:
        kind = block.get("type")
        if kind in ("section", "header"):
            parts.append(_text_of(block.get("text")))
            parts.extend(_text_of(f) for f in block.get("fields", []))
            accessory = block.get("accessory")
            if isinstance(accessory, dict):
                parts.append(_text_of(accessory.get("text")))
        elif kind == "context":
            parts.append(" ".join(_text_of(e) for e in block.get("elements", []) if _text_of(e)))
        elif kind == "actions":
            parts.extend(_text_of(e.get("text")) for e in block.get("elements", []))
        elif kind == "rich_text":
            parts.append(_rich_text(block))
        elif kind == "markdown":
            parts.append(block.get("text", ""))
        elif kind == "image":
            parts.append(_text_of(block.get("title")))
    return "\n".join(p for p in parts if p)


def visible_text(payload: dict | None) -> str:
    """What Slack shows for a message payload: blocks when present (``text`` is then only
    the notification fallback), else ``text``; plus attachment text."""
    if not payload or payload.get("delete_original"):
        return ""
    parts = [blocks_text(payload["blocks"]) if payload.get("blocks") else payload.get("text") or ""]
    for attachment in payload.get("attachments") or []:
        if attachment.get("blocks"):
            parts.append(blocks_text(attachment["blocks"]))
        for key in ("pretext", "title", "text"):
            if attachment.get(key):
                parts.append(attachment[key])
    return "\n".join(p for p in parts if p)


def _check_text_object(
    obj: Any, where: str, limit: int, errors: list[str], *, plain: bool = False
) -> None:
    if not isinstance(obj, dict) or obj.get("type") not in ("plain_text", "mrkdwn"):
        errors.append(f"[ERROR] must be a text object [json-pointer:{where}]")
        return
    if plain and obj["type"] != "plain_text":
        errors.append(f"[ERROR] must be plain_text [json-pointer:{where}/type]")
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        errors.append(f"[ERROR] must be more than 0 characters [json-pointer:{where}/text]")
    elif len(text) > limit:
        errors.append(
            f"[ERROR] must be less than {limit + 1} characters [json-pointer:{where}/text]"
        )


def validate_blocks(blocks: Any, *, max_blocks: int = MAX_MESSAGE_BLOCKS) -> list[str]:
    """Slack-style messages for what Slack would reject with ``invalid_blocks``; empty if fine.

    Checks the limits a renderer is most likely to break (block count, section/field/header
    lengths, context size, unknown block types, duplicate block_ids), not all of Block Kit.
    """
    if not isinstance(blocks, list):
        return ["[ERROR] must be an array [json-pointer:/blocks]"]
    errors: list[str] = []
    if len(blocks) > max_blocks:
        errors.append(f"[ERROR] no more than {max_blocks} items allowed [json-pointer:/blocks]")
    block_ids: set[str] = set()
    for i, block in enumerate(blocks):
        where = f"/blocks/{i}"
        if not isinstance(block, dict) or block.get("type") not in KNOWN_BLOCK_TYPES:
            errors.append(f"[ERROR] unsupported type [json-pointer:{where}/type]")
            continue
        block_id = block.get("block_id")
        if block_id is not None:
            if block_id in block_ids:
                errors.append(f"[ERROR] duplicate block_id [json-pointer:{where}/block_id]")
            block_ids.add(block_id)
        kind = block["type"]
        if kind == "section":
            if "text" not in block and "fields" not in block:
                errors.append(f"[ERROR] must provide text or fields [json-pointer:{where}]")
            if "text" in block:
                _check_text_object(block["text"], f"{where}/text", MAX_SECTION_TEXT, errors)
            fields = block.get("fields", [])
            if len(fields) > MAX_SECTION_FIELDS:
                errors.append(
                    f"[ERROR] no more than {MAX_SECTION_FIELDS} items allowed "
                    f"[json-pointer:{where}/fields]"
                )
            for j, f in enumerate(fields):
                _check_text_object(f, f"{where}/fields/{j}", MAX_FIELD_TEXT, errors)
        elif kind == "header":
            _check_text_object(
                block.get("text"), f"{where}/text", MAX_HEADER_TEXT, errors, plain=True
            )
        elif kind == "context":
            elements = block.get("elements") or []
            if not 1 <= len(elements) <= MAX_CONTEXT_ELEMENTS:
                errors.append(
                    f"[ERROR] must have 1 to {MAX_CONTEXT_ELEMENTS} items "
                    f"[json-pointer:{where}/elements]"
                )
            for j, element in enumerate(elements):
                if isinstance(element, dict) and element.get("type") in ("plain_text", "mrkdwn"):
                    _check_text_object(element, f"{where}/elements/{j}", MAX_SECTION_TEXT, errors)
        elif kind == "image" and not (block.get("image_url") or block.get("slack_file")):
            errors.append(f"[ERROR] must provide image_url [json-pointer:{where}]")
    return errors


async def _read_args(request: web.Request) -> dict:
    """Query string + form body + JSON body, the way slack_sdk spreads arguments."""
    args: dict[str, Any] = dict(request.query)
    if request.can_read_body:
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except ValueError:
                raise _ApiError("invalid_json") from None
            if isinstance(body, dict):
                args.update(body)
        elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.post()
            args.update({k: v for k, v in form.items() if isinstance(v, str)})
    for key in JSON_ARGS:
        value = args.get(key)
        if isinstance(value, str) and value.strip()[:1] in ("[", "{"):
            try:
                args[key] = json.loads(value)
            except ValueError:
                raise _ApiError(f"invalid_{key}_format") from None
    return args


# --------------------------------------------------------------------------- the fake


class FakeSlack:
    """Slack Web API + Socket Mode on 127.0.0.1, recording everything the app does."""

    def __init__(
        self,
        *,
        bot_token: str = "xoxb-test",
        app_token: str = "xapp-test",
        team_id: str = "T0001",
        bot_user_id: str = "UBOT",
        port: int = 0,
    ) -> None:
        """`port`: listen there (0: any free port). A fixed port lets a test give the app the
        address before the fake listens, and close() and start() the fake again at the same
        address (an outage), with everything recorded so far kept."""
        self.bot_token = bot_token
        self.app_token = app_token
        self.team_id = team_id
        self.bot_user_id = bot_user_id
        self.bot_id = BOT_ID
        self.app_id = APP_ID
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}" if port else ""  # once started otherwise
        self.api_base = f"{self.base_url}/api/" if port else ""

        # Recorded traffic.
        self.calls: list[tuple[str, dict]] = []
        self.call_log: list[FakeSlackCall] = []
        self.messages: list[FakeSlackMessage] = []
        self.updates: list[FakeSlackUpdate] = []
        self.ephemerals: list[FakeSlackEphemeral] = []
        self.home_views: dict[str, dict] = {}
        self.views_published: list[tuple[str, dict]] = []
        self.acks: list[tuple[str, dict | None]] = []
        self.envelopes: list[dict] = []
        self.response_log: list[tuple[str, int, Any]] = []  # (response id, status, body)

        # Socket Mode state.
        self.connections = 0
        self.connected = asyncio.Event()

        self._users: dict[str, FakeSlackUser] = {}
        self._channels: dict[str, dict] = {}
        self._dms: dict[str, str] = {}
        self._history: dict[str, list[FakeSlackMessage]] = {}
        self._channel_errors: dict[str, str] = {}
        self._faults: dict[str, deque[_Fault]] = {}
        self._responses: dict[str, list[dict]] = {}
        self._home_hashes: dict[str, str] = {}
        self._pending_acks: dict[str, asyncio.Future] = {}
        self._sockets: list[web.WebSocketResponse] = []
        self._ids = itertools.count(1)
        self._ts_seq = 0
        self._down = False
        self._hang = False
        self._up = asyncio.Event()
        self._up.set()
        self._activity = asyncio.Event()
        self._closed = False
        self._runner: web.AppRunner | None = None

        self._methods: dict[str, Callable[[dict], dict]] = {
            "auth.test": self._auth_test,
            "apps.connections.open": self._apps_connections_open,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.delete": self._chat_delete,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "conversations.open": self._conversations_open,
            "conversations.info": self._conversations_info,
            "conversations.history": self._conversations_history,
            "conversations.replies": self._conversations_replies,
            "users.info": self._users_info,
            "views.publish": self._views_publish,
        }
        self.add_user(bot_user_id, name="newsbot")
        self._users[bot_user_id].is_bot = True

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._closed = False
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._handle_api)
        app.router.add_post("/response/{rid}", self._handle_response_url)
        app.router.add_get("/socket", self._handle_socket)
        # A short shutdown timeout: a held ("hanging") request must not stall teardown.
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.port = port
        self.base_url = f"http://{host}:{port}"
        # slack_sdk joins method names onto base_url with urljoin: the slash is required.
        self.api_base = f"{self.base_url}/api/"

    async def close(self) -> None:
        self._closed = True
        self._up.set()  # release held requests; they answer 503
        for ws in list(self._sockets):
            await ws.close(code=1001, message=b"fake slack closing")
        for future in self._pending_acks.values():
            future.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeSlack:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ directory

    def add_user(
        self,
        user_id: str,
        *,
        name: str | None = None,
        is_admin: bool = False,
        is_owner: bool = False,
    ) -> FakeSlackUser:
        user = FakeSlackUser(user_id, name or user_id.lower(), is_admin=is_admin, is_owner=is_owner)
        self._users[user_id] = user
        return user

    def add_channel(self, channel_id: str, *, name: str | None = None, member: bool = True) -> dict:
        """A public (C...) or private (G...) channel. ``member=False``: the bot is not in it, so
        conversations.info says ``is_member: false`` and posting or reading answers
        ``not_in_channel``, as Slack does for an app without chat:write.public."""
        channel = {
            "id": channel_id,
            "name": name or channel_id.lower(),
            "is_channel": channel_id.startswith("C"),
            "is_group": channel_id.startswith("G"),
            "is_im": False,
            "is_archived": False,
            "is_member": member,
        }
        self._channels[channel_id] = channel
        self._history.setdefault(channel_id, [])
        return channel

    def dm_channel(self, user_id: str) -> str:
        """The stable D... id of the app's DM with ``user_id`` (what conversations.open returns)."""
        if user_id not in self._dms:
            dm_id = f"D{len(self._dms) + 1:04d}"
            self._dms[user_id] = dm_id
            self._channels[dm_id] = {
                "id": dm_id,
                "is_im": True,
                "is_channel": False,
                "is_group": False,
                "user": user_id,
                "is_archived": False,
            }
            self._history.setdefault(dm_id, [])
        return self._dms[user_id]

    def _ensure_user(self, user_id: str) -> FakeSlackUser:
        # Someone who typed a command or opened the Home tab exists in Slack.
        return self._users.get(user_id) or self.add_user(user_id)

    def _ensure_channel(self, channel_id: str) -> dict:
        return self._channels.get(channel_id) or self.add_channel(channel_id)

    # ------------------------------------------------------------------ queries

    def messages_in(self, channel_id: str) -> list[FakeSlackMessage]:
        """Messages posted in a channel (id or name), oldest first, without deleted ones."""
        cid = self._lookup_channel(channel_id) or channel_id
        return [m for m in self.messages if m.channel == cid and not m.deleted]

    def top_level_in(self, channel_id: str) -> list[FakeSlackMessage]:
        """What a channel shows: its messages without the replies in threads."""
        return [m for m in self.messages_in(channel_id) if not m.thread_ts]

    def replies_to(self, channel_id: str, ts: str) -> list[FakeSlackMessage]:
        """The replies in the thread under a message (chat.postMessage with its thread_ts)."""
        return [m for m in self.messages_in(channel_id) if m.thread_ts == ts and m.ts != ts]

    def dms_to(self, user_id: str) -> list[FakeSlackMessage]:
        """Messages in the app's DM with the user (via conversations.open or channel=U...)."""
        dm_id = self._dms.get(user_id)
        return self.messages_in(dm_id) if dm_id else []

    def calls_to(self, method: str) -> list[dict]:
        return [args for name, args in self.calls if name == method]

    def responses_for(self, response_url: str) -> list[dict]:
        """Every accepted POST to a response_url, including ones after slash_command returned."""
        return list(self._responses.get(response_url.rstrip("/").rsplit("/", 1)[-1], []))

    async def wait_for(
        self, predicate: Callable[[], bool], *, timeout: float = 5.0, what: str = ""
    ) -> None:
        """Wait until ``predicate()`` is true (re-checked after every recorded event)."""
        if not await self._wait_until(predicate, timeout):
            raise TimeoutError(
                f"fake slack: {what or 'condition'} not met within {timeout}s; "
                f"recent calls: {self._recent_calls()}"
            )

    async def wait_connected(self, count: int = 1, *, timeout: float = 5.0) -> None:
        """Wait until ``count`` sockets have been opened in total and one is live (hello sent)."""

        def ready() -> bool:
            return self.connections >= count and self.connected.is_set()

        if not await self._wait_until(ready, timeout):
            raise TimeoutError(
                f"fake slack: wanted {count} Socket Mode connection(s), saw {self.connections} "
                f"(live: {self.connected.is_set()}) within {timeout}s; recent calls: "
                f"{self._recent_calls()}"
            )

    # ------------------------------------------------------------------ failure injection

    def rate_limit_next(
        self, n: int = 1, retry_after: int = 1, method: str = "chat.postMessage"
    ) -> None:
        """The next ``n`` calls to ``method`` ("*" for any) answer 429 with Retry-After."""
        queue = self._faults.setdefault(method, deque())
        queue.extend(_Fault(429, "ratelimited", retry_after) for _ in range(n))

    def fail_next(
        self,
        n: int = 1,
        status: int = 500,
        method: str = "chat.postMessage",
        error: str = "internal_error",
    ) -> None:
        """The next ``n`` calls to ``method`` ("*" for any) answer ``status``, ``ok: false``."""
        queue = self._faults.setdefault(method, deque())
        queue.extend(_Fault(status, error) for _ in range(n))

    def error_for_channel(self, channel_id: str, error: str | None = "channel_not_found") -> None:
        """Every method addressing this channel answers ``error`` (None clears it).

        Realistic values: channel_not_found, not_in_channel, is_archived.
        """
        if error is None:
            self._channel_errors.pop(channel_id, None)
        else:
            self._channel_errors[channel_id] = error

    def set_down(self, down: bool, *, hang: bool = False) -> None:
        """While down the Web API answers 503 and the socket endpoint refuses upgrades.

        With ``hang=True`` requests are held open instead (use a short client timeout); when
        the fake comes back up they are processed normally, so a request the client gave up
        on may still take effect, as with the real Slack.
        """
        self._down = down
        self._hang = hang and down
        if down:
            self._up.clear()
        else:
            self._up.set()

    async def drop_socket(self, *, graceful: bool = False) -> None:
        """Close the live Socket Mode connection(s); the client should reconnect.

        ``graceful=True`` first sends ``{"type": "disconnect", "reason": "refresh_requested"}``,
        as Slack does every few hours, and leaves closing to the client.
        """
        sockets = [ws for ws in self._sockets if not ws.closed]
        if not sockets:
            raise RuntimeError("fake slack: no Socket Mode connection to drop")
        for ws in sockets:
            if graceful:
                await ws.send_json(
                    {
                        "type": "disconnect",
                        "reason": "refresh_requested",
                        "debug_info": {"host": "fake-slack"},
                    }
                )
            else:
                self._forget_socket(ws)
                await ws.close(code=1001, message=b"dropped by test")

    # ------------------------------------------------------------------ events into the app

    async def send_envelope(
        self, envelope_type: str, payload: dict, *, timeout: float = 5.0
    ) -> dict | None:
        """Send one Socket Mode envelope and return the ACK's payload (None when it had none)."""
        _, ack = await self._send_envelope(envelope_type, payload, timeout)
        return ack

    async def _send_envelope(
        self, envelope_type: str, payload: dict, timeout: float
    ) -> tuple[str, dict | None]:
        ws = self._live_socket()
        envelope_id = f"env-{next(self._ids):06d}"
        envelope: dict[str, Any] = {
            "envelope_id": envelope_id,
            "type": envelope_type,
            "payload": payload,
            "accepts_response_payload": envelope_type != "events_api",
        }
        if envelope_type == "events_api":
            envelope.update(retry_attempt=0, retry_reason="")
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._pending_acks[envelope_id] = future
        self.envelopes.append(envelope)
        try:
            await ws.send_json(envelope)
            return envelope_id, await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise TimeoutError(
                f"fake slack: no ACK for {envelope_type} envelope {envelope_id} within {timeout}s "
                f"(connections opened: {self.connections}, live: {self.connected.is_set()}); "
                f"did a listener raise or never call ack()? recent calls: {self._recent_calls()}"
            ) from None
        finally:
            self._pending_acks.pop(envelope_id, None)

    async def send_event(
        self, event: dict, *, timeout: float = 5.0, team_id: str | None = None
    ) -> dict | None:
        """Deliver an Events API event (``{"type": "app_mention", ...}``); returns the ACK.
        `team_id`: sent as if from another workspace that has the app (a distributed app, or
        one reached through an org-wide install), everywhere the payload names a team."""
        team = team_id or self.team_id
        event = {"event_ts": self._now_ts(), **event}
        payload = {
            "token": "fake-verification-token",
            "team_id": team,
            "api_app_id": self.app_id,
            "event": event,
            "type": "event_callback",
            "event_id": f"Ev{next(self._ids):08d}",
            "event_time": int(time.time()),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": team,
                    "user_id": self.bot_user_id,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
            "event_context": f"4-fake-{next(self._ids)}",
        }
        return await self.send_envelope("events_api", payload, timeout=timeout)

    async def slash_command(
        self,
        text: str,
        *,
        user_id: str,
        channel_id: str = "C0001",
        command: str = "/news",
        timeout: float = 5.0,
        quiet: float = 0.25,
        expect_response: bool = False,
        allow_silent: bool = False,
        team_id: str | None = None,
    ) -> SlashReply:
        """Run a slash command and collect what the user sees. `team_id`: sent from another
        workspace than the fake's own (see send_event).

        Waits for the envelope ACK, then (if the ACK was empty, or ``expect_response``) for a
        first POST to the response_url, then until ``quiet`` seconds pass with no further
        POST. Raises TimeoutError when nothing visible arrives within ``timeout`` unless
        ``allow_silent`` (for commands that answer only through chat.postMessage).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        user = self._ensure_user(user_id)
        channel = self._ensure_channel(channel_id)
        rid = f"R{next(self._ids):06d}"
        response_url = f"{self.base_url}/response/{rid}"
        responses = self._responses.setdefault(rid, [])
        payload = {
            "token": "fake-verification-token",
            "team_id": team_id or self.team_id,
            "team_domain": TEAM_DOMAIN if team_id in (None, self.team_id) else "elsewhere",
            "channel_id": channel_id,
            "channel_name": "directmessage" if channel.get("is_im") else channel.get("name", ""),
            "user_id": user_id,
            "user_name": user.name,
            "command": command,
            "text": text,
            "api_app_id": self.app_id,
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": f"{next(self._ids)}.{team_id or self.team_id}.fake",
        }
        first_call = len(self.call_log)
        envelope_id, ack = await self._send_envelope("slash_commands", payload, timeout)
        ack_visible = bool(visible_text(ack))
        if expect_response or not ack_visible:
            got = await self._wait_until(lambda: bool(responses), deadline - loop.time())
            if not got and not allow_silent:
                raise TimeoutError(
                    f"fake slack: {command} {text!r} was acked with {ack!r} and nothing was "
                    f"POSTed to its response_url within {timeout}s; Web API calls meanwhile: "
                    f"{self._recent_calls(first_call)}"
                )
        # Settle: late responses (after slow work) are still part of this command's answer.
        while True:
            seen = len(responses)
            remaining = min(quiet, deadline - loop.time())
            if remaining <= 0 or not await self._wait_until(
                lambda seen=seen: len(responses) != seen, remaining
            ):
                break
        replies = [SlashResponse("ack", ack)] if ack_visible and ack is not None else []
        replies.extend(SlashResponse("response_url", body) for body in responses)
        return SlashReply(
            envelope_id=envelope_id,
            response_url=response_url,
            ack_payload=ack,
            responses=list(responses),
            replies=replies,
        )

    async def app_home_opened(self, user_id: str, timeout: float = 5.0) -> dict:
        """Open the app's Home tab as ``user_id``; returns the view the app published for them.
        (For a Home tab opened from another workspace, which should publish nothing, send the
        event with ``send_event(..., team_id=...)``.)"""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self._ensure_user(user_id)
        before = len(self.views_published)
        event: dict[str, Any] = {
            "type": "app_home_opened",
            "user": user_id,
            "channel": self.dm_channel(user_id),
            "tab": "home",
        }
        if user_id in self.home_views:
            event["view"] = self.home_views[user_id]
        await self.send_event(event, timeout=timeout)

        def published() -> bool:
            return any(uid == user_id for uid, _ in self.views_published[before:])

        if not await self._wait_until(published, deadline - loop.time()):
            raise TimeoutError(
                f"fake slack: app_home_opened for {user_id} was acked but no views.publish for "
                f"that user arrived within {timeout}s; recent calls: {self._recent_calls()}"
            )
        return self.home_views[user_id]

    # ------------------------------------------------------------------ internals: waiting

    def _bump(self) -> None:
        """Wake everything waiting in _wait_until: something was recorded."""
        self._activity.set()
        self._activity = asyncio.Event()

    async def _wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        end = loop.time() + max(timeout, 0)
        while not predicate():
            remaining = end - loop.time()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._activity.wait(), remaining)
            except TimeoutError:
                return predicate()
        return True

    def _recent_calls(self, start: int | None = None) -> list[str]:
        log = self.call_log[start:] if start is not None else self.call_log[-8:]
        return [f"{c.method} -> {c.status} {c.error or 'ok'}" for c in log]

    def _now_ts(self) -> str:
        return f"{time.time():.6f}"

    def _next_ts(self) -> str:
        self._ts_seq += 1
        return f"{_TS_BASE + self._ts_seq // 10000}.{(self._ts_seq % 10000) * 100:06d}"

    # ------------------------------------------------------------------ internals: socket

    def _live_socket(self) -> web.WebSocketResponse:
        for ws in reversed(self._sockets):
            if not ws.closed:
                return ws
        raise RuntimeError(
            f"fake slack: no live Socket Mode connection (opened so far: {self.connections}); "
            "start the handler with connect_async() and await fake.wait_connected()"
        )

    def _forget_socket(self, ws: web.WebSocketResponse) -> None:
        if ws in self._sockets:
            self._sockets.remove(ws)
        if not any(not s.closed for s in self._sockets):
            self.connected.clear()
        self._bump()

    async def _handle_socket(self, request: web.Request) -> web.StreamResponse:
        if self._down or self._closed:
            return web.json_response({"ok": False, "error": "service_unavailable"}, status=503)
        # The client pings (autoping=False on its side); autoping=True here answers them.
        ws = web.WebSocketResponse(autoping=True, timeout=2.0)
        await ws.prepare(request)
        self.connections += 1
        self._sockets.append(ws)
        await ws.send_json(
            {
                "type": "hello",
                "num_connections": sum(1 for s in self._sockets if not s.closed),
                "debug_info": {
                    "host": "fake-slack",
                    "build_number": 1,
                    "approximate_connection_time": 18060,
                },
                "connection_info": {"app_id": self.app_id},
            }
        )
        self.connected.set()
        self._bump()
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self._on_socket_text(msg.data)
        finally:
            self._forget_socket(ws)
        return ws

    def _on_socket_text(self, data: str) -> None:
        try:
            message = json.loads(data)
        except ValueError:
            return
        if not isinstance(message, dict) or "envelope_id" not in message:
            return
        envelope_id = message["envelope_id"]
        payload = message.get("payload")
        self.acks.append((envelope_id, payload))
        future = self._pending_acks.get(envelope_id)
        if future is not None and not future.done():
            future.set_result(payload)
        self._bump()

    # ------------------------------------------------------------------ internals: response_url

    async def _handle_response_url(self, request: web.Request) -> web.Response:
        rid = request.match_info["rid"]
        try:
            body = await request.json()
        except ValueError:
            body = None
        status, answer = 200, "ok"
        if rid not in self._responses:
            status, answer = 404, "no_such_response_url"
        elif len(self._responses[rid]) >= MAX_RESPONSE_URL_USES:
            status, answer = 404, "used_url"
        elif not isinstance(body, dict):
            status, answer = 400, "invalid_payload"
        elif not body.get("delete_original"):
            if body.get("blocks") is not None and validate_blocks(body["blocks"]):
                status, answer = 400, "invalid_blocks"
            elif not (body.get("text") or body.get("blocks") or body.get("attachments")):
                status, answer = 400, "no_text"
        self.response_log.append((rid, status, body))
        if status == 200:
            self._responses[rid].append(body)
        self._bump()
        return web.Response(status=status, text=answer)

    # ------------------------------------------------------------------ internals: Web API

    async def _handle_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        auth = request.headers.get("Authorization", "")
        token = auth[len("Bearer ") :].strip() if auth.startswith("Bearer ") else None
        try:
            args = await _read_args(request)
        except _ApiError as e:
            args, parse_error = {}, e
        else:
            parse_error = None
        token = token or args.pop("token", None)
        args.pop("token", None)
        record = FakeSlackCall(method, args, token)
        self.calls.append((method, args))
        self.call_log.append(record)
        self._bump()

        status, body, headers = await self._answer(method, args, token, parse_error)
        record.status = status
        record.error = None if body.get("ok") else body.get("error")
        self._bump()
        return web.json_response(body, status=status, headers=headers)

    async def _answer(
        self, method: str, args: dict, token: str | None, parse_error: _ApiError | None
    ) -> tuple[int, dict, dict[str, str]]:
        if self._down:
            if self._hang:
                await self._up.wait()
            if self._down or self._closed:
                return 503, {"ok": False, "error": "service_unavailable"}, {}
        fault = self._take_fault(method)
        if fault is not None:
            headers = (
                {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            )
            return fault.status, {"ok": False, "error": fault.error}, headers
        if parse_error is not None:
            return 200, {"ok": False, "error": parse_error.error}, {}
        auth_error = self._check_token(method, token)
        if auth_error:
            return 200, {"ok": False, "error": auth_error}, {}
        handler = self._methods.get(method)
        if handler is None:
            return 200, {"ok": False, "error": "unknown_method"}, {}
        try:
            return 200, {"ok": True, **handler(args)}, {}
        except _ApiError as e:
            return 200, {"ok": False, "error": e.error, **e.extra}, {}

    def _take_fault(self, method: str) -> _Fault | None:
        for key in (method, "*"):
            queue = self._faults.get(key)
            if queue:
                return queue.popleft()
        return None

    def _check_token(self, method: str, token: str | None) -> str | None:
        if not token:
            return "not_authed"
        wanted = self.app_token if method == "apps.connections.open" else self.bot_token
        if token == wanted:
            return None
        if token in (self.app_token, self.bot_token):
            return "not_allowed_token_type"
        return "invalid_auth"

    def _lookup_channel(self, ref: str) -> str | None:
        if ref in self._channels:
            return ref
        name = ref.removeprefix("#")
        for cid, channel in self._channels.items():
            if channel.get("name") == name:
                return cid
        return None

    def _channel(self, args: dict, *, allow_user: bool = False) -> str:
        ref = str(args.get("channel") or "")
        if not ref:
            raise _ApiError("channel_not_found")
        if ref in self._channel_errors:
            raise _ApiError(self._channel_errors[ref])
        cid = self._lookup_channel(ref)
        if cid is None and allow_user and ref in self._users:
            cid = self.dm_channel(ref)  # chat.postMessage(channel=U...) lands in the app DM
        if cid is None:
            raise _ApiError("channel_not_found")
        if cid in self._channel_errors:
            raise _ApiError(self._channel_errors[cid])
        return cid

    def _message_content(self, args: dict, *, required: bool = True) -> tuple[Any, Any, Any]:
        text, blocks, metadata = args.get("text"), args.get("blocks"), args.get("metadata")
        if blocks is not None:
            errors = validate_blocks(blocks)
            if errors:
                raise _ApiError("invalid_blocks", response_metadata={"messages": errors})
        if required and not (text or blocks or args.get("attachments")):
            raise _ApiError("no_text")
        if text is not None and len(str(text)) > MAX_MESSAGE_TEXT:
            raise _ApiError("msg_too_long")
        if metadata is not None and not (
            isinstance(metadata, dict)
            and isinstance(metadata.get("event_type"), str)
            and isinstance(metadata.get("event_payload"), dict)
        ):
            raise _ApiError("invalid_metadata_format")
        return text, blocks, metadata

    def _api_message(self, message: FakeSlackMessage, *, include_metadata: bool) -> dict:
        data = message.to_api(include_metadata=include_metadata)
        data["team"] = self.team_id
        return data

    def _find_message(self, channel: str, ts: str) -> FakeSlackMessage:
        for message in self._history.get(channel, []):
            if message.ts == ts and not message.deleted:
                return message
        raise _ApiError("message_not_found")

    # Web API methods. Each takes the merged arguments and returns the body minus "ok".

    def _auth_test(self, args: dict) -> dict:
        return {
            "url": f"https://{TEAM_DOMAIN}.slack.com/",
            "team": TEAM_NAME,
            "user": self._users[self.bot_user_id].name,
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "is_enterprise_install": False,
        }

    def _apps_connections_open(self, args: dict) -> dict:
        ticket = f"{next(self._ids):06d}"
        ws_base = self.base_url.replace("http://", "ws://", 1)
        return {"url": f"{ws_base}/socket?ticket={ticket}&app_id={self.app_id}"}

    def _member_of(self, channel: str) -> None:
        if self._channels[channel].get("is_member") is False:
            raise _ApiError("not_in_channel")

    def _chat_post_message(self, args: dict) -> dict:
        channel = self._channel(args, allow_user=True)
        self._member_of(channel)
        text, blocks, metadata = self._message_content(args)
        thread_ts = args.get("thread_ts") or None
        if thread_ts is not None:
            self._find_message(channel, str(thread_ts))
        message = FakeSlackMessage(
            channel=channel,
            ts=self._next_ts(),
            text=text,
            blocks=blocks,
            metadata=metadata,
            user=self.bot_user_id,
            bot_id=self.bot_id,
            thread_ts=str(thread_ts) if thread_ts else None,
            reply_broadcast=_truthy(args.get("reply_broadcast", False)),
            unfurl_links=_truthy(args["unfurl_links"]) if "unfurl_links" in args else None,
            unfurl_media=_truthy(args["unfurl_media"]) if "unfurl_media" in args else None,
            args=dict(args),
        )
        self.messages.append(message)
        self._history[channel].append(message)
        return {
            "channel": channel,
            "ts": message.ts,
            "message": self._api_message(message, include_metadata=True),
        }

    def _chat_update(self, args: dict) -> dict:
        channel = self._channel(args)
        message = self._find_message(channel, str(args.get("ts") or ""))
        text, blocks, metadata = self._message_content(args)
        # Slack keeps blocks and metadata that an update does not mention.
        if "text" in args:
            message.text = text
        if "blocks" in args:
            message.blocks = blocks
        if "metadata" in args:
            message.metadata = metadata
        message.edits += 1
        self.updates.append(
            FakeSlackUpdate(channel, message.ts, text, blocks, metadata, dict(args))
        )
        return {
            "channel": channel,
            "ts": message.ts,
            "text": message.text or "",
            "message": self._api_message(message, include_metadata=True),
        }

    def _chat_delete(self, args: dict) -> dict:
        channel = self._channel(args)
        message = self._find_message(channel, str(args.get("ts") or ""))
        message.deleted = True
        return {"channel": channel, "ts": message.ts}

    def _chat_post_ephemeral(self, args: dict) -> dict:
        channel = self._channel(args)
        user = str(args.get("user") or "")
        if user not in self._users:
            raise _ApiError("user_not_found")
        text, blocks, _ = self._message_content(args)
        ts = self._next_ts()
        self.ephemerals.append(FakeSlackEphemeral(channel, user, ts, text, blocks, dict(args)))
        return {"message_ts": ts}

    def _conversations_open(self, args: dict) -> dict:
        if args.get("channel"):
            cid = self._channel(args)
            return {"channel": dict(self._channels[cid]), "already_open": True}
        users = [u for u in str(args.get("users") or "").split(",") if u]
        if not users:
            raise _ApiError("users_list_not_supplied")
        unknown = [u for u in users if u not in self._users]
        if unknown:
            raise _ApiError("user_not_found")
        if len(users) > 1:
            raise _ApiError("not_supported", detail="the fake opens one-to-one DMs only")
        existed = users[0] in self._dms
        cid = self.dm_channel(users[0])
        channel = (
            dict(self._channels[cid]) if _truthy(args.get("return_im", False)) else {"id": cid}
        )
        return {"channel": channel, "no_op": existed, "already_open": existed}

    def _conversations_info(self, args: dict) -> dict:
        cid = self._channel(args)
        return {"channel": dict(self._channels[cid])}

    def _conversations_history(self, args: dict) -> dict:
        cid = self._channel(args)
        self._member_of(cid)
        oldest = _as_decimal(args.get("oldest"), Decimal(0))
        latest = _as_decimal(args.get("latest"), Decimal("Infinity"))
        inclusive = _truthy(args.get("inclusive", False))
        include_metadata = _truthy(args.get("include_all_metadata", False))
        limit = max(1, min(int(args.get("limit") or 100), 999))
        offset = int(args.get("cursor") or 0)

        def in_range(ts: Decimal) -> bool:
            if inclusive:
                return oldest <= ts <= latest
            return oldest < ts < latest

        # Thread replies live in conversations.replies unless broadcast to the channel.
        visible = [
            m
            for m in reversed(self._history[cid])
            if not m.deleted
            and (m.thread_ts is None or m.thread_ts == m.ts or m.reply_broadcast)
            and in_range(Decimal(m.ts))
        ]
        page = visible[offset : offset + limit]
        has_more = offset + limit < len(visible)
        return {
            "messages": [self._api_message(m, include_metadata=include_metadata) for m in page],
            "has_more": has_more,
            "pin_count": 0,
            "response_metadata": {"next_cursor": str(offset + limit) if has_more else ""},
        }

    def _conversations_replies(self, args: dict) -> dict:
        cid = self._channel(args)
        self._member_of(cid)
        try:
            parent = self._find_message(cid, str(args.get("ts") or ""))
        except _ApiError:
            # Slack's answer for a parent that is gone (or never was): thread_not_found.
            raise _ApiError("thread_not_found") from None
        include_metadata = _truthy(args.get("include_all_metadata", False))
        thread = [parent] + [
            m
            for m in self._history[cid]
            if m.thread_ts == parent.ts and m is not parent and not m.deleted
        ]
        return {
            "messages": [self._api_message(m, include_metadata=include_metadata) for m in thread],
            "has_more": False,
            "response_metadata": {"next_cursor": ""},
        }

    def _users_info(self, args: dict) -> dict:
        user = self._users.get(str(args.get("user") or ""))
        if user is None:
            raise _ApiError("user_not_found")
        return {
            "user": {
                "id": user.id,
                "team_id": self.team_id,
                "name": user.name,
                "real_name": user.name,
                "deleted": False,
                "is_admin": user.is_admin,
                "is_owner": user.is_owner,
                "is_primary_owner": False,
                "is_restricted": False,
                "is_ultra_restricted": False,
                "is_bot": user.is_bot,
                "is_app_user": False,
                "tz": "UTC",
                "profile": {"real_name": user.name, "display_name": user.name},
            }
        }

    def _views_publish(self, args: dict) -> dict:
        user_id = str(args.get("user_id") or "")
        if user_id not in self._users:
            raise _ApiError("user_not_found")
        view = args.get("view")
        if not isinstance(view, dict) or view.get("type") != "home":
            raise _ApiError(
                "invalid_arguments", response_metadata={"messages": ["view.type must be home"]}
            )
        errors = validate_blocks(view.get("blocks", []), max_blocks=MAX_VIEW_BLOCKS)
        if errors:
            raise _ApiError("invalid_arguments", response_metadata={"messages": errors})
        expected_hash = args.get("hash")
        if expected_hash and expected_hash != self._home_hashes.get(user_id):
            raise _ApiError("hash_conflict")
        new_hash = f"{next(self._ids)}.fakehash"
        self._home_hashes[user_id] = new_hash
        self.home_views[user_id] = view
        self.views_published.append((user_id, view))
        return {
            "view": {
                "id": f"V{next(self._ids):08d}",
                "team_id": self.team_id,
                "app_id": self.app_id,
                "bot_id": self.bot_id,
                "hash": new_hash,
                **view,
            }
        }
