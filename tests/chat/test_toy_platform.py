"""A chat platform the bot has never heard of, defined here and nowhere else: its destinations
("toy:room-1", "toy:dm:rita"), a sender that records what it is given, and commands typed as
"<command> | <argument> | ...". Handed to a real NewsBot (real feed fetching and parsing, SQLite
in tmp_path), it receives cards and answers commands: a new platform needs no change to the core,
the config loader or the composition root."""

from __future__ import annotations

import io
from typing import Any

import pytest

from bot.app import NewsBot
from bot.chat.link import Link
from bot.chat.platforms import known_destinations
from bot.core.cards import Card, Digest
from bot.core.catalog import COMMANDS, Kind
from bot.core.commands import Actor, Commands, Reply
from bot.core.destinations import PrefixedForm
from bot.core.ports import SendResult
from config.settings import settings_from_dict
from tests.feedgen import Item, minutes_ago, rss

pytestmark = pytest.mark.timeout(30)

# Rooms are "room-<number>"; people are lower-case nicknames.
TOY_FORM = PrefixedForm(
    "toy", channel=r"room-\d{1,4}", user=r"[a-z]{2,16}", channel_help="room-<n>"
)


class ToySender:
    platform = "toy"

    def __init__(self) -> None:
        self.cards: list[Card] = []
        self.digests: list[Digest] = []
        self.notices: list[tuple[str, str]] = []

    async def send(self, card: Card) -> SendResult:
        self.cards.append(card)
        return SendResult.sent(f"toy-message-{len(self.cards)}")

    async def edit(self, card: Card, message_id: str) -> SendResult:
        self.cards.append(card)
        return SendResult.sent(message_id)

    async def reply(self, card: Card, message_id: str) -> SendResult:
        self.cards.append(card)
        return SendResult.sent(f"{message_id}-reply")

    async def send_digest(self, digest: Digest) -> SendResult:
        self.digests.append(digest)
        return SendResult.sent(f"toy-digest-{len(self.digests)}")

    async def notify(self, target: str, text: str) -> SendResult:
        self.notices.append((target, text))
        return SendResult.sent("toy-notice")

    def to(self, channel: str) -> list[str]:
        return [card.headline for card in self.cards if card.channel == channel]


class ToyPlatform:
    name = "toy"
    destination_form = TOY_FORM

    def __init__(self, admins: frozenset[str] = frozenset()) -> None:
        self.sender = ToySender()
        self.link = Link(self.name)
        self.admins = admins
        self.commands: Commands | None = None

    @property
    def connected(self) -> bool:
        return self.link.is_up

    def attach(self, commands: Commands) -> None:
        self.commands = commands

    async def start(self) -> None:
        self.link.up()

    async def close(self) -> None:
        self.link.down("closed")

    async def type(self, user: str, line: str) -> Reply:
        """A person types "<command> | <argument> | ...": the arguments in declared order."""
        assert self.commands is not None
        name, *values = (part.strip() for part in line.split("|"))
        command = COMMANDS[name]
        args: dict[str, Any] = {}
        for arg, value in zip(command.args, values, strict=False):
            args[arg.name] = {Kind.HOURS: float, Kind.INTEGER: int}.get(arg.kind, str)(value)
        actor = Actor("toy", user, user, is_admin=user in self.admins, admin_hint="a toy keeper")
        return await command.run(self.commands, actor, args)


def story(n: int, title: str) -> Item:
    return Item(title, "", f"https://wire.example/{n}", f"toy-{n}", minutes_ago(5))


async def toy_bot(tmp_path, feed_server, toy: ToyPlatform, **sections: Any) -> NewsBot:
    feed_server.set("wire.xml", rss([]))
    raw = {
        "storage": {"path": str(tmp_path / "bot.db")},
        "console": {"format": "jsonl"},
        "http": {"enabled": False},
        "feeds": [{"name": "Wire", "url": feed_server.url("wire.xml")}],
        # The config file may name the toy's rooms once the loader is told of its form.
        "watchlists": [{"name": "Floods", "query": "flood", "channels": ["toy:room-1"]}],
        **sections,
    }
    settings = settings_from_dict(raw, {}, destinations=known_destinations(TOY_FORM))
    return NewsBot(settings, stdout=io.StringIO(), platforms=[toy])


