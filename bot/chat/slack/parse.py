"""`/news <sub-command> ...`: the text Slack sends, parsed into one command of bot.core.catalog.

Pure. Slack delivers command text with `&`, `<` and `>` escaped as entities and, because the
manifest sets `should_escape`, channels as `<#C123|name>`, people as `<@U123|name>` and links as
`<https://...>` (or `<http://host/path|host/path>` when typed without a scheme). Everything the
core gets back is plain text: queries keep their quotes and operators exactly as typed.

A sub-command that cannot be parsed raises CommandSyntaxError naming the sub-command, so the
reply can show that sub-command's usage.

Nothing here is about one command: the sub-commands, their usage lines and how each one's
arguments are typed all follow from the catalog's declarations. Numbers, intervals and
settings are `--flags` anywhere after the sub-command; the other arguments are words in
declared order, except that a query, which runs to the end of the line, comes last. A name runs up to a channel
that follows it, is one word (quoted if it has spaces) before a query, and is the rest of the
line at the end. A channel is always typed, even where the declaration lets it be left out: it
is what ends the name before it."""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from bot.chat.slack.destination import DESTINATION_FORM, PLATFORM
from bot.core.catalog import CATALOG, COMMANDS, Arg, Command, Kind, group_commands
from bot.core.catalog import GROUPS as CATALOG_GROUPS
from bot.core.destinations import Destination, DestinationKind
from bot.core.replies import Reply, ReplyItem

HELP = "help"  # Slack's own: the usage lines, all or one
# Words typed for a group's actions, whatever the group.
ACTIONS = {"delete": "remove", "rm": "remove", "ls": "list", "new": "add"}
# Numbers, intervals, choices and settings are typed as `--flag value`, anywhere after the
# sub-command (the other arguments are words, in a fixed order); a usage line shows the value as
# this, a choice's as its words ("--updates edit|thread"), a setting's as its label
# ("--quiet HH:MM-HH:MM").
PLACEHOLDER = {
    Kind.HOURS: "N",
    Kind.INTEGER: "N",
    Kind.INTERVAL: "10m",
    Kind.CHOICE: "word",
    Kind.SETTING: "",
}
_FLAG_KINDS = frozenset(PLACEHOLDER)


# Arguments that run to the end of the line, so come last.
_TO_THE_END = frozenset({Kind.QUERY, Kind.PINGS})
# A user group or a person picked as you type (`should_escape` sends <!subteam^S1|@desk> and
# <@U1|ann>): as a ping, the id it names.
_MENTION = re.compile(r"^<(?:!subteam\^(S[A-Z0-9]+)|@([UW][A-Z0-9]+))(?:\|[^>]*)?>$")


def _pings(tokens: list[_Token]) -> str:
    """The words of a `watchlist ping`, with Slack's mentions turned into the pings they name."""
    words = []
    for token in tokens:
        match = _MENTION.match(token.raw) if token.kind == "angle" else None
        if match is None:
            words.append(token.value)
        elif match.group(1):
            words.append(f"usergroup:{match.group(1)}")
        else:
            words.append(f"user:{match.group(2)}")
    return " ".join(w for w in words if w.strip())


def _is_flag(arg: Arg) -> bool:
    return arg.kind in _FLAG_KINDS


def _in_order(command: Command) -> list[Arg]:
    """The words a sub-command takes, in the order they are typed: a query runs to the end of
    the line, so it comes last."""
    words = [a for a in command.args if not _is_flag(a)]
    return sorted(words, key=lambda a: a.kind in _TO_THE_END)


def _one_word_name(command: Command) -> bool:
    """A name followed by a query is one word (quoted if it has spaces); followed by a channel it
    runs up to the channel; last, it is the rest of the line."""
    words = _in_order(command)
    return any(
        a.kind is Kind.NAME and b.kind is not Kind.CHANNEL for a, b in itertools.pairwise(words)
    )


def _usage_line(command: Command) -> str:
    parts = ["/news", command.name]
    for arg in _in_order(command):
        if arg.kind is Kind.CHANNEL:
            parts.append("<#channel>")  # always typed: it ends the name before it
        else:
            parts.append(f"<{arg.called}>" if arg.required else f"[{arg.called}]")
    for arg in filter(_is_flag, command.args):
        shown = "|".join(arg.choices) if arg.kind is Kind.CHOICE else PLACEHOLDER[arg.kind]
        flag = f"--{arg.option} {shown or arg.called}"
        parts.append(flag if arg.required else f"[{flag}]")
    notes = [
        *(["admins"] if command.admins_only else []),
        *(["quote a name with spaces"] if _one_word_name(command) else []),
        *([command.note] if command.note else []),
    ]
    line = " ".join(parts) + (f"  ({'; '.join(notes)})" if notes else "")
    return line + (f"  e.g. /news {command.name} {command.example}" if command.example else "")


