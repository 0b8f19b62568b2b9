"""WebSub push with two workers on one PostgreSQL database (bot/cluster.py): the hub may call
back whichever worker its request reaches. Every worker serves the callback from the shared
table, and pushed content goes through Pipeline.ingest, whose ingest session is one at a time
across the workers: a story pushed to one worker and polled by the other is one card."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import os
from collections.abc import Iterator
from datetime import timedelta

import aiohttp
import pytest

from bot.runtime import Runtime, build
from config.settings import settings_from_dict
from tests.fakes.websub_hub import FakeHub
from tests.feedgen import rss
from tests.feeds.test_websub import (
    CALM,
    QUAKE,
    Clock,
    Desk,
    free_port,
    quake_feed,
    until,
    with_hub,
)
from tests.storage.postgres_server import throwaway_database
from tests.test_cluster_runtime import FAST

pytestmark = pytest.mark.timeout(60)
_databases = itertools.count()


@pytest.fixture
def database_url() -> Iterator[str]:
    yield from throwaway_database(f"newsbot_websub_{os.getpid()}_{next(_databases)}")


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(var, raising=False)


async def test_a_push_reaching_either_worker_is_one_card_with_the_polls(database_url, feed_server):
    topic = "https://wire.example/feed.xml"
    desk = Desk()  # both workers print here: a card posted twice would show twice
    clock = Clock()
    async with FakeHub() as hub:
        feed_server.set("feed.xml", with_hub(rss([CALM]), hub.url, topic))
        runtimes: list[Runtime] = []
        stops: list[asyncio.Event] = []
        tasks = []
        ports = {}
        try:
            for name in ("a", "b"):
                port = free_port()
                settings = settings_from_dict(
                    {
                        "storage": {"url": database_url},
                        "console": {"format": "jsonl"},
                        "http": {"port": port, "public_url": f"http://127.0.0.1:{port}"},
                        "feeds": [
                            {"name": "Wire", "url": feed_server.url("feed.xml"), "interval": "1h"}
                        ],
                        "watchlists": [{"name": "Quakes", "query": "earthquake"}],
                    },
                    {},
                )
                runtime = await build(settings, stdout=desk, platforms=[], clock=clock)
                assert runtime.cluster is not None
                runtime.cluster.timings = FAST
                runtimes.append(runtime)
                ports[name] = port
                stops.append(asyncio.Event())
                tasks.append(asyncio.create_task(runtime.run_forever(stops[-1])))
            subscriber = await hub.verified()

            async def both_serving() -> bool:  # the other worker may still be starting
                return all(runtime.http.port for runtime in runtimes)

            await until(both_serving)
            assert len(hub.requests) == 1  # one worker asked the hub, not both
            subscribed_at = int(subscriber.callback.split(":")[2].split("/")[0])
            other = next(p for p in ports.values() if p != subscribed_at)
            path = subscriber.callback.split(f":{subscribed_at}", 1)[1]

            # The push reaches the worker that did not subscribe.
            document = quake_feed(hub, topic, QUAKE)
            signature = hmac.new(subscriber.secret.encode(), document, hashlib.sha256)
            async with (
                aiohttp.ClientSession() as http,
                http.post(
                    f"http://127.0.0.1:{other}{path}",
                    data=document,
                    headers={"X-Hub-Signature": f"sha256={signature.hexdigest()}"},
                ) as response,
            ):
                assert response.status == 202
            _, card = await desk.next_card(timeout=20)
            assert card["title"] == "Earthquake hits the coast"

            # The same story pushed again to the other worker, then polled by both: one card.
            assert await hub.publish(topic, document) == [202]
            feed_server.set("feed.xml", document)
            for runtime in runtimes:
                feed = await runtime.storage.get_feed("Wire")
                await runtime.polling.poll(feed, force=True)
            for runtime in runtimes:
                await runtime.worker.drain()
            assert desk.titles() == ["Earthquake hits the coast"]

            # Renewal is due on both workers at once: one of them asks the hub.
            clock.offset = timedelta(minutes=50)
            await asyncio.gather(*(r.websub.attempt_due() for r in runtimes if r.websub))
            renewed = await hub.verified()
            assert len(hub.requests) == 2
            # Same callback path and secret (workers share one public_url in production; here
            # each has its own port).
            assert renewed.callback.endswith(path) and renewed.secret == subscriber.secret
        finally:
            for stop in stops:
                stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            for runtime in runtimes:
                await runtime.close()
