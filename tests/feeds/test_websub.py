"""WebSub push (issue 17), end to end: a real NewsBot (run_forever, its HTTP server, SQLite, the
console) against the local feed server and the local fake hub (tests/fakes/websub_hub.py).

The feeds poll once an hour here: a card that shows up after a push came from the push. The
push-to-card latency of each run is printed (run with -s to see it); nothing asserts on time."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from bot.app import NewsBot
from config.settings import settings_from_dict
from tests.fakes.websub_hub import FakeHub
from tests.feedgen import Item, minutes_ago, rss

ATOM = "http://www.w3.org/2005/Atom"
CALM = Item(
    "Markets calm", "Nothing happened", "https://wire.example/calm", "calm", minutes_ago(30)
)
QUAKE = Item(
    "Earthquake hits the coast", "A strong earthquake", "https://wire.example/quake", "quake"
)
LATENCIES: list[float] = []


def with_hub(document: bytes, hub: str, self_url: str) -> bytes:
    """The feed document advertising `hub`, with `self_url` as its topic (atom:link)."""
    links = (
        f'<atom:link xmlns:atom="{ATOM}" rel="hub" href="{hub}"/>'
        f'<atom:link xmlns:atom="{ATOM}" rel="self" href="{self_url}"/>'
    )
    return document.replace(b"<channel>", b"<channel>" + links.encode(), 1)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Desk(io.StringIO):
    """The console the cards are printed on: each card (a jsonl line) with when it came."""

    def __init__(self) -> None:
        super().__init__()
        self.cards: list[tuple[float, dict[str, object]]] = []
        self._new = asyncio.Event()
        self._seen = 0

    def write(self, text: str) -> int:
        written = super().write(text)
        for line in text.splitlines():
            if line.strip():
                self.cards.append((time.perf_counter(), json.loads(line)))
        self._new.set()
        return written

    async def next_card(self, timeout: float = 10) -> tuple[float, dict[str, object]]:
        while len(self.cards) <= self._seen:
            self._new.clear()
            await asyncio.wait_for(self._new.wait(), timeout)
        self._seen += 1
        return self.cards[self._seen - 1]

    def titles(self) -> list[str]:
        return [str(card["title"]) for _, card in self.cards]


@dataclass
class Clock:
    """The wall clock, moved on by `offset` (renewals are due hours later)."""

    offset: timedelta = field(default_factory=timedelta)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@dataclass
class Running:
    bot: NewsBot
    desk: Desk
    hub: FakeHub
    clock: Clock
    topic: str
    public_url: str


@contextlib.asynccontextmanager
async def running(
    tmp_path,
    feed_server,
    hub: FakeHub,
    *,
    public: bool = True,
    interval: str | None = "1h",
    **fetch: object,
) -> AsyncIterator[Running]:
    """A bot running as `newsbot run` does, its feed advertising `hub` and polled hourly
    (`interval` None: at the rate adaptive polling gives it)."""
    topic = "https://wire.example/feed.xml"
    feed_server.set("feed.xml", with_hub(rss([CALM]), hub.url, topic))
    port = free_port()
    public_url = f"http://127.0.0.1:{port}" if public else ""
    settings = settings_from_dict(
        {
            "storage": {"path": str(tmp_path / "bot.db")},
            "console": {"format": "jsonl"},
            "http": {"enabled": True, "port": port, "public_url": public_url},
            "fetch": fetch,
            "feeds": [
                {"name": "Wire", "url": feed_server.url("feed.xml")}
                | ({"interval": interval} if interval else {})
            ],
            "watchlists": [{"name": "Quakes", "query": "earthquake"}],
        },
        {},
    )
    desk, clock, stop = Desk(), Clock(), asyncio.Event()
    async with NewsBot(settings, stdout=desk, clock=clock) as bot:
        task = asyncio.create_task(bot.run_forever(stop))
        try:
            yield Running(bot, desk, hub, clock, topic, public_url)
        finally:
            stop.set()
            await task


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 10) -> None:
    """For states that announce themselves by no event (a row in the store, a first poll)."""
    for _ in range(int(timeout / 0.02)):
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the state was not reached in time")


def quake_feed(hub: FakeHub, topic: str, *items: Item) -> bytes:
    return with_hub(rss([*items, CALM]), hub.url, topic)


async def test_a_pushed_story_is_posted_without_a_poll_and_not_again_when_polled(
    tmp_path, feed_server
):
    async with FakeHub() as hub, running(tmp_path, feed_server, hub) as run:
        subscriber = await hub.verified()
        assert subscriber.topic == run.topic
        assert subscriber.callback.startswith(run.public_url + "/websub/")
        # The callback names the subscription, not the feed, and never carries the secret.
        assert "Wire" not in subscriber.callback and subscriber.secret not in subscriber.callback
        [request] = hub.requests
        assert request["hub.mode"] == "subscribe" and len(request["hub.secret"]) >= 32
        stored = await run.bot.storage.get_websub((await run.bot.storage.get_feed("Wire")).id)
        assert stored.lease_expires_at is not None and stored.failures == 0
        polls = feed_server.count("feed.xml")
        assert polls == 1 and run.desk.cards == []  # the first poll is a baseline

        story = Item("Earthquake hits the coast", "A strong earthquake", QUAKE.link, "quake")
        document = quake_feed(hub, run.topic, story)
        pushed_at = time.perf_counter()
        assert await hub.publish(run.topic, document) == [202]
        arrived, card = await run.desk.next_card()
        LATENCIES.append(arrived - pushed_at)
        print(f"\npush -> card: {(arrived - pushed_at) * 1000:.0f} ms")
        assert card["title"] == "Earthquake hits the coast"
        assert card["watchlists"] == ["Quakes"]
        assert feed_server.count("feed.xml") == polls  # no poll brought it

        # The feed itself now carries the story, and is polled: the same story, one card.
        feed_server.set("feed.xml", document)
        report = await run.bot._poll(await run.bot.storage.get_feed("Wire"), force=True)
        assert report.status == "new" and report.alerts == 0
        await run.bot.worker.drain()
        assert run.desk.titles() == ["Earthquake hits the coast"]


async def test_a_pushed_feed_is_polled_at_the_ceiling_while_its_hub_pushes(tmp_path, feed_server):
    async with FakeHub() as hub, running(tmp_path, feed_server, hub, interval=None) as run:
        await hub.verified()
        ceiling = run.bot.settings.polling.max_interval
        feed = await run.bot.storage.get_feed("Wire")
        assert feed.schedule.interval < ceiling  # its first poll, before the hub verified
        await run.bot._poll(feed, force=True)
        feed = await run.bot.storage.get_feed("Wire")
        assert feed.schedule.interval == ceiling
        assert feed.schedule.describe() == "every 1h (pushed by its WebSub hub)"
        # The lease ran out unrenewed (the hub is gone): polled at its own rate again.
        run.clock.offset = timedelta(hours=1, minutes=1)
        await run.bot._poll(feed, force=True)
        feed = await run.bot.storage.get_feed("Wire")
        assert "WebSub" not in feed.schedule.reason


async def test_a_push_with_a_wrong_or_missing_signature_posts_nothing(tmp_path, feed_server):
    async with FakeHub() as hub, running(tmp_path, feed_server, hub) as run:
        await hub.verified()
        forged = Item("Earthquake: forged", "earthquake", "https://wire.example/forged", "forged")
        document = quake_feed(hub, run.topic, forged)
        assert await hub.publish(run.topic, document, sign="bad") == [403]
        assert await hub.publish(run.topic, document, sign="none") == [403]
        # The secret of another subscription (or none at all) proves nothing either.
        real = next(iter(hub.subscribers.values()))
        real.secret, secret = "not-the-secret", real.secret
        assert await hub.publish(run.topic, document) == [403]
        real.secret = secret
        # A good push after them is posted, alone: the refused ones left nothing behind.
        genuine = quake_feed(hub, run.topic, QUAKE)
        assert await hub.publish(run.topic, genuine, method="sha512") == [202]
        await run.desk.next_card()
        await run.bot.worker.drain()
        assert run.desk.titles() == ["Earthquake hits the coast"]
        titles = [s.story.title for s in await run.bot.storage.recent_stories(minutes_ago(60))]
        assert "Earthquake: forged" not in titles


async def test_a_push_larger_than_the_fetch_limit_is_refused_unread(tmp_path, feed_server):
    async with FakeHub() as hub, running(tmp_path, feed_server, hub, max_bytes="20KB") as run:
        await hub.verified()
        padded = Item("Earthquake, padded", "earthquake " * 3000, "https://wire.example/p", "p")
        assert await hub.publish(run.topic, quake_feed(hub, run.topic, padded)) == [413]
        assert await hub.publish(run.topic, quake_feed(hub, run.topic, QUAKE)) == [202]
        await run.desk.next_card()
        assert run.desk.titles() == ["Earthquake hits the coast"]


async def test_the_callback_confirms_only_the_subscriptions_it_asked_for(tmp_path, feed_server):
    async with FakeHub() as hub, running(tmp_path, feed_server, hub) as run:
        subscriber = await hub.verified()
        base = run.public_url + "/websub/"
        assert await hub.challenge(subscriber.callback, run.topic, "yes") == (200, "yes")
        # Another topic at our callback, a callback we never gave out, an unsubscribe we did
        # not ask for: 404, and the challenge is never echoed.
        status, body = await hub.challenge(subscriber.callback, "https://evil.example/", "c1")
        assert status == 404 and "c1" not in body
        status, body = await hub.challenge(base + "no-such-callback", run.topic, "c2")
        assert status == 404 and "c2" not in body
        status, body = await hub.challenge(subscriber.callback, run.topic, "c3", mode="unsubscribe")
        assert status == 404 and "c3" not in body
        # A push to a callback we never gave out is not taken either.
        async with (
            aiohttp.ClientSession() as http,
            http.post(base + "no-such-callback", data=b"<rss/>") as response,
        ):
            assert response.status == 404


async def test_a_subscription_is_renewed_before_its_lease_ends(tmp_path, feed_server):
    async with FakeHub(lease_seconds=3600) as hub, running(tmp_path, feed_server, hub) as run:
        first = await hub.verified()
        feed = await run.bot.storage.get_feed("Wire")
        lease_ends = (await run.bot.storage.get_websub(feed.id)).lease_expires_at
        websub = run.bot.runtime.websub
        run.clock.offset = timedelta(minutes=30)  # half the lease: too early
        await websub.attempt_due()
        assert len(hub.requests) == 1
        run.clock.offset = timedelta(minutes=49)  # 80% of it is past
        websub.wake()
        renewed = await hub.verified()
        assert len(hub.requests) == 2
        assert run.clock() < lease_ends  # before the lease ran out
        # Same callback and secret: pushes signed as before keep working.
        assert (renewed.callback, renewed.secret) == (first.callback, first.secret)
        again = await run.bot.storage.get_websub(feed.id)
        assert again.lease_expires_at > lease_ends


async def test_a_hub_that_refuses_is_asked_again_later(tmp_path, feed_server):
    async with FakeHub() as hub:
        hub.refuse = 1
        async with running(tmp_path, feed_server, hub) as run:
            await hub.next_request()  # the first poll finds the hub, the request follows
            feed = await run.bot.storage.get_feed("Wire")
            websub = run.bot.runtime.websub

            async def refusal_recorded() -> bool:
                return (await run.bot.storage.get_websub(feed.id)).last_error is not None

            await until(refusal_recorded)
            refused = await run.bot.storage.get_websub(feed.id)
            assert refused.last_error == "HTTP 503: hub busy" and refused.lease_expires_at is None
            await websub.attempt_due()  # not yet: it backs off
            assert len(hub.requests) == 1
            run.clock.offset = timedelta(minutes=2)
            websub.wake()
            await hub.verified()
            assert len(hub.requests) == 2
            assert await hub.publish(run.topic, quake_feed(hub, run.topic, QUAKE)) == [202]
            await run.desk.next_card()


async def test_a_chat_feeds_hub_on_an_internal_address_is_never_asked(tmp_path, feed_server):
    """The hub's address comes from the feed: a feed added from chat may not make the bot
    post to the newsroom's internal network (the fetch's address guard applies)."""
    from bot.core.commands import Actor

    # Feeds on 127.0.0.1 are allowed to this bot; the hub is on another loopback address.
    async with (
        FakeHub(host="127.0.0.2") as hub,
        running(tmp_path, feed_server, hub, allow_networks=["127.0.0.1/32"]) as run,
    ):
        await hub.verified()  # the config file's feed: its hub may be anywhere
        feed_server.set("chat.xml", quake_feed(hub, "https://wire.example/chat.xml"))
        admin = Actor("discord", "42", "editor", is_admin=True)
        reply = await run.bot.commands.feed_add(admin, feed_server.url("chat.xml"), "Chat")
        assert reply.ok, reply.text
        chat = await run.bot.storage.get_feed("Chat")
        await run.bot._poll(chat, force=True)
        await run.bot.runtime.websub.attempt_due()
        stored = await run.bot.storage.get_websub(chat.id)
        assert "loopback" in stored.last_error and stored.lease_expires_at is None
        assert [r["hub.topic"] for r in hub.requests] == [run.topic]


async def test_nothing_is_subscribed_or_served_without_a_public_url(tmp_path, feed_server):
    async with FakeHub() as hub, running(tmp_path, feed_server, hub, public=False) as run:

        async def polled() -> bool:
            return run.bot.last_poll_at is not None and run.bot.ops.port is not None

        await until(polled)
        assert run.bot.runtime.websub is None
        assert hub.requests == []
        assert await run.bot.storage.websub_subscriptions() == []
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{run.bot.ops.port}/websub/anything"
            async with http.get(url, params={"hub.challenge": "x"}) as response:
                assert response.status == 404


@pytest.fixture(scope="module", autouse=True)
def _report_latency():
    yield
    if LATENCIES:
        print(f"\nWebSub push -> card latencies (ms): {[round(x * 1000) for x in LATENCIES]}")


@pytest.mark.parametrize(
    ("http", "problem"),
    [
        ({"public_url": "ftp://newsbot.example"}, "must be an http:// or https:// URL"),
        ({"public_url": "newsbot.example"}, "must be an http:// or https:// URL"),
        ({"public_url": "https://"}, "must be an http:// or https:// URL"),
        ({"public_url": "https://n.example/?token=x"}, "query or a fragment"),
        ({"public_url": "https://n.example", "enabled": False}, "needs the HTTP server"),
    ],
)
def test_a_bad_public_url_stops_the_start_naming_the_key(http, problem):
    from config.settings import ConfigError

    with pytest.raises(ConfigError) as failure:
        settings_from_dict({"http": http}, {})
    assert "http" in str(failure.value) and problem in str(failure.value)


def test_public_url_is_optional_and_kept_without_its_trailing_slash():
    assert settings_from_dict({}, {}).http.public_url == ""
    given = {"http": {"public_url": " https://n.example/bot/ "}}
    assert settings_from_dict(given, {}).http.public_url == "https://n.example/bot"
