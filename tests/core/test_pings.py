"""Urgent pings, opt-in: what the config file accepts, and which pings a card carries.

The end-to-end tests (tests/chat/test_pings.py) show what each platform is sent; these show the
rules on plain values: a bad ping is a config error that names the watchlist, and a card owed by
several watchlists pings the union of theirs, each only when its ping_when holds."""

from __future__ import annotations

import pytest

from bot.chat.discord.render import render_mentions as discord_mentions
from bot.chat.slack.render import render_card as slack_card
from bot.core.cards import Card
from bot.core.models import Origin, PingWhen, Watchlist
from bot.core.pings import Ping, PingBook, PingKind
from config.settings import ConfigError, settings_from_dict

ROLE = "3100000000000000001"


def config(**watchlist: object):
    return settings_from_dict(
        {"watchlists": [{"name": "Floods", "query": "flood", **watchlist}]}, {}
    )


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"ping": ["role:desk"]}, "'role:desk' is not a ping any platform here can send"),
        ({"ping": ["usergroup:U0ANN"]}, "'usergroup:U0ANN' is not a ping any platform here"),
        ({"ping": ["user:ann"]}, "'user:ann' is not a ping any platform here can send"),
        ({"ping": ["@everyone"]}, "'@everyone' is not a ping: use \"role:<id>\""),
        ({"ping": ["here:1"]}, "'here:1' is not a ping: use"),
        ({"ping": ["role:<@&123456>"]}, "'<@&123456>' is not an id"),
        ({"ping": [f"role:{ROLE}"] * 2 + [f"user:U{n:04d}" for n in range(20)]}, "at most 20"),
        ({"ping_when": "sometimes"}, "'sometimes' is not a ping_when: use \"urgent\""),
    ],
)
def test_a_bad_ping_is_a_config_error_naming_the_watchlist(entry: dict, problem: str) -> None:
    with pytest.raises(ConfigError) as refused:
        config(**entry)
    message = str(refused.value)
    assert "watchlists[0].ping" in message
    assert "watchlist 'Floods': " in message
    assert problem in message


def test_the_config_file_takes_each_platforms_pings_and_none_by_default() -> None:
    assert config().watchlists[0].ping == []
    assert config().watchlists[0].ping_when == PingWhen.URGENT
    entry = config(
        ping=[f"role:{ROLE}", " USERGROUP:S0FLOODS ", "user:U0ANN", f"role:{ROLE}"],
        ping_when="Always",
    ).watchlists[0]
    assert entry.ping == [f"role:{ROLE}", "usergroup:S0FLOODS", "user:U0ANN"]  # each once
    assert entry.ping_when == PingWhen.ALWAYS


def watchlist(name: str, *ping: str, when: PingWhen = PingWhen.URGENT) -> Watchlist:
    return Watchlist(0, name, "x", ("console:desk",), Origin.CONFIG, ping=ping, ping_when=when)


def test_a_card_pings_the_union_of_its_watchlists_each_when_its_ping_when_holds() -> None:
    book = PingBook(
        [
            watchlist("Floods", f"role:{ROLE}", "usergroup:S0FLOODS"),
            watchlist("Rivers", "user:U0ANN", f"role:{ROLE}", when=PingWhen.ALWAYS),
            watchlist("Quiet"),
        ]
    )
    role, group, ann = (
        Ping(PingKind.ROLE, ROLE),
        Ping(PingKind.USERGROUP, "S0FLOODS"),
        Ping(PingKind.USER, "U0ANN"),
    )
    assert book.for_card(["Floods"], urgent=False) == ()
    assert book.for_card(["floods"], urgent=True) == (role, group)  # names in any case
    assert book.for_card(["Floods", "Rivers"], urgent=False) == (ann, role)
    assert book.for_card(["Floods", "Rivers"], urgent=True) == (role, group, ann)
    assert book.for_card(["Quiet", "Gone"], urgent=True) == ()
    assert not PingBook([watchlist("Quiet")])


def test_a_stored_ping_that_no_longer_parses_costs_only_its_watchlists_pings(caplog) -> None:
    book = PingBook([watchlist("Old", "pager:42"), watchlist("Floods", f"role:{ROLE}")])
    assert book.for_card(["Old", "Floods"], urgent=True) == (Ping(PingKind.ROLE, ROLE),)
    assert "watchlist 'Old' pings nobody" in caplog.text


def test_each_platform_sends_its_own_pings_and_leaves_the_others_out() -> None:
    pings = (
        Ping(PingKind.ROLE, ROLE),
        Ping(PingKind.USERGROUP, "S0FLOODS"),
        Ping(PingKind.USER, "U0ANN"),
        Ping(PingKind.USER, "2100000000000000001"),
    )
    discord = discord_mentions(pings)
    assert discord.content == f"<@&{ROLE}> <@2100000000000000001>"
    assert discord.allowed.to_dict() == {
        "parse": [],
        "roles": [int(ROLE)],
        "users": [2100000000000000001],
    }
    assert [str(p) for p in discord.skipped] == ["usergroup:S0FLOODS", "user:U0ANN"]
    nobody = discord_mentions(())
    assert (nobody.content, nobody.allowed.to_dict()) == (None, {"parse": []})

    card = Card(
        headline="BREAKING: <!here> <!channel> <@U0EVIL> @everyone <!subteam^S0EVIL|@all>",
        url=None,
        source="Wire <!everyone>",
        published=None,
        summary="<@U0EVIL2> & <!here>",
        matched=("flood",),
        channel="slack:C0DESK",
        watchlists=("Floods",),
        urgent=True,
        pings=pings,
    )
    payload = slack_card(card)
    assert payload["blocks"][0]["text"]["text"] == "<!subteam^S0FLOODS> <@U0ANN>"
    assert payload["text"].startswith("<!subteam^S0FLOODS> <@U0ANN> ")
    everything = str(payload)
    assert everything.count("<!") == 2 and everything.count("<@") == 2  # ours, twice each
    updated = slack_card(Card(**{**_fields(card), "update": True}))
    assert "<!subteam" not in str(updated) and "<@" not in str(updated)


def _fields(card: Card) -> dict:
    return {name: getattr(card, name) for name in Card.__dataclass_fields__}


def test_the_console_shows_who_would_be_pinged() -> None:
    from bot.chat.console import render_digest_text, render_text
    from bot.core.cards import Digest

    role = Ping(PingKind.ROLE, ROLE)
    card = Card(
        "BREAKING: flood", None, "Wire", None, "", ("flood",), "console:desk", pings=(role,)
    )
    assert f"would ping: role:{ROLE}\n" in render_text(card)
    quiet = Card("Flood gauges steady", None, "Wire", None, "", ("flood",), "console:desk")
    assert "would ping" not in render_text(quiet)
    assert f"would ping: role:{ROLE}\n" in render_digest_text(Digest("console:desk", (quiet, card)))
