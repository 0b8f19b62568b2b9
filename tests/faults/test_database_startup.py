"""`newsbot run` against a database it cannot use: the real process, a real SQLite file.

Whatever is wrong with the file (another process holds its write lock, it is not SQLite, it is
damaged, it belongs to another application), the bot says so in one line and exits non-zero,
holding nothing: the next start, once the cause is gone, works. A file that is not ours is
never written to."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from storage.sqlite import SqliteStorage
from tests.faults.process import BotProcess, write_config
from tests.feedgen import Item, minutes_ago, rss

EXIT_CONFIG = 2  # bot/cli.py: the bot cannot start as configured


@pytest.fixture
def config(tmp_path: Path, feed_server) -> Path:
    feed_server.set(
        "wire.xml", rss([Item("Calm day", "Nothing.", "https://w.example/1", "1", minutes_ago(5))])
    )
    return write_config(tmp_path, feed_server.url("wire.xml"), "console:desk", "")


def new_log_lines(bot: BotProcess, start: int) -> list[str]:
    text = bot.config.with_suffix(".log").read_text(errors="replace")[start:]
    return text.splitlines()


def log_size(bot: BotProcess) -> int:
    path = bot.config.with_suffix(".log")
    return len(path.read_text(errors="replace")) if path.exists() else 0


def assert_refused_in_one_line(lines: list[str], db: Path, reason: str) -> None:
    assert not any("Traceback" in line for line in lines), "\n".join(lines)
    refusals = [line for line in lines if line.startswith("newsbot: ")]
    assert len(refusals) == 1, "\n".join(lines)
    assert refusals[0].startswith(f"newsbot: cannot open the database {db}: {reason}"), refusals


async def running(bot: BotProcess, since: int) -> None:
    await bot.wait_for(
        lambda: any("newsbot running" in line for line in new_log_lines(bot, since)),
        "the bot to start",
    )


async def test_a_database_locked_by_another_process_is_refused_and_nothing_stays_held(
    tmp_path, config
):
    db = tmp_path / "bot.db"
    bot = BotProcess(config, {})
    await bot.start("--once")
    assert await bot.exited() == 0

    # Another process (a backup, a sqlite3 shell) holds the write lock until told to let go.
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import sqlite3, sys\n"
        f"db = sqlite3.connect({str(db)!r}, isolation_level=None)\n"
        "db.execute('BEGIN EXCLUSIVE')\n"
        "print('held', flush=True)\n"
        "sys.stdin.readline()\n"
        "db.execute('ROLLBACK')\n",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdin is not None
        assert await asyncio.wait_for(holder.stdout.readline(), 30) == b"held\n"

        since = log_size(bot)
        await bot.start()
        # It gives up after the busy timeout and exits: no process left behind holding the
        # instance lock (nor aiosqlite's worker thread keeping it alive).
        assert await bot.exited(timeout=60) == EXIT_CONFIG
        assert_refused_in_one_line(new_log_lines(bot, since), db, "it is locked by another process")

        holder.stdin.write(b"\n")
        await holder.stdin.drain()
        assert await asyncio.wait_for(holder.wait(), 30) == 0
    finally:
        if holder.returncode is None:
            holder.kill()
            await holder.wait()

    # Nothing of the refused start is in the way: the next one runs.
    since = log_size(bot)
    await bot.start()
    await running(bot, since)
    assert await bot.stop() == 0


def random_bytes(db: Path) -> None:
    db.write_bytes(os.urandom(64 * 1024))


async def truncated(db: Path) -> None:
    store = await SqliteStorage.open(db)
    await store.record_audit("discord:42", "subscribe", {"query": "ecb"}, datetime.now(UTC))
    await store.close()
    halve(db)


def halve(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def foreign(db: Path) -> None:
    # Another application's database, which (like many) versions itself with user_version.
    conn = sqlite3.connect(db)
    try:
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        conn.execute("CREATE TABLE tags (note_id INTEGER, tag TEXT)")
        conn.execute("INSERT INTO notes (body) VALUES ('my own data')")
        conn.execute("PRAGMA user_version = 2")
        conn.commit()
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (random_bytes, "it is not a SQLite database; refusing to touch it"),
        (truncated, "it is damaged or truncated"),
        (foreign, "it is not a newsbot database (it has tables notes, tags); refusing to touch it"),
    ],
    ids=["random-bytes", "truncated", "another-application"],
)
async def test_a_database_that_is_not_usable_is_refused_by_name_and_left_unchanged(
    tmp_path, config, make, reason
):
    db = tmp_path / "bot.db"
    result = make(db)
    if asyncio.iscoroutine(result):
        await result
    before = db.read_bytes()

    bot = BotProcess(config, {})
    await bot.start()
    assert await bot.exited() == EXIT_CONFIG
    assert_refused_in_one_line(new_log_lines(bot, 0), db, reason)
    assert db.read_bytes() == before


async def test_the_folder_we_create_and_every_database_file_are_private(tmp_path, config):
    # Files are made 0600 whatever the umask; a common umask would otherwise give 0644.
    data = tmp_path / "data"
    text = config.read_text("utf-8").replace(str(tmp_path / "bot.db"), str(data / "bot.db"))
    config.write_text(text, "utf-8")
    chosen = tmp_path.stat().st_mode  # a folder that exists is the operator's: left as it is
    previous = os.umask(0o022)
    try:
        bot = BotProcess(config, {})
        await bot.start()
    finally:
        os.umask(previous)
    await running(bot, 0)
    names = ["bot.db", "bot.db-wal", "bot.db-shm", "bot.db.lock"]
    modes = {name: stat.S_IMODE((data / name).stat().st_mode) for name in names}
    assert await bot.stop() == 0

    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert modes == dict.fromkeys(names, 0o600)
    assert tmp_path.stat().st_mode == chosen
