"""`newsbot why` on the command line: the same answers as /why in chat, for an operator who can
read the config and the database (so every watchlist and card is shown), as plain lines.

The database is filled by the real bot polling a local feed server; `main` is then called
in-process (as the console script calls it) for speed."""

from __future__ import annotations

import asyncio
import io
import logging
from pathlib import Path

import pytest

from bot.app import NewsBot
from bot.cli import main
from config.settings import load_settings
from tests.feedgen import Item, minutes_ago, rss

PUTIN = Item(
    "Putin Visits North Korea, Pledges Cooperation",
    "SEOUL (AP) — Putin arrived in Pyongyang for talks with Kim Jong Un on Wednesday.",
    "https://w.example/1",
    "1",
    minutes_ago(2),
)
WEATHER = Item(
    "Weather: sunny \x1b[31m spells", "Warm.", "https://w.example/3", "3", minutes_ago(4)
)
CALM = Item("Earlier: markets calm", "Nothing to see.", "https://w.example/0", "0", minutes_ago(50))
FACTORY = Item(
    "Kim Jong Un inspects missile factory",
    "Pyongyang state media said.",
    "https://w.example/2",
    "2",
    minutes_ago(3),
)


@pytest.fixture
def root_logging():
    """`main` sets up the root logger for the process; put it back for the tests after."""
    root = logging.getLogger()
    level, handlers = root.level, root.handlers[:]
    yield
    root.setLevel(level)
    root.handlers[:] = handlers


def write_config(tmp_path: Path, wire: str, agency: str) -> Path:
    path = tmp_path / "newsbot.toml"
    path.write_text(
        f"""
[storage]
path = "{tmp_path / "bot.db"}"
[console]
format = "jsonl"
[http]
enabled = false
[fetch]
allow_networks = ["127.0.0.1/32"]
[[feeds]]
name = "Wire"
url = "{wire}"
[[feeds]]
name = "Agency"
url = "{agency}"
[[watchlists]]
name = "North Korea"
query = '"North Korea" OR Pyongyang'
channels = ["console:desk"]
[[watchlists]]
name = "Kremlin"
query = 'Kremlin AND NOT sport'
channels = ["console:asia"]
""",
        "utf-8",
    )
    return path


async def newsbot_why(capsys, config: Path, *words: str) -> str:
    code = await asyncio.to_thread(main, ["why", "--config", str(config), *words])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


async def test_why_on_the_command_line_tells_what_happened_to_each_story(
    feed_server, tmp_path, capsys, root_logging
) -> None:
    feed_server.set("wire.xml", rss([CALM]))
    feed_server.set("agency.xml", rss([]))
    config = write_config(tmp_path, feed_server.url("wire.xml"), feed_server.url("agency.xml"))
    settings = load_settings(config)
    async with NewsBot(settings, stdout=io.StringIO()) as bot:
        await bot.run_once()  # the baseline
        feed_server.set("wire.xml", rss([PUTIN, WEATHER, CALM]))
        await bot.run_once()
        repeat = Item(
            PUTIN.title, PUTIN.description, "https://agency.example/77", "a77", PUTIN.published
        )
        feed_server.set("agency.xml", rss([repeat]))
        await bot.run_once()
    # The console cannot be written to: the card waits, with the reason.
    broken = io.StringIO()
    broken.close()
    async with NewsBot(settings, stdout=broken) as bot:
        feed_server.set("wire.xml", rss([FACTORY, PUTIN, WEATHER, CALM]))
        await bot.run_once()

    alerted = await newsbot_why(capsys, config, "https://w.example/1")
    missed = await newsbot_why(capsys, config, "weather", "sunny")
    baseline = await newsbot_why(capsys, config, "markets calm")
    duplicate = await newsbot_why(capsys, config, "https://agency.example/77")
    failed = await newsbot_why(capsys, config, "Kim", "Jong", "Un", "factory")
    unknown = await newsbot_why(capsys, config, "https://elsewhere.example/zzz")

    assert alerted.startswith(f'Why: "{PUTIN.title}"\n- First seen on Wire at ')
    assert (
        "- Watchlist North Korea → console:desk: card posted"
        " · matched North Korea, Pyongyang" in alerted
    )
    assert '- Watchlist Kremlin: did not match: "Kremlin" not found in the story' in alerted
    assert (
        '- Watchlist North Korea: did not match: no alternative matched: "North Korea" not '
        'found in the story; "Pyongyang" not found in the story' in missed
    )
    assert "\x1b" not in missed  # feed text never drives the terminal
    assert "- Not alerted: it was first seen in the baseline poll of Wire" in baseline
    assert duplicate.startswith("Why: that link (Agency, ")
    assert "- Also seen on Agency at " in duplicate
    assert (
        "- Watchlist North Korea → console:desk: card waiting to be sent; attempt 1 failed: "
        "cannot write to the console" in failed
    )
    assert unknown == "No stored story has that link.\n"


async def test_why_without_a_database_says_so_and_creates_none(
    tmp_path, capsys, root_logging
) -> None:
    config = write_config(tmp_path, "file:///nowhere/wire.xml", "file:///nowhere/agency.xml")

    code = await asyncio.to_thread(main, ["why", "--config", str(config), "anything"])

    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    assert f"newsbot: no database at {tmp_path / 'bot.db'}: the bot has not run" in err
    assert not (tmp_path / "bot.db").exists()
