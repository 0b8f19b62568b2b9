"""Two in-process runtimes on one PostgreSQL database (issue 16, bot/cluster.py): they share the
polls, one of them holds the Discord gateway (the other takes it over when it goes), a Slack
command that reaches both is answered once, and /status and /metrics show both workers.

Real PostgreSQL (a throwaway database per test), real discord.py and slack_bolt against the
local fakes; nothing of ours is mocked. The 3-process SIGKILL test is tests/scale."""

from __future__ import annotations

import asyncio
import io
import itertools
import os
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest

from bot.chat.discord import DiscordPlatform
from bot.chat.discord.platform import GATEWAY_ROLE as DISCORD_GATEWAY
from bot.chat.link import Link
from bot.chat.platforms import ChatPlatform
from bot.chat.slack.platform import SlackPlatform
from bot.cluster import ClusterTimings
from bot.core.commands import Actor
from bot.ops import health_report
from bot.runtime import Runtime, build
from config.settings import Settings, settings_from_dict
from tests.fakes.discord_server import FakeDiscord, point_discord_at
from tests.fakes.feed_server import FeedServer
from tests.fakes.slack_server import FakeSlack
from tests.feedgen import rss
from tests.storage.postgres_server import throwaway_database

pytestmark = pytest.mark.timeout(60)

READER = 2_000_000_000_000_000_001
FAST = ClusterTimings(
    claim_every=0.2, heartbeat_every=0.5, hold_retry=0.5, hold_check=0.1, stop_grace=1.0
)
_databases = itertools.count()


@pytest.fixture
def database_url() -> Iterator[str]:
    yield from throwaway_database(f"newsbot_cluster_rt_{os.getpid()}_{next(_databases)}")


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
async def feeds() -> AsyncIterator[FeedServer]:
    async with FeedServer() as server:
        yield server


def worker_settings(
    url: str,
    feeds: FeedServer,
    *,
    names: tuple[str, ...] = ("a", "b", "c"),
    interval: str = "2s",
    env: dict[str, str] | None = None,
    **sections: Any,
) -> Settings:
    for name in names:
        feeds.set(f"{name}.xml", rss([]))
    raw = {
        "storage": {"url": url},
        "console": {"format": "jsonl"},
        "http": {"enabled": False},
        "fetch": {"allow_networks": ["127.0.0.1/32"], "min_interval": "1s"},
        "feeds": [
            {"name": name, "url": feeds.url(f"{name}.xml"), "interval": interval} for name in names
        ],
        "watchlists": [{"name": "Floods", "query": "flood", "channels": ["console:desk"]}],
        **sections,
    }
    return settings_from_dict(raw, env or {})


