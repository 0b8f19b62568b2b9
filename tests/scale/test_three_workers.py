"""Three real `newsbot run` processes on one PostgreSQL database (issue 16's acceptance test).

Everything is checked from the outside, where a user would see it: the local feed server counts
the polls of each feed, the fake Discord counts gateway sessions and the messages of each story
in each channel, and answers to a slash command. Nothing of the bot is imported or mocked.

One test in four phases, on one set of processes (starting three bots costs seconds, and the
suite has a budget):

1. polls: over several intervals, each feed is polled about once per interval in total, not
   once per worker (3x);
2. one gateway session at a time, all along (sampled every 20 ms from the first to the last
   phase: at most one connection of the fake has an identified session);
3. a burst of matching stories while workers are killed with SIGKILL and restarted (a random
   one, the one sending the burst, another random one): every card is posted exactly once in
   each channel. The sender's claims on the channels move to another worker as soon as the
   database sees it gone;
4. the gateway holder killed with SIGKILL: another worker identifies within a minute and answers
   a slash command, once.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.fakes.discord_server import FakeDiscord
from tests.fakes.feed_server import FeedServer
from tests.faults.process import burst, story_numbers
from tests.feedgen import Item, minutes_ago, rss
from tests.scale.cluster import Cluster, Worker, pid_of_peer
from tests.storage.postgres_server import throwaway_database

WORKERS = 3
FEEDS = 30  # quiet feeds polled by the cluster, besides the wire that carries the burst
INTERVAL = 3.0  # seconds between two polls of one feed, overall
WINDOW = 4 * INTERVAL  # the poll count is taken over this long
BURST = int(os.environ.get("NEWSBOT_SCALE_BURST", "40"))  # stories; each goes to every channel
CHANNELS = (1_400_000_000_000_000_011, 1_400_000_000_000_000_012, 1_400_000_000_000_000_013)
READER = 2_000_000_000_000_000_001
TAKEOVER_LIMIT = 60.0  # issue 16: another worker takes the gateway over within a minute

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def database_url() -> Iterator[str]:
    yield from throwaway_database(f"newsbot_scale_{os.getpid()}")


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord(text_channel_ids=CHANNELS) as discord:
        yield discord


def feed_path(index: int) -> str:
    return f"quiet/{index:02d}.xml"


def cluster_config(feeds: FeedServer, discord: FakeDiscord) -> str:
    """The one config every worker reads (each adds its own [http] port)."""
    quiet = "".join(
        f'[[feeds]]\nname = "Quiet {i:02d}"\nurl = "{feeds.url(feed_path(i))}"\n'
        f'interval = "{INTERVAL:g}s"\n'
        for i in range(FEEDS)
    )
    channels = ", ".join(f'"discord:{c}"' for c in CHANNELS)
    return f"""
[alerts]
burst_limit = 100
[fetch]
min_interval = "1s"
[chat]
reconnect_min = "0.2s"
reconnect_max = "2s"
[discord]
api_base = "{discord.api_base}"
gateway_url = "{discord.gateway_url}"
guild_ids = [{discord.guild_id}]
[[feeds]]
name = "Wire"
url = "{feeds.url("wire.xml")}"
interval = "1s"
{quiet}
[[watchlists]]
name = "Desk"
query = "Pyongyang"
channels = [{channels}]
"""


class GatewayWatch:
    """Samples the fake's gateway connections every 20 ms: the most that ever had a live,
    identified session at once, and which worker holds the one there is."""

    def __init__(self, fake: FakeDiscord, cluster: Cluster) -> None:
        self.fake = fake
        self.cluster = cluster
        self.most_at_once = 0
        self.samples = 0
        self._task: asyncio.Task[None] | None = None

    def live(self) -> list[object]:
        # The fake keeps its accepted connections in _conns (tests/fakes/discord_server.py); a
        # connection whose session is set has identified (or resumed) and gets the events.
        return [
            conn
            for conn in self.fake._conns
            if conn.session is not None and conn.session.conn is conn and not conn.ws.closed
        ]

    def holder(self) -> Worker | None:
        """The worker at the other end of the live session, found through its socket."""
        live = self.live()
        if len(live) != 1:
            return None
        peer = live[0].request.transport.get_extra_info("peername")  # type: ignore[attr-defined]
        if not peer:
            return None
        pids = [w.pid for w in self.cluster.workers if w.pid is not None]
        return self.cluster.by_pid(pid_of_peer(peer[1], pids))

    async def _run(self) -> None:
        while True:
            self.most_at_once = max(self.most_at_once, len(self.live()))
            self.samples += 1
            await asyncio.sleep(0.02)

    def __enter__(self) -> GatewayWatch:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()


async def until(predicate, what: str, cluster: Cluster, timeout: float = 30) -> float:
    """Wait for `predicate`; fail with every worker's log after `timeout`. Returns the wait."""
    started = time.monotonic()
    deadline = started + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}\n{cluster.logs()}")
        await asyncio.sleep(0.01)
    return time.monotonic() - started


