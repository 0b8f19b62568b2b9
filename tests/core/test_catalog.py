"""The chat commands are declared once (bot.core.catalog), and every platform's surface is derived
from the declarations: Discord's slash tree, Slack's `/news` parser and usage lines. These tests
hold the declarations to what each platform needs, and each surface to exactly the declarations."""

from __future__ import annotations

import inspect
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import discord
import pytest

from bot.chat.discord.guilds import GuildGate
from bot.chat.discord.slash import SlashCommands
from bot.chat.slack import parse
from bot.chat.slack.parse import ADMIN_COMMANDS, USAGE, parse_command
from bot.chat.slack.platform import SlackPlatform
from bot.chat.slack.render import render_home
from bot.core.catalog import CATALOG, COMMANDS, GROUPS, Arg, Command, Kind, Who
from bot.core.commands import Actor, Commands, Reply
from bot.core.models import StoredStory, Story
from config.settings import settings_from_dict

ADMIN_ONLY = sorted(c.name for c in CATALOG if c.who is Who.ADMINS)
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


class NoStore:
    """A store no refused command may touch."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the store was used ({name}) by a command that was refused")


class Desk:
    """The few store calls and services a personal page needs."""

    config_source = "newsbot.toml"

    def __init__(self) -> None:
        self.subscriptions = {"slack:U1": ["Kremlin", '"North Korea"']}
        self.stories = [
            StoredStory(1, None, Story("Wire", "Kremlin talks"), NOW, 0, True),
        ]

    async def list_subscriptions(self, subscriber: str | None = None) -> list[Any]:
        return [type("Sub", (), {"query": q}) for q in self.subscriptions.get(subscriber, [])]

    async def recent_for_subscriber(self, subscriber: str, limit: int) -> list[StoredStory]:
        return self.stories[:limit] if subscriber in self.subscriptions else []

    async def subscriber_settings(self, subscribers: list[str]) -> dict[str, Any]:
        return {}  # nobody here set any


def commands(store: Any = None) -> Commands:
    return Commands(store or NoStore(), Desk(), clock=lambda: NOW)  # type: ignore[arg-type]


def slash_tree() -> SlashCommands:
    async def member(guild_id: int, user_id: int) -> bool:
        return True

    client = discord.Client(intents=discord.Intents.none())
    return SlashCommands(client, gate=GuildGate((), name_of=lambda g: None, is_member=member))


def slash_payloads() -> dict[str, dict[str, Any]]:
    """Every slash command as Discord receives it, by qualified name ("watchlist add")."""
    tree = slash_tree().tree
    found: dict[str, dict[str, Any]] = {}
    for top in tree.get_commands():
        payload = top.to_dict(tree)
        if isinstance(top, discord.app_commands.Group):
            for sub in payload["options"]:
                found[f"{top.name} {sub['name']}"] = {**sub, "group": payload}
        else:
            found[top.name] = payload
    return found


# --- the declarations ---------------------------------------------------------------------------


@pytest.mark.parametrize("command", CATALOG, ids=lambda c: c.name)
def test_each_handler_is_a_commands_method_taking_exactly_the_declared_arguments(
    command: Command,
) -> None:
    handler = command.handler
    assert getattr(Commands, handler.__name__) is handler
    assert inspect.iscoroutinefunction(handler)
    parameters = list(inspect.signature(handler).parameters)
    assert parameters[:2] == ["self", "actor"]
    assert parameters[2:] == [a.name for a in command.args]


@pytest.mark.parametrize("command", CATALOG, ids=lambda c: c.name)
def test_names_and_help_fit_every_platform(command: Command) -> None:
    assert re.fullmatch(r"[a-z]{1,32}( [a-z]{1,32})?", command.name)
    assert command.group is None or command.group in GROUPS
    assert 0 < len(command.summary) <= 100
    names = [a.name for a in command.args]
    assert len(set(names)) == len(names)
    for arg in command.args:
        assert re.fullmatch(r"[a-z]{1,32}", arg.name) and 0 < len(arg.help) <= 100
    # Typed on a line, a query runs to its end: there can be only one.
    assert sum(a.kind is Kind.QUERY for a in command.args) <= 1
    for alias in command.aliases:
        assert alias not in COMMANDS and alias not in GROUPS


def test_names_aliases_and_groups_are_unique() -> None:
    names = [c.name for c in CATALOG]
    aliases = [a for c in CATALOG for a in c.aliases]
    assert len(set(names)) == len(names) and len(set(aliases)) == len(aliases)
    assert all(any(c.group == g for c in CATALOG) for g in GROUPS)


# --- one list of commands, on every surface -----------------------------------------------------


def test_discords_tree_lists_exactly_the_declared_commands() -> None:
    assert set(slash_payloads()) == set(COMMANDS)
    assert [c.name for c in slash_tree().tree.get_commands()] == list(
        dict.fromkeys(c.group or c.name for c in CATALOG)
    )


@pytest.mark.parametrize("command", CATALOG, ids=lambda c: c.name)
def test_discord_options_are_the_declared_arguments(command: Command) -> None:
    payload = slash_payloads()[command.name]
    assert payload["description"] == command.summary
    options = {o["name"]: o for o in payload["options"]}
    assert list(options) == [a.name for a in sorted(command.args, key=lambda a: not a.required)]
    for arg in command.args:
        option = options[arg.name]
        assert option["description"] == arg.help
        assert option["required"] is arg.required
        assert bool(option.get("autocomplete")) is (arg.suggest is not None)
        if arg.kind in (Kind.HOURS, Kind.INTEGER):
            assert (option["type"], option["min_value"], option["max_value"]) == (
                4,
                arg.low,
                arg.high,
            )
        elif arg.kind is Kind.CHANNEL:
            assert option["type"] == 7
        elif arg.kind is Kind.CHOICE:
            assert option["type"] == 3
            assert [c["value"] for c in option["choices"]] == list(arg.choices)
        else:
            assert (option["type"], option["max_length"]) == (3, arg.high)
    if command.group:
        group = payload["group"]
        admins = command.who is Who.ADMINS
        assert group["dm_permission"] is not admins
        assert group["default_member_permissions"] == (32 if admins else None)  # Manage Server


def test_slacks_usage_lists_exactly_the_declared_commands_and_help() -> None:
    assert list(USAGE) == [*(c.name for c in CATALOG), "help"]
    assert set(ADMIN_COMMANDS) == set(ADMIN_ONLY)


@pytest.mark.parametrize("command", CATALOG, ids=lambda c: c.name)
def test_a_slack_usage_line_shows_every_argument(command: Command) -> None:
    line = USAGE[command.name]
    assert line.startswith(f"/news {command.name}")
    for arg in command.args:
        assert (f"--{arg.option}" if arg.kind in parse.PLACEHOLDER else arg.called) in line
    assert ("(admins" in line) is (command.who is Who.ADMINS)


SAMPLES: dict[Kind, tuple[str, Any]] = {
    Kind.QUERY: ('"North Korea" OR Pyongyang', '"North Korea" OR Pyongyang'),
    Kind.NAME: ('"Desk one"', "Desk one"),
    Kind.URL: ("<https://w.example/rss?a=1&amp;b=2>", "https://w.example/rss?a=1&b=2"),
    Kind.CHANNEL: ("<#C0123ABC|desk>", "slack:C0123ABC"),
    Kind.HOURS: ("6h", 6.0),
    Kind.INTEGER: ("3", 3),
    Kind.INTERVAL: ("10m", "10m"),
    Kind.CHOICE: ("thread", "thread"),
    # A user group picked as you type arrives as Slack's markup: the ping it names.
    Kind.PINGS: ("<!subteam^S0DESK|@desk> user:U0ANN always", "usergroup:S0DESK user:U0ANN always"),
    Kind.SETTING: ("Europe/London", "Europe/London"),
}


def typed(command: Command) -> str:
    """The command with every argument, typed as its usage line says."""
    words = [a for a in command.args if a.kind not in parse.PLACEHOLDER]
    words.sort(key=lambda a: a.kind in (Kind.QUERY, Kind.PINGS))
    flags = [a for a in command.args if a.kind in parse.PLACEHOLDER]
    return " ".join(
        [
            command.name,
            *(f"--{a.option} {SAMPLES[a.kind][0]}" for a in flags),
            *(SAMPLES[a.kind][0] for a in words),
        ]
    )


@pytest.mark.parametrize("command", CATALOG, ids=lambda c: c.name)
def test_slack_parses_every_declared_argument(command: Command) -> None:
    invocation = parse_command(typed(command))
    assert invocation.command == command.name
    assert dict(invocation.args) == {a.name: SAMPLES[a.kind][1] for a in command.args}
    assert invocation.admin is (command.who is Who.ADMINS)


def test_a_new_declaration_reaches_both_platforms_with_no_platform_code() -> None:
    async def pause(self: Commands, actor: Actor, name: str, hours: float | None) -> Reply:
        return Reply(f"paused {name} for {hours}")

    command = Command(
        "feed pause",
        "Stop polling a feed for a while",
        pause,
        (
            Arg("name", Kind.NAME, "The feed", high=100),
            Arg("hours", Kind.HOURS, "How long", False, low=1, high=48),
        ),
        who=Who.ADMINS,
    )

    slash = slash_tree()._slash(command).to_dict(slash_tree().tree)
    assert slash["name"] == "pause"
    assert [(o["name"], o["required"]) for o in slash["options"]] == [
        ("name", True),
        ("hours", False),
    ]
    assert slash["options"][1]["max_value"] == 48
    assert parse._usage_line(command) == "/news feed pause <name> [--hours N]  (admins)"
    tokens = parse._tokens("BBC World --hours 2")
    assert parse._parse(command, "BBC World --hours 2", tokens).args == {
        "name": "BBC World",
        "hours": 2.0,
    }


# --- who may run what ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ADMIN_ONLY)
async def test_an_admin_only_command_is_refused_to_a_member_before_its_handler_runs(
    name: str,
) -> None:
    member = Actor("slack", "U1", "rita", admin_hint="a workspace admin")

    reply = await COMMANDS[name].run(commands(), member, {})

    assert not reply.ok
    assert reply.text.startswith("Only admins can ")
    assert reply.text.endswith(". Ask a workspace admin.")


@pytest.mark.parametrize("name", ADMIN_ONLY)
async def test_slack_refuses_a_member_every_admin_command(name: str) -> None:
    platform = SlackPlatform(settings_from_dict({}, {}))
    platform.attach(commands())
    member = Actor("slack", "U1", admin_hint="a workspace admin")

    reply = await platform.run(parse_command(typed(COMMANDS[name])), member)

    assert not reply.ok and reply.text.startswith("Only admins can ")


def test_the_refusal_says_what_may_not_be_done() -> None:
    assert COMMANDS["watchlist add"]._verb() == "add watchlists"
    assert COMMANDS["feed list"]._verb() == "list feeds"


async def test_everyone_s_commands_are_not_refused() -> None:
    reply = await COMMANDS["subscriptions"].run(commands(Desk()), Actor("slack", "U1"), {})
    assert reply.ok and reply.text == "Your subscriptions (2):"


def test_the_end_to_end_refusal_tests_cover_every_admin_command() -> None:
    """The fakes' tests of refusals list commands by hand; a new one must be added there."""
    from tests.chat.discord.test_discord_e2e import EVERY_COMMAND
    from tests.chat.slack.test_slack_e2e import ADMIN_ONLY as SLACK_ADMIN_ONLY

    assert sorted(parse_command(text).command for text in SLACK_ADMIN_ONLY) == ADMIN_ONLY
    assert {name for name, _ in EVERY_COMMAND} == set(COMMANDS)


# --- what Slack's App Home says -----------------------------------------------------------------


async def test_the_personal_page_comes_from_commands_not_the_store() -> None:
    home = await commands(Desk()).home(Actor("slack", "U1"), stories=5)
    assert home.subscriptions == ("Kremlin", '"North Korea"')
    assert [s.story.title for s in home.stories] == ["Kremlin talks"]
    assert (await commands(Desk()).home(Actor("slack", "U2"), stories=5)).subscriptions == ()


def test_the_app_home_names_only_declared_commands() -> None:
    text = str(render_home([], [])) + str(render_home(["Kremlin"], []))
    named = set(re.findall(r"/news (\w+)", text))
    assert named and named <= {*COMMANDS, "help"}


def test_the_command_modules_of_the_core_name_no_platform() -> None:
    core = Path(__file__).parents[2] / "bot" / "core"
    for module in ("catalog.py", "commands.py", "admin_commands.py", "replies.py"):
        text = (core / module).read_text(encoding="utf-8")
        assert not re.search(r"discord|slack", text, re.IGNORECASE), module
