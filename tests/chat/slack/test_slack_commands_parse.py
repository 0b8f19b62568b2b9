"""`/news` command text as Slack sends it (entities, <#C..|name>, <url>) parsed into core calls.
Pure and table-driven."""

from __future__ import annotations

import pytest

from bot.chat.slack.parse import (
    ADMIN_COMMANDS,
    USAGE,
    CommandSyntaxError,
    Invocation,
    parse_command,
    unslack,
    usage,
)


def inv(command: str, **args: object) -> Invocation:
    return Invocation(command, args)


def recent(query: str | None = None, hours: float | None = None, limit: int | None = None):
    return inv("recent", query=query, hours=hours, limit=limit)


def subscribe(query: str | None = None, **settings: str) -> Invocation:
    """The settings left out are None (bot.core.catalog.SETTINGS)."""
    named = ("timezone", "quiet", "urgent", "mode", "at")
    return inv("subscribe", **{name: settings.get(name) for name in named}, query=query)


PARSED = [
    # help and the plain sub-commands
    ("", inv("help", topic=None)),
    ("   ", inv("help", topic=None)),
    ("help", inv("help", topic=None)),
    ("HELP watchlist add", inv("help", topic="watchlist add")),
    ("help feeds", inv("help", topic="feed")),
    ("status", inv("status")),
    ("subscriptions", inv("subscriptions")),
    ("subs", inv("subscriptions")),
    # queries are passed on exactly as typed, quotes and operators included
    ("subscribe Putin", subscribe("Putin")),
    (
        'subscribe "North Korea" OR Pyongyang',
        subscribe('"North Korea" OR Pyongyang'),
    ),
    ("Subscribe  “Kim Jong Un”  -rumour", subscribe("“Kim Jong Un”  -rumour")),
    ("subscribe AT&amp;T &lt;b&gt;", subscribe("AT&T <b>")),
    ("subscribe <https://w.example/x|w.example/x>", subscribe("https://w.example/x")),
    ("subscribe <!here> <@U123> <#C123|general>", subscribe("@here @U123 #general")),
    # a person's settings: flags anywhere, with or without a query
    ("subscribe", subscribe()),
    (
        "subscribe --quiet 22:00-07:00 --timezone Europe/London",
        subscribe(quiet="22:00-07:00", timezone="Europe/London"),
    ),
    (
        "sub Severn --mode daily —at 7:30 --urgent no",
        subscribe("Severn", mode="daily", at="7:30", urgent="no"),
    ),
    ('subscribe --quiet "22:00 - 07:00" flood', subscribe("flood", quiet="22:00 - 07:00")),
    (
        'unsubscribe "North Korea" OR Pyongyang',
        inv("unsubscribe", query='"North Korea" OR Pyongyang'),
    ),
    # why: a pasted link comes as Slack's markup, headline words as typed
    (
        "why <https://w.example/a?utm_source=x|w.example/a>",
        inv("why", story="https://w.example/a?utm_source=x"),
    ),
    ("why Kim Jong Un  visits", inv("why", story="Kim Jong Un  visits")),
    # recent: flags anywhere, but not inside quotes
    ("recent", recent()),
    ("recent Putin", recent("Putin")),
    ("recent Putin --hours 6 --limit 3", recent("Putin", 6.0, 3)),
    ("recent --limit 3 Kim NEAR/5 Putin", recent("Kim NEAR/5 Putin", None, 3)),
    ("recent Kim --hours=2h Putin", recent("Kim Putin", 2.0)),
    ("recent --hours 1.5", recent(None, 1.5)),
    ("recent —hours 12", recent(None, 12.0)),  # "--" auto-corrected to an em dash
    ('recent "--hours 3"', recent('"--hours 3"')),
    ("recent -rumour Putin", recent("-rumour Putin")),
    # watchlists
    (
        "watchlist add Korea <#C0123ABC|newsdesk> Pyongyang OR Seoul",
        inv(
            "watchlist add",
            name="Korea",
            channel="slack:C0123ABC",
            query="Pyongyang OR Seoul",
            updates=None,
        ),
    ),
    (
        'watchlist add "North Korea" <#C0123ABC|newsdesk> "Kim Jong Un"',
        inv(
            "watchlist add",
            name="North Korea",
            channel="slack:C0123ABC",
            query='"Kim Jong Un"',
            updates=None,
        ),
    ),
    (
        "watchlist add North Korea <#G0123ABC> DPRK",
        inv(
            "watchlist add",
            name="North Korea",
            channel="slack:G0123ABC",
            query="DPRK",
            updates=None,
        ),
    ),
    (
        "watchlist add Korea C0123ABC DPRK",
        inv("watchlist add", name="Korea", channel="slack:C0123ABC", query="DPRK", updates=None),
    ),
    (
        "watchlists new CNN news slack:C0123ABC CNN",
        inv("watchlist add", name="CNN news", channel="slack:C0123ABC", query="CNN", updates=None),
    ),
    (
        'watchlist edit "North Korea" Kim AND Putin',
        inv("watchlist edit", name="North Korea", query="Kim AND Putin", updates=None),
    ),
    ("watchlist edit Korea DPRK", inv("watchlist edit", name="Korea", query="DPRK", updates=None)),
    ("watchlist edit Korea", inv("watchlist edit", name="Korea", query=None, updates=None)),
    (
        "watchlist edit Korea --updates thread",
        inv("watchlist edit", name="Korea", query=None, updates="thread"),
    ),
    (
        "watchlist add Korea C0123ABC DPRK --updates thread",
        inv(
            "watchlist add", name="Korea", channel="slack:C0123ABC", query="DPRK", updates="thread"
        ),
    ),
    ("watchlist remove North Korea", inv("watchlist remove", name="North Korea")),
    ('watchlist delete "North Korea"', inv("watchlist remove", name="North Korea")),
    ("watchlist list", inv("watchlist list")),
    ("watchlist test Kim --hours 48", inv("watchlist test", query="Kim", hours=48.0)),
    ("watchlist test Kim", inv("watchlist test", query="Kim", hours=None)),
    # feeds: Slack wraps links in <...>, and labels a link typed without a scheme
    (
        "feed add <https://w.example/rss?a=1&amp;b=2>",
        inv("feed add", url="https://w.example/rss?a=1&b=2", name=None, interval=None),
    ),
    (
        "feed add <http://w.example/rss|w.example/rss> BBC World --every 10m",
        inv("feed add", url="http://w.example/rss", name="BBC World", interval="10m"),
    ),
    (
        'feed add https://w.example/rss "BBC World"',
        inv("feed add", url="https://w.example/rss", name="BBC World", interval=None),
    ),
    ("feed remove BBC World", inv("feed remove", name="BBC World")),
    ("feeds ls", inv("feed list", page=None)),
    ("feed list --page 3", inv("feed list", page=3)),
]