# Usage per sub-command, in the order `help` lists them; the admin ones are marked.
USAGE: dict[str, str] = {c.name: _usage_line(c) for c in CATALOG} | {
    HELP: "/news help [sub-command]"
}
GROUPS = {g: g for g in CATALOG_GROUPS} | {group.plural: g for g, group in CATALOG_GROUPS.items()}
ALIASES = {alias: c.name for c in CATALOG for alias in c.aliases}
ADMIN_COMMANDS = frozenset(c.name for c in CATALOG if c.admins_only)

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
    run: int = 0  # tokens with no --flag between them share a run

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
    """The raw text from the first of `tokens` to the last, as plain text; where flags were
    taken out in between, the pieces are joined with one space."""
    pieces = []
    for _, run in itertools.groupby(tokens, key=lambda t: t.run):
        together = list(run)
        pieces.append(unslack(text[together[0].start : together[-1].end]).strip())
    return " ".join(p for p in pieces if p)


def _number(flag: str, raw: str | None, command: str, kind: Kind) -> float | int:
    if raw is None or not raw.strip():
        raise CommandSyntaxError(f"--{flag} needs a value.", command)
    value = raw.strip().removesuffix("h") if kind is Kind.HOURS else raw.strip()
    integer = kind is Kind.INTEGER
    try:
        number = int(value) if integer else float(value)
    except ValueError:
        what = "a whole number" if integer else "a number of hours"
        raise CommandSyntaxError(f"--{flag} takes {what}, not {raw.strip()!r}.", command) from None
    if not math.isfinite(number) or number <= 0:
        raise CommandSyntaxError(f"--{flag} must be more than 0, not {raw.strip()!r}.", command)
    return number


def _flags(
    tokens: list[_Token], command: str, allowed: dict[str, Arg]
) -> tuple[list[_Token], dict[str, Any]]:
    """Take `--flag value` out of `tokens` (anywhere, but not inside quotes); return the other
    tokens, each marked with the run of them it came from, and the values by argument name.
    Numbers are only checked to be positive: their range is the core's to enforce."""
    values: dict[str, Any] = {}
    kept: list[_Token] = []
    run = 0
    i = 0
    while i < len(tokens):
        token = tokens[i]
        match = _FLAG.match(token.raw) if token.kind == "word" else None
        if match is None:
            kept.append(replace(token, run=run))
            i += 1
            continue
        run += 1
        flag = match.group(1).lower()
        if flag not in allowed:
            known = ", ".join(f"--{f}" for f in allowed) or "none"
            raise CommandSyntaxError(f"Unknown option --{flag} (options: {known}).", command)
        arg = allowed[flag]
        if arg.name in values:
            raise CommandSyntaxError(f"--{flag} is given twice.", command)
        raw = match.group(2)
        if raw is None and i + 1 < len(tokens):
            following = tokens[i + 1]
            if not (following.kind == "word" and _FLAG.match(following.raw)):
                raw = following.value
                i += 1
        if arg.kind in (Kind.INTERVAL, Kind.CHOICE, Kind.SETTING):
            if not raw or not raw.strip():
                hint = f" ({' or '.join(arg.choices)})" if arg.choices else ""
                raise CommandSyntaxError(f"--{flag} needs a value{hint}.", command)
            values[arg.name] = raw.strip()
        else:
            values[arg.name] = _number(flag, raw, command, arg.kind)
        i += 1
    for arg in allowed.values():
        if arg.required and arg.name not in values:
            raise CommandSyntaxError(f"Give --{arg.option}.", command)
    return kept, values


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
    if match is None:
        return None
    return DESTINATION_FORM.format(Destination(PLATFORM, DestinationKind.CHANNEL, match.group(1)))


def parse_command(text: str) -> Invocation:
    """Parse the text after `/news`. Raises CommandSyntaxError with what is wrong."""
    text = (text or "").strip()
    tokens = _tokens(text)
    if not tokens:
        return Invocation(HELP, {"topic": None})
    head = tokens[0].value.lower()
    head = ALIASES.get(head, head)
    rest = tokens[1:]
    if head in GROUPS:
        group = GROUPS[head]
        if not rest:
            raise CommandSyntaxError(f"{group} needs an action.", group)
        action = rest[0].value.lower()
        name = f"{group} {ACTIONS.get(action, action)}"
        if name not in COMMANDS:
            actions = ", ".join(c.action for c in group_commands(group))
            raise CommandSyntaxError(
                f"Unknown {group} action {rest[0].value!r}; use one of: {actions}.", group
            )
        return _parse(COMMANDS[name], text, rest[1:])
    if head == HELP:
        return _help(rest)
    if head not in COMMANDS:
        raise CommandSyntaxError(f"Unknown sub-command {tokens[0].value!r}.")
    return _parse(COMMANDS[head], text, rest)


