"""Destinations as values: each platform reads and writes its own, the registry dispatches on the
platform's name, and the core never names a platform."""

from __future__ import annotations

import re
import tokenize
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.chat.platforms import PLATFORMS, known_destinations
from bot.core.destinations import (
    Destination,
    DestinationError,
    DestinationKind,
    Destinations,
    PrefixedForm,
)
from config.settings import ConfigError, settings_from_dict

CHANNEL, DM = DestinationKind.CHANNEL, DestinationKind.DM
BOT = Path(__file__).resolve().parents[2] / "bot"

# What config files and databases already hold: each reads as the same destination, and is
# written back byte for byte.
WRITTEN = [
    ("console:desk", Destination("console", CHANNEL, "desk")),
    ("console:night-desk.2", Destination("console", CHANNEL, "night-desk.2")),
    ("console:dm:user00001", Destination("console", DM, "user00001")),
    ("discord:1093847561029384756", Destination("discord", CHANNEL, "1093847561029384756")),
    ("discord:12345", Destination("discord", CHANNEL, "12345")),
    ("discord:dm:284917365023981569", Destination("discord", DM, "284917365023981569")),
    ("discord:dm:42", Destination("discord", DM, "42")),
    ("slack:C05LKQ2M8TZ", Destination("slack", CHANNEL, "C05LKQ2M8TZ")),
    ("slack:G0123ABC", Destination("slack", CHANNEL, "G0123ABC")),
    ("slack:dm:U04ABCD1234", Destination("slack", DM, "U04ABCD1234")),
]

# The channel check the platforms' forms replaced, kept here as the reference they must match.
BEFORE = re.compile(r"^(console:[\w.-]{1,64}|discord:\d{5,25}|slack:[A-Z0-9]{5,30})$")
CHANNEL_TEXTS = [
    "console:desk",
    "console:a",
    "console:" + "x" * 64,
    "console:" + "x" * 65,
    "console:two words",
    "console:",
    "console:café",
    "discord:12345",
    "discord:1234",
    "discord:" + "9" * 25,
    "discord:" + "9" * 26,
    "discord:general",
    "discord:-12345",
    "slack:C0123",
    "slack:C012",
    "slack:c0123abc",
    "slack:" + "C" * 30,
    "slack:" + "C" * 31,
    "slack:#general",
    "teams:19abc",
    "desk",
    "",
    "discord:dm:284917365023981569",
    "slack:dm:U04ABCD1234",
    "console:dm:rita",
]


@pytest.mark.parametrize(("text", "destination"), WRITTEN, ids=[t for t, _ in WRITTEN])
def test_each_platform_reads_and_writes_its_own_forms(text: str, destination: Destination) -> None:
    registry = known_destinations()
    form = registry.form(destination.platform)
    assert form is not None
    assert form.parse(text) == destination == registry.parse(text)
    assert form.format(destination) == text == registry.format(destination)


@pytest.mark.parametrize("text", CHANNEL_TEXTS)
def test_channels_are_exactly_those_the_config_file_accepted_before(text: str) -> None:
    assert known_destinations().is_channel(text) is bool(BEFORE.match(text))


def test_help_lists_every_platform_in_the_words_it_always_used() -> None:
    assert known_destinations().help == (
        'use "console:<name>", "discord:<channel id>" or "slack:<channel id>"'
    )
    assert [p.DESTINATION_FORM.platform for p in PLATFORMS] == ["console", "discord", "slack"]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("teams:19abc", "'teams:19abc' names no platform this bot knows: use \"console:<name>\""),
        ("desk", "'desk' names no platform this bot knows"),
        ("", "'' names no platform this bot knows"),
        (
            "discord:general",
            "'discord:general' is not a discord channel: use \"discord:<channel id>\"",
        ),
        ("slack:#general", "'slack:#general' is not a slack channel: use \"slack:<channel id>\""),
        (
            "console:two words",
            "'console:two words' is not a console channel: use \"console:<name>\"",
        ),
        (
            "discord:dm:rita",
            "'discord:dm:rita' is not a discord direct message: 'rita' is not a user id",
        ),
        ("slack:dm:", "'slack:dm:' is not a slack direct message: '' is not a user id"),
    ],
)
def test_a_text_that_is_no_destination_is_refused_saying_why(text: str, reason: str) -> None:
    with pytest.raises(DestinationError) as refused:
        known_destinations().parse(text)
    assert str(refused.value).startswith(reason)


def test_a_person_is_no_channel_for_a_watchlist() -> None:
    registry = known_destinations()
    assert registry.parse("slack:dm:U1") == Destination("slack", DM, "U1")
    with pytest.raises(DestinationError, match=r"^'slack:dm:U1' is a person, not a channel: use"):
        registry.channel("slack:dm:U1")
    assert not registry.is_channel("slack:dm:U1")


def test_a_form_reads_only_its_own_platform() -> None:
    form = known_destinations().form("discord")
    assert form is not None
    with pytest.raises(DestinationError, match="is not a discord destination"):
        form.parse("slack:C0123ABC")
    with pytest.raises(DestinationError, match="is not a discord destination"):
        form.format(Destination("slack", CHANNEL, "C0123ABC"))
    with pytest.raises(DestinationError, match="no platform 'teams' is registered"):
        known_destinations().format(Destination("teams", CHANNEL, "19abc"))


