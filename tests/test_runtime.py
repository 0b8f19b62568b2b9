"""bot.runtime.build: a whole runtime or a one-line refusal that leaves nothing held."""

from __future__ import annotations

import io
import json

import pytest

from bot.core.commands import Actor
from bot.core.destinations import PrefixedForm
from bot.runtime import CommandServices, InstanceLock, StartupError, build
from config.settings import settings_from_dict
from tests.feedgen import Item, minutes_ago, rss


def settings(path: str, **sections):
    raw = {
        "storage": {"path": path},
        "console": {"format": "jsonl"},
        "http": {"enabled": False},
        **sections,
    }
    return settings_from_dict(raw, {})


async def test_a_runtime_on_the_in_memory_store_polls_alerts_and_answers_commands(
    tmp_path, feed_server, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)  # so that a file written by mistake would show here
    feed_server.set("w.xml", rss([]))
    config = settings(
        ":memory:",
        fetch={"allow_networks": ["127.0.0.1/32"]},
        feeds=[{"name": "Wire", "url": feed_server.url("w.xml")}],
        watchlists=[{"name": "NK", "query": "Pyongyang", "channels": ["console:desk"]}],
    )
    out = io.StringIO()
    async with await build(config, stdout=out) as runtime:
        # The commands are served by their own small object, not by the runtime itself.
        assert isinstance(runtime.commands.services, CommandServices)
        assert runtime.commands.services.last_poll_at is None
        await runtime.run_once()  # the baseline
        feed_server.set(
            "w.xml", rss([Item("Pyongyang story", "x", "https://w.example/1", "1", minutes_ago(1))])
        )
        [report] = await runtime.run_once()
        recent = await runtime.commands.recent(Actor("console", "desk"), "Pyongyang")
        assert runtime.commands.services.last_poll_at is not None

    assert report.alerts == 1
    [card] = [json.loads(line) for line in out.getvalue().splitlines()]
    assert card["title"] == "Pyongyang story" and card["channel"] == "console:desk"
    assert [item.text for item in recent.items] == ["Pyongyang story"]
    assert list(tmp_path.iterdir()) == []  # no database, no lock file


async def test_a_database_that_cannot_be_used_is_refused_and_nothing_is_left_held(
    tmp_path,
) -> None:
    path = tmp_path / "bot.db"
    path.write_bytes(b"not a database, but somebody's notes\n" * 100)

    with pytest.raises(StartupError, match="not a SQLite database"):
        await build(settings(str(path)))

    assert path.read_bytes().startswith(b"not a database")
    lock = InstanceLock(str(path))
    lock.acquire()  # the refused start gave the lock back
    lock.release()


async def test_closing_twice_is_harmless(tmp_path) -> None:
    runtime = await build(settings(str(tmp_path / "bot.db")))
    await runtime.close()
    await runtime.close()
    async with await build(settings(str(tmp_path / "bot.db"))):
        pass  # the database and its lock are free again


class _Clashing:
    """A platform handed in whose destinations clash with a listed platform's: the runtime
    cannot be wired, and build() must say so without keeping the database or its lock."""

    name = "discord"
    destination_form = PrefixedForm("discord", r"[a-z]+", r"[a-z]+")
    sender = None  # never used: wiring fails first


async def test_a_runtime_that_cannot_be_wired_leaves_nothing_held(tmp_path) -> None:
    path = str(tmp_path / "bot.db")

    with pytest.raises(ValueError, match="two destination forms claim the platform") as failed:
        await build(settings(path), platforms=[_Clashing()])

    # The lock was given back and the store closed: the same process can start again, even
    # while the error (and so everything its frames held) is still kept, as a log would.
    async with await build(settings(path)):
        pass
    assert failed.value is not None