def _help(rest: list[_Token]) -> Invocation:
    topic = " ".join(t.value.lower() for t in rest[:2]) or None
    if topic is not None:
        words = topic.split()
        words[0] = GROUPS.get(words[0], ALIASES.get(words[0], words[0]))
        topic = " ".join(words)
        if topic not in USAGE:
            topic = topic.split()[0]
    return Invocation(HELP, {"topic": topic})


# --- the arguments of one sub-command, as its declaration says ---------------------------------


def _parse(command: Command, text: str, tokens: list[_Token]) -> Invocation:
    flags = {a.option: a for a in command.args if _is_flag(a)}
    values: dict[str, Any] = {}
    if flags:
        tokens, values = _flags(tokens, command.name, flags)
    values = {a.name: values.get(a.name) for a in flags.values()}
    words = _in_order(command)
    if not words and tokens:
        raise CommandSyntaxError(f"{command.name} takes no arguments.", command.name)
    needed = [a for a in words if a.required or a.kind is Kind.CHANNEL]
    if not tokens and len(needed) > 1:
        listed = [f"a {a.called}" for a in needed]
        raise CommandSyntaxError(f"Give {', '.join(listed[:-1])} and {listed[-1]}.", command.name)
    for i, arg in enumerate(words):
        before = words[i - 1] if i else None
        after = words[i + 1] if i + 1 < len(words) else None
        values[arg.name], tokens = _word(command, arg, before, after, text, tokens)
    if tokens:
        raise CommandSyntaxError(f"Unexpected {_rest(text, tokens)!r}.", command.name)
    return Invocation(command.name, values)


def _word(
    command: Command,
    arg: Arg,
    before: Arg | None,
    after: Arg | None,
    text: str,
    tokens: list[_Token],
) -> tuple[str | None, list[_Token]]:
    """One argument's value from the front of `tokens`, and the tokens left after it."""
    name, what = command.name, command.group or "command"
    if arg.kind is Kind.QUERY or arg.kind is Kind.PINGS:
        query = _rest(text, tokens) if arg.kind is Kind.QUERY else _pings(tokens)
        if not query and arg.required:
            where = f" after the {before.called}" if before else ""
            raise CommandSyntaxError(f"Give {'the' if before else 'a'} {arg.called}{where}.", name)
        return query or None, []
    if arg.kind is Kind.URL:
        if not tokens:
            raise CommandSyntaxError(f"Give the {what}'s URL first.", name)
        first = tokens[0]
        url = unslack(first.raw) if first.kind == "angle" else first.value
        if not re.match(r"^https?://\S+$", url, re.IGNORECASE):
            raise CommandSyntaxError(f"{url!r} is not an http:// or https:// URL.", name)
        return url, tokens[1:]
    if arg.kind is Kind.CHANNEL:
        channel = _channel(tokens[0]) if tokens else None
        if channel is None:
            raise CommandSyntaxError(
                "Name the channel to post to, as #channel (the bot must be in it).", name
            )
        return channel, tokens[1:]
    if after is not None and after.kind is Kind.CHANNEL:
        return _name_to_channel(command, text, tokens)
    if after is not None:  # one word, quoted if it has spaces
        if not tokens:
            raise CommandSyntaxError(f"Give the {what}'s {arg.called}.", name)
        return _name(tokens[0], name, what), tokens[1:]
    assert arg.kind is Kind.NAME, arg  # the one kind left
    # Last: the rest of the line.
    if not tokens:
        if arg.required:
            raise CommandSyntaxError(f"Give the {what}'s {arg.called}.", name)
        return None, []
    if len(tokens) == 1:
        if not arg.required and not tokens[0].value.strip():
            return None, []
        return _name(tokens[0], name, what), []
    return " ".join(_rest(text, tokens).strip(_QUOTES).split()) or None, []


def _name_to_channel(command: Command, text: str, tokens: list[_Token]) -> tuple[str, list[_Token]]:
    """A name that runs up to the channel, so `North Korea <#C1|desk> ...` works unquoted; a
    quoted name is taken whole even if it looks like a channel id."""
    name, what = command.name, command.group or "command"
    if tokens[0].kind == "quoted":
        if len(tokens) < 2 or _channel(tokens[1]) is None:
            raise CommandSyntaxError("After the name, give the channel as #channel.", name)
        return _name(tokens[0], name, what), tokens[1:]
    at = next((i for i, t in enumerate(tokens) if _channel(t) is not None), None)
    if at is None:
        raise CommandSyntaxError(
            "Name the channel to post to, as #channel (the bot must be in it).", name
        )
    if at == 0:
        raise CommandSyntaxError(f"Give the {what} a name before the channel.", name)
    return " ".join(_rest(text, tokens[:at]).split()), tokens[at:]


def help_reply(topic: str | None = None) -> Reply:
    if topic:
        return Reply(usage(topic))
    return Reply(
        "newsbot: news alerts in Slack. Sub-commands of /news (replies are only visible to you):",
        tuple(ReplyItem(line) for line in USAGE.values()),
    )
