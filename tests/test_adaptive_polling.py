"""Adaptive polling end to end (issue 17): a whole runtime with an injected clock polls feeds
served by the local feed server; a feed that publishes a story every minute converges to the
floor, silent ones to the ceiling, within a few polls, whatever the backend. What is checked is
what an operator sees: the feed list, the server's request log, the database's next poll time.

Time is virtual: the test moves the clock to each feed's next poll as its stored schedule says
and runs the poll the scheduler's job would run (Polling.scheduled), so hours pass in a second.
The APScheduler jobs themselves are checked apart: re-timed one by one as the intervals move."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from bot.core.commands import Actor
from bot.runtime import Runtime, build
from config.settings import ConfigError, settings_from_dict
from tests.fakes.feed_server import FeedServer
from tests.feedgen import Item, rss
from tests.storage.postgres_server import throwaway_database

ADMIN = Actor("console", "desk", is_admin=True)
START = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday, noon UTC


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


class Newsroom:
    """The feeds of the test, served as they stand at the clock's time."""

    def __init__(self, server: FeedServer, clock: Clock) -> None:
        self.server = server
        self.clock = clock
        # Twenty stories a minute apart before the start, then one more every minute. No
        # dates: the rate must be learnt from what each poll finds new.
        self.first = START - timedelta(minutes=20)
        month_old = [
            Item(
                f"Archive {n}",
                "x",
                f"https://old.example/{n}",
                f"o{n}",
                START - timedelta(days=30, hours=n),
            )
            for n in range(5)
        ]
        server.set("old.xml", rss(month_old, title="Monthly"))
        server.set("empty.xml", rss([], title="Nothing yet"))
        fresh = [Item("Fresh", "x", "https://hostile.example/1", "h1", START)]
        hostile = rss(fresh, title="Hostile").replace(
            b"<description>test feed</description>",
            b"<description>test feed</description><ttl>5256000</ttl>"
            b"<skipHours>" + b"".join(b"<hour>%d</hour>" % h for h in range(24)) + b"</skipHours>",
        )
        server.set("hostile.xml", hostile, headers={"Cache-Control": "max-age=1000000000000"})
        night = rss(fresh, title="Night desk").replace(
            b"<description>test feed</description>",
            b"<description>test feed</description>"
            b"<skipHours><hour>12</hour><hour>13</hour></skipHours>",
        )
        server.set("night.xml", night)
        self.update()

    def update(self) -> None:
        minutes = int((self.clock.now - self.first) / timedelta(minutes=1))
        items = [
            Item(f"Wire story {n}", "x", f"https://wire.example/{n}", f"w{n}")
            for n in range(minutes, max(-1, minutes - 30), -1)
        ]
        self.server.set("wire.xml", rss(items, title="Wire"))


def _settings(storage: dict[str, str], server: FeedServer):
    raw = {
        "storage": storage,
        "console": {"format": "jsonl"},
        "http": {"enabled": False},
        "fetch": {"allow_networks": ["127.0.0.1/32"]},
        "polling": {"min_interval": "30s", "max_interval": "1h"},
        "feeds": [
            {"name": name, "url": server.url(f"{name}.xml")}
            for name in ("wire", "old", "empty", "hostile", "night")
        ],
    }
    return settings_from_dict(raw, {})


@pytest.fixture(params=["sqlite", "memory", "postgres"])
def storage_section(request, tmp_path) -> Iterator[dict[str, str]]:
    if request.param == "sqlite":
        yield {"path": str(tmp_path / "bot.db")}
    elif request.param == "memory":
        yield {"path": ":memory:"}
    else:
        for url in throwaway_database(f"newsbot_adaptive_{id(request)}"):
            yield {"url": url}


async def poll_at_its_pace(runtime: Runtime, room: Newsroom, name: str, polls: int) -> list[str]:
    """`polls` polls of one feed, each when its stored schedule says; the feed list's line for
    it after each."""
    seen = []
    for _ in range(polls):
        feed = await runtime.storage.get_feed(name)
        assert feed is not None
        if feed.last_poll_at is not None:
            room.clock.now = feed.last_poll_at + feed.poll_interval
        room.update()
        await runtime.polling.scheduled(feed.id)
        seen.append(await listed(runtime, name))
    return seen


