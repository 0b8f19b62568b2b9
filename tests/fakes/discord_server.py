"""A fake Discord - REST under /api/v10 and a gateway websocket - on 127.0.0.1.

The real discord.py (2.7.1) logs into it unchanged: ``point_discord_at(fake)`` swaps
``discord.http.Route.BASE`` and ``discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY`` (discord.py has
no constructor knob for either; interaction callbacks and webhook followups also build their URLs
from ``Route.BASE``) and puts the old values back afterwards.

What is modelled, and why (each detail checked against the discord.py 2.7.1 source):

* JSON bodies carry ``Content-Type: application/json`` exactly. ``discord.http.json_or_text``
  compares the header verbatim, so aiohttp's ``json_response`` (which adds ``; charset=utf-8``)
  would make every body a string.
* Login is ``GET /users/@me`` then ``GET /oauth2/applications/@me``; a plain ``Client`` never asks
  ``/gateway/bot`` (an ``AutoShardedClient`` does, so it is served too).
* The gateway is asked for ``?v=10&encoding=json&compress=zlib-stream`` (``zstd-stream`` when the
  ``zstandard`` module is importable). zlib-stream is honoured: one compressor per connection, every
  frame ends with a ``Z_SYNC_FLUSH`` - discord.py buffers binary frames until it sees that suffix.
  For zstd-stream the fake sends plain text frames, which discord.py always accepts (it only
  decompresses ``bytes`` frames).
* Sessions keep a replay buffer: after a drop the client RESUMEs against ``resume_gateway_url`` and
  gets every event it missed, then RESUMED. An unknown or non-resumable session gets op 9
  ``d=false``, on which discord.py re-IDENTIFYs through ``DEFAULT_GATEWAY``.
* A 429 is retried by discord.py only with a ``Via`` header and a JSON body with ``retry_after``;
  500/502/504 are retried after 1, 3, 5, 7, 9 s (so five 500s take 25 s before
  ``DiscordServerError``); 503 raises ``DiscordServerError`` at once.
* ``discord.abc.Messageable.send`` always sends a nonce (random when not given) with
  ``enforce_nonce: true``; a repeated nonce in the same channel returns the existing message, as
  Discord does, and the replay is recorded on ``FakeMessage.nonce_replays`` / ``fake.deduplicated``.
* Messages, embeds, interaction replies, autocomplete choices and command uploads are validated with
  Discord's limits and answer 400 / code 50035 with Discord's nested ``errors`` shape, so
  discord.py's error text names the field (``In embeds.0.title: Must be 256 or fewer in length.``).
* INTERACTION_CREATE carries ``attachment_size_limit`` (discord.py reads it unconditionally). The
  callback is POSTed with ``?with_response=1`` and the answer must hold an ``interaction`` key. The
  callback must arrive within ``interaction_deadline`` seconds (Discord: 3) or it gets 404 / 10062.
* ``Client.before_identify_hook`` sleeps 5 s before every IDENTIFY but the first, so a test that
  forces a fresh session (``drop_gateway(resumable=False)``) waits 5 s unless the test's client
  overrides that hook. RESUME has no such delay.

Usage in a bot test::

    @pytest.fixture
    async def discord_fake():
        async with FakeDiscord() as fake:
            with point_discord_at(fake):
                yield fake

    async def test_alert_reaches_the_channel(discord_fake):
        ...start the bot with token=discord_fake.token and wait: await discord_fake.wait_ready()
        reply = await discord_fake.invoke("ping", user_id=42, guild_id=discord_fake.guild_id)
        await discord_fake.wait_until(lambda: discord_fake.messages_in(channel_id), what="alert")

Other servers: ``add_guild`` adds one more guild (a foreign server for tests of who the bot
serves), either with the bot in it (READY lists it, GUILD_CREATE describes it) or, with
``bot_member=False``, a server that installed only the app's commands (the
``applications.commands`` scope without ``bot``): its members can still run the global slash
commands, and the interactions reach the bot's gateway although the bot is not in that server.
``GET /guilds/{guild}/members/{user}`` answers for every guild the bot is in (404 Unknown Member /
Unknown Guild otherwise), as Discord does without the privileged members intent.

Permissions: the bot holds the managed role Discord creates at invite (``BOT_PERMISSIONS``);
``forbid_channel`` and ``deny_permissions`` add a channel overwrite for the bot member, which
``GET /channels/{id}`` shows and message POSTs obey (no View Channel: 403 / 50001 everywhere; no
Send Messages: 403 / 50013 on POST). ``GET /guilds/{id}`` gives the roles and owner, so a client
can work out the bot's permissions in a channel as Discord does. @everyone holds
``EVERYONE_PERMISSIONS`` (members see every channel); ``hide_channel`` makes a private one.

Outages: ``FakeDiscord(port=...)`` knows its addresses before it listens; ``close()`` then
``start()`` again is Discord going away and coming back at the same address, with everything
recorded and the gateway sessions (so the client can RESUME) kept.

Interaction answers (callback, @original edits, followups) are recorded on the
``InteractionReply`` that ``invoke`` returns (and in ``fake.interactions``), not in
``fake.messages``, which holds what the bot POSTed to channels and DMs.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import math
import re
import secrets
import socket
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple
from urllib.parse import urlsplit

import discord.gateway
import discord.http
import yarl
from aiohttp import WSMsgType, web

__all__ = [
    "FakeAttachment",
    "FakeDiscord",
    "FakeEdit",
    "FakeMessage",
    "FakeRequest",
    "FakeThread",
    "InteractionReply",
    "point_discord_at",
]

API_PREFIX = "/api/v10"
DISCORD_EPOCH_MS = 1_420_070_400_000
EPHEMERAL = 1 << 6
LOADING = 1 << 7

# Permission bits used for the bot's own channel permissions (app_permissions).
_VIEW_CHANNEL = 1 << 10
_SEND_MESSAGES = 1 << 11
_EMBED_LINKS = 1 << 14
_ATTACH_FILES = 1 << 15
_READ_HISTORY = 1 << 16
_EXTERNAL_EMOJIS = 1 << 18
_CREATE_PUBLIC_THREADS = 1 << 35
_SEND_IN_THREADS = 1 << 38
BOT_PERMISSIONS = (
    _VIEW_CHANNEL
    | _SEND_MESSAGES
    | _EMBED_LINKS
    | _ATTACH_FILES
    | _READ_HISTORY
    | _EXTERNAL_EMOJIS
    | _CREATE_PUBLIC_THREADS
    | _SEND_IN_THREADS
)
# Part of what Discord gives @everyone in a new server: members see its channels and write there.
EVERYONE_PERMISSIONS = _VIEW_CHANNEL | _SEND_MESSAGES | _READ_HISTORY
CREATE_PUBLIC_THREADS = _CREATE_PUBLIC_THREADS
SEND_MESSAGES_IN_THREADS = _SEND_IN_THREADS
THREAD_NAME_LIMIT = 100
PUBLIC_THREAD = 11
ADMINISTRATOR = 1 << 3
# GUILD_PRESENCES, GUILD_MEMBERS, MESSAGE_CONTENT
PRIVILEGED_INTENTS = (1 << 8) | (1 << 1) | (1 << 15)
# GATEWAY_PRESENCE_LIMITED | GATEWAY_GUILD_MEMBERS_LIMITED | GATEWAY_MESSAGE_CONTENT_LIMITED:
# what a small verified-free bot with the privileged intents switched on in the portal shows.
APPLICATION_FLAGS = (1 << 13) | (1 << 15) | (1 << 19)

_OPTION_SUB_COMMAND = 1
_OPTION_SUB_COMMAND_GROUP = 2
_SNOWFLAKE_OPTION_TYPES = (6, 7, 8, 9)
_COMMAND_NAME_RE = re.compile(r"^[-_'\w]{1,32}$")
# Per-request storage: the parsed JSON body (or payload_json of a multipart body) and the files.
_BODY: web.RequestKey[Any] = web.RequestKey("fake_discord_body", object)
_FILES: web.RequestKey[list[FakeAttachment]] = web.RequestKey("fake_discord_files", list)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _iso(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _json(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    # Exactly "application/json": discord.py compares the header verbatim.
    all_headers = {"Content-Type": "application/json"}
    if headers:
        all_headers.update(headers)
    return web.Response(status=status, body=json.dumps(data).encode(), headers=all_headers)


def _error(status: int, code: int, message: str, errors: dict | None = None) -> web.Response:
    body: dict[str, Any] = {"message": message, "code": code}
    if errors:
        body["errors"] = errors
    return _json(body, status)


def _no_content() -> web.Response:
    return web.Response(status=204)


def _snowflake_param(value: str) -> int | None:
    return int(value) if value.isdigit() else None


# --------------------------------------------------------------------------------------------
# recorded values
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FakeAttachment:
    id: int
    filename: str
    content_type: str | None
    data: bytes


@dataclass(eq=False)
class FakeMessage:
    """A message the bot created (channel POST, interaction reply or followup)."""

    id: int
    channel_id: int
    content: str | None
    embeds: list[dict[str, Any]]
    nonce: str | None = None
    enforce_nonce: bool = False
    allowed_mentions: dict[str, Any] | None = None
    flags: int = 0
    dm_recipient_id: int | None = None
    guild_id: int | None = None
    author_id: int = 0
    components: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[FakeAttachment] = field(default_factory=list)
    tts: bool = False
    message_reference: dict[str, Any] | None = None
    payload: dict[str, Any] = field(default_factory=dict)  # the JSON body as received
    created_at: dt.datetime = field(default_factory=_now)
    edited_at: dt.datetime | None = None
    deleted: bool = False
    webhook_id: int | None = None  # the application id for interaction followups
    interaction_id: int | None = None
    type: int = 0
    nonce_replays: int = 0  # POSTs with the same nonce that were answered with this message

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & EPHEMERAL)


@dataclass
class FakeThread:
    """A thread started from a message (POST /channels/{channel}/messages/{message}/threads).
    As on Discord, the thread's channel id is the message's id: what is posted in it is in
    ``fake.messages_in(thread.id)``."""

    id: int  # = the message it was started from
    parent_id: int  # the channel of that message
    name: str
    auto_archive_duration: int | None
    payload: dict[str, Any]
    attempts: int = 1  # POSTs that asked to start it (the later ones answered 160004)


@dataclass(frozen=True)
class FakeEdit:
    message_id: int
    channel_id: int
    payload: dict[str, Any]
    at: dt.datetime


class FakeRequest(NamedTuple):
    method: str
    path: str  # without the /api/v10 prefix
    status: int
    query: dict[str, str]
    body: Any


@dataclass(eq=False)
class InteractionReply:
    """What the bot answered to one interaction. Followups keep arriving after `invoke` returns."""

    interaction_id: int
    token: str
    command: str  # qualified name, e.g. "watchlist add"
    kind: int  # 2 = application command, 4 = autocomplete
    channel_id: int
    guild_id: int | None
    user_id: int
    payload: dict[str, Any] = field(repr=False, default_factory=dict)  # the INTERACTION_CREATE
    type: int | None = None  # callback type: 4 message, 5 deferred, 8 autocomplete, 9 modal...
    content: str | None = None
    embeds: list[dict[str, Any]] = field(default_factory=list)
    flags: int = 0
    components: list[dict[str, Any]] = field(default_factory=list)
    allowed_mentions: dict[str, Any] | None = None
    choices: list[dict[str, Any]] | None = None
    modal: dict[str, Any] | None = None
    callback_payload: dict[str, Any] | None = None
    message_id: int | None = None  # the original response message
    edits: list[dict[str, Any]] = field(default_factory=list)  # PATCHes of @original
    followups: list[FakeMessage] = field(default_factory=list)
    errors: list[tuple[str, int, Any]] = field(default_factory=list)  # rejected answers
    deleted: bool = False
    expired: bool = False  # the callback came after the deadline: this can never be answered
    dispatched_at: float | None = field(default=None, repr=False)  # loop time
    _fake: FakeDiscord | None = field(default=None, repr=False)

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & EPHEMERAL)

    @property
    def deferred(self) -> bool:
        return self.type == 5

    @property
    def acknowledged(self) -> bool:
        return self.type is not None

    @property
    def answered(self) -> bool:
        if self.type is None:
            return False
        if self.type == 5:
            return bool(self.edits or self.followups)
        return True

    async def wait_for_followups(
        self,
        count: int = 1,
        *,
        timeout: float = 5.0,
    ) -> list[FakeMessage]:
        assert self._fake is not None
        await self._fake.wait_until(
            lambda: len(self.followups) >= count,
            timeout=timeout,
            what=f"{count} followup(s) to /{self.command} (have {len(self.followups)})",
        )
        return list(self.followups)

    async def wait_for_edits(
        self,
        count: int = 1,
        *,
        timeout: float = 5.0,
    ) -> list[dict[str, Any]]:
        assert self._fake is not None
        await self._fake.wait_until(
            lambda: len(self.edits) >= count,
            timeout=timeout,
            what=f"{count} edit(s) of the /{self.command} response (have {len(self.edits)})",
        )
        return list(self.edits)


# --------------------------------------------------------------------------------------------
# validation with Discord's limits and error shape
# --------------------------------------------------------------------------------------------


class _Errors:
    """Collects errors in Discord's nested {"field": {"0": {"_errors": [...]}}} shape."""

    def __init__(self) -> None:
        self.tree: dict[str, Any] = {}

    def add(self, path: Sequence[str | int], code: str, message: str) -> None:
        node = self.tree
        for part in path:
            node = node.setdefault(str(part), {})
        node.setdefault("_errors", []).append({"code": code, "message": message})

    def max_length(self, path: Sequence[str | int], value: Any, limit: int) -> int:
        if value is None:
            return 0
        text = str(value)
        if len(text) > limit:
            self.add(path, "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")
        return len(text)

    def length_between(self, path: Sequence[str | int], value: Any, low: int, high: int) -> None:
        text = "" if value is None else str(value)
        if not low <= len(text) <= high:
            self.add(
                path,
                "BASE_TYPE_BAD_LENGTH",
                f"Must be between {low} and {high} in length.",
            )

    def url(self, path: Sequence[str | int], value: Any, *, attachment: bool = False) -> None:
        if value is None:
            return
        text = str(value)
        allowed = ("http", "https", "attachment") if attachment else ("http", "https")
        parts = urlsplit(text)
        if len(text) > 2048:
            self.add(path, "BASE_TYPE_MAX_LENGTH", "Must be 2048 or fewer in length.")
        elif not parts.scheme or (parts.scheme in ("http", "https") and not parts.netloc):
            self.add(path, "URL_TYPE_INVALID_URL", "Not a well formed URL.")
        elif parts.scheme not in allowed:
            self.add(
                path,
                "URL_TYPE_INVALID_SCHEME",
                f'Scheme "{parts.scheme}" is not supported. Scheme must be one of {allowed}.',
            )

    def __bool__(self) -> bool:
        return bool(self.tree)


