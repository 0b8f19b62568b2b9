"""The settings' types and checks: one frozen model per section of the TOML file.

config.settings loads a file into these (that is where to start). They live apart from the
loader because the chat platforms import their sections from here, while the loader imports the
platforms, to check channels with every platform's destinations: this module names none."""

from __future__ import annotations

import ipaddress
import re
from datetime import timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from bot.core.destinations import DestinationError, Destinations
from bot.core.durations import parse_duration
from bot.core.models import PingWhen, Updates
from bot.core.pings import PingError, parse_pings, ping_when
from bot.core.query import QueryError, parse_query

Duration = Annotated[timedelta, BeforeValidator(parse_duration)]

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|kib|mib|gib)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    None: 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
}


def _parse_size(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _SIZE.match(str(value))
    if not match:
        raise ValueError(f"invalid size {value!r}: use e.g. 10MB or 512KB")
    unit = match.group(2).lower() if match.group(2) else None
    return int(float(match.group(1)) * _SIZE_UNITS[unit])


Size = Annotated[int, BeforeValidator(_parse_size)]


def _destinations(info: ValidationInfo) -> Destinations:
    """The platforms whose channels may be named: the loader passes them in (config.settings:
    every platform bot.chat.platforms lists)."""
    given = (info.context or {}).get("destinations")
    if not isinstance(given, Destinations):
        # The caller's mistake, not the file's: a TypeError is not reported as a config error.
        raise TypeError("validate settings with config.settings.settings_from_dict")
    return given


def _ops_channel(value: str, platform: str, info: ValidationInfo) -> str:
    """A platform's ops channel is one of that platform's channels."""
    if not value:
        return value
    destinations = _destinations(info)
    try:
        ok = destinations.channel(value).platform == platform
    except DestinationError:
        ok = False
    if not ok:
        form = destinations.form(platform)
        raise ValueError(
            f'{value!r} must look like "{form.help if form else f"{platform}:<channel id>"}"'
        )
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


DATABASE_URL_SCHEMES = ("postgresql://", "postgres://")


def check_database_url(value: str) -> str:
    """A PostgreSQL URL, `postgresql://user@host:port/db` (the error never repeats the value:
    it may hold a password)."""
    if not value.startswith(DATABASE_URL_SCHEMES):
        scheme = value.split("://", 1)[0] + "://" if "://" in value else "no scheme"
        raise ValueError(
            f"must be a PostgreSQL URL such as postgresql://user@host:5432/newsbot "
            f"(got {scheme}); for SQLite set [storage] path instead"
        )
    return value


class StorageSettings(_Section):
    path: str = "data/newsbot.db"
    # PostgreSQL instead of SQLite (NEWSBOT_DATABASE_URL in the environment wins over it).
    url: str | None = None
    retention: Duration = timedelta(days=30)  # stored stories
    key_retention: Duration = timedelta(days=365)  # identity keys that prevent re-alerts

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if not value else check_database_url(value)


class ConsoleSettings(_Section):
    format: Literal["text", "jsonl"] = "text"


class AlertSettings(_Section):
    max_age: Duration = timedelta(hours=24)
    dedupe_window: Duration = timedelta(hours=48)
    max_updates: int = Field(default=3, ge=0, le=20)
    burst_limit: int = Field(default=5, ge=1, le=100)


class FetchSettings(_Section):
    timeout: Duration = timedelta(seconds=20)
    max_bytes: Size = 10_000_000
    max_redirects: int = Field(default=5, ge=0, le=20)
    concurrency: int = Field(default=32, ge=1, le=1000)
    per_host: int = Field(default=4, ge=1, le=100)
    default_interval: Duration = timedelta(minutes=5)
    min_interval: Duration = timedelta(seconds=30)
    user_agent: str = ""
    # Networks a feed added from chat may reach even though they are private (an internal wire
    # server, say). Loopback, private, link-local and metadata addresses are refused otherwise.
    allow_networks: list[str] = Field(default_factory=list)
    failing_after: int = Field(default=5, ge=1, le=1000)

    @field_validator("allow_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError as exc:
                raise ValueError(f"{item!r} is not an IP network (e.g. 10.1.0.0/16)") from exc
        return value


MAX_POLL_INTERVAL = timedelta(days=7)


class PollingSettings(_Section):
    """Adaptive polling (bot.core.polling): a feed without its own `interval` is polled twice
    per gap between its stories, never more often than min_interval nor less often than
    max_interval. Until its rate is known it is polled every [fetch] default_interval."""

    min_interval: Duration = timedelta(seconds=30)
    max_interval: Duration = timedelta(hours=1)
    adaptive: bool = True  # false: every feed at its configured interval
    # The server's Cache-Control max-age and Retry-After, and the document's <ttl>, <skipHours>
    # and <skipDays>: they only ever lengthen the interval, up to max_interval.
    honour_http_hints: bool = True
    honour_feed_hints: bool = True

    @model_validator(mode="after")
    def _order(self) -> PollingSettings:
        if self.min_interval < timedelta(seconds=1):
            raise ValueError("min_interval must be at least 1s")
        if self.max_interval < self.min_interval:
            raise ValueError("max_interval must not be less than min_interval")
        if self.max_interval > MAX_POLL_INTERVAL:
            # A feed unpolled for longer is no news feed; and a stored interval must fit the
            # databases' integer seconds.
            raise ValueError("max_interval must be at most 7d")
        return self


class FeedEntry(_Section):
    name: str = Field(min_length=1, max_length=100)
    url: str
    interval: Duration | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^(https?|file)://", value.strip(), re.IGNORECASE):
            raise ValueError(f"{value!r} must start with http://, https:// or file://")
        return value.strip()


class WatchlistEntry(_Section):
    name: str = Field(min_length=1, max_length=100)
    query: str
    channels: list[str] = Field(default_factory=lambda: ["console:desk"])
    # How an update of an alerted story shows: "edit" the card in place (the default), or
    # "thread": also a reply under the card, and the card names every feed that carries it.
    updates: Updates = Updates.EDIT
    # Who its cards may ping (bot.core.pings): nobody unless listed.
    ping: list[str] = Field(default_factory=list)
    ping_when: PingWhen = PingWhen.URGENT

    @field_validator("ping")
    @classmethod
    def _ping(cls, value: list[str], info: ValidationInfo) -> list[str]:
        destinations = _destinations(info)
        name = info.data.get("name", "?")
        try:
            for item in value:
                destinations.check_ping(item)
            return [str(p) for p in parse_pings(value)]
        except PingError as exc:
            raise ValueError(f"watchlist {name!r}: {exc}") from None

    @field_validator("ping_when", mode="before")
    @classmethod
    def _ping_when(cls, value: Any, info: ValidationInfo) -> PingWhen:
        try:
            return ping_when(value)
        except PingError as exc:
            raise ValueError(f"watchlist {info.data.get('name', '?')!r}: {exc}") from None

    @field_validator("query")
    @classmethod
    def _query(cls, value: str) -> str:
        try:
            parse_query(value)
        except QueryError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("channels")
    @classmethod
    def _channels(cls, value: list[str], info: ValidationInfo) -> list[str]:
        destinations = _destinations(info)
        for channel in value:
            if not destinations.is_channel(channel):
                raise ValueError(f"{channel!r} is not a channel: {destinations.help}")
        return value


class DiscordSettings(_Section):
    api_base: str = "https://discord.com/api/v10"
    gateway_url: str = "wss://gateway.discord.gg/"
    # The servers served: commands from any other are refused. Empty: the servers the bot is in
    # when it starts (bot/chat/discord/guilds.py).
    guild_ids: list[int] = Field(default_factory=list)
    admin_role_ids: list[int] = Field(default_factory=list)
    ops_channel: str = ""

    @field_validator("ops_channel")
    @classmethod
    def _ops(cls, value: str, info: ValidationInfo) -> str:
        return _ops_channel(value, "discord", info)


class SlackSettings(_Section):
    api_base: str = "https://slack.com/api/"
    admin_user_ids: list[str] = Field(default_factory=list)
    ops_channel: str = ""
    # The workspaces served: commands and events from any other are refused. Empty: the one the
    # bot token belongs to (auth.test).
    team_ids: list[str] = Field(default_factory=list)

    @field_validator("team_ids")
    @classmethod
    def _teams(cls, value: list[str]) -> list[str]:
        for team in value:
            if not re.match(r"^T[A-Z0-9]{2,30}$", team):
                raise ValueError(f"{team!r} is not a Slack team id (they look like T0123ABCD)")
        return value

    @field_validator("api_base")
    @classmethod
    def _slash(cls, value: str) -> str:
        # slack_sdk joins method names onto the base: without the slash "api/" + "chat.post"
        # would become "apichat.post".
        return value if value.endswith("/") else value + "/"

    @field_validator("ops_channel")
    @classmethod
    def _ops(cls, value: str, info: ValidationInfo) -> str:
        return _ops_channel(value, "slack", info)


class ChatSettings(_Section):
    # After a failure to reach Discord or Slack, the wait before the next attempt starts here,
    # doubles (with jitter) and never exceeds reconnect_max; retried forever, except a refused
    # token. Short values are for tests against local fakes.
    reconnect_min: Duration = timedelta(seconds=1)
    reconnect_max: Duration = timedelta(seconds=60)

    @model_validator(mode="after")
    def _order(self) -> ChatSettings:
        if self.reconnect_min <= timedelta(0):
            raise ValueError("reconnect_min must be more than 0s")
        if self.reconnect_max < self.reconnect_min:
            raise ValueError("reconnect_max must not be less than reconnect_min")
        return self


class HttpSettings(_Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    # Where WebSub hubs reach this server from outside (a reverse proxy's address, say): with
    # it, feeds that advertise a hub are pushed to (bot/feeds/websub.py). Empty: polling only.
    public_url: str = ""

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        value = value.strip()
        if not value:
            return value
        parts = urlsplit(value)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"{value!r} must be an http:// or https:// URL such as https://newsbot.example.org"
            )
        if parts.query or parts.fragment:
            raise ValueError(f"{value!r} must not have a query or a fragment")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _served(self) -> HttpSettings:
        if self.public_url and not self.enabled:
            raise ValueError(
                "public_url needs the HTTP server: hubs post to it (set enabled = true)"
            )
        return self


class Secrets(BaseModel):
    """From the environment only. SecretStr keeps them out of reprs and logs."""

    model_config = ConfigDict(frozen=True)
    discord_token: SecretStr | None = None
    slack_bot_token: SecretStr | None = None
    slack_app_token: SecretStr | None = None


class Settings(_Section):
    storage: StorageSettings = StorageSettings()
    console: ConsoleSettings = ConsoleSettings()
    alerts: AlertSettings = AlertSettings()
    fetch: FetchSettings = FetchSettings()
    polling: PollingSettings = PollingSettings()
    feeds: list[FeedEntry] = Field(default_factory=list)
    watchlists: list[WatchlistEntry] = Field(default_factory=list)
    discord: DiscordSettings = DiscordSettings()
    slack: SlackSettings = SlackSettings()
    chat: ChatSettings = ChatSettings()
    http: HttpSettings = HttpSettings()
    secrets: Secrets = Secrets()
    source: str = "<defaults>"  # the file these settings came from, for messages

    @model_validator(mode="after")
    def _unique_names(self) -> Settings:
        named = (
            ("feeds", [feed.name for feed in self.feeds]),
            ("watchlists", [watchlist.name for watchlist in self.watchlists]),
        )
        for kind, names in named:
            seen: set[str] = set()
            for index, name in enumerate(names):
                key = name.casefold()
                if key in seen:
                    raise ValueError(f"{kind}[{index}].name: {name!r} is used twice")
                seen.add(key)
        return self

    def feed_interval(self, entry: FeedEntry) -> timedelta:
        interval = entry.interval or self.fetch.default_interval
        return max(interval, self.fetch.min_interval)