async def listed(runtime: Runtime, name: str) -> str:
    reply = await runtime.commands.feed_list(ADMIN)
    [item] = [item for item in reply.items if item.text == name]
    assert item.detail is not None
    return item.detail.split(" · ")[3]


async def test_a_minute_wire_goes_to_the_floor_and_silent_feeds_to_the_ceiling(
    storage_section, feed_server
) -> None:
    clock = Clock()
    room = Newsroom(feed_server, clock)
    runtime = await build(
        _settings(storage_section, feed_server), stdout=io.StringIO(), clock=clock
    )
    async with runtime:
        wire = await poll_at_its_pace(runtime, room, "wire", 6)
        assert wire[0] == "every 5m (rate not known yet)"  # the baseline: no dates to go by
        assert wire[1:] == ["every 30s (publishes every ~1m)"] * 5
        # The server saw the polls 30 s apart once the rate was known: 6 requests in 7 minutes.
        assert feed_server.count("wire.xml") == 6
        assert clock.now - START == timedelta(minutes=7)

        old = await poll_at_its_pace(runtime, room, "old", 2)
        assert old == ["every 1h (silent)"] * 2

        empty = await poll_at_its_pace(runtime, room, "empty", 7)
        assert empty[-1] == "every 1h (silent)"
        assert empty.index("every 1h (silent)") <= 5  # within a few polls
        assert feed_server.count("empty.xml") == 7  # nothing polled in between

        hostile = await poll_at_its_pace(runtime, room, "hostile", 2)
        # A ttl of ten years and a max-age of 31,000 years: the ceiling, and the status says
        # so; every hour in <skipHours> is ignored rather than never polling again.
        assert hostile[-1].startswith("every 1h (")
        assert "capped at 1h" in hostile[-1]
        assert "skipHours lists every hour: ignored" in hostile[-1]
        assert feed_server.count("hostile.xml") == 2

    # A restart keeps what was learnt: the wire is still polled at the floor.
    runtime = await build(
        _settings(storage_section, feed_server), stdout=io.StringIO(), clock=clock
    )
    async with runtime:
        if storage_section.get("path") != ":memory:":
            assert await listed(runtime, "wire") == "every 30s (publishes every ~1m)"
            await runtime.polling.resync()
            feed = await runtime.storage.get_feed("wire")
            assert feed is not None
            if runtime.cluster is None:
                assert runtime.scheduler.interval_of(feed.id) == timedelta(seconds=30)
            else:
                # Several workers: the lease is let go with the next poll at the adaptive
                # interval, in the database's own clock.
                await check_cluster_next_poll(runtime, room, storage_section["url"])


async def check_cluster_next_poll(runtime: Runtime, room: Newsroom, url: str) -> None:
    """The wire and the silent feed polled once more through the cluster's leases, each when
    its schedule says: the worker lets each go with its next poll at its adaptive interval."""
    assert runtime.cluster is not None
    conn = await asyncpg.connect(url)
    try:
        for name, expected in (("wire", 30), ("old", 3600)):
            await conn.execute(
                """UPDATE feeds SET next_poll_at = CASE WHEN name = $1
                   THEN now() - interval '1 second' ELSE now() + interval '1 day' END""",
                name,
            )
            feed = await runtime.storage.get_feed(name)
            assert feed is not None and feed.last_poll_at is not None
            room.clock.now = feed.last_poll_at + feed.poll_interval  # as its schedule says
            room.update()
            [lease] = await runtime.cluster.coordinator.claim_due_feeds(10)
            await runtime.cluster._poll(lease)
            wait = await conn.fetchval(
                "SELECT extract(epoch FROM next_poll_at - now()) FROM feeds WHERE name = $1", name
            )
            assert expected - 10 < float(wait) <= expected, name
    finally:
        await conn.close()


