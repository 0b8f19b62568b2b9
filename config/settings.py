"""Typed settings: one TOML file, validated once at start-up, secrets only from the environment.

Nothing here runs at import time; `load_settings` is called by the composition root and the
result is passed down explicitly. A bad value raises ConfigError naming the key and the problem.
The sections' types are in config.schema (re-exported here)."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bot.core.destinations import Destinations
from config.schema import (
    AlertSettings,
    ChatSettings,
    ConsoleSettings,
    DiscordSettings,
    Duration,
    FeedEntry,
    FetchSettings,
    HttpSettings,
    Secrets,
    Settings,
    Size,
    SlackSettings,
    StorageSettings,
    WatchlistEntry,
)

__all__ = [
    "DEFAULT_CONFIG",
    "PACKAGED_CONFIG",
    "AlertSettings",
    "ChatSettings",
    "ConfigError",
    "ConsoleSettings",
    "DiscordSettings",
    "Duration",
    "FeedEntry",
    "FetchSettings",
    "HttpSettings",
    "Secrets",
    "Settings",
    "Size",
    "SlackSettings",
    "StorageSettings",
    "WatchlistEntry",
    "load_settings",
    "resolve_config_path",
    "settings_from_dict",
]

PACKAGED_CONFIG = Path(__file__).with_name("newsbot.toml")
DEFAULT_CONFIG = Path("config/newsbot.toml")


class ConfigError(Exception):
    """Start-up stops with this message: it names the file, the key and the problem."""


def _location(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part not in ("function-after", "function-before") and not str(part).startswith(
            "function"
        ):
            out += f".{part}" if out else str(part)
    return out


def _explain(error: ValidationError, source: str) -> ConfigError:
    lines = []
    for item in error.errors():
        where = _location(item["loc"]) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key (check its spelling and section)"
        lines.append(f"  {where}: {message}")
    return ConfigError(f"{source}: invalid configuration\n" + "\n".join(lines))


def resolve_config_path(explicit: str | None, env: Mapping[str, str]) -> Path:
    """--config, then $NEWSBOT_CONFIG, then ./config/newsbot.toml, then the packaged default."""
    if explicit:
        return Path(explicit)
    if env.get("NEWSBOT_CONFIG"):
        return Path(env["NEWSBOT_CONFIG"])
    if DEFAULT_CONFIG.is_file():
        return DEFAULT_CONFIG
    return PACKAGED_CONFIG


def load_settings(
    path: Path, env: Mapping[str, str] | None = None, *, destinations: Destinations | None = None
) -> Settings:
    env = os.environ if env is None else env
    try:
        raw = tomllib.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return settings_from_dict(raw, env, source=str(path), destinations=destinations)


def settings_from_dict(
    raw: Mapping[str, Any],
    env: Mapping[str, str],
    *,
    source: str = "<config>",
    destinations: Destinations | None = None,
) -> Settings:
    """`destinations`: the platforms whose channels the file may name (default: every platform
    bot.chat.platforms lists)."""
    if destinations is None:
        # Imported when settings are loaded rather than with this module: the platforms bring
        # their chat libraries, which `newsbot --version` and `preview` do without.
        from bot.chat.platforms import known_destinations

        destinations = known_destinations()
    if "secrets" in raw or any(
        k in raw.get(s, {})
        for s in ("discord", "slack")
        for k in ("token", "bot_token", "app_token")
    ):
        raise ConfigError(
            f"{source}: tokens do not belong in the config file; set DISCORD_TOKEN, "
            "SLACK_BOT_TOKEN and SLACK_APP_TOKEN in the environment"
        )
    secrets = {
        "discord_token": env.get("DISCORD_TOKEN") or None,
        "slack_bot_token": env.get("SLACK_BOT_TOKEN") or None,
        "slack_app_token": env.get("SLACK_APP_TOKEN") or None,
    }
    try:
        return Settings.model_validate(
            {**raw, "secrets": secrets, "source": source},
            context={"destinations": destinations},
        )
    except ValidationError as exc:
        raise _explain(exc, source) from None