async def test_a_platform_defined_in_a_test_gets_cards_and_answers_commands(
    tmp_path, feed_server
) -> None:
    toy = ToyPlatform(admins=frozenset({"ed"}))
    async with await toy_bot(tmp_path, feed_server, toy) as bot:
        await bot.run_once()  # the feed's baseline; the toy connects
        assert toy.connected

        assert (await toy.type("rita", "subscribe | earthquake")).ok
        added = await toy.type("ed", "watchlist add | Quakes | earthquake OR tremor | toy:room-2")
        assert added.ok, added.text
        refused = await toy.type("rita", "watchlist add | Mine | storm | toy:room-3")
        assert (refused.ok, refused.text) == (
            False,
            "Only admins can add watchlists. Ask a toy keeper.",
        )
        for bad in ("toy:lobby", "toy:dm:rita", "teams:room-1"):
            reply = await toy.type("ed", f"watchlist add | Bad | storm | {bad}")
            assert (reply.ok, reply.text) == (
                False,
                f"{bad!r} is not a channel this bot can post to.",
            )

        feed_server.set(
            "wire.xml",
            rss(
                [
                    story(1, "Flood warning for the river valley"),
                    story(2, "Earthquake shakes the coast"),
                    story(3, "Markets close higher"),
                ]
            ),
        )
        await bot.run_once()
        await bot.run_once()  # nothing new: nothing more

        assert toy.sender.to("toy:room-1") == ["Flood warning for the river valley"]
        assert toy.sender.to("toy:room-2") == ["Earthquake shakes the coast"]
        assert toy.sender.to("toy:dm:rita") == ["Earthquake shakes the coast"]
        [personal] = [c for c in toy.sender.cards if c.channel == "toy:dm:rita"]
        assert (personal.subscriber, personal.matched) == ("toy:rita", ("Earthquake",))
        assert len(toy.sender.cards) == 3 and toy.sender.digests == []

        mine = await toy.type("rita", "subscriptions")
        assert [item.text for item in mine.items] == ["earthquake"]
        recent = await toy.type("rita", "recent | earthquake | 24 | 5")
        assert [item.text for item in recent.items] == ["Earthquake shakes the coast"]
        listed = await toy.type("ed", "watchlist list")
        assert [item.detail for item in listed.items] == [
            "flood -> toy:room-1 (config file)",
            "earthquake OR tremor -> toy:room-2",
        ]
        status = [item.text for item in (await toy.type("rita", "status")).items]
        assert "Deliveries: 0 pending, 3 sent, 0 failed" in status
        assert "Connections: toy up" in status


async def test_a_burst_folds_into_a_digest_in_a_toy_room_but_never_in_a_toy_dm(
    tmp_path, feed_server
) -> None:
    """The delivery worker tells a person from a channel by asking the toy's own form: a
    person's direct messages get every card in full."""
    toy = ToyPlatform()
    async with await toy_bot(tmp_path, feed_server, toy, alerts={"burst_limit": 2}) as bot:
        await bot.run_once()
        assert (await toy.type("rita", "subscribe | flood")).ok
        feed_server.set("wire.xml", rss([story(n, f"Flood report {n}") for n in range(1, 6)]))
        await bot.run_once()

    room = toy.sender.to("toy:room-1")
    assert len(room) == 2
    [digest] = toy.sender.digests
    assert digest.channel == "toy:room-1" and len(digest.cards) == 3
    assert sorted(toy.sender.to("toy:dm:rita")) == [f"Flood report {n}" for n in range(1, 6)]