async def test_the_scheduler_re_times_only_the_job_whose_interval_moved(tmp_path) -> None:
    clock = Clock()
    async with FeedServer() as server:
        room = Newsroom(server, clock)
        runtime = await build(_settings({"path": str(tmp_path / "bot.db")}, server), clock=clock)
        async with runtime:
            await runtime.polling.resync()  # the jobs, as run_forever makes them
            scheduler = runtime.scheduler
            wire = await runtime.storage.get_feed("wire")
            old = await runtime.storage.get_feed("old")
            assert wire is not None and old is not None
            assert scheduler.interval_of(wire.id) == timedelta(minutes=5)
            jobs = runtime.scheduler._scheduler
            old_next = jobs.get_job(f"feed:{old.id}").next_run_time

            await poll_at_its_pace(runtime, room, "wire", 2)

            job = jobs.get_job(f"feed:{wire.id}")
            assert scheduler.interval_of(wire.id) == timedelta(seconds=30)
            assert job.trigger.interval == timedelta(seconds=30)
            assert jobs.get_job(f"feed:{old.id}").next_run_time == old_next  # left alone
            await runtime.polling.resync()  # a feed added in chat: nothing else moves
            assert jobs.get_job(f"feed:{old.id}").next_run_time == old_next


async def test_a_feed_is_not_fetched_in_the_hours_its_skiphours_name(tmp_path, feed_server):
    clock = Clock()  # noon UTC
    Newsroom(feed_server, clock)
    runtime = await build(
        _settings({"path": str(tmp_path / "bot.db")}, feed_server),
        stdout=io.StringIO(),
        clock=clock,
    )
    async with runtime:
        night = await runtime.storage.get_feed("night")
        assert night is not None
        await runtime.polling.scheduled(night.id)  # the first poll learns the hours to skip
        assert "skips 2h of the day (UTC)" in await listed(runtime, "night")
        for minutes in (5, 30, 59):
            clock.now = START + timedelta(minutes=minutes)
            await runtime.polling.scheduled(night.id)
        assert feed_server.count("night.xml") == 1  # 12:05, 12:30 and 12:59 were skipped
        # 13:00 is a skipped hour too, but the last poll is max_interval (1 h) old: hints only
        # lengthen the wait up to the ceiling, so the feed is heard.
        clock.now = START + timedelta(minutes=60)
        await runtime.polling.scheduled(night.id)
        assert feed_server.count("night.xml") == 2
        clock.now = START + timedelta(minutes=90)  # 13:30: skipped again, 30 min after a poll
        await runtime.polling.scheduled(night.id)
        assert feed_server.count("night.xml") == 2


async def test_a_retry_after_of_years_on_a_failure_waits_the_ceiling_at_most(tmp_path, feed_server):
    clock = Clock()
    Newsroom(feed_server, clock)
    feed_server.set("wire.xml", status=429, headers={"Retry-After": "999999999"})
    runtime = await build(
        _settings({"path": str(tmp_path / "bot.db")}, feed_server),
        stdout=io.StringIO(),
        clock=clock,
    )
    async with runtime:
        wire = await runtime.storage.get_feed("wire")
        assert wire is not None
        await runtime.polling.scheduled(wire.id)
        after = await runtime.storage.get_feed("wire")
        assert after is not None and after.retry_at == START + timedelta(hours=1)


@pytest.mark.parametrize(
    ("polling", "message"),
    [
        ({"max_interval": "10s"}, "polling: max_interval must not be less than min_interval"),
        ({"min_interval": "0s"}, "min_interval must be at least 1s"),
        ({"max_interval": "30d"}, "polling: max_interval must be at most 7d"),
        ({"max_interval": "soon"}, "polling.max_interval: invalid duration 'soon'"),
        ({"honour_ttl": True}, "polling.honour_ttl: unknown key"),
    ],
)
def test_a_bad_polling_section_is_refused_with_the_key_named(polling, message) -> None:
    with pytest.raises(ConfigError) as refused:
        settings_from_dict({"polling": polling}, {})
    assert message in str(refused.value)