def per_channel(fake: FakeDiscord) -> dict[int, dict[int, int]]:
    """For each channel: how many times each story number was posted (card or digest line)."""
    return {
        channel: dict(story_numbers(str(m.embeds[0]) for m in fake.messages_in(channel)))
        for channel in CHANNELS
    }


async def claims_holder(cluster: Cluster) -> Worker | None:
    """The worker whose /metrics says it holds destination claims (the burst's channels)."""
    for worker in cluster.running():
        text = await asyncio.to_thread(worker.metrics)
        held = re.search(r"^newsbot_destination_claims_held (\S+)$", text, re.MULTILINE)
        if held and float(held.group(1)) > 0:
            return worker
    return None


def posted(fake: FakeDiscord) -> int:
    return sum(sum(counts.values()) for counts in per_channel(fake).values())


async def test_three_workers_share_the_feeds_the_outbox_and_the_gateway(
    tmp_path: Path, database_url: str, feed_server: FeedServer, fake: FakeDiscord
) -> None:
    quiet = rss([Item("Nothing here", "calm", "https://q.example/0", "q0", minutes_ago(5))])
    for i in range(FEEDS):
        feed_server.set(feed_path(i), quiet)
    feed_server.set(
        "wire.xml",
        rss([Item("Quiet start", "nothing", "https://w.example/0", "0", minutes_ago(5))]),
    )
    env = {"NEWSBOT_DATABASE_URL": database_url, "DISCORD_TOKEN": fake.token}
    cluster = Cluster(tmp_path, WORKERS, cluster_config(feed_server, fake), env)
    rng = random.Random(16)
    started = time.monotonic()
    try:
        with GatewayWatch(fake, cluster) as gateway:
            await cluster.start_all()
            await until(lambda: fake.ready.is_set(), "a gateway session", cluster)
            # Every feed's first poll (the baseline) is behind us: counting starts clean.
            await until(
                lambda: (
                    all(feed_server.count(feed_path(i)) >= 2 for i in range(FEEDS))
                    and feed_server.count("wire.xml") >= 2
                ),
                "every feed's baseline poll",
                cluster,
            )

            # 1. Polls per feed over WINDOW, all three workers running. The feeds were added
            # together and keep their pace, so their polls come in step: a window that began
            # on a poll would count one short. Half an interval puts it between two.
            await asyncio.sleep(INTERVAL / 2)
            before = {i: feed_server.count(feed_path(i)) for i in range(FEEDS)}
            await asyncio.sleep(WINDOW)
            polls = {i: feed_server.count(feed_path(i)) - before[i] for i in range(FEEDS)}
            expected = WINDOW / INTERVAL
            ratio = sum(polls.values()) / (FEEDS * expected)
            assert 0.6 <= ratio <= 1.5, (
                f"{sum(polls.values())} polls of {FEEDS} feeds in {WINDOW:g} s at one per "
                f"{INTERVAL:g} s: {ratio:.2f}x the interval's rate; per feed {polls}"
            )
            assert max(polls.values()) < 2 * expected, polls  # never once per worker (3x)
            assert all(polls.values()), polls  # and no feed left behind
            assert len(cluster.running()) == WORKERS, cluster.logs()

            # 2 (so far). One session, identified once.
            assert gateway.most_at_once == 1, gateway.most_at_once
            assert fake.identify_count == 1, fake.identify_count

            # 3. A burst, with random workers killed (SIGKILL) and restarted while it posts.
            feed_server.set("wire.xml", burst(BURST))
            cards = BURST * len(CHANNELS)
            # Three kills: a random worker that sends none of the burst, then the one that
            # sends it (its channels' claims move as soon as the database sees it gone), then
            # another random one that does not.
            kills: list[tuple[int, int, bool]] = []  # (worker, cards posted, held the claims)
            for target, kill_holder in (
                (cards // 4, False),
                (cards // 2, True),
                (3 * cards // 4, False),
            ):
                await until(
                    lambda t=target: posted(fake) >= t,
                    f"{target} cards posted",
                    cluster,
                    timeout=45,
                )
                holder = await claims_holder(cluster)
                others = [w for w in cluster.running() if w is not holder]
                victim = holder if kill_holder and holder is not None else rng.choice(others)
                await victim.kill()
                kills.append((victim.index, posted(fake), victim is holder))
                await victim.start()
            await until(
                lambda: all(len(c) == BURST for c in per_channel(fake).values()),
                "every card of the burst",
                cluster,
                timeout=60,
            )
            await asyncio.sleep(2.0)  # a late duplicate would show up here
            counts = per_channel(fake)
            for channel, seen in counts.items():
                assert sorted(seen) == list(range(1, BURST + 1)), (channel, sorted(seen))
                doubled = {n: c for n, c in seen.items() if c > 1}
                assert not doubled, (
                    f"channel {channel}: stories posted more than once {doubled}; kills {kills}"
                )
            assert kills[1][1] < cards, kills  # the sender was killed mid-burst
            assert kills[1][2], kills  # and it was the sender

            # 4. The gateway holder killed: another worker identifies and answers, once.
            await until(lambda: gateway.holder() is not None, "the gateway holder", cluster)
            holder = gateway.holder()
            assert holder is not None
            await until(lambda: len(cluster.running()) == WORKERS, "all workers up", cluster)
            identified = fake.identify_count
            killed_at = time.monotonic()
            await holder.kill()
            await until(
                lambda: fake.identify_count > identified and fake.ready.is_set(),
                "another worker to take the gateway",
                cluster,
                timeout=TAKEOVER_LIMIT,
            )
            takeover = time.monotonic() - killed_at
            successor = gateway.holder()
            assert successor is not None and successor is not holder, (holder, successor)
            reply = await fake.invoke("status", user_id=READER, guild_id=fake.guild_id)
            assert reply.answered, reply
            assert reply.errors == [], reply.errors  # no second answer was tried
            await asyncio.sleep(1.0)  # a second worker answering late would show up here
            callback = f"/interactions/{reply.interaction_id}/{reply.token}/callback"
            callbacks = [r for r in fake.log if r.method == "POST" and r.path == callback]
            assert len(callbacks) == 1, callbacks
            assert reply.errors == [], reply.errors
            # /status names the workers, and this one as the gateway's holder.
            status = f"{reply.content or ''} {reply.embeds}"
            assert "Workers:" in status and "discord-gateway" in status, status
            assert gateway.most_at_once == 1, gateway.most_at_once
            print(
                f"\nscale test: {sum(polls.values())} polls of {FEEDS} feeds in {WINDOW:g} s "
                f"({ratio:.2f}x one per {INTERVAL:g} s: {sorted(polls.values())}); {cards} cards, kills (worker, "
                f"posted, was the sender) {kills}; gateway taken over in {takeover:.1f} s by worker "
                f"{successor.index}; wall {time.monotonic() - started:.1f} s\n{status}"
            )
    finally:
        await cluster.stop_all()