@pytest.mark.parametrize(("text", "expected"), PARSED, ids=[t or "<empty>" for t, _ in PARSED])
def test_command_text_is_parsed(text: str, expected: Invocation) -> None:
    assert parse_command(text) == expected


REFUSED = [
    # (text, the sub-command whose usage is shown, part of the problem)
    ("frobnicate", None, "Unknown sub-command 'frobnicate'"),
    ("subscribe --mode", "subscribe", "--mode needs a value"),
    ("subscribe --tz UTC", "subscribe", "Unknown option --tz"),
    ("unsubscribe   ", "unsubscribe", "Give a query"),
    ("status now", "status", "takes no arguments"),
    ("why   ", "why", "Give a link or headline words"),
    ("recent --hours", "recent", "--hours needs a value"),
    ("recent --hours soon", "recent", "--hours takes a number of hours, not 'soon'"),
    ("recent --hours -3", "recent", "--hours must be more than 0, not '-3'"),
    ("recent --hours 0", "recent", "must be more than 0"),
    ("recent --hours nan", "recent", "must be more than 0"),
    ("recent --limit 2.5", "recent", "--limit takes a whole number, not '2.5'"),
    ("recent --limit 3 --limit 4", "recent", "--limit is given twice"),
    ("recent --days 2", "recent", "Unknown option --days (options: --hours, --limit)"),
    ("watchlist", "watchlist", "watchlist needs an action"),
    ("watchlist fly", "watchlist", "Unknown watchlist action 'fly'"),
    ("watchlist add", "watchlist add", "Give a name, a channel and a query"),
    ("watchlist add Korea Pyongyang", "watchlist add", "Name the channel"),
    ("watchlist add <#C0123ABC|desk> DPRK", "watchlist add", "name before the channel"),
    ('watchlist add "Korea" DPRK', "watchlist add", "give the channel"),
    ("watchlist add Korea <#C0123ABC|desk>", "watchlist add", "Give the query"),
    (
        "watchlist edit Korea --updates",
        "watchlist edit",
        "--updates needs a value (edit or thread)",
    ),
    ("watchlist remove", "watchlist remove", "Give the watchlist's name"),
    ('watchlist remove ""', "watchlist remove", "Give the watchlist a name"),
    ("watchlist list all", "watchlist list", "takes no arguments"),
    ("watchlist test --hours 2", "watchlist test", "Give a query"),
    ("watchlist test Kim --limit 3", "watchlist test", "Unknown option --limit"),
    ("feed add", "feed add", "URL first"),
    ("feed add --every 5m", "feed add", "URL first"),
    ("feed add ftp://w.example/rss", "feed add", "'ftp://w.example/rss' is not an http"),
    ("feed add <mailto:a@b.example|a@b.example>", "feed add", "is not an http"),
    ("feed add <https://w.example/rss> --every", "feed add", "--every needs a value"),
    ("feed remove", "feed remove", "Give the feed's name"),
    ("feeds purge", "feed", "Unknown feed action 'purge'"),
]


