"""`/news <sub-command> ...`: the text Slack sends, parsed into one call of bot.core.commands.

Pure. Slack delivers command text with `&`, `<` and `>` escaped as entities and, because the
manifest sets `should_escape`, channels as `<#C123|name>`, people as `<@U123|name>` and links as
`<https://...>` (or `<http://host/path|host/path>` when typed without a scheme). Everything the
core gets back is plain text: queries keep their quotes and operators exactly as typed.

A sub-command that cannot be parsed raises CommandSyntaxError naming the sub-command, so the
reply can show that sub-command's usage."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

# Usage per sub-command, in the order `help` lists them; the admin ones are marked.
USAGE: dict[str, str] = {
    "subscribe": '/news subscribe <query>  e.g. /news subscribe "North Korea" OR Pyongyang',
    "unsubscribe": "/news unsubscribe <query>  (exactly as listed by /news subscriptions)",
    "subscriptions": "/news subscriptions  (yours)",
    "recent": "/news recent [query] [--hours N] [--limit N]",
    "status": "/news status",
    "watchlist add": "/news watchlist add <name> <#channel> <query>  (admins)",
    "watchlist edit": "/news watchlist edit <name> <query>  (admins; quote a name with spaces)",
    "watchlist remove": "/news watchlist remove <name>  (admins)",
    "watchlist list": "/news watchlist list  (admins)",
    "watchlist test": "/news watchlist test <query> [--hours N]  (admins; nothing is saved)",
    "feed add": "/news feed add <url> [name] [--every 10m]  (admins)",
    "feed remove": "/news feed remove <name>  (admins)",
    "feed list": "/news feed list  (admins)",
    "help": "/news help [sub-command]",
}
GROUPS = {"watchlist": "watchlist", "watchlists": "watchlist", "feed": "feed", "feeds": "feed"}
ALIASES = {
    "sub": "subscribe",
    "unsub": "unsubscribe",
    "subs": "subscriptions",
    "list": "subscriptions",
}
ADMIN_COMMANDS = frozenset(c for c in USAGE if c.startswith(("watchlist ", "feed ")))

_QUOTES = '"“”„'
_TOKEN = re.compile(
    r"""(?P<angle><[^<>\s]*>)                   # <#C1|name>, <@U1>, <https://x>, <!here>
      | (?P<quoted>["“”„][^"“”„]*(?:["“”„]|$))  # "a phrase" (an unclosed one runs to the end)
      | (?P<word>[^\s"“”„<]+|<)
    """,
    re.VERBOSE,
)
_CHANNEL_ID = re.compile(r"^(?:slack:)?([CG][A-Z0-9]{4,29})$")
_CHANNEL_REF = re.compile(r"^<#([CG][A-Z0-9]{4,29})(?:\|[^>]*)?>$")
# macOS and iOS turn "--" into an em or en dash as people type.
_FLAG = re.compile(r"^(?:--|—|–)([a-z][a-z-]*)(?:=(.*))?$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Invocation:
    """One parsed command: `command` is a key of USAGE, `args` the keyword arguments."""

    command: str
    args: Mapping[str, Any] = field(default_factory=dict)

    @property
    def admin(self) -> bool:
        return self.command in ADMIN_COMMANDS


class CommandSyntaxError(ValueError):
    def __init__(self, problem: str, command: str | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.command = command

    @property
    def usage(self) -> str:
        return usage(self.command)


def usage(command: str | None) -> str:
    """The usage of one sub-command, of a group (`watchlist`), or the list of sub-commands."""
    if command in USAGE:
        return f"Usage: {USAGE[command]}"
    lines = [u for c, u in USAGE.items() if command and c.startswith(command + " ")]
    if lines:
        return "Usage:\n" + "\n".join(lines)
    return (
        "Sub-commands: "
        + ", ".join(sorted({c.split()[0] for c in USAGE}))
        + (". /news help shows them all.")
    )


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "angle" | "quoted" | "word"
    raw: str
    start: int
    end: int

    @property
    def value(self) -> str:
        """The token as plain text: quotes removed, Slack's markup and entities undone."""
        if self.kind == "quoted":
            return unslack(self.raw[1:].rstrip(_QUOTES) if len(self.raw) > 1 else "")
        return unslack(self.raw)


def _unangle(match: re.Match[str]) -> str:
    inner = match.group(1)
    target, _, label = inner.partition("|")
    if target[:1] in "#@":
        return target[0] + (label or target[1:])
    if target.startswith("!"):
        # <!here>, <!channel>, <!subteam^S1|@team>: back to how the person typed it.
        return label or "@" + target[1:].split("^")[0]
    return target  # a link: the URL itself, not Slack's shortened label


def unslack(text: str) -> str:
    """Slack's markup in command text back to what the person typed."""
    text = re.sub(r"<([^<>]*)>", _unangle, text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _tokens(text: str) -> list[_Token]:
    return [
        _Token(m.lastgroup or "word", m.group(), m.start(), m.end()) for m in _TOKEN.finditer(text)
    ]


def _rest(text: str, tokens: list[_Token]) -> str:
    """The raw text from the first of `tokens` to the last, as plain text."""
    if not tokens:
        return ""
    return unslack(text[tokens[0].start : tokens[-1].end]).strip()


def _number(flag: str, raw: str | None, command: str, *, integer: bool) -> float | int:
    if raw is None or not raw.strip():
        raise CommandSyntaxError(f"--{flag} needs a value.", command)
    value = raw.strip().removesuffix("h") if flag == "hours" else raw.strip()
    try:
        number = int(value) if integer else float(value)
    except ValueError:
        kind = "a whole number" if integer else "a number of hours"
        raise CommandSyntaxError(f"--{flag} takes {kind}, not {raw.strip()!r}.", command) from None
    if not math.isfinite(number) or number <= 0:
        raise CommandSyntaxError(f"--{flag} must be more than 0, not {raw.strip()!r}.", command)
    return number


def _flags(
    text: str, tokens: list[_Token], command: str, allowed: dict[str, str]
) -> tuple[str, dict[str, Any]]:
    """Take `--name value` flags out of `tokens` (anywhere, but not inside quotes); return the
    remaining text, verbatim, and the flags' values. `allowed`: flag -> "int" | "float" | "str"."""
    values: dict[str, Any] = {}
    runs: list[list[_Token]] = [[]]  # the tokens between flags, each run contiguous
    i = 0
    while i < len(tokens):
        token = tokens[i]
        match = _FLAG.match(token.raw) if token.kind == "word" else None
        if match is None:
            runs[-1].append(token)
            i += 1
            continue
        runs.append([])
        name = match.group(1).lower()
        if name not in allowed:
            known = ", ".join(f"--{f}" for f in allowed) or "none"
            raise CommandSyntaxError(f"Unknown option --{name} (options: {known}).", command)
        if name in values:
            raise CommandSyntaxError(f"--{name} is given twice.", command)
        raw = match.group(2)
        if raw is None and i + 1 < len(tokens):
            following = tokens[i + 1]
            if not (following.kind == "word" and _FLAG.match(following.raw)):
                raw = following.value
                i += 1
        if allowed[name] == "str":
            if not raw or not raw.strip():
                raise CommandSyntaxError(f"--{name} needs a value.", command)
            values[name] = raw.strip()
        else:
            values[name] = _number(name, raw, command, integer=allowed[name] == "int")
        i += 1
    # The rest comes from the raw text between the flags, so a query keeps its spacing.
    return " ".join(p for p in (_rest(text, run) for run in runs) if p), values


def _name(token: _Token, command: str, what: str) -> str:
    name = " ".join(token.value.split())
    if not name:
        raise CommandSyntaxError(f"Give the {what} a name.", command)
    return name


def _channel(token: _Token) -> str | None:
    """ "slack:C123" for <#C123|name>, C123 or slack:C123; None for anything else."""
    match = _CHANNEL_REF.match(token.raw) if token.kind == "angle" else None
    if match is None and token.kind == "word":
        match = _CHANNEL_ID.match(token.raw)
        # A bare id must look like one (it has a digit): "CNN" is a name, not a channel.
        if match is not None and not any(c.isdigit() for c in match.group(1)):
            match = None
    return f"slack:{match.group(1)}" if match else None


def parse_command(text: str) -> Invocation:
    """Parse the text after `/news`. Raises CommandSyntaxError with what is wrong."""
    text = (text or "").strip()
    tokens = _tokens(text)
    if not tokens:
        return Invocation("help", {"topic": None})
    head = tokens[0].value.lower()
    head = ALIASES.get(head, head)
    rest = tokens[1:]
    if head in GROUPS:
        group = GROUPS[head]
        if not rest:
            raise CommandSyntaxError(f"{group} needs an action.", group)
        action = rest[0].value.lower()
        action = {"delete": "remove", "rm": "remove", "ls": "list", "new": "add"}.get(
            action, action
        )
        command = f"{group} {action}"
        if command not in USAGE:
            actions = ", ".join(c.split()[1] for c in USAGE if c.startswith(group + " "))
            raise CommandSyntaxError(
                f"Unknown {group} action {rest[0].value!r}; use one of: {actions}.", group
            )
        return _GROUP_PARSERS[command](text, rest[1:], command)
    if head not in _PARSERS:
        raise CommandSyntaxError(f"Unknown sub-command {tokens[0].value!r}.")
    return _PARSERS[head](text, rest, head)


# --- one parser per sub-command ---------------------------------------------------------------


def _query_command(text: str, rest: list[_Token], command: str) -> Invocation:
    query = _rest(text, rest)
    if not query:
        raise CommandSyntaxError("Give a query.", command)
    return Invocation(command, {"query": query})


def _no_arguments(text: str, rest: list[_Token], command: str) -> Invocation:
    if rest:
        raise CommandSyntaxError(f"{command} takes no arguments.", command)
    return Invocation(command)


def _recent(text: str, rest: list[_Token], command: str) -> Invocation:
    query, flags = _flags(text, rest, command, {"hours": "float", "limit": "int"})
    return Invocation(
        command, {"query": query or None, "hours": flags.get("hours"), "limit": flags.get("limit")}
    )


def _help(text: str, rest: list[_Token], command: str) -> Invocation:
    topic = " ".join(t.value.lower() for t in rest[:2]) or None
    if topic is not None:
        words = topic.split()
        words[0] = GROUPS.get(words[0], ALIASES.get(words[0], words[0]))
        topic = " ".join(words)
        if topic not in USAGE:
            topic = topic.split()[0]
    return Invocation("help", {"topic": topic})


def _watchlist_add(text: str, rest: list[_Token], command: str) -> Invocation:
    if not rest:
        raise CommandSyntaxError("Give a name, a channel and a query.", command)
    # The name runs up to the channel, so `North Korea <#C1|desk> ...` works unquoted; a quoted
    # name is taken whole even if it looks like a channel id.
    if rest[0].kind == "quoted":
        name_tokens, after = rest[:1], rest[1:]
        if not after or _channel(after[0]) is None:
            raise CommandSyntaxError("After the name, give the channel as #channel.", command)
    else:
        at = next((i for i, t in enumerate(rest) if _channel(t) is not None), None)
        if at is None:
            raise CommandSyntaxError(
                "Name the channel to post to, as #channel (the bot must be in it).", command
            )
        if at == 0:
            raise CommandSyntaxError("Give the watchlist a name before the channel.", command)
        name_tokens, after = rest[:at], rest[at:]
    name = (
        _name(name_tokens[0], command, "watchlist")
        if name_tokens[0].kind == "quoted"
        else " ".join(_rest(text, name_tokens).split())
    )
    channel = _channel(after[0])
    query = _rest(text, after[1:])
    if not query:
        raise CommandSyntaxError("Give the query after the channel.", command)
    return Invocation(command, {"name": name, "channel": channel, "query": query})


def _watchlist_edit(text: str, rest: list[_Token], command: str) -> Invocation:
    if len(rest) < 2:
        raise CommandSyntaxError("Give the watchlist's name and its new query.", command)
    return Invocation(
        command, {"name": _name(rest[0], command, "watchlist"), "query": _rest(text, rest[1:])}
    )


def _named(what: str) -> Callable[[str, list[_Token], str], Invocation]:
    def parse(text: str, rest: list[_Token], command: str) -> Invocation:
        if not rest:
            raise CommandSyntaxError(f"Give the {what}'s name.", command)
        if len(rest) == 1:
            return Invocation(command, {"name": _name(rest[0], command, what)})
        return Invocation(command, {"name": " ".join(_rest(text, rest).strip(_QUOTES).split())})

    return parse


def _watchlist_test(text: str, rest: list[_Token], command: str) -> Invocation:
    query, flags = _flags(text, rest, command, {"hours": "float"})
    if not query:
        raise CommandSyntaxError("Give a query to try.", command)
    return Invocation(command, {"query": query, "hours": flags.get("hours")})


def _feed_add(text: str, rest: list[_Token], command: str) -> Invocation:
    if not rest or _FLAG.match(rest[0].raw):
        raise CommandSyntaxError("Give the feed's URL first.", command)
    url = unslack(rest[0].raw) if rest[0].kind == "angle" else rest[0].value
    if not re.match(r"^https?://\S+$", url, re.IGNORECASE):
        raise CommandSyntaxError(f"{url!r} is not an http:// or https:// URL.", command)
    name, flags = _flags(text, rest[1:], command, {"every": "str"})
    name = " ".join(name.strip(_QUOTES).split()) or None
    return Invocation(command, {"url": url, "name": name, "interval": flags.get("every")})


_PARSERS = {
    "subscribe": _query_command,
    "unsubscribe": _query_command,
    "subscriptions": _no_arguments,
    "recent": _recent,
    "status": _no_arguments,
    "help": _help,
}
_GROUP_PARSERS = {
    "watchlist add": _watchlist_add,
    "watchlist edit": _watchlist_edit,
    "watchlist remove": _named("watchlist"),
    "watchlist list": _no_arguments,
    "watchlist test": _watchlist_test,
    "feed add": _feed_add,
    "feed remove": _named("feed"),
    "feed list": _no_arguments,
}
