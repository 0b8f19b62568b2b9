"""A full disk while a poll is being saved: the real bot, a feed served locally, real SQLite.

The disk is "full" because the database may not grow (PRAGMA max_page_count, set on the bot's
own connection): SQLite then fails exactly as on a full disk, with SQLITE_FULL."""

from __future__ import annotations

from bot.app import NewsBot
from bot.core.commands import Actor
from config.settings import settings_from_dict
from tests.feedgen import Item, minutes_ago, rss


def stories(first: int, count: int) -> bytes:
    return rss(
        [
            Item(
                f"Pyongyang report number {n}",
                f"Story {n} from Pyongyang. " + "More detail. " * 200,
                f"https://w.example/{n}",
                f"g{n}",
                minutes_ago(1),
            )
            for n in range(first, first + count)
        ]
    )


async def test_a_full_disk_is_reported_as_the_polls_error_and_shows_in_status(
    tmp_path, feed_server, caplog
):
    feed_server.set("wire.xml", stories(1, 3))
    settings = settings_from_dict(
        {
            "storage": {"path": str(tmp_path / "bot.db")},
            "console": {"format": "jsonl"},
            "http": {"enabled": False},
            "fetch": {"failing_after": 1},
            "feeds": [{"name": "Wire", "url": feed_server.url("wire.xml")}],
            "watchlists": [{"name": "Desk", "query": "Pyongyang", "channels": ["console:desk"]}],
        },
        {},
    )
    async with NewsBot(settings) as bot:
        (baseline,) = await bot.run_once()
        assert baseline.status == "new" and baseline.error is None

        # No room for one more page: the next poll's stories cannot be written.
        async with bot.storage._db.execute("PRAGMA page_count") as cursor:
            (pages,) = await cursor.fetchone()
        await bot.storage._db.execute(f"PRAGMA max_page_count = {pages}")
        feed_server.set("wire.xml", stories(1, 200))

        (report,) = await bot.run_once()

        assert report.status == "error"
        assert "database or disk is full" in report.error
        assert "rollback" not in report.error  # the failed clean-up does not hide the cause
        feed = await bot.storage.get_feed("Wire")
        assert feed.failures == 1
        assert "database or disk is full" in feed.last_error
        status = await bot.commands.status(Actor("discord", "42", "editor"))
        failing = [item for item in status.items if item.text == "Failing: Wire"]
        assert len(failing) == 1 and "database or disk is full" in failing[0].detail
        # The ops channel (here: the log, none is configured) hears of it like any failing feed.
        [notice] = [r.message for r in caplog.records if r.message.startswith("ops notice:")]
        assert "Feed 'Wire' is failing" in notice and "database or disk is full" in notice

        # Room again: the same stories are fetched and saved (the failed poll kept no fetch
        # state), and the feed is healthy.
        await bot.storage._db.execute("PRAGMA max_page_count = 1073741823")
        (again,) = await bot.run_once()
        assert again.status == "new" and again.new == 197
        assert (await bot.storage.get_feed("Wire")).failures == 0
