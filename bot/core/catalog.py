"""Every chat command, declared once: its name, its arguments (what each is, its help, whether it
may be left out), who may run it, and the handler on Commands that does the work.

Each platform derives its own surface from these declarations and nothing else: one builds its
slash-command tree from them, another its `/news ...` parser, usage lines and help. So adding a
command means a declaration here and a handler on Commands; no platform code changes.

A declaration says what an argument *is*, never how a platform asks for it: whether a number is
an option with a range, a `--flag` or a word is each platform's business. That is also why the
core can stay free of any chat library (an import-linter contract checks it)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from bot.core.admin_commands import URL_LIMIT
from bot.core.commands import Commands
from bot.core.explain import WHY_LIMIT
from bot.core.models import UPDATE_MODES
from bot.core.quiet import TIMEZONE_LIMIT
from bot.core.replies import MAX_HOURS, MAX_LIMIT, NAME_LIMIT, Actor, Reply, refused

QUERY_LIMIT = 1000  # characters: far beyond any real query, short of any abuse
INTERVAL_LIMIT = 20  # characters: "1h30m" and the like
PINGS_LIMIT = 1000  # characters: twenty pings and a word
MAX_PAGES = 1000  # of /feed list: far beyond any desk's feeds, one per page


class Kind(StrEnum):
    """What an argument is. Every value reaches its handler as text, except the numbers."""

    QUERY = "query"  # in the query language; typed on a line, it runs to the end of the line
    NAME = "name"  # of a watchlist or a feed
    URL = "url"  # an http(s) address
    CHANNEL = "channel"  # "<platform>:<id>"; left out, the channel the command was typed in
    HOURS = "hours"  # a span of time, in hours (a float)
    INTEGER = "integer"  # a whole number
    INTERVAL = "interval"  # a duration as text: "90s", "5m", "1h"
    CHOICE = "choice"  # one word of the argument's `choices`, as text
    # Who to ping and when, as words ("role:<id> user:<id> always", "off"); typed on a line,
    # it runs to the end of the line. A platform may turn its own mention markup into these.
    PINGS = "pings"
    SETTING = "setting"  # a short value as text, read by its handler: "Europe/Berlin", "off"


class Who(StrEnum):
    EVERYONE = "everyone"
    ADMINS = "admins"


Suggest = Callable[[Commands, Actor, str], Awaitable[list[str]]]


@dataclass(frozen=True, slots=True)
class Arg:
    """One argument. Left out (when `required` is off), its handler gets None and applies the
    default that `help` names."""

    name: str  # the handler's keyword argument, and the option's name where options have names
    kind: Kind
    help: str  # one line of at most 100 characters, the strictest platform's limit
    required: bool = True
    low: int | None = None  # numbers: the smallest value
    high: int | None = None  # numbers: the largest value; text: the most characters
    label: str = ""  # what usage lines and messages call it; default: its name
    flag: str = ""  # where options are typed as `--flag value`, the flag; default: its name
    suggest: Suggest | None = None  # values to offer as the person types, from what they typed
    choices: tuple[str, ...] = ()  # a CHOICE's words (the handler still checks what it gets)

    @property
    def called(self) -> str:
        return self.label or self.name

    @property
    def option(self) -> str:
        return self.flag or self.name


@dataclass(frozen=True, slots=True)
class Group:
    name: str  # one word; its commands are named "<group> <action>"
    summary: str
    plural: str  # "watchlists": what an admin-only refusal says may not be changed


@dataclass(frozen=True, slots=True)
class Command:
    name: str  # "subscribe", or "<group> <action>" such as "watchlist add"
    summary: str  # one line, at most 100 characters
    handler: Callable[..., Awaitable[Reply]]  # a method of Commands, called (actor, **args)
    args: tuple[Arg, ...] = ()
    who: Who = Who.EVERYONE
    aliases: tuple[str, ...] = ()  # other words for it, where commands are typed as words
    # Open to everyone, but admins are shown more: platforms that ask who is an admin only
    # when they must ask for these too.
    admins_see_more: bool = False
    note: str = ""  # a few words a usage line adds in brackets
    example: str = ""  # example arguments, for a usage line

    @property
    def group(self) -> str | None:
        return self.name.split()[0] if " " in self.name else None

    @property
    def action(self) -> str:
        return self.name.split()[-1]

    @property
    def admins_only(self) -> bool:
        return self.who is Who.ADMINS

    async def run(self, commands: Commands, actor: Actor, args: Mapping[str, Any]) -> Reply:
        """The one way in from a platform: who may run it is checked here, then the handler
        gets every declared argument (None for those left out) and nothing else."""
        if self.admins_only and not actor.is_admin:
            ask = f" Ask {actor.admin_hint}." if actor.admin_hint else ""
            return refused(f"Only admins can {self._verb()}.{ask}")
        values = {arg.name: args.get(arg.name) for arg in self.args}
        return await self.handler(commands, actor, **values)

    def _verb(self) -> str:
        group = GROUPS.get(self.group or "")
        return f"{self.action} {group.plural}" if group else f"use {self.name}"


# --- the arguments several commands share ---------------------------------------------------


def _query(
    help: str, *, required: bool = True, label: str = "", suggest: Suggest | None = None
) -> Arg:
    return Arg("query", Kind.QUERY, help, required, high=QUERY_LIMIT, label=label, suggest=suggest)


def _name(help: str, *, required: bool = True) -> Arg:
    return Arg("name", Kind.NAME, help, required, high=NAME_LIMIT)


_HOURS = Arg("hours", Kind.HOURS, "How far back to look (default 24)", False, low=1, high=MAX_HOURS)
# A watchlist's `updates` option, as in the config file.
_UPDATES = Arg(
    "updates",
    Kind.CHOICE,
    "Updates of an alerted story: edit the card (default) or also reply in a thread under it",
    False,
    high=max(len(u) for u in UPDATE_MODES),
    choices=UPDATE_MODES,
)

# A person's delivery settings (bot.core.quiet), given with /subscribe, with or without a query.
SETTINGS = (
    Arg(
        "timezone",
        Kind.SETTING,
        "Your time zone, e.g. Europe/London (default UTC)",
        False,
        high=TIMEZONE_LIMIT,
        label="Area/City",
    ),
    Arg(
        "quiet",
        Kind.SETTING,
        "Quiet hours, e.g. 22:00-07:00 (or off): cards wait, then come as one digest",
        False,
        high=20,
        label="HH:MM-HH:MM",
    ),
    Arg(
        "urgent",
        Kind.SETTING,
        "yes or no: an urgent story comes at once, in quiet hours or a digest mode (default yes)",
        False,
        high=5,
        label="yes|no",
    ),
    Arg(
        "mode",
        Kind.SETTING,
        "instant (default), hourly or daily: each card at once, or one digest an hour or a day",
        False,
        high=10,
        label="instant|hourly|daily",
    ),
    Arg(
        "at",
        Kind.SETTING,
        "When the daily digest comes, e.g. 08:00 (the default)",
        False,
        high=5,
        label="HH:MM",
    ),
)

# --- the catalog -------------------------------------------------------------------------------

GROUPS: dict[str, Group] = {
    g.name: g
    for g in (
        Group("watchlist", "Manage the desk's watchlists", "watchlists"),
        Group("feed", "Manage the polled feeds", "feeds"),
    )
}

CATALOG: tuple[Command, ...] = (
    Command(
        "subscribe",
        "Get a direct message for new stories matching a query",
        Commands.subscribe,
        (
            _query('What to watch, e.g. "North Korea" OR Pyongyang', required=False),
            *SETTINGS,
        ),
        aliases=("sub",),
        note="a query, settings, or both",
        example='"North Korea" OR Pyongyang --quiet 22:00-07:00 --timezone Europe/London',
    ),
    Command(
        "unsubscribe",
        "Stop one of your subscriptions",
        Commands.unsubscribe,
        (_query("The subscription to stop", suggest=Commands.subscription_choices),),
        aliases=("unsub",),
        note="exactly as your subscriptions list it",
    ),
    Command(
        "subscriptions",
        "List your subscriptions",
        Commands.subscriptions,
        aliases=("subs", "list"),
        note="yours",
    ),
    Command(
        "recent",
        "Recent stories, newest first",
        Commands.recent,
        (
            _query(
                "Only stories matching this query (default: what the watchlists match)",
                required=False,
            ),
            _HOURS,
            Arg(
                "limit",
                Kind.INTEGER,
                "How many stories to show (default 10)",
                False,
                low=1,
                high=MAX_LIMIT,
            ),
        ),
    ),
    Command("status", "Feeds, deliveries and connections at a glance", Commands.status),
    Command(
        "why",
        "What happened to a story and why: feeds, watchlists, cards",
        Commands.why,
        (
            Arg(
                "story",
                Kind.QUERY,
                "The story's link, or words of its headline",
                high=WHY_LIMIT,
                label="link or headline words",
            ),
        ),
        admins_see_more=True,
        note="what concerns you and your channels; admins see all",
        example="https://wire.example/nk-missile",
    ),
    Command(
        "watchlist add",
        "Post stories matching a query to a channel",
        Commands.watchlist_add,
        (
            _name("A name for the watchlist"),
            _query('e.g. Putin OR Kremlin, "North Korea" NEAR/10 missile'),
            Arg("channel", Kind.CHANNEL, "Where the alerts go (default: this channel)", False),
            _UPDATES,
        ),
        who=Who.ADMINS,
        example="Floods #desk flood OR flooding --updates thread",
    ),
    Command(
        "watchlist edit",
        "Change a watchlist's query or how its cards show updates",
        Commands.watchlist_edit,
        (
            _name("The watchlist"),
            _query("Its new query (default: unchanged)", label="new query", required=False),
            _UPDATES,
        ),
        who=Who.ADMINS,
        example="Floods --updates thread",
    ),
    Command(
        "watchlist ping",
        "Who a watchlist's cards ping, and when (urgent stories or always)",
        Commands.watchlist_ping,
        (
            _name("The watchlist"),
            Arg(
                "pings",
                Kind.PINGS,
                'e.g. "role:123456789012345678 urgent", "usergroup:S0123 always" or "off"',
                high=PINGS_LIMIT,
            ),
        ),
        who=Who.ADMINS,
        note="nobody is pinged unless named here",
        example="Floods usergroup:S0123ABCD urgent",
    ),
    Command(
        "watchlist remove",
        "Delete a watchlist made in chat",
        Commands.watchlist_remove,
        (_name("The watchlist"),),
        who=Who.ADMINS,
    ),
    Command(
        "watchlist list",
        "All watchlists and where they post",
        Commands.watchlist_list,
        who=Who.ADMINS,
    ),
    Command(
        "watchlist test",
        "What a query would have matched (saves nothing)",
        Commands.watchlist_test,
        (_query("The query to try"), _HOURS),
        who=Who.ADMINS,
        note="nothing is saved",
    ),
    Command(
        "feed add",
        "Poll a new RSS or Atom feed",
        Commands.feed_add,
        (
            Arg("url", Kind.URL, "The feed's http(s) address", high=URL_LIMIT),
            _name("A short name (default: the feed's title)", required=False),
            Arg(
                "interval",
                Kind.INTERVAL,
                "How often to poll, e.g. 5m (default from the config)",
                False,
                high=INTERVAL_LIMIT,
                flag="every",
            ),
        ),
        who=Who.ADMINS,
    ),
    Command(
        "feed remove",
        "Stop polling a feed added in chat",
        Commands.feed_remove,
        (_name("The feed"),),
        who=Who.ADMINS,
    ),
    Command(
        "feed list",
        "Feeds, their health and how fast their stories reach the desk",
        Commands.feed_list,
        (
            Arg(
                "page",
                Kind.INTEGER,
                "Which page of the list (default 1)",
                False,
                low=1,
                high=MAX_PAGES,
            ),
        ),
        who=Who.ADMINS,
    ),
)

COMMANDS: dict[str, Command] = {c.name: c for c in CATALOG}


def group_commands(group: str) -> list[Command]:
    return [c for c in CATALOG if c.group == group]


def group_admins_only(group: str) -> bool:
    """A group is for admins when every command in it is."""
    return all(c.admins_only for c in group_commands(group))