class Worker:
    """One runtime running `run_forever` in a task, as `newsbot run` would."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, settings: Settings, platforms: list[ChatPlatform] | None = None) -> Worker:
        runtime = await build(settings, stdout=io.StringIO(), platforms=platforms or [])
        assert runtime.cluster is not None, "a PostgreSQL store is shared: a cluster worker"
        runtime.cluster.timings = FAST
        worker = cls(runtime)
        worker.task = asyncio.create_task(runtime.run_forever(worker.stop))
        return worker

    async def close(self) -> None:
        self.stop.set()
        if self.task is not None:
            await self.task
            self.task = None
        await self.runtime.close()


async def close_all(workers: list[Worker]) -> None:
    """Before the fakes go (else their last words are reconnect warnings)."""
    while workers:
        await workers.pop().close()


@pytest.fixture
async def workers() -> AsyncIterator[list[Worker]]:
    started: list[Worker] = []
    try:
        yield started
    finally:
        await close_all(started)


# --- standby --------------------------------------------------------------------------------------


def test_a_connection_on_standby_is_no_outage_until_its_turn_comes() -> None:
    now = [0.0]
    link = Link("discord", clock=lambda: now[0])
    now[0] = 5.0
    link.standby("standby: another worker holds it")
    now[0] = 50.0
    link.down("the connection dropped")  # a late word from the closed connection

    report = health_report(True, {"discord": (False, link)}, None)
    assert report["ok"], report
    assert report["chat"]["discord"]["standby"] is True  # type: ignore[index]
    assert link.reason == "standby: another worker holds it"
    assert link.disconnected_seconds() == 5.0  # before it stood by

    link.taking_over("holding the gateway; connecting")
    now[0] = 60.0
    report = health_report(True, {"discord": (False, link)}, None)
    assert not report["ok"] and "connecting" in str(report["reason"])
    assert link.disconnected_seconds() == 15.0


# --- polls ---------------------------------------------------------------------------------------


async def test_two_workers_poll_each_feed_once_per_interval_and_status_lists_both(
    database_url: str, feeds: FeedServer, workers: list[Worker]
) -> None:
    settings = worker_settings(database_url, feeds)
    workers.append(await Worker.start(settings))
    workers.append(await Worker.start(settings))
    window = 7.0  # 2s feeds: polls at about 0, 2, 4 and 6 seconds

    await asyncio.sleep(window)

    counts = {name: feeds.count(f"{name}.xml") for name in ("a", "b", "c")}
    # Once per interval in all, not once per worker (which would be 7 or 8 each).
    assert all(3 <= count <= 5 for count in counts.values()), counts
    first = workers[0].runtime
    status = await first.commands.status(Actor("console", "desk"))
    lines = [item.text for item in status.items]
    assert "Workers: 2 alive, 0 gone" in lines, lines
    mine = [line for line in lines if line.startswith("Worker ")]
    assert len(mine) == 2 and sum("(this one)" in line for line in mine) == 1, lines
    await first._refresh_metrics()
    metrics = first.metrics.render().decode()
    assert "newsbot_workers_alive 2.0" in metrics
    # No Discord configured here: no gateway to hold, none reported.
    assert "newsbot_role_held{" not in metrics
    assert re.search(r"^newsbot_lease_takeovers_total 0\.0$", metrics, re.M), metrics
    assert re.search(r"^newsbot_feed_leases_held \d", metrics, re.M), metrics


async def test_run_once_on_a_shared_database_polls_every_feed_without_leases(
    database_url: str, feeds: FeedServer
) -> None:
    settings = worker_settings(database_url, feeds, names=("a", "b"))
    async with await build(settings, stdout=io.StringIO()) as runtime:
        reports = await runtime.run_once()
        again = await runtime.run_once()  # forced: whatever the next poll time says

    assert sorted(r.feed for r in reports) == ["a", "b"]
    assert len(again) == 2
    assert feeds.count("a.xml") == feeds.count("b.xml") == 2


# --- Discord: one gateway ------------------------------------------------------------------------


def identified(fake: FakeDiscord) -> int:
    """Gateway connections with a session (IDENTIFY or RESUME done) open now."""
    return sum(1 for conn in fake._conns if conn.session is not None and not conn.ws.closed)


async def test_one_worker_holds_the_discord_gateway_and_another_takes_it_over(
    database_url: str, feeds: FeedServer, workers: list[Worker]
) -> None:
    async with FakeDiscord() as fake:
        with point_discord_at(fake):
            settings = worker_settings(
                database_url,
                feeds,
                names=("a",),
                interval="1m",
                env={"DISCORD_TOKEN": fake.token},
                discord={"api_base": fake.api_base, "gateway_url": fake.gateway_url},
            )

            def platform() -> DiscordPlatform:
                return DiscordPlatform(settings, guild_ready_timeout=0.05, defer_after=2.0)

            one, two = platform(), platform()
            workers.append(await Worker.start(settings, [one]))
            workers.append(await Worker.start(settings, [two]))
            await fake.wait_until(lambda: one.connected or two.connected)
            await asyncio.sleep(1.5)  # three of the standby's turns: it keeps waiting

            assert fake.identify_count == 1 and identified(fake) == 1
            holder, standby = (0, 1) if one.connected else (1, 0)
            health = workers[standby].runtime.health()
            assert health["ok"], health  # on standby is not down
            assert health["chat"]["discord"]["standby"] is True  # type: ignore[index]
            assert workers[holder].runtime.health()["ok"]

            # The holder goes; the other opens the gateway within a turn or two.
            gone = workers.pop(holder)
            await gone.close()
            await fake.wait_until(lambda: fake.identify_count == 2 and fake.ready.is_set())
            assert identified(fake) == 1

            reply = await fake.invoke("status", user_id=READER, guild_id=fake.guild_id)
            content = reply.content or ""
            assert "Connections: discord up" in content, content
            # The worker that went stopped cleanly, and left the list.
            assert "Workers: 1 alive, 0 gone" in content, content
            assert re.search(r"Worker \S+ \(this one\).*holds discord-gateway", content), content
            assert len([i for i in fake.interactions if i.command == "status"]) == 1
            assert reply.answered and not reply.errors
            assert workers[0].runtime.cluster is not None
            assert workers[0].runtime.storage.holding(DISCORD_GATEWAY)  # type: ignore[attr-defined]
            await close_all(workers)


async def test_a_holder_whose_hold_lapses_closes_its_gateway_first(
    database_url: str, feeds: FeedServer, workers: list[Worker]
) -> None:
    async with FakeDiscord() as fake:
        with point_discord_at(fake):
            settings = worker_settings(
                database_url,
                feeds,
                names=("a",),
                interval="1m",
                env={"DISCORD_TOKEN": fake.token},
                discord={"api_base": fake.api_base, "gateway_url": fake.gateway_url},
            )
            platforms = [
                DiscordPlatform(settings, guild_ready_timeout=0.05, defer_after=2.0)
                for _ in range(2)
            ]
            for platform in platforms:
                workers.append(await Worker.start(settings, [platform]))
            await fake.wait_until(lambda: any(p.connected for p in platforms))
            holder = next(w for w in workers if w.runtime.platforms[0].connected)
            most = 0

            async def watch() -> None:
                nonlocal most
                while True:
                    most = max(most, identified(fake))
                    await asyncio.sleep(0.01)

            watching = asyncio.create_task(watch())
            # The database drops the connection that holds the role (a network cut, say).
            pid = holder.runtime.storage._hold_conn.get_server_pid()  # type: ignore[attr-defined]
            conn = await asyncpg.connect(database_url)
            try:
                await conn.fetchval("SELECT pg_terminate_backend($1)", pid)
            finally:
                await conn.close()
            # discord.py waits 5s before identifying again (Discord's identify rate limit),
            # whichever worker holds the gateway now.
            await fake.wait_until(
                lambda: fake.identify_count == 2 and fake.ready.is_set(), timeout=10
            )
            await asyncio.sleep(0.5)
            watching.cancel()

            assert most == 1  # never two gateways at once
            assert identified(fake) == 1
            assert sum(w.runtime.platforms[0].connected for w in workers) == 1
            await close_all(workers)


# --- Slack: each command once --------------------------------------------------------------------


async def test_a_slack_command_that_reaches_both_workers_is_answered_once(
    database_url: str, feeds: FeedServer, workers: list[Worker]
) -> None:
    async with FakeSlack() as fake:
        settings = worker_settings(
            database_url,
            feeds,
            names=("a",),
            interval="1m",
            env={"SLACK_BOT_TOKEN": fake.bot_token, "SLACK_APP_TOKEN": fake.app_token},
            slack={"api_base": fake.api_base},
        )
        workers.append(await Worker.start(settings, [SlackPlatform(settings)]))
        workers.append(await Worker.start(settings, [SlackPlatform(settings)]))
        await fake.wait_connected(count=2)
        assert await fake._wait_until(lambda: sum(not s.closed for s in fake._sockets) == 2, 5)

        reply = await fake.slash_command("subscriptions", user_id="U0READER")
        assert "no subscriptions" in reply.text
        # Slack retries it (say the ack was late), to the other worker's socket this time.
        payload = fake.envelopes[-1]["payload"]
        for socket in [s for s in fake._sockets if not s.closed]:
            ack = await resend(fake, socket, payload)
            assert not ack  # acknowledged with nothing: no second answer
        await asyncio.sleep(0.5)

        assert len(fake.responses_for(reply.response_url)) == 1
        await close_all(workers)


async def resend(fake: FakeSlack, socket: Any, payload: dict[str, Any]) -> dict[str, Any] | None:
    """The same slash command again, in a new envelope, on the given socket (as a retry)."""
    envelope_id = f"env-retry-{id(socket)}"
    future: asyncio.Future[dict[str, Any] | None] = asyncio.get_running_loop().create_future()
    fake._pending_acks[envelope_id] = future
    await socket.send_json(
        {
            "envelope_id": envelope_id,
            "type": "slash_commands",
            "payload": payload,
            "accepts_response_payload": True,
        }
    )
    try:
        return await asyncio.wait_for(future, 5)
    finally:
        fake._pending_acks.pop(envelope_id, None)