def _validate_embeds(errors: _Errors, embeds: Any, base: Sequence[str | int] = ()) -> None:
    path = [*base, "embeds"]
    if not isinstance(embeds, list):
        errors.add(path, "LIST_TYPE_CONVERT", "Must be an array.")
        return
    if len(embeds) > 10:
        errors.add(path, "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
    total = 0
    for index, embed in enumerate(embeds):
        here = [*path, index]
        if not isinstance(embed, dict):
            errors.add(here, "DICT_TYPE_CONVERT", "Only dictionaries may be used in a ModelType")
            continue
        total += errors.max_length([*here, "title"], embed.get("title"), 256)
        total += errors.max_length([*here, "description"], embed.get("description"), 4096)
        errors.url([*here, "url"], embed.get("url"))
        colour = embed.get("color")
        if colour is not None and not (isinstance(colour, int) and 0 <= colour <= 0xFFFFFF):
            errors.add(
                [*here, "color"],
                "NUMBER_TYPE_MAX",
                "int value should be less than or equal to 16777215.",
            )
        stamp = embed.get("timestamp")
        if stamp is not None:
            try:
                dt.datetime.fromisoformat(str(stamp))
            except ValueError:
                errors.add(
                    [*here, "timestamp"],
                    "DATE_TIME_TYPE_PARSE",
                    f"Could not parse {stamp}. Should be ISO8601.",
                )
        footer = embed.get("footer") or {}
        total += errors.max_length([*here, "footer", "text"], footer.get("text"), 2048)
        errors.url([*here, "footer", "icon_url"], footer.get("icon_url"), attachment=True)
        author = embed.get("author") or {}
        total += errors.max_length([*here, "author", "name"], author.get("name"), 256)
        errors.url([*here, "author", "url"], author.get("url"))
        errors.url([*here, "author", "icon_url"], author.get("icon_url"), attachment=True)
        for key in ("thumbnail", "image"):
            errors.url([*here, key, "url"], (embed.get(key) or {}).get("url"), attachment=True)
        fields = embed.get("fields") or []
        if len(fields) > 25:
            errors.add([*here, "fields"], "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
        for findex, fld in enumerate(fields):
            fpath = [*here, "fields", findex]
            for key, limit in (("name", 256), ("value", 1024)):
                value = fld.get(key)
                if value is None or str(value) == "":
                    errors.add([*fpath, key], "BASE_TYPE_REQUIRED", "This field is required")
                else:
                    total += errors.max_length([*fpath, key], value, limit)
    if total > 6000:
        errors.add(path, "MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000")


def _validate_message(
    payload: dict[str, Any], *, partial: bool, files: int = 0
) -> web.Response | None:
    """None if Discord would accept the message body, else the 400 it would answer."""
    errors = _Errors()
    content = payload.get("content")
    errors.max_length(["content"], content, 2000)
    if "embeds" in payload and payload["embeds"] is not None:
        _validate_embeds(errors, payload["embeds"])
    mentions = payload.get("allowed_mentions")
    if isinstance(mentions, dict):
        parse = mentions.get("parse") or []
        for kind in ("users", "roles"):
            if kind in parse and mentions.get(kind):
                errors.add(
                    ["allowed_mentions"],
                    "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE",
                    f"parse:[{kind}] and {kind}: [ids] are mutually exclusive.",
                )
    if errors:
        return _error(400, 50035, "Invalid Form Body", errors.tree)
    if not partial:
        has_text = bool(content and str(content).strip())
        has_other = any(
            payload.get(key)
            for key in ("embeds", "sticker_ids", "components", "poll", "attachments")
        )
        if not (has_text or has_other or files):
            return _error(400, 50006, "Cannot send an empty message")
    return None


def _validate_choices(choices: Any) -> web.Response | None:
    errors = _Errors()
    if not isinstance(choices, list):
        errors.add(["data", "choices"], "LIST_TYPE_CONVERT", "Must be an array.")
    else:
        if len(choices) > 25:
            errors.add(
                ["data", "choices"], "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length."
            )
        for index, choice in enumerate(choices):
            path = ["data", "choices", index]
            errors.length_between([*path, "name"], choice.get("name"), 1, 100)
            if isinstance(choice.get("value"), str):
                errors.max_length([*path, "value"], choice["value"], 100)
    if errors:
        return _error(400, 50035, "Invalid Form Body", errors.tree)
    return None


def _validate_option_list(errors: _Errors, options: Any, path: list[str | int]) -> None:
    if not options:
        return
    if len(options) > 25:
        errors.add(path, "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
    seen_optional = False
    names: set[str] = set()
    for index, opt in enumerate(options):
        here = [*path, index]
        name = opt.get("name")
        if not (isinstance(name, str) and _COMMAND_NAME_RE.match(name) and name == name.lower()):
            errors.add(
                [*here, "name"], "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid"
            )
        if name in names:
            errors.add(
                [*here, "name"],
                "APPLICATION_COMMAND_OPTIONS_NAME_ALREADY_EXISTS",
                "Option names must be unique",
            )
        names.add(name)
        errors.length_between([*here, "description"], opt.get("description"), 1, 100)
        otype = opt.get("type")
        if otype in (_OPTION_SUB_COMMAND, _OPTION_SUB_COMMAND_GROUP):
            _validate_option_list(errors, opt.get("options"), [*here, "options"])
            continue
        if opt.get("required"):
            if seen_optional:
                errors.add(
                    [*here, "required"],
                    "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                    "Required options must be placed before non-required options",
                )
        else:
            seen_optional = True
        choices = opt.get("choices") or []
        if len(choices) > 25:
            errors.add([*here, "choices"], "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
        for cindex, choice in enumerate(choices):
            errors.length_between([*here, "choices", cindex, "name"], choice.get("name"), 1, 100)
            if isinstance(choice.get("value"), str):
                errors.max_length([*here, "choices", cindex, "value"], choice["value"], 100)


def _validate_commands(commands: Any) -> web.Response | None:
    errors = _Errors()
    if not isinstance(commands, list):
        return _error(400, 50035, "Invalid Form Body", {"_errors": [{"code": "LIST_TYPE_CONVERT"}]})
    seen: set[tuple[int, str]] = set()
    chat_input = 0
    for index, cmd in enumerate(commands):
        ctype = cmd.get("type", 1)
        name = cmd.get("name")
        if (ctype, name) in seen:
            errors.add(
                [index, "name"],
                "APPLICATION_COMMANDS_DUPLICATE_NAME",
                f"Application command names must be unique: {name}",
            )
        seen.add((ctype, name))
        if ctype == 1:
            chat_input += 1
            ok_name = (
                isinstance(name, str) and _COMMAND_NAME_RE.match(name) and name == name.lower()
            )
            if not ok_name:
                errors.add(
                    [index, "name"], "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid"
                )
            errors.length_between([index, "description"], cmd.get("description"), 1, 100)
            _validate_option_list(errors, cmd.get("options"), [index, "options"])
        else:
            errors.length_between([index, "name"], name, 1, 32)
    if chat_input > 100:
        errors.add(
            [],
            "APPLICATION_COMMANDS_TOO_MANY",
            "Maximum number of application commands reached (100)",
        )
    if errors:
        return _error(400, 50035, "Invalid Form Body", errors.tree)
    return None


# --------------------------------------------------------------------------------------------
# gateway plumbing
# --------------------------------------------------------------------------------------------


class _Conn:
    """One websocket connection. Frames go out in order, zlib-stream compressed if asked."""

    def __init__(
        self, ws: web.WebSocketResponse, request: web.Request, compress: str | None
    ) -> None:
        self.ws = ws
        self.request = request
        self.session: _Session | None = None
        self._zlib = zlib.compressobj() if compress == "zlib-stream" else None
        self._lock = asyncio.Lock()
        self.frames_sent = 0

    async def send(self, frame: dict[str, Any]) -> bool:
        text = json.dumps(frame, separators=(",", ":"))
        async with self._lock:
            if self.ws.closed:
                return False
            try:
                if self._zlib is not None:
                    data = self._zlib.compress(text.encode()) + self._zlib.flush(zlib.Z_SYNC_FLUSH)
                    await self.ws.send_bytes(data)
                else:
                    await self.ws.send_str(text)
            except (ConnectionError, RuntimeError):
                return False
            self.frames_sent += 1
            return True


class _Session:
    """A gateway session: sequence numbers and a replay buffer that outlive one connection."""

    def __init__(self, session_id: str, identify: dict[str, Any]) -> None:
        self.id = session_id
        self.identify = identify
        self.seq = 0
        self.conn: _Conn | None = None
        self.resumable = True
        self.buffer: deque[dict[str, Any]] = deque(maxlen=1000)
        self.lock = asyncio.Lock()

    async def dispatch_locked(self, event: str, data: Any) -> None:
        self.seq += 1
        frame = {"op": 0, "t": event, "s": self.seq, "d": data}
        self.buffer.append(frame)
        if self.conn is not None:
            await self.conn.send(frame)

    async def dispatch(self, event: str, data: Any) -> None:
        async with self.lock:
            await self.dispatch_locked(event, data)


# --------------------------------------------------------------------------------------------
# the fake
# --------------------------------------------------------------------------------------------


@dataclass
class _OtherGuild:
    """A server besides the main one: its name, members, and whether the bot is in it."""

    name: str
    members: dict[int, dict[str, Any]]
    bot_member: bool


class FakeDiscord:
    """Discord's REST API and gateway, in memory, for the real discord.py. See the module doc."""

    def __init__(
        self,
        *,
        application_id: int = 1_100_000_000_000_000_001,
        bot_user_id: int = 1_200_000_000_000_000_001,
        guild_id: int = 1_300_000_000_000_000_001,
        text_channel_ids: Sequence[int] = (1_400_000_000_000_000_001, 1_400_000_000_000_000_002),
        token: str = "fake-bot-token.for-tests.only",
        bot_name: str = "newsbot",
        guild_name: str = "Newsroom",
        interaction_deadline: float | None = 3.0,
        heartbeat_interval: float = 41.25,
        transport_compression: bool = True,
        reject_privileged_intents: bool = False,
        port: int = 0,
        bot_role_id: int = 1_300_000_000_000_000_007,
    ) -> None:
        """`port`: listen there (0: any free port). A fixed port lets a test give the bot the
        address before the fake listens, and stop and start the fake again at the same
        address (an outage); the recorded traffic and the gateway sessions survive a restart."""
        self.application_id = application_id
        self.bot_user_id = bot_user_id
        self.guild_id = guild_id
        self.text_channel_ids = tuple(text_channel_ids)
        self.token = token
        self.guild_name = guild_name
        self.interaction_deadline = interaction_deadline
        self.heartbeat_interval = heartbeat_interval
        self.transport_compression = transport_compression
        self.reject_privileged_intents = reject_privileged_intents
        self.owner_id = 1_500_000_000_000_000_001

        self.port = port
        self.api_base = f"http://127.0.0.1:{port}{API_PREFIX}" if port else ""
        self.gateway_url = f"ws://127.0.0.1:{port}/gateway" if port else ""
        self.bot_role_id = bot_role_id

        # gateway state
        self.ready = asyncio.Event()
        self.identify_count = 0
        self.resume_count = 0
        self.invalid_sessions = 0
        self.heartbeats = 0
        self.gateway_connections = 0
        self.gateway_queries: list[dict[str, str]] = []
        self.identify_payloads: list[dict[str, Any]] = []
        self.presence_updates: list[dict[str, Any]] = []
        self.gateway_received: list[dict[str, Any]] = []  # every op the client sent

        # recorded traffic
        self.messages: list[FakeMessage] = []
        self.edits: list[FakeEdit] = []
        self.deleted: list[FakeMessage] = []
        self.deduplicated: list[FakeMessage] = []  # one entry per nonce replay
        self.threads: dict[int, FakeThread] = {}  # by thread id (= its starter message's id)
        self.requests: list[tuple[str, str]] = []
        self.log: list[FakeRequest] = []
        self.unknown_routes: list[tuple[str, str]] = []
        self.global_commands: list[dict[str, Any]] = []
        self.guild_commands: dict[int, list[dict[str, Any]]] = {}
        self.command_syncs: list[tuple[int | None, list[dict[str, Any]]]] = []
        self.interactions: list[InteractionReply] = []
        self.hanging = 0  # requests parked by set_down(True, mode="hang")

        # world
        now = _now()
        self._users: dict[int, dict[str, Any]] = {}
        self._users[bot_user_id] = {
            "id": str(bot_user_id),
            "username": bot_name,
            "discriminator": "0",
            "global_name": None,
            "avatar": None,
            "bot": True,
            "verified": True,
            "mfa_enabled": False,
            "flags": 0,
            "public_flags": 0,
            "email": None,
        }
        self._users[self.owner_id] = self._make_user(self.owner_id, "owner")
        self._roles: dict[int, dict[str, Any]] = {
            guild_id: self._make_role(
                guild_id, "@everyone", permissions=EVERYONE_PERMISSIONS, position=0
            )
        }
        # The role Discord makes for a bot invited with permissions (managed, named after it):
        # where its channel permissions come from, before the channels' overwrites.
        bot_role = self._make_role(bot_role_id, bot_name, permissions=BOT_PERMISSIONS, position=1)
        bot_role.update(managed=True, tags={"bot_id": str(bot_user_id)})
        self._roles[bot_role_id] = bot_role
        self._members: dict[int, dict[str, Any]] = {
            bot_user_id: {"roles": [bot_role_id], "joined_at": now, "nick": None},
        }
        self._channels: dict[int, dict[str, Any]] = {}
        for position, cid in enumerate(self.text_channel_ids):
            self._channels[cid] = self._make_channel(cid, guild_id, position)
        self._other_guilds: dict[int, _OtherGuild] = {}
        self._dm_by_user: dict[int, int] = {}
        self._dm_recipient: dict[int, int] = {}
        self._messages_by_id: dict[int, FakeMessage] = {}
        self._command_ids: dict[tuple[int | None, int, str], int] = {}
        self._interactions_by_id: dict[int, InteractionReply] = {}
        self._interactions_by_token: dict[str, InteractionReply] = {}

        # failure injection
        self._forbidden: set[int] = set()
        self._denied: dict[int, int] = {}  # channel -> permission bits denied to the bot there
        self._hidden: dict[int, tuple[int, ...]] = {}  # private channel -> roles that see it
        self._removed: set[int] = set()
        self._closed_dms: set[int] = set()
        self._rate_limits: deque[tuple[float, bool, bool]] = deque()
        self._failures: deque[int] = deque()
        self._login_failures: deque[int] = deque()
        self._down = False
        self._down_mode: Literal["503", "hang"] = "503"
        self._up = asyncio.Event()
        self._up.set()

        self._last_id = 0
        self._tick = asyncio.Event()
        self._sessions: dict[str, _Session] = {}
        self._live: _Session | None = None
        self._conns: set[_Conn] = set()
        self._runner: web.AppRunner | None = None
        self._closing = False

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Listen (again, after close(): at the same port, with everything recorded so far)."""
        self._closing = False
        app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024 * 1024)
        self._add_routes(app.router)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # A restart rebinds the port its earlier connections may still hold in TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        site = web.SockSite(self._runner, sock)
        await site.start()
        self.api_base = f"http://127.0.0.1:{self.port}{API_PREFIX}"
        self.gateway_url = f"ws://127.0.0.1:{self.port}/gateway"

    async def close(self) -> None:
        self._closing = True
        self._up.set()  # release requests parked by set_down(mode="hang")
        for conn in list(self._conns):
            with contextlib.suppress(Exception):
                await conn.ws.close(code=1001, message=b"fake discord shutting down")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.ready.clear()

    async def __aenter__(self) -> FakeDiscord:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ world set-up

    def add_user(self, user_id: int, username: str | None = None, *, bot: bool = False) -> dict:
        user = self._make_user(user_id, username, bot=bot)
        self._users[user_id] = user
        return user

    def add_member(
        self,
        user_id: int,
        *,
        roles: Iterable[int] = (),
        nick: str | None = None,
        username: str | None = None,
        guild_id: int | None = None,
    ) -> None:
        """A guild member (of the main guild unless `guild_id` names one from add_guild); call
        before the client connects to have it in GUILD_CREATE."""
        if user_id not in self._users or username is not None:
            self.add_user(user_id, username)
        main = guild_id is None or guild_id == self.guild_id
        if main:
            for role_id in roles:
                self._ensure_role(role_id)
        self._guild_members(self.guild_id if main else guild_id)[user_id] = {
            "roles": [int(r) for r in roles],
            "joined_at": _now(),
            "nick": nick,
        }

    def add_guild(
        self,
        guild_id: int,
        *,
        name: str | None = None,
        text_channel_ids: Sequence[int] = (),
        bot_member: bool = True,
    ) -> None:
        """Another server, with text channels of its own. With `bot_member` the bot is in it
        (call before the client connects to have it in READY, or `join_guild` later); without,
        the server has only installed the app's commands (see the module doc)."""
        if guild_id == self.guild_id or guild_id in self._other_guilds:
            raise ValueError(f"guild {guild_id} exists already")
        members: dict[int, dict[str, Any]] = {}
        if bot_member:
            members[self.bot_user_id] = {"roles": [], "joined_at": _now(), "nick": None}
        self._other_guilds[guild_id] = _OtherGuild(
            name=name or f"guild-{guild_id}", members=members, bot_member=bot_member
        )
        for position, cid in enumerate(text_channel_ids):
            self._channels[cid] = self._make_channel(cid, guild_id, position)

    async def join_guild(self, guild_id: int) -> None:
        """The bot is added to a guild from add_guild while connected: GUILD_CREATE arrives."""
        guild = self._other_guilds[guild_id]
        guild.bot_member = True
        guild.members[self.bot_user_id] = {"roles": [], "joined_at": _now(), "nick": None}
        if self._live is not None:
            # A join's GUILD_CREATE has no "unavailable" key (that marks an outage ending), so
            # discord.py dispatches on_guild_join for it.
            data = self._guild_json(guild_id)
            data.pop("unavailable")
            await self.dispatch("GUILD_CREATE", data)

    def add_role(self, role_id: int, name: str | None = None, *, permissions: int = 0) -> None:
        """A guild role; call before the client connects (invoke() announces roles it invents)."""
        self._roles[role_id] = self._make_role(
            role_id, name or f"role-{role_id}", permissions=permissions
        )

    def dm_channel_id(self, user_id: int) -> int:
        """The DM channel between the bot and this user (created on first use, stable after)."""
        if user_id not in self._dm_by_user:
            cid = self._next_id()
            self._dm_by_user[user_id] = cid
            self._dm_recipient[cid] = user_id
        return self._dm_by_user[user_id]

    # ------------------------------------------------------------------ queries

    def messages_in(self, channel_id: int) -> list[FakeMessage]:
        return [m for m in self.messages if m.channel_id == int(channel_id)]

    def thread_on(self, message_id: int) -> FakeThread | None:
        """The thread started from a message, if any."""
        return self.threads.get(int(message_id))

    def replies_to(self, message_id: int) -> list[FakeMessage]:
        """What was posted in the thread started from a message (none without a thread)."""
        return self.messages_in(message_id) if int(message_id) in self.threads else []

    def dms_to(self, user_id: int) -> list[FakeMessage]:
        return [m for m in self.messages if m.dm_recipient_id == int(user_id)]

    def statuses(self, method: str | None = None, path: str | None = None) -> list[int]:
        """HTTP statuses answered so far, optionally for one method/path (e.g. to spot a 429)."""
        return [
            r.status
            for r in self.log
            if (method is None or r.method == method) and (path is None or r.path == path)
        ]

    async def wait_until(
        self,
        predicate: Callable[[], bool],
        *,
        timeout: float = 5.0,
        what: str = "condition",
    ) -> None:
        """Wait until predicate() is true: re-checked on every request and gateway change, and
        every 50 ms. Raises TimeoutError naming `what`."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    tick = self._tick
                    if predicate():
                        return
                    # Woken by any request or gateway change; the short poll also catches
                    # predicates about state outside the fake (e.g. what a handler recorded).
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(tick.wait(), 0.05)
        except TimeoutError:
            raise TimeoutError(
                f"fake discord: timed out after {timeout}s waiting for {what}"
            ) from None

    async def wait_ready(self, timeout: float = 5.0) -> None:
        """Wait until a gateway session is live (READY or RESUMED sent, connection still open)."""
        await self.wait_until(
            self.ready.is_set,
            timeout=timeout,
            what=(
                f"a live gateway session (connections={self.gateway_connections}, "
                f"identifies={self.identify_count}, resumes={self.resume_count}; "
                "is the client pointed here and connecting?)"
            ),
        )

    # ------------------------------------------------------------------ failure injection

    def forbid_channel(self, channel_id: int, forbidden: bool = True) -> None:
        """Message POSTs to the channel answer 403 / 50013 Missing Permissions. The channel
        shows why, as Discord's does: an overwrite denies the bot Send Messages there."""
        (self._forbidden.add if forbidden else self._forbidden.discard)(int(channel_id))

    def deny_permissions(self, channel_id: int, permissions: int) -> None:
        """A channel overwrite for the bot member denying these permission bits (0 removes it).
        Without View Channel the channel answers 403 / 50001 Missing Access to everything;
        without Send Messages a message POST answers 403 / 50013."""
        if permissions:
            self._denied[int(channel_id)] = permissions
        else:
            self._denied.pop(int(channel_id), None)

    def hide_channel(self, channel_id: int, *, roles: Sequence[int] = ()) -> None:
        """A private channel, as Discord makes one: @everyone denied View Channel there, these
        roles and the bot (invited to it) allowed. Call before the client connects: GUILD_CREATE
        carries the channel's overwrites."""
        for role_id in roles:
            self._ensure_role(role_id)
        self._hidden[int(channel_id)] = tuple(int(r) for r in roles)

    def remove_channel(self, channel_id: int) -> None:
        """Every route on the channel answers 404 / 10003 Unknown Channel."""
        self._removed.add(int(channel_id))

    def close_dms(self, user_id: int, closed: bool = True) -> None:
        """Posting into this user's DM channel answers 403 / 50007."""
        (self._closed_dms.add if closed else self._closed_dms.discard)(int(user_id))

    def rate_limit_next(
        self,
        n: int = 1,
        retry_after: float = 0.5,
        *,
        is_global: bool = False,
        cloudflare: bool = False,
    ) -> None:
        """The next n message POSTs answer 429 with Retry-After, Via, X-RateLimit-* headers and a
        JSON body; discord.py sleeps retry_after and retries. cloudflare=True answers like a
        Cloudflare ban instead (HTML body, no Via): discord.py raises HTTPException(429) at once."""
        self._rate_limits.extend([(retry_after, is_global, cloudflare)] * n)

    def fail_next(self, n: int = 1, status: int = 500) -> None:
        """The next n message POSTs answer this status. discord.py retries 500/502/504 (sleeping
        1, 3, 5, 7, 9 s) and raises DiscordServerError at once for 503."""
        self._failures.extend([status] * n)

    def fail_logins(self, n: int = 1, status: int = 503) -> None:
        """The next n ``GET /users/@me`` (the first call of a login) answer this status. 503
        raises DiscordServerError in discord.py at once; 500/502/504 are retried by discord.py
        itself first (1, 3, 5, 7, 9 s)."""
        self._login_failures.extend([status] * n)

    def set_down(self, down: bool, *, mode: Literal["503", "hang"] = "503") -> None:
        """While down, message POST/PATCH/DELETE answer 503, or (mode="hang") are held until
        set_down(False) and then processed - like a request that timed out on the client but
        still went through on the server."""
        self._down = down
        self._down_mode = mode
        if down and mode == "hang":
            self._up.clear()
        else:
            self._up.set()
        self._bump()

    async def drop_gateway(self, *, resumable: bool = True, close_code: int | None = None) -> None:
        """Cut the websocket(s). close_code None aborts the TCP connection (no close frame);
        otherwise a close frame with that code is sent. resumable=False makes the next RESUME get
        op 9 (invalid session), so the client identifies afresh."""
        self.ready.clear()
        for conn in list(self._conns):
            session = conn.session
            if session is not None:
                session.resumable = resumable
                if session.conn is conn:
                    session.conn = None
            if close_code is None:
                transport = conn.request.transport
                if transport is not None:
                    transport.abort()
            else:
                with contextlib.suppress(Exception):
                    await conn.ws.close(code=close_code)
        self._bump()

    async def request_reconnect(self) -> None:
        """Send op 7 RECONNECT: discord.py closes and resumes."""
        session = self._live
        if session is not None and session.conn is not None:
            await session.conn.send({"op": 7, "d": None, "s": None, "t": None})

    async def dispatch(
        self,
        event: str,
        data: Any,
        *,
        timeout: float = 5.0,
    ) -> None:
        """Send any gateway event to the live session (buffered for RESUME if it drops)."""
        await self.wait_ready(timeout)
        assert self._live is not None
        await self._live.dispatch(event, data)
        self._bump()

    # ------------------------------------------------------------------ interactions

    async def invoke(
        self,
        name: str,
        options: Mapping[str, Any] | None = None,
        *,
        user_id: int,
        guild_id: int | None = None,
        permissions: int = 0,
        roles: Sequence[int] = (),
        subcommand: str | None = None,
        channel_id: int | None = None,
        timeout: float = 5.0,
        locale: str = "en-US",
        respect_default_permissions: bool = False,
    ) -> InteractionReply:
        """Send an APPLICATION_COMMAND interaction for a synced command and wait for the answer.

        `name` may hold the whole path ("watchlist add"), or give the subcommand (and group) in
        `subcommand`. guild_id None means a DM. With respect_default_permissions, a user missing
        the command's default_member_permissions is refused here, as Discord's client would."""
        reply = await self._send_interaction(
            2,
            name,
            options or {},
            focused=None,
            user_id=user_id,
            guild_id=guild_id,
            permissions=permissions,
            roles=roles,
            subcommand=subcommand,
            channel_id=channel_id,
            timeout=timeout,
            locale=locale,
            respect_default_permissions=respect_default_permissions,
        )
        return reply

    async def autocomplete(
        self,
        name: str,
        options: Mapping[str, Any] | None,
        focused: str,
        *,
        user_id: int,
        guild_id: int | None = None,
        permissions: int = 0,
        roles: Sequence[int] = (),
        subcommand: str | None = None,
        channel_id: int | None = None,
        timeout: float = 5.0,
        locale: str = "en-US",
    ) -> list[dict[str, Any]]:
        """Send an APPLICATION_COMMAND_AUTOCOMPLETE interaction; return the choices answered."""
        reply = await self._send_interaction(
            4,
            name,
            options or {},
            focused=focused,
            user_id=user_id,
            guild_id=guild_id,
            permissions=permissions,
            roles=roles,
            subcommand=subcommand,
            channel_id=channel_id,
            timeout=timeout,
            locale=locale,
            respect_default_permissions=False,
        )
        if reply.type != 8:
            raise AssertionError(
                f"autocomplete for /{reply.command} was answered with type {reply.type}"
            )
        return list(reply.choices or [])

    async def _send_interaction(
        self,
        kind: int,
        name: str,
        options: Mapping[str, Any],
        *,
        focused: str | None,
        user_id: int,
        guild_id: int | None,
        permissions: int,
        roles: Sequence[int],
        subcommand: str | None,
        channel_id: int | None,
        timeout: float,
        locale: str,
        respect_default_permissions: bool,
    ) -> InteractionReply:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        path = name.split() + (subcommand.split() if subcommand else [])
        if not path:
            raise ValueError("invoke: empty command name")
        command = self._find_command(path[0], guild_id)
        if command is None and guild_id is None:
            for gid, commands in self.guild_commands.items():
                if any(c["name"] == path[0] for c in commands):
                    raise ValueError(
                        f"/{path[0]} is a guild command of guild {gid}; "
                        "Discord would not offer it in DMs (guild-only)"
                    )
        if command is None:
            raise LookupError(
                f"/{path[0]} was never synced for "
                f"{'guild ' + str(guild_id) if guild_id else 'DMs (global commands)'}; synced: "
                f"global={[c['name'] for c in self.global_commands]}, "
                f"guilds={ {g: [c['name'] for c in cs] for g, cs in self.guild_commands.items()} }"
                " - did the client call tree.sync()?"
            )
        if guild_id is None:
            contexts = command.get("contexts")
            dm_ok = (
                (1 in contexts)
                if contexts is not None
                else command.get("dm_permission", True) is not False
            )
            if command.get("guild_id") is not None or not dm_ok:
                raise ValueError(f"/{path[0]} is guild-only; Discord would not offer it in DMs")
        elif guild_id != self.guild_id and guild_id not in self._other_guilds:
            raise ValueError(
                f"the fake knows guild {self.guild_id} and {sorted(self._other_guilds)}, "
                f"not {guild_id} (add_guild it first)"
            )
        required = command.get("default_member_permissions")
        if respect_default_permissions and required is not None and guild_id is not None:
            needed = int(required)
            if not permissions & ADMINISTRATOR and (permissions & needed) != needed:
                raise PermissionError(
                    f"/{path[0]} needs permissions {needed}; Discord hides it from this user"
                )

        # Roles are modelled in the main guild only; elsewhere a member just carries the ids.
        main = guild_id == self.guild_id
        new_roles = [r for r in roles if int(r) not in self._roles] if main else []
        for role_id in new_roles:
            self._ensure_role(int(role_id))
        if user_id not in self._users:
            self.add_user(user_id)
        if guild_id is not None:
            members = self._guild_members(guild_id)
            if user_id not in members:
                members[user_id] = {"roles": [], "joined_at": _now(), "nick": None}
            members[user_id]["roles"] = [int(r) for r in roles]
            own = [c for c, data in self._channels.items() if data["guild_id"] == str(guild_id)]
            cid = channel_id if channel_id is not None else own[0]
            channel = self._channels.get(cid)
            if channel is None or channel["guild_id"] != str(guild_id):
                raise ValueError(f"channel {cid} is not a text channel of guild {guild_id}")
        else:
            cid = channel_id if channel_id is not None else self.dm_channel_id(user_id)
            channel = self._dm_json(cid)

        data_options, resolved, qualified = self._build_options(
            command, path, options, focused=focused, guild_id=guild_id
        )
        interaction_id = self._next_id()
        token = "aW50ZXJhY3Rpb24." + secrets.token_urlsafe(48)
        data: dict[str, Any] = {
            "id": str(command["id"]),
            "name": command["name"],
            "type": command.get("type", 1),
        }
        if data_options:
            data["options"] = data_options
        if resolved:
            data["resolved"] = resolved
        if command.get("guild_id") is not None:
            data["guild_id"] = command["guild_id"]
        payload: dict[str, Any] = {
            "id": str(interaction_id),
            "application_id": str(self.application_id),
            "type": kind,
            "data": data,
            "channel_id": str(cid),
            "channel": channel,
            "token": token,
            "version": 1,
            "locale": locale,
            "app_permissions": str(self._bot_permissions(cid)),
            "entitlements": [],
            "attachment_size_limit": 10 * 1024 * 1024,
        }
        if guild_id is not None:
            payload["guild_id"] = str(guild_id)
            payload["guild"] = {"id": str(guild_id), "locale": "en-US", "features": []}
            payload["guild_locale"] = "en-US"
            payload["member"] = {
                **self._member_json(user_id, guild_id),
                "permissions": str(permissions),
            }
            payload["authorizing_integration_owners"] = {"0": str(guild_id)}
            payload["context"] = 0
        else:
            payload["user"] = self._user_json(user_id)
            payload["authorizing_integration_owners"] = {"0": "0"}
            payload["context"] = 1

        reply = InteractionReply(
            interaction_id=interaction_id,
            token=token,
            command=qualified,
            kind=kind,
            channel_id=cid,
            guild_id=guild_id,
            user_id=user_id,
            payload=payload,
            _fake=self,
        )
        self.interactions.append(reply)
        self._interactions_by_id[interaction_id] = reply
        self._interactions_by_token[token] = reply

        await self.wait_ready(max(deadline - loop.time(), 0.01))
        session = self._live
        assert session is not None
        async with session.lock:
            for role_id in new_roles:
                await session.dispatch_locked(
                    "GUILD_ROLE_CREATE",
                    {"guild_id": str(self.guild_id), "role": self._roles[int(role_id)]},
                )
            reply.dispatched_at = loop.time()
            await session.dispatch_locked("INTERACTION_CREATE", payload)
        self._bump()

        remaining = max(deadline - loop.time(), 0.01)
        try:
            await self.wait_until(lambda: reply.answered or reply.expired, timeout=remaining)
            if reply.expired:
                raise TimeoutError
        except TimeoutError:
            if reply.expired:
                state = f"the callback came after the {self.interaction_deadline}s deadline"
            elif reply.type is None:
                state = "not acknowledged"
            else:
                state = f"acknowledged with type {reply.type} but never completed"
            raise TimeoutError(
                f"/{qualified}: no answer from the bot within {timeout}s ({state}; "
                f"rejected answers: {reply.errors or 'none'}; "
                f"gateway live: {self.ready.is_set()}; "
                f"unknown routes: {self.unknown_routes[-5:] or 'none'}). "
                "Did the handler raise? The client logs app command errors."
            ) from None
        return reply

    def _find_command(self, name: str, guild_id: int | None) -> dict[str, Any] | None:
        if guild_id is not None:
            for cmd in self.guild_commands.get(guild_id, []):
                if cmd["name"] == name and cmd.get("type", 1) == 1:
                    return cmd
        for cmd in self.global_commands:
            if cmd["name"] == name and cmd.get("type", 1) == 1:
                return cmd
        return None

    def _build_options(
        self,
        command: dict[str, Any],
        path: list[str],
        options: Mapping[str, Any],
        *,
        focused: str | None,
        guild_id: int | None,
    ) -> tuple[list[dict[str, Any]], dict[str, Any], str]:
        top: list[dict[str, Any]] = []
        container = top
        schema: list[dict[str, Any]] = command.get("options") or []
        for part in path[1:]:
            sub = next(
                (
                    o
                    for o in schema
                    if o["name"] == part
                    and o["type"] in (_OPTION_SUB_COMMAND, _OPTION_SUB_COMMAND_GROUP)
                ),
                None,
            )
            if sub is None:
                subs = [o["name"] for o in schema if o["type"] in (1, 2)]
                raise ValueError(f"/{' '.join(path)}: no subcommand {part!r} (have {subs})")
            node: dict[str, Any] = {"name": part, "type": sub["type"], "options": []}
            container.append(node)
            container = node["options"]
            schema = sub.get("options") or []
        qualified = " ".join(path)
        subs = [o["name"] for o in schema if o["type"] in (1, 2)]
        if subs:
            raise ValueError(f"/{qualified} needs a subcommand, one of {subs}")

        by_name = {o["name"]: o for o in schema}
        unknown = set(options) - set(by_name)
        if unknown:
            raise ValueError(
                f"/{qualified}: unknown option(s) {sorted(unknown)}; it has {sorted(by_name)}"
            )
        if focused is not None and focused not in by_name:
            raise ValueError(f"/{qualified}: cannot focus unknown option {focused!r}")
        if focused is None:
            missing = [o["name"] for o in schema if o.get("required") and o["name"] not in options]
            if missing:
                raise ValueError(f"/{qualified}: required option(s) missing: {missing}")

        resolved: dict[str, dict[str, Any]] = {}
        names = list(options)
        if focused is not None and focused not in options:
            names.append(focused)
        for opt_name in names:
            spec = by_name[opt_name]
            otype = spec["type"]
            if opt_name == focused:
                container.append(
                    {
                        "name": opt_name,
                        "type": otype,
                        "value": str(options.get(opt_name, "")),
                        "focused": True,
                    }
                )
                continue
            value = self._convert_option(qualified, spec, options[opt_name], resolved, guild_id)
            container.append({"name": opt_name, "type": otype, "value": value})
        return top, resolved, qualified

    def _convert_option(
        self,
        qualified: str,
        spec: dict[str, Any],
        raw: Any,
        resolved: dict[str, dict[str, Any]],
        guild_id: int | None,
    ) -> Any:
        otype = spec["type"]
        where = f"/{qualified} option {spec['name']!r}"
        if otype == 3:
            value: Any = str(raw)
            low, high = spec.get("min_length"), spec.get("max_length")
            if (low is not None and len(value) < low) or (high is not None and len(value) > high):
                raise ValueError(f"{where}: length must be within [{low}, {high}]")
        elif otype == 4:
            if isinstance(raw, bool) or not isinstance(raw, int):
                raise ValueError(f"{where} is an integer, got {raw!r}")
            value = raw
        elif otype == 10:
            if isinstance(raw, bool) or not isinstance(raw, int | float):
                raise ValueError(f"{where} is a number, got {raw!r}")
            value = raw
        elif otype == 5:
            if not isinstance(raw, bool):
                raise ValueError(f"{where} is a boolean, got {raw!r}")
            value = raw
        elif otype in _SNOWFLAKE_OPTION_TYPES:
            snowflake = int(getattr(raw, "id", raw))
            value = str(snowflake)
            self._resolve(otype, snowflake, resolved, guild_id, where)
        else:
            raise ValueError(f"{where}: option type {otype} is not supported by the fake")
        if otype in (4, 10):
            low, high = spec.get("min_value"), spec.get("max_value")
            if (low is not None and value < low) or (high is not None and value > high):
                raise ValueError(f"{where}: {value} is outside [{low}, {high}]")
        choices = spec.get("choices")
        if choices and value not in [c["value"] for c in choices]:
            raise ValueError(
                f"{where}: {value!r} is not one of the choices {[c['value'] for c in choices]}"
            )
        return value

    def _resolve(
        self,
        otype: int,
        snowflake: int,
        resolved: dict[str, dict[str, Any]],
        guild_id: int | None,
        where: str,
    ) -> None:
        key = str(snowflake)
        if otype == 8 or (otype == 9 and snowflake in self._roles):
            if snowflake not in self._roles:
                raise ValueError(f"{where}: unknown role {snowflake} (add_role it first)")
            resolved.setdefault("roles", {})[key] = self._roles[snowflake]
        elif otype in (6, 9):
            if snowflake not in self._users:
                self.add_user(snowflake)
            resolved.setdefault("users", {})[key] = self._user_json(snowflake)
            if guild_id is not None and snowflake in self._guild_members(guild_id):
                member = self._member_json(snowflake, guild_id)
                member.pop("user")
                member["permissions"] = "0"
                resolved.setdefault("members", {})[key] = member
        elif otype == 7:
            channel = self._channels.get(snowflake)
            if channel is None:
                raise ValueError(f"{where}: unknown channel {snowflake}")
            resolved.setdefault("channels", {})[key] = {
                "id": channel["id"],
                "name": channel["name"],
                "type": channel["type"],
                "permissions": str(self._bot_permissions(snowflake)),
                "parent_id": None,
                "guild_id": channel["guild_id"],
            }

    # ------------------------------------------------------------------ helpers: ids and json

    def _next_id(self) -> int:
        candidate = (int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22
        self._last_id = max(self._last_id + 1, candidate)
        return self._last_id

    def _bump(self) -> None:
        self._tick.set()
        self._tick = asyncio.Event()

    @staticmethod
    def _make_user(
        user_id: int, username: str | None = None, *, bot: bool = False
    ) -> dict[str, Any]:
        return {
            "id": str(user_id),
            "username": username or f"user{user_id}",
            "discriminator": "0",
            "global_name": username,
            "avatar": None,
            "bot": bot,
            "public_flags": 0,
        }

    def _make_role(
        self, role_id: int, name: str, *, permissions: int, position: int | None = None
    ) -> dict:
        return {
            "id": str(role_id),
            "name": name,
            "permissions": str(permissions),
            "position": len(self._roles) if position is None else position,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "managed": False,
            "mentionable": False,
            "icon": None,
            "unicode_emoji": None,
            "flags": 0,
        }

    def _ensure_role(self, role_id: int) -> None:
        if int(role_id) not in self._roles:
            self.add_role(int(role_id))

    def _user_json(self, user_id: int) -> dict[str, Any]:
        return dict(self._users.get(user_id) or self._make_user(user_id))

    def _guild_members(self, guild_id: int) -> dict[int, dict[str, Any]]:
        if guild_id == self.guild_id:
            return self._members
        return self._other_guilds[guild_id].members

    def _bot_in_guild(self, guild_id: int) -> bool:
        if guild_id == self.guild_id:
            return True
        guild = self._other_guilds.get(guild_id)
        return guild is not None and guild.bot_member

    @staticmethod
    def _make_channel(channel_id: int, guild_id: int, position: int) -> dict[str, Any]:
        return {
            "id": str(channel_id),
            "type": 0,
            "guild_id": str(guild_id),
            "name": f"news-{position + 1}",
            "position": position,
            "permission_overwrites": [],
            "nsfw": False,
            "parent_id": None,
            "topic": None,
            "rate_limit_per_user": 0,
            "last_message_id": None,
            "flags": 0,
        }

    def _member_json(self, user_id: int, guild_id: int | None = None) -> dict[str, Any]:
        members = self._guild_members(guild_id if guild_id is not None else self.guild_id)
        member = members.get(user_id) or {"roles": [], "joined_at": _now(), "nick": None}
        return {
            "user": self._user_json(user_id),
            "roles": [str(r) for r in member["roles"]],
            "joined_at": _iso(member["joined_at"]),
            "nick": member["nick"],
            "avatar": None,
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "pending": False,
            "flags": 0,
            "communication_disabled_until": None,
        }

    def _dm_json(self, channel_id: int) -> dict[str, Any]:
        user_id = self._dm_recipient[channel_id]
        return {
            "id": str(channel_id),
            "type": 1,
            "recipients": [self._user_json(user_id)],
            "last_message_id": None,
            "flags": 0,
        }

    def _bot_denied(self, channel_id: int) -> int:
        denied = self._denied.get(channel_id, 0)
        return denied | _SEND_MESSAGES if channel_id in self._forbidden else denied

    def _bot_permissions(self, channel_id: int) -> int:
        return BOT_PERMISSIONS & ~self._bot_denied(channel_id)

    def _channel_json(self, channel_id: int) -> dict[str, Any]:
        channel = dict(self._channels[channel_id])
        denied = self._bot_denied(channel_id)
        overwrites: list[dict[str, Any]] = []
        hidden = channel_id in self._hidden
        if hidden:  # type 0: a role's overwrite (@everyone's id is the guild's), 1: a member's
            overwrites.append(
                {"id": channel["guild_id"], "type": 0, "allow": "0", "deny": str(_VIEW_CHANNEL)}
            )
            overwrites += [
                {"id": str(role), "type": 0, "allow": str(_VIEW_CHANNEL), "deny": "0"}
                for role in self._hidden[channel_id]
            ]
        if denied or hidden:
            allow = _VIEW_CHANNEL & ~denied if hidden else 0
            overwrites.append(
                {"id": str(self.bot_user_id), "type": 1, "allow": str(allow), "deny": str(denied)}
            )
        channel["permission_overwrites"] = overwrites
        return channel

    def _app_json(self) -> dict[str, Any]:
        return {
            "id": str(self.application_id),
            "name": self._users[self.bot_user_id]["username"],
            "icon": None,
            "description": "fake application",
            "summary": "",
            "type": None,
            "bot_public": False,
            "bot_require_code_grant": False,
            "verify_key": "0" * 64,
            "flags": APPLICATION_FLAGS,
            "owner": self._user_json(self.owner_id),
            "team": None,
            "bot": self._user_json(self.bot_user_id),
            "redirect_uris": [],
            "interactions_endpoint_url": None,
            "approximate_guild_count": 1,
            "tags": [],
        }

    def _guild_json(self, guild_id: int | None = None) -> dict[str, Any]:
        gid = self.guild_id if guild_id is None else guild_id
        main = gid == self.guild_id
        members = [self._member_json(uid, gid) for uid in self._guild_members(gid)]
        roles = (
            list(self._roles.values())
            if main
            else [self._make_role(gid, "@everyone", permissions=0, position=0)]
        )
        return {
            "id": str(gid),
            "name": self.guild_name if main else self._other_guilds[gid].name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "owner_id": str(self.owner_id),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 1,
            "explicit_content_filter": 0,
            "roles": roles,
            "emojis": [],
            "stickers": [],
            "features": [],
            "mfa_level": 0,
            "application_id": None,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "vanity_url_code": None,
            "description": None,
            "banner": None,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "preferred_locale": "en-US",
            "public_updates_channel_id": None,
            "nsfw_level": 0,
            "premium_progress_bar_enabled": False,
            "unavailable": False,
            "large": False,
            "lazy": True,
            "joined_at": _iso(self._guild_members(gid)[self.bot_user_id]["joined_at"]),
            "member_count": len(members),
            "members": members,
            "channels": [
                {k: v for k, v in self._channel_json(cid).items() if k != "guild_id"}
                for cid, c in self._channels.items()
                if cid not in self._removed and c["guild_id"] == str(gid)
            ],
            "threads": [],
            "presences": [],
            "voice_states": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }

    def _message_json(self, message: FakeMessage) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(message.id),
            "channel_id": str(message.channel_id),
            "author": self._user_json(message.author_id),
            "content": message.content or "",
            "timestamp": _iso(message.created_at),
            "edited_timestamp": _iso(message.edited_at),
            "tts": message.tts,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [
                {
                    "id": str(a.id),
                    "filename": a.filename,
                    "size": len(a.data),
                    "url": f"http://127.0.0.1:{self.port}/attachments/{message.channel_id}/{a.id}/{a.filename}",
                    "proxy_url": f"http://127.0.0.1:{self.port}/attachments/{message.channel_id}/{a.id}/{a.filename}",
                    "content_type": a.content_type,
                }
                for a in message.attachments
            ],
            "embeds": [{"type": "rich", **e} for e in message.embeds],
            "reactions": [],
            "pinned": False,
            "type": message.type,
            "flags": message.flags,
            "components": message.components,
        }
        if message.nonce is not None:
            data["nonce"] = message.nonce
        if message.webhook_id is not None:
            data["webhook_id"] = str(message.webhook_id)
            data["application_id"] = str(self.application_id)
        return data

    def _create_message(
        self,
        *,
        channel_id: int,
        payload: dict[str, Any],
        files: list[FakeAttachment],
        webhook_id: int | None = None,
        interaction_id: int | None = None,
        msg_type: int = 0,
    ) -> FakeMessage:
        message = FakeMessage(
            id=self._next_id(),
            channel_id=channel_id,
            content=payload.get("content"),
            embeds=list(payload.get("embeds") or []),
            nonce=None if payload.get("nonce") is None else str(payload["nonce"]),
            enforce_nonce=bool(payload.get("enforce_nonce", False)),
            allowed_mentions=payload.get("allowed_mentions"),
            flags=int(payload.get("flags") or 0),
            dm_recipient_id=self._dm_recipient.get(channel_id),
            guild_id=(
                int(self._channels[channel_id]["guild_id"])
                if channel_id in self._channels
                else None
            ),
            author_id=self.bot_user_id,
            components=list(payload.get("components") or []),
            attachments=list(files),
            tts=bool(payload.get("tts", False)),
            message_reference=payload.get("message_reference"),
            payload=payload,
            webhook_id=webhook_id,
            interaction_id=interaction_id,
            type=msg_type,
        )
        self._messages_by_id[message.id] = message
        return message

    @staticmethod
    def _apply_edit(
        message: FakeMessage, payload: dict[str, Any], files: list[FakeAttachment]
    ) -> None:
        if "content" in payload:
            message.content = payload["content"]
        if "embeds" in payload:
            message.embeds = list(payload["embeds"] or [])
        if "components" in payload:
            message.components = list(payload["components"] or [])
        if "allowed_mentions" in payload:
            message.allowed_mentions = payload["allowed_mentions"]
        if payload.get("flags") is not None:
            # Only SUPPRESS_EMBEDS can be toggled by an edit; EPHEMERAL is fixed at creation.
            message.flags = (message.flags & ~4) | (int(payload["flags"]) & 4)
        if "attachments" in payload:
            kept = {str(a.get("id")) for a in payload["attachments"] or []}
            message.attachments = [a for a in message.attachments if str(a.id) in kept] + files
        message.edited_at = _now()

    # ------------------------------------------------------------------ HTTP plumbing

    def _add_routes(self, router: web.UrlDispatcher) -> None:
        p = API_PREFIX
        router.add_get("/gateway", self._gateway_ws)
        router.add_get(p + "/users/@me", self._get_me)
        router.add_post(p + "/users/@me/channels", self._create_dm)
        router.add_get(p + "/users/{user_id}", self._get_user)
        router.add_get(p + "/oauth2/applications/@me", self._get_application)
        router.add_get(p + "/applications/@me", self._get_application)
        router.add_get(p + "/gateway", self._get_gateway)
        router.add_get(p + "/gateway/bot", self._get_gateway)
        router.add_get(p + "/guilds/{guild_id}", self._get_guild)
        router.add_get(p + "/guilds/{guild_id}/members/{user_id}", self._get_member)
        router.add_get(p + "/channels/{channel_id}", self._get_channel)
        router.add_get(p + "/channels/{channel_id}/messages", self._list_messages)
        router.add_post(p + "/channels/{channel_id}/messages", self._post_message)
        router.add_post(p + "/channels/{channel_id}/typing", self._typing)
        msg = p + "/channels/{channel_id}/messages/{message_id}"
        router.add_get(msg, self._get_message)
        router.add_patch(msg, self._patch_message)
        router.add_delete(msg, self._delete_message)
        router.add_post(msg + "/threads", self._start_thread)
        router.add_put(p + "/applications/{app_id}/commands", self._put_commands)
        router.add_get(p + "/applications/{app_id}/commands", self._get_commands)
        router.add_put(p + "/applications/{app_id}/guilds/{guild_id}/commands", self._put_commands)
        router.add_get(p + "/applications/{app_id}/guilds/{guild_id}/commands", self._get_commands)
        router.add_post(
            p + "/interactions/{interaction_id}/{token}/callback", self._interaction_callback
        )
        router.add_post(p + "/webhooks/{app_id}/{token}", self._post_followup)
        hook_msg = p + "/webhooks/{app_id}/{token}/messages/{message_id}"
        router.add_get(hook_msg, self._get_webhook_message)
        router.add_patch(hook_msg, self._patch_webhook_message)
        router.add_delete(hook_msg, self._delete_webhook_message)
        router.add_route("*", "/{tail:.*}", self._unknown)

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        if not request.path.startswith(API_PREFIX + "/"):
            return await handler(request)
        path = request.path[len(API_PREFIX) :]
        self.requests.append((request.method, path))
        self._bump()
        body: Any = None
        request[_FILES] = []
        try:
            if request.content_type == "multipart/form-data":
                form = await request.post()
                files: list[FakeAttachment] = []
                for key, value in form.items():
                    if key == "payload_json":
                        body = json.loads(str(value))
                    elif isinstance(value, web.FileField):
                        files.append(
                            FakeAttachment(
                                id=self._next_id(),
                                filename=value.filename,
                                content_type=value.content_type,
                                data=value.file.read(),
                            )
                        )
                request[_FILES] = files
            elif request.can_read_body:
                raw = await request.read()
                body = json.loads(raw) if raw else None
        except ValueError:
            response: web.StreamResponse = _error(
                400, 50109, "The request body contains invalid JSON."
            )
        else:
            request[_BODY] = body
            public = path.startswith(("/interactions/", "/webhooks/"))
            if not public and request.headers.get("Authorization") != f"Bot {self.token}":
                response = _error(401, 0, "401: Unauthorized")
            else:
                response = await handler(request)
        self.log.append(
            FakeRequest(request.method, path, response.status, dict(request.query), body)
        )
        self._bump()
        return response

    async def _unknown(self, request: web.Request) -> web.Response:
        path = (
            request.path[len(API_PREFIX) :] if request.path.startswith(API_PREFIX) else request.path
        )
        self.unknown_routes.append((request.method, path))
        return _error(404, 0, "404: Not Found")

    async def _infrastructure_failure(self, *, injected: bool) -> web.Response | None:
        """Outage, injected failures, rate limits, in that order (injected=False: outage only)."""
        if self._down:
            if self._down_mode == "hang":
                self.hanging += 1
                self._bump()
                try:
                    await self._up.wait()
                finally:
                    self.hanging -= 1
                    self._bump()
                if self._closing:
                    return _error(503, 0, "503: Service Unavailable")
            else:
                return _error(503, 0, "503: Service Unavailable")
        if not injected:
            return None
        if self._failures:
            status = self._failures.popleft()
            return _error(status, 0, f"{status}: injected failure")
        if self._rate_limits:
            retry_after, is_global, cloudflare = self._rate_limits.popleft()
            if cloudflare:
                return web.Response(
                    status=429,
                    text="<html><body>Error 1015: You are being rate limited.</body></html>",
                    content_type="text/html",
                    headers={"Retry-After": str(math.ceil(retry_after))},
                )
            headers = {
                "Retry-After": str(math.ceil(retry_after)),
                "Via": "1.1 google",
                "X-RateLimit-Limit": "5",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": f"{time.time() + retry_after:.3f}",
                "X-RateLimit-Reset-After": f"{retry_after:.3f}",
                "X-RateLimit-Bucket": "fake-messages-bucket",
                "X-RateLimit-Scope": "global" if is_global else "user",
            }
            if is_global:
                headers["X-RateLimit-Global"] = "true"
            body = {
                "message": "You are being rate limited.",
                "retry_after": retry_after,
                "global": is_global,
            }
            if is_global:
                body["code"] = 0
            return _json(body, 429, headers)
        return None

    def _channel_or_404(self, raw: str) -> tuple[int | None, web.Response | None]:
        cid = _snowflake_param(raw)
        if (
            cid is None
            or cid in self._removed
            or (cid not in self._channels and cid not in self._dm_recipient)
        ):
            return None, _error(404, 10003, "Unknown Channel")
        return cid, None

    # ------------------------------------------------------------------ REST handlers

    async def _get_me(self, request: web.Request) -> web.Response:
        if self._login_failures:
            status = self._login_failures.popleft()
            return _error(status, 0, f"{status}: injected failure")
        return _json(self._users[self.bot_user_id])

    async def _get_user(self, request: web.Request) -> web.Response:
        uid = _snowflake_param(request.match_info["user_id"])
        if uid is None:
            return _error(404, 10013, "Unknown User")
        return _json(self._user_json(uid))

    async def _get_application(self, request: web.Request) -> web.Response:
        return _json(self._app_json())

    async def _get_gateway(self, request: web.Request) -> web.Response:
        return _json(
            {
                "url": f"ws://127.0.0.1:{self.port}/gateway",
                "shards": 1,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 1000,
                    "reset_after": 0,
                    "max_concurrency": 1,
                },
            }
        )

    async def _create_dm(self, request: web.Request) -> web.Response:
        body = request[_BODY] or {}
        try:
            user_id = int(body["recipient_id"])
        except (KeyError, TypeError, ValueError):
            return _error(
                400,
                50035,
                "Invalid Form Body",
                {
                    "recipient_id": {
                        "_errors": [
                            {"code": "BASE_TYPE_REQUIRED", "message": "This field is required"}
                        ]
                    }
                },
            )
        if user_id not in self._users:
            self.add_user(user_id)
        return _json(self._dm_json(self.dm_channel_id(user_id)))

    async def _get_member(self, request: web.Request) -> web.Response:
        # An outage applies; injected failures and rate limits are kept for message posts.
        failure = await self._infrastructure_failure(injected=False)
        if failure is not None:
            return failure
        gid = _snowflake_param(request.match_info["guild_id"])
        uid = _snowflake_param(request.match_info["user_id"])
        if gid is None or not self._bot_in_guild(gid):
            return _error(404, 10004, "Unknown Guild")
        if uid is None or uid not in self._guild_members(gid):
            return _error(404, 10007, "Unknown Member")
        return _json(self._member_json(uid, gid))

    async def _get_channel(self, request: web.Request) -> web.Response:
        cid, missing = self._channel_or_404(request.match_info["channel_id"])
        if missing is not None:
            return missing
        assert cid is not None
        if cid in self._dm_recipient:
            return _json(self._dm_json(cid))
        if not self._bot_permissions(cid) & _VIEW_CHANNEL:
            return _error(403, 50001, "Missing Access")
        return _json(self._channel_json(cid))

    async def _get_guild(self, request: web.Request) -> web.Response:
        """GET /guilds/{id}: the guild without members, channels and the other gateway-only
        parts, for a guild the bot is in."""
        gid = _snowflake_param(request.match_info["guild_id"])
        if gid is None or (gid != self.guild_id and gid not in self._other_guilds):
            return _error(404, 10004, "Unknown Guild")
        if not self._bot_in_guild(gid):
            return _error(403, 50001, "Missing Access")
        guild = self._guild_json(gid)
        for key in (
            "members",
            "channels",
            "threads",
            "presences",
            "voice_states",
            "stage_instances",
            "guild_scheduled_events",
            "soundboard_sounds",
            "joined_at",
            "member_count",
            "large",
            "lazy",
            "unavailable",
        ):
            guild.pop(key, None)
        return _json(guild)

    async def _typing(self, request: web.Request) -> web.Response:
        _, missing = self._channel_or_404(request.match_info["channel_id"])
        return missing or _no_content()

    async def _list_messages(self, request: web.Request) -> web.Response:
        cid, missing = self._channel_or_404(request.match_info["channel_id"])
        if missing is not None:
            return missing
        limit = int(request.query.get("limit", "50"))
        found = [m for m in self.messages_in(cid) if not m.deleted]
        found.sort(key=lambda m: m.id, reverse=True)
        return _json([self._message_json(m) for m in found[:limit]])

    async def _post_message(self, request: web.Request) -> web.Response:
        failure = await self._infrastructure_failure(injected=True)
        if failure is not None:
            return failure
        cid, missing = self._channel_or_404(request.match_info["channel_id"])
        if missing is not None:
            return missing
        assert cid is not None
        thread = self.threads.get(cid)
        if thread is not None:
            # In a thread, the parent channel's permissions count, Send Messages in Threads
            # instead of Send Messages.
            allowed = self._bot_permissions(thread.parent_id)
            if not allowed & _VIEW_CHANNEL:
                return _error(403, 50001, "Missing Access")
            if not allowed & _SEND_IN_THREADS:
                return _error(403, 50013, "Missing Permissions")
        elif cid not in self._dm_recipient:
            allowed = self._bot_permissions(cid)
            if not allowed & _VIEW_CHANNEL:
                return _error(403, 50001, "Missing Access")
            if not allowed & _SEND_MESSAGES:
                return _error(403, 50013, "Missing Permissions")
        recipient = self._dm_recipient.get(cid)
        if recipient is not None and recipient in self._closed_dms:
            return _error(403, 50007, "Cannot send messages to this user")
        payload = request[_BODY] or {}
        files = request[_FILES]
        invalid = _validate_message(payload, partial=False, files=len(files))
        if invalid is not None:
            return invalid
        nonce = payload.get("nonce")
        if nonce is not None and payload.get("enforce_nonce"):
            for existing in self.messages:
                if (
                    existing.channel_id == cid
                    and existing.nonce == str(nonce)
                    and not existing.deleted
                ):
                    existing.nonce_replays += 1
                    self.deduplicated.append(existing)
                    return _json(self._message_json(existing))
        message = self._create_message(channel_id=cid, payload=payload, files=files)
        self.messages.append(message)
        return _json(self._message_json(message))

    async def _get_message(self, request: web.Request) -> web.Response:
        cid, missing = self._channel_or_404(request.match_info["channel_id"])
        if missing is not None:
            return missing
        message = self._messages_by_id.get(_snowflake_param(request.match_info["message_id"]) or 0)
        if message is None or message.channel_id != cid or message.deleted:
            return _error(404, 10008, "Unknown Message")
        return _json(self._message_json(message))

    async def _patch_message(self, request: web.Request) -> web.Response:
        failure = await self._infrastructure_failure(injected=False)
        if failure is not None:
            return failure
        cid, missing = self._channel_or_404(request.match_info["channel_id"])
        if missing is not None:
            return missing
        assert cid is not None
        message = self._messages_by_id.get(_snowflake_param(request.match_info["message_id"]) or 0)
        if message is None or message.channel_id != cid or message.deleted:
            return _error(404, 10008, "Unknown Message")
        payload = request[_BODY] or {}
        invalid = _validate_message(payload, partial=True)
        if invalid is not None:
            return invalid
        self._apply_edit(message, payload, request[_FILES])
        self.edits.append(FakeEdit(message.id, cid, payload, _now()))
        return _json(self._message_json(message))

    async def _delete_message(self, request: web.Request) -> web.Response:
        failure = await self._infrastructure_failure(injected=False)
        if failure is not None:
            return failure
        cid, missing = self._channel_or_404(request.match_info["channel_id"])
        if missing is not None:
            return missing
        message = self._messages_by_id.get(_snowflake_param(request.match_info["message_id"]) or 0)
        if message is None or message.channel_id != cid or message.deleted:
            return _error(404, 10008, "Unknown Message")
        message.deleted = True
        self.deleted.append(message)
        return _no_content()

    async def _start_thread(self, request: web.Request) -> web.Response:
        """A public thread from a message, whose id becomes the thread's (channel) id. A second
        start on the same message: 400 / 160004, as Discord answers."""
        failure = await self._infrastructure_failure(injected=False)
        if failure is not None:
            return failure
        cid, missing = self._channel_or_404(request.match_info["channel_id"])
        if missing is not None:
            return missing
        assert cid is not None
        if cid in self._dm_recipient or cid in self.threads:
            return _error(400, 50024, "Cannot execute action on this channel type")
        allowed = self._bot_permissions(cid)
        if not allowed & _VIEW_CHANNEL:
            return _error(403, 50001, "Missing Access")
        if not allowed & _CREATE_PUBLIC_THREADS:
            return _error(403, 50013, "Missing Permissions")
        message = self._messages_by_id.get(_snowflake_param(request.match_info["message_id"]) or 0)
        if message is None or message.channel_id != cid or message.deleted:
            return _error(404, 10008, "Unknown Message")
        payload = request[_BODY] or {}
        existing = self.threads.get(message.id)
        if existing is not None:
            existing.attempts += 1
            return _error(400, 160004, "A thread has already been created for this message")
        name = payload.get("name")
        if not isinstance(name, str) or not 1 <= len(name) <= THREAD_NAME_LIMIT:
            return _error(
                400,
                50035,
                "Invalid Form Body",
                {
                    "name": {
                        "_errors": [
                            {
                                "code": "BASE_TYPE_BAD_LENGTH",
                                "message": f"Must be between 1 and {THREAD_NAME_LIMIT} in length.",
                            }
                        ]
                    }
                },
            )
        archive = payload.get("auto_archive_duration")
        if archive not in (None, 60, 1440, 4320, 10080):
            return _error(400, 50035, "Invalid Form Body")
        thread = FakeThread(message.id, cid, name, archive, payload)
        self.threads[message.id] = thread
        parent = self._channels[cid]
        self._channels[message.id] = {
            "id": str(message.id),
            "type": PUBLIC_THREAD,
            "guild_id": parent["guild_id"],
            "parent_id": str(cid),
            "name": name,
            "owner_id": str(self.bot_user_id),
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "message_count": 0,
            "member_count": 1,
            "flags": 0,
            "thread_metadata": {
                "archived": False,
                "auto_archive_duration": archive or 4320,
                "archive_timestamp": _iso(_now()),
                "locked": False,
            },
        }
        return _json(self._channels[message.id], status=201)

    # ------------------------------------------------------------------ application commands

    def _normalise_command(self, raw: dict[str, Any], guild_id: int | None) -> dict[str, Any]:
        ctype = int(raw.get("type", 1))
        key = (guild_id, ctype, raw["name"])
        if key not in self._command_ids:
            self._command_ids[key] = self._next_id()
        perms = raw.get("default_member_permissions")
        command: dict[str, Any] = {
            "id": str(self._command_ids[key]),
            "application_id": str(self.application_id),
            "version": str(self._next_id()),
            "type": ctype,
            "name": raw["name"],
            "name_localizations": raw.get("name_localizations"),
            "description": raw.get("description", ""),
            "description_localizations": raw.get("description_localizations"),
            "options": raw.get("options") or [],
            "default_member_permissions": None if perms is None else str(perms),
            "nsfw": bool(raw.get("nsfw", False)),
            "integration_types": raw.get("integration_types") or [0],
            "contexts": raw.get("contexts"),
        }
        if guild_id is None:
            command["dm_permission"] = raw.get("dm_permission", True)
        else:
            command["guild_id"] = str(guild_id)
        return command

    def _check_app(self, request: web.Request) -> tuple[int | None, web.Response | None]:
        if request.match_info["app_id"] != str(self.application_id):
            return None, _error(403, 50001, "Missing Access")
        raw_guild = request.match_info.get("guild_id")
        if raw_guild is None:
            return None, None
        if raw_guild != str(self.guild_id) and not self._bot_in_guild(int(raw_guild)):
            return None, _error(403, 50001, "Missing Access")
        return int(raw_guild), None

    async def _put_commands(self, request: web.Request) -> web.Response:
        guild_id, denied = self._check_app(request)
        if denied is not None:
            return denied
        payload = request[_BODY]
        invalid = _validate_commands(payload)
        if invalid is not None:
            return invalid
        commands = [self._normalise_command(c, guild_id) for c in payload]
        self.command_syncs.append((guild_id, payload))
        if guild_id is None:
            self.global_commands = commands
        else:
            self.guild_commands[guild_id] = commands
        return _json(commands)

    async def _get_commands(self, request: web.Request) -> web.Response:
        guild_id, denied = self._check_app(request)
        if denied is not None:
            return denied
        if guild_id is None:
            return _json(self.global_commands)
        return _json(self.guild_commands.get(guild_id, []))

    # ------------------------------------------------------------------ interaction answers

    async def _interaction_callback(self, request: web.Request) -> web.Response:
        iid = _snowflake_param(request.match_info["interaction_id"]) or 0
        reply = self._interactions_by_id.get(iid)
        if reply is None or reply.token != request.match_info["token"]:
            return _error(404, 10062, "Unknown interaction")
        body = request[_BODY] or {}
        route = "callback"
        if reply.type is not None:
            response = _error(400, 40060, "Interaction has already been acknowledged.")
            reply.errors.append((route, 400, json.loads(response.body)))  # type: ignore[arg-type]
            return response
        loop = asyncio.get_running_loop()
        if (
            self.interaction_deadline is not None
            and reply.dispatched_at is not None
            and loop.time() - reply.dispatched_at > self.interaction_deadline
        ):
            reply.errors.append(
                (route, 404, {"code": 10062, "message": "Unknown interaction (too late)"})
            )
            reply.expired = True
            self._bump()
            return _error(404, 10062, "Unknown interaction")
        ctype = body.get("type")
        data = body.get("data") or {}
        invalid: web.Response | None = None
        if ctype == 8:
            invalid = _validate_choices(data.get("choices"))
        elif ctype in (4, 7):
            invalid = _validate_message(data, partial=ctype == 7, files=len(request[_FILES]))
        elif ctype not in (5, 6, 9):
            invalid = _error(
                400,
                50035,
                "Invalid Form Body",
                {
                    "type": {
                        "_errors": [
                            {
                                "code": "BASE_TYPE_CHOICES",
                                "message": f"Value {ctype} is not a valid callback type.",
                            }
                        ]
                    }
                },
            )
        if ctype == 8 and reply.kind != 4:
            invalid = _error(
                400,
                50035,
                "Invalid Form Body",
                {
                    "type": {
                        "_errors": [
                            {
                                "code": "INTERACTION_RESPONSE_TYPE_INVALID",
                                "message": "Autocomplete needs an autocomplete interaction.",
                            }
                        ]
                    }
                },
            )
        if invalid is not None:
            reply.errors.append((route, invalid.status, json.loads(invalid.body)))  # type: ignore[arg-type]
            self._bump()
            return invalid

        reply.type = ctype
        reply.callback_payload = body
        resource: dict[str, Any] | None = None
        if ctype == 8:
            reply.choices = list(data.get("choices") or [])
        elif ctype == 9:
            reply.modal = data
        elif ctype in (4, 5):
            reply.flags = int(data.get("flags") or 0)
            flags = reply.flags | (LOADING if ctype == 5 else 0)
            if ctype == 4:
                reply.content = data.get("content")
                reply.embeds = list(data.get("embeds") or [])
                reply.components = list(data.get("components") or [])
                reply.allowed_mentions = data.get("allowed_mentions")
            message = self._create_message(
                channel_id=reply.channel_id,
                payload={**data, "flags": flags},
                files=request[_FILES],
                webhook_id=self.application_id,
                interaction_id=reply.interaction_id,
                msg_type=20,
            )
            reply.message_id = message.id
            resource = {"type": ctype, "message": self._message_json(message)}
        self._bump()
        if request.query.get("with_response", "").lower() not in ("1", "true"):
            return _no_content()
        answer: dict[str, Any] = {
            "interaction": {
                "id": str(reply.interaction_id),
                "type": reply.kind,
                "response_message_id": None if reply.message_id is None else str(reply.message_id),
                "response_message_loading": ctype == 5,
                "response_message_ephemeral": bool(reply.flags & EPHEMERAL),
            }
        }
        if resource is not None:
            answer["resource"] = resource
        return _json(answer)

    def _reply_for_webhook(
        self, request: web.Request
    ) -> tuple[InteractionReply | None, web.Response | None]:
        reply = self._interactions_by_token.get(request.match_info["token"])
        if reply is None or request.match_info["app_id"] != str(self.application_id):
            return None, _error(404, 10015, "Unknown Webhook")
        if reply.type is None:
            # The token only becomes a webhook once the interaction was acknowledged.
            reply.errors.append(("webhook before callback", 404, {"code": 10015}))
            self._bump()
            return None, _error(404, 10015, "Unknown Webhook")
        return reply, None

    def _webhook_target(self, reply: InteractionReply, raw_id: str) -> FakeMessage | None:
        mid = reply.message_id if raw_id == "@original" else _snowflake_param(raw_id)
        message = self._messages_by_id.get(mid or 0)
        if message is None or message.interaction_id != reply.interaction_id or message.deleted:
            return None
        return message

    async def _post_followup(self, request: web.Request) -> web.Response:
        reply, missing = self._reply_for_webhook(request)
        if missing is not None:
            return missing
        assert reply is not None
        payload = request[_BODY] or {}
        invalid = _validate_message(payload, partial=False, files=len(request[_FILES]))
        if invalid is not None:
            reply.errors.append(("followup", invalid.status, json.loads(invalid.body)))  # type: ignore[arg-type]
            self._bump()
            return invalid
        message = self._create_message(
            channel_id=reply.channel_id,
            payload=payload,
            files=request[_FILES],
            webhook_id=self.application_id,
            interaction_id=reply.interaction_id,
        )
        reply.followups.append(message)
        self._bump()
        if request.query.get("wait", "").lower() in ("1", "true"):
            return _json(self._message_json(message))
        return _no_content()

    async def _get_webhook_message(self, request: web.Request) -> web.Response:
        reply, missing = self._reply_for_webhook(request)
        if missing is not None:
            return missing
        assert reply is not None
        message = self._webhook_target(reply, request.match_info["message_id"])
        if message is None:
            return _error(404, 10008, "Unknown Message")
        return _json(self._message_json(message))

    async def _patch_webhook_message(self, request: web.Request) -> web.Response:
        reply, missing = self._reply_for_webhook(request)
        if missing is not None:
            return missing
        assert reply is not None
        raw_id = request.match_info["message_id"]
        message = self._webhook_target(reply, raw_id)
        if message is None:
            return _error(404, 10008, "Unknown Message")
        payload = request[_BODY] or {}
        invalid = _validate_message(payload, partial=True)
        if invalid is not None:
            reply.errors.append(("edit", invalid.status, json.loads(invalid.body)))  # type: ignore[arg-type]
            self._bump()
            return invalid
        self._apply_edit(message, payload, request[_FILES])
        if message.id == reply.message_id:
            message.flags &= ~LOADING
            reply.edits.append(payload)
            reply.content = message.content
            reply.embeds = list(message.embeds)
            reply.components = list(message.components)
        self.edits.append(FakeEdit(message.id, message.channel_id, payload, _now()))
        self._bump()
        return _json(self._message_json(message))

    async def _delete_webhook_message(self, request: web.Request) -> web.Response:
        reply, missing = self._reply_for_webhook(request)
        if missing is not None:
            return missing
        assert reply is not None
        message = self._webhook_target(reply, request.match_info["message_id"])
        if message is None:
            return _error(404, 10008, "Unknown Message")
        message.deleted = True
        if message.id == reply.message_id:
            reply.deleted = True
        self.deleted.append(message)
        self._bump()
        return _no_content()

    # ------------------------------------------------------------------ gateway

    async def _gateway_ws(self, request: web.Request) -> web.StreamResponse:
        if self._closing:
            return web.Response(status=503)
        query = dict(request.query)
        self.gateway_queries.append(query)
        self.gateway_connections += 1
        compress = query.get("compress") if self.transport_compression else None
        ws = web.WebSocketResponse(autoping=True, max_msg_size=0, timeout=2.0)
        await ws.prepare(request)
        conn = _Conn(ws, request, compress)
        self._conns.add(conn)
        self._bump()
        try:
            if query.get("encoding", "json") != "json":
                await ws.close(code=4002, message=b"Only encoding=json is supported by the fake")
                return ws
            await conn.send(
                {
                    "op": 10,
                    "d": {
                        "heartbeat_interval": int(self.heartbeat_interval * 1000),
                        "_trace": ["fake"],
                    },
                    "s": None,
                    "t": None,
                }
            )
            async for msg in ws:
                if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    break
                try:
                    frame = json.loads(msg.data)
                except ValueError:
                    await ws.close(code=4002, message=b"Error while decoding payload.")
                    break
                self.gateway_received.append(frame)
                await self._on_gateway_frame(conn, frame)
        finally:
            self._conns.discard(conn)
            session = conn.session
            if session is not None and session.conn is conn:
                session.conn = None
                if self._live is session:
                    self.ready.clear()
            self._bump()
        return ws

    async def _on_gateway_frame(self, conn: _Conn, frame: dict[str, Any]) -> None:
        op = frame.get("op")
        d = frame.get("d")
        if op == 1:
            self.heartbeats += 1
            await conn.send({"op": 11, "d": None, "s": None, "t": None})
        elif op == 2:
            await self._identify(conn, d or {})
        elif op == 6:
            await self._resume(conn, d or {})
        elif op == 3:
            self.presence_updates.append(d or {})
        elif op == 8:
            await self._request_members(conn, d or {})
        # op 4 (voice state) and anything else: accepted and ignored.

    async def _identify(self, conn: _Conn, d: dict[str, Any]) -> None:
        if d.get("token") != self.token:
            await conn.ws.close(code=4004, message=b"Authentication failed.")
            return
        if conn.session is not None:
            await conn.ws.close(code=4005, message=b"Already authenticated.")
            return
        intents = int(d.get("intents") or 0)
        if self.reject_privileged_intents and intents & PRIVILEGED_INTENTS:
            await conn.ws.close(code=4014, message=b"Disallowed intent(s).")
            return
        session = _Session(secrets.token_hex(16), d)
        self._sessions[session.id] = session
        ready = {
            "v": 10,
            "user": self._users[self.bot_user_id],
            "guilds": [
                {"id": str(gid), "unavailable": True}
                for gid in (self.guild_id, *self._other_guilds)
                if self._bot_in_guild(gid)
            ],
            "session_id": session.id,
            "session_type": "normal",
            "resume_gateway_url": f"ws://127.0.0.1:{self.port}/gateway",
            "shard": d.get("shard") or [0, 1],
            "application": {"id": str(self.application_id), "flags": APPLICATION_FLAGS},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": [],
            "user_settings": {},
            "_trace": ["fake-discord"],
        }
        async with session.lock:
            session.conn = conn
            conn.session = session
            self.identify_count += 1
            self.identify_payloads.append(d)
            await session.dispatch_locked("READY", ready)
            await session.dispatch_locked("GUILD_CREATE", self._guild_json())
            for gid, guild in self._other_guilds.items():
                if guild.bot_member:
                    await session.dispatch_locked("GUILD_CREATE", self._guild_json(gid))
        self._live = session
        if session.conn is conn and not conn.ws.closed:
            self.ready.set()
        self._bump()

    async def _resume(self, conn: _Conn, d: dict[str, Any]) -> None:
        session = self._sessions.get(str(d.get("session_id")))
        seq = int(d.get("seq") or 0)
        oldest = session.buffer[0]["s"] if session is not None and session.buffer else 1
        if (
            session is None
            or d.get("token") != self.token
            or not session.resumable
            or seq < oldest - 1
        ):
            self.invalid_sessions += 1
            await conn.send({"op": 9, "d": False, "s": None, "t": None})
            self._bump()
            return
        async with session.lock:
            old = session.conn
            if old is not None and old is not conn:
                old.session = None
            session.conn = conn
            conn.session = session
            for frame in list(session.buffer):
                if frame["s"] > seq:
                    await conn.send(frame)
            await session.dispatch_locked("RESUMED", {"_trace": ["fake-discord"]})
            self.resume_count += 1
        self._live = session
        if session.conn is conn and not conn.ws.closed:
            self.ready.set()
        self._bump()

    async def _request_members(self, conn: _Conn, d: dict[str, Any]) -> None:
        session = conn.session
        if session is None:
            return
        wanted = {int(u) for u in d.get("user_ids") or []}
        query = (d.get("query") or "").lower()
        members = [
            self._member_json(uid)
            for uid in self._members
            if (not wanted or uid in wanted)
            and self._users.get(uid, {}).get("username", "").lower().startswith(query)
        ]
        limit = int(d.get("limit") or 0)
        if limit:
            members = members[:limit]
        chunk: dict[str, Any] = {
            "guild_id": str(self.guild_id),
            "members": members,
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": [str(u) for u in wanted if u not in self._members],
        }
        if d.get("nonce"):
            chunk["nonce"] = d["nonce"]
        await session.dispatch("GUILD_MEMBERS_CHUNK", chunk)


# --------------------------------------------------------------------------------------------
# pointing discord.py at the fake
# --------------------------------------------------------------------------------------------


class _DiscordPointer:
    """Set on construction; restore() (or calling it, or leaving the with-block) undoes it."""

    def __init__(self, fake: FakeDiscord) -> None:
        if not fake.api_base:
            raise RuntimeError("start() the FakeDiscord before pointing discord.py at it")
        self._saved = (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)
        discord.http.Route.BASE = fake.api_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)
        self._restored = False

    def restore(self) -> None:
        if not self._restored:
            discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = self._saved
            self._restored = True

    __call__ = restore

    def __enter__(self) -> _DiscordPointer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.restore()


def point_discord_at(fake: FakeDiscord) -> _DiscordPointer:
    """Point discord.py's REST base and gateway at the fake, now.

    Use as ``with point_discord_at(fake): ...`` or ``restore = point_discord_at(fake)`` followed
    by ``restore()``. Both globals are class attributes read per request / per connect, so the
    switch takes effect for clients that already exist."""
    return _DiscordPointer(fake)