@dataclass(frozen=True)
class PagerForm:
    """A platform with a text form of its own: "pager:+<number>" for a pager group."""

    platform: str = "pager"
    help: str = "pager:+<number>"

    def parse(self, text: str) -> Destination:
        if match := re.fullmatch(r"pager:\+(\d{3,15})", text):
            return Destination(self.platform, CHANNEL, match.group(1))
        if match := re.fullmatch(r"pager:dm:(\w+)", text):
            return Destination(self.platform, DM, match.group(1))
        raise DestinationError(f"{text!r} is not a pager group")

    def format(self, destination: Destination) -> str:
        if destination.kind == DM:
            return f"pager:dm:{destination.id}"
        return f"pager:+{destination.id}"


def test_a_platform_may_write_its_channels_its_own_way() -> None:
    registry = known_destinations(PagerForm())
    assert registry.platforms == ("console", "discord", "slack", "pager")
    assert registry.channel("pager:+4930123") == Destination("pager", CHANNEL, "4930123")
    assert registry.format(Destination("pager", CHANNEL, "4930123")) == "pager:+4930123"
    assert registry.help.endswith('"slack:<channel id>" or "pager:+<number>"')
    with pytest.raises(DestinationError, match="is not a pager group"):
        registry.parse("pager:4930123")
    # The registry it was added to is unchanged: registries are values.
    assert "pager" not in known_destinations()


def test_registering_a_platform_twice_or_under_a_bad_name_is_refused() -> None:
    registry = known_destinations()
    discord_form = registry.form("discord")
    assert discord_form is not None
    # The same form again (a platform handed to the bot that is also listed) changes nothing.
    assert registry.with_forms(discord_form).platforms == registry.platforms
    impostor = PrefixedForm("discord", channel=r"\w+", user=r"\w+")
    with pytest.raises(ValueError, match="two destination forms claim the platform 'discord'"):
        registry.with_forms(impostor)
    for name in ("Toy", "to:y", "", "toy room"):
        with pytest.raises(ValueError, match="cannot name a platform"):
            Destinations([PrefixedForm(name, channel=r"\w+", user=r"\w+")])


def test_a_form_must_write_a_persons_destination_as_subscriptions_are_delivered() -> None:
    @dataclass(frozen=True)
    class Elsewhere(PagerForm):
        platform: str = "elsewhere"

        def format(self, destination: Destination) -> str:
            return f"elsewhere:@{destination.id}"

    with pytest.raises(ValueError, match="subscriptions are delivered to 'elsewhere:dm:<user id>'"):
        Destinations([Elsewhere()])


def test_an_empty_registry_says_so() -> None:
    assert Destinations().help == "no chat platform is registered"
    with pytest.raises(DestinationError, match="no chat platform is registered"):
        Destinations().parse("console:desk")


def test_the_config_file_names_the_channels_of_the_platforms_it_is_loaded_with() -> None:
    raw = {"watchlists": [{"name": "Floods", "query": "flood", "channels": ["pager:+4930123"]}]}
    with pytest.raises(ConfigError) as refused:
        settings_from_dict(raw, {})
    assert str(refused.value).splitlines()[1] == (
        "  watchlists[0].channels: 'pager:+4930123' is not a channel: use \"console:<name>\", "
        '"discord:<channel id>" or "slack:<channel id>"'
    )
    settings = settings_from_dict(raw, {}, destinations=known_destinations(PagerForm()))
    assert settings.watchlists[0].channels == ["pager:+4930123"]


@pytest.mark.parametrize(
    ("section", "value", "message"),
    [
        (
            "discord",
            "slack:C0123ABC",
            "discord.ops_channel: 'slack:C0123ABC' must look like \"discord:<channel id>\"",
        ),
        (
            "discord",
            "discord:dm:42",
            "discord.ops_channel: 'discord:dm:42' must look like \"discord:<channel id>\"",
        ),
        (
            "slack",
            "slack:general",
            "slack.ops_channel: 'slack:general' must look like \"slack:<channel id>\"",
        ),
    ],
)
def test_an_ops_channel_is_a_channel_of_its_own_platform(
    section: str, value: str, message: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        settings_from_dict({section: {"ops_channel": value}}, {})
    assert str(refused.value).splitlines()[1] == f"  {message}"
    assert settings_from_dict({"discord": {"ops_channel": "discord:12345"}}, {}).discord.ops_channel


def _code_tokens(path: Path) -> list[str]:
    """Every token of a module but its comments: names, strings (docstrings included)."""
    with path.open("rb") as source:
        tokens = tokenize.tokenize(source.readline)
        return [t.string for t in tokens if t.type not in (tokenize.COMMENT, tokenize.ENCODING)]


def test_the_core_names_no_platform_outside_a_comment() -> None:
    platforms = [p.DESTINATION_FORM.platform for p in PLATFORMS]
    named = re.compile("|".join(platforms), re.IGNORECASE)
    found = [
        f"{path.name}: {token!r}"
        for path in sorted((BOT / "core").glob("*.py"))
        for token in _code_tokens(path)
        if named.search(token)
    ]
    assert found == []
    # The scan does see a platform's name where one is written.
    assert any(named.search(t) for t in _code_tokens(BOT / "chat" / "discord" / "destination.py"))