@pytest.mark.parametrize(("text", "command", "problem"), REFUSED, ids=[r[0] for r in REFUSED])
def test_bad_command_text_is_refused_with_that_sub_commands_usage(
    text: str, command: str | None, problem: str
) -> None:
    with pytest.raises(CommandSyntaxError) as caught:
        parse_command(text)

    assert problem in caught.value.problem
    assert caught.value.command == command
    assert caught.value.usage == usage(command)


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        ("recent", "Usage: /news recent [query] [--hours N] [--limit N]"),
        ("feed", "Usage:\n/news feed add <url> [name] [--every 10m]  (admins)\n"),
        (None, "Sub-commands: feed, help, recent, status, subscribe, subscriptions, "),
        (
            "why",
            "Usage: /news why <link or headline words>  (what concerns you and your channels; "
            "admins see all)  e.g. /news why https://wire.example/nk-missile",
        ),
    ],
)
def test_usage_for_a_sub_command_a_group_or_all(command: str | None, shown: str) -> None:
    assert usage(command).startswith(shown)


def test_admin_commands_are_exactly_the_watchlist_and_feed_ones() -> None:
    assert {c for c in USAGE if c.split()[0] in ("watchlist", "feed")} == ADMIN_COMMANDS
    assert parse_command("feed list").admin and not parse_command("recent").admin


@pytest.mark.parametrize(
    ("text", "plain"),
    [
        ("<#C123|desk>", "#desk"),
        ("<#C123>", "#C123"),
        ("<@U123|rita>", "@rita"),
        ("<!subteam^S1|@desk>", "@desk"),
        ("<!channel>", "@channel"),
        ("<https://a.example/?x=1&amp;y=2|a.example>", "https://a.example/?x=1&y=2"),
        ("&lt;&gt;&amp;lt;", "<>&lt;"),
    ],
)
def test_unslack_turns_markup_back_into_what_was_typed(text: str, plain: str) -> None:
    assert unslack(text) == plain
