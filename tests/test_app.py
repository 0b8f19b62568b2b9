"""The composition root: one writer per database, feed health notices, health endpoint."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from bot.app import NewsBot, StartupError
from config.settings import settings_from_dict
from tests.feedgen import Item, minutes_ago, rss


def settings_for(tmp_path, **sections):
    raw = {
        "storage": {"path": str(tmp_path / "bot.db")},
        "console": {"format": "jsonl"},
        "http": {"enabled": False},
        **sections,
    }
    return settings_from_dict(raw, {})


async def test_a_second_bot_on_the_same_database_refuses_to_start(tmp_path):
    settings = settings_for(tmp_path)
    async with NewsBot(settings):
        second = NewsBot(settings)
        with pytest.raises(StartupError, match="already running on this database"):
            await second.open()
    # Once the first has stopped, the database is free again.
    async with NewsBot(settings):
        pass


async def test_a_failing_feed_is_announced_once_and_its_recovery_once(
    tmp_path, feed_server, caplog
):
    feed_server.set("w.xml", b"", status=500)
    settings = settings_for(
        tmp_path,
        fetch={"failing_after": 3},
        feeds=[{"name": "Wire", "url": feed_server.url("w.xml")}],
    )
    caplog.set_level("WARNING")
    async with NewsBot(settings) as bot:
        for _ in range(5):
            await bot.run_once()
        feed = await bot.storage.get_feed("Wire")
        assert feed.failures == 5 and feed.last_error == "HTTP 500 Internal Server Error"
        feed_server.set(
            "w.xml", rss([Item("Back", "ok", "https://w.example/1", "1", minutes_ago(1))])
        )
        await bot.run_once()
        assert (await bot.storage.get_feed("Wire")).failures == 0
    notices = [r.getMessage() for r in caplog.records if r.getMessage().startswith("ops notice")]
    assert notices == [
        "ops notice: Feed 'Wire' is failing: HTTP 500 Internal Server Error (3 polls in a row). "
        "It keeps being retried with backoff.",
        "ops notice: Feed 'Wire' recovered after 5 failed polls.",
    ]
    # Reported once, not once per poll.
    failures = [r for r in caplog.records if "feed 'Wire' failed" in r.getMessage()]
    assert len(failures) == 1


async def test_healthz_and_metrics(tmp_path, feed_server):
    feed_server.set(
        "w.xml", rss([Item("Putin story", "x", "https://w.example/1", "1", minutes_ago(1))])
    )
    settings = settings_for(
        tmp_path,
        http={"enabled": True, "port": 0},
        feeds=[{"name": "Wire", "url": feed_server.url("w.xml")}],
        watchlists=[{"name": "Putin", "query": "Putin"}],
    )
    stop = asyncio.Event()
    async with NewsBot(settings) as bot:
        task = asyncio.create_task(bot.run_forever(stop))
        for _ in range(100):
            if bot.ops.port and bot.last_poll_at:
                break
            await asyncio.sleep(0.05)
        base = f"http://127.0.0.1:{bot.ops.port}"
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/healthz") as response:
                assert response.status == 200
                assert (await response.json())["ok"] is True
            async with http.get(f"{base}/metrics") as response:
                text = await response.text()
        assert 'newsbot_polls_total{feed="Wire",status="new"} 1.0' in text
        assert "newsbot_deliveries_pending 0.0" in text
        assert "newsbot_alert_delay_from_first_seen_seconds_bucket" in text
        stop.set()
        await task
        state = bot.health()
        assert state["ok"] is False and "scheduler" in state["reason"]
        assert json.dumps(state)


async def test_feeds_added_from_chat_cannot_reach_internal_addresses(tmp_path, feed_server):
    from bot.core.commands import Actor

    feed_server.set("w.xml", rss([Item("Story", "x", "https://w.example/1", "1", minutes_ago(1))]))
    admin = Actor("discord", "42", "editor", is_admin=True)
    async with NewsBot(settings_for(tmp_path)) as bot:
        reply = await bot.commands.feed_add(admin, feed_server.url("w.xml"), "Internal")
        assert not reply.ok and "loopback" in reply.text
        reply = await bot.commands.feed_add(admin, (tmp_path / "x.xml").as_uri(), "File")
        assert not reply.ok and "config file" in reply.text
        reply = await bot.commands.feed_add(
            admin, "http://169.254.169.254/latest/meta-data/", "Meta"
        )
        assert not reply.ok and "link-local" in reply.text
        assert await bot.storage.list_feeds() == []
        assert feed_server.count("w.xml") == 0  # refused before connecting
    allowed = settings_for(tmp_path, fetch={"allow_networks": ["127.0.0.0/8"]})
    async with NewsBot(allowed) as bot:
        reply = await bot.commands.feed_add(admin, feed_server.url("w.xml"), "Internal")
        assert reply.ok, reply.text
        assert [f.name for f in await bot.storage.list_feeds()] == ["Internal"]
        entries = await bot.storage.audit_entries()
        assert entries[0][1:3] == ("discord:42", "feed.add")


async def test_a_token_with_no_watchlist_posting_there_is_warned_about_at_start(tmp_path, caplog):
    """`docker run -e DISCORD_TOKEN=...` with the default config: every card would go to the
    console. The bot says so, naming the config file to change."""
    from bot.app import build_platforms

    raw = {
        "storage": {"path": str(tmp_path / "bot.db")},
        "http": {"enabled": False},
        "watchlists": [{"name": "Putin", "query": "Putin", "channels": ["console:desk"]}],
    }
    settings = settings_from_dict(raw, {"DISCORD_TOKEN": "a-discord-token-for-the-test"})
    async with NewsBot(settings, platforms=build_platforms(settings)):
        pass
    [warning] = [r.getMessage() for r in caplog.records if "no watchlist posts to" in r.message]
    assert warning.startswith("discord is configured, but no watchlist posts to a discord: channel")
    assert 'channels = ["discord:<channel id>"]' in warning
    assert "a-discord-token-for-the-test" not in caplog.text
