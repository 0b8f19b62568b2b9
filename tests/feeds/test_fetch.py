"""HttpFetcher against the local FeedServer: conditional GET, limits, errors, and the SSRF guard.

Proof is by counting: requests the server saw, 304s it answered, parses the bot ran. Nothing here
measures time; the slow-server tests only need a timeout to fire."""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import socket
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from bot.core.models import FeedSpec, FeedState, Origin
from bot.core.pipeline import Pipeline
from bot.core.ports import FetchResult, FetchStatus, ParsedFeed
from bot.core.routing import QueryBook
from bot.feeds import FeedReader
from bot.feeds.fetch import FetchLimits, HttpFetcher, parse_retry_after
from bot.feeds.guard import AddressGuard
from storage.sqlite import SqliteStorage
from tests.feedgen import Item, rss

FIRST = rss([Item("Kim Jong-un meets Putin", "In Vladivostok.", link="https://wire.example/1")])
SECOND = rss(
    [
        Item("Kim Jong-un meets Putin", "In Vladivostok.", link="https://wire.example/1"),
        Item("Pyongyang fires missile", "Towards the sea.", link="https://wire.example/2"),
    ]
)


def feed_at(url: str, origin: Origin = Origin.CONFIG) -> FeedState:
    return FeedState(id=1, name="Wire", url=url, interval=timedelta(minutes=2), origin=origin)


def after(feed: FeedState, result: FetchResult) -> FeedState:
    """The feed as the next poll sees it: carrying what this fetch learned."""
    return dataclasses.replace(
        feed, etag=result.etag, last_modified=result.last_modified, body_hash=result.body_hash
    )


@pytest.fixture
async def fetcher():
    fetcher = HttpFetcher(FetchLimits(timeout=timedelta(seconds=10)))
    yield fetcher
    await fetcher.close()


async def fetch_with(limits: FetchLimits, feed: FeedState, **options) -> FetchResult:
    async with HttpFetcher(limits, **options) as fetcher:
        return await fetcher.fetch(feed)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- conditional GET -----------------------------------------------------------------------------


async def test_first_fetch_returns_the_body_and_its_validators(feed_server, fetcher):
    feed_server.set("wire.xml", FIRST)

    result = await fetcher.fetch(feed_at(feed_server.url("wire.xml")))

    assert result.status == FetchStatus.OK
    assert result.body == FIRST
    assert result.http_status == 200
    assert result.etag and result.last_modified and result.body_hash
    assert result.headers["content-location"] == feed_server.url("wire.xml")
    assert feed_server.count("wire.xml") == 1
    first_request = feed_server.request_headers["wire.xml"][0]
    assert "If-None-Match" not in first_request
    assert "If-Modified-Since" not in first_request


async def test_second_fetch_sends_if_none_match_and_gets_not_modified(feed_server, fetcher):
    feed_server.set("wire.xml", FIRST)
    feed = feed_at(feed_server.url("wire.xml"))
    first = await fetcher.fetch(feed)

    second = await fetcher.fetch(after(feed, first))

    assert second.status == FetchStatus.NOT_MODIFIED
    assert second.body is None
    assert (second.etag, second.body_hash) == (first.etag, first.body_hash)
    assert feed_server.request_headers["wire.xml"][1]["If-None-Match"] == first.etag
    assert feed_server.count("wire.xml") == 2
    assert feed_server.conditional_hits["wire.xml"] == 1


async def test_server_with_only_last_modified_gets_if_modified_since(feed_server, fetcher):
    feed_server.set("wire.xml", FIRST, etag=False)
    feed = feed_at(feed_server.url("wire.xml"))
    first = await fetcher.fetch(feed)
    assert first.etag is None and first.last_modified

    second = await fetcher.fetch(after(feed, first))

    assert second.status == FetchStatus.NOT_MODIFIED
    request = feed_server.request_headers["wire.xml"][1]
    assert request["If-Modified-Since"] == first.last_modified
    assert "If-None-Match" not in request
    assert feed_server.conditional_hits["wire.xml"] == 1


async def test_same_bytes_without_validators_are_unchanged(feed_server, fetcher):
    feed_server.set("wire.xml", FIRST, etag=False, last_modified=False)
    feed = feed_at(feed_server.url("wire.xml"))
    first = await fetcher.fetch(feed)

    second = await fetcher.fetch(after(feed, first))

    assert second.status == FetchStatus.UNCHANGED
    assert second.body is None
    assert second.body_hash == first.body_hash
    assert feed_server.count("wire.xml") == 2
    assert feed_server.conditional_hits["wire.xml"] == 0
    assert "If-None-Match" not in feed_server.request_headers["wire.xml"][1]


async def test_changed_body_is_ok_again_with_new_validators(feed_server, fetcher):
    feed_server.set("wire.xml", FIRST)
    feed = feed_at(feed_server.url("wire.xml"))
    first = await fetcher.fetch(feed)
    feed_server.set("wire.xml", SECOND)

    second = await fetcher.fetch(after(feed, first))

    assert second.status == FetchStatus.OK
    assert second.body == SECOND
    assert second.etag != first.etag
    assert second.body_hash != first.body_hash
    assert feed_server.conditional_hits["wire.xml"] == 0


async def test_changed_body_without_validators_is_ok(feed_server, fetcher):
    feed_server.set("wire.xml", FIRST, etag=False, last_modified=False)
    feed = feed_at(feed_server.url("wire.xml"))
    first = await fetcher.fetch(feed)
    feed_server.set("wire.xml", SECOND, etag=False, last_modified=False)

    second = await fetcher.fetch(after(feed, first))

    assert second.status == FetchStatus.OK
    assert second.body == SECOND


class CountingReader(FeedReader):
    """The real reader; it only counts how often the pipeline asks it to parse."""

    def __init__(self, fetcher: HttpFetcher) -> None:
        super().__init__(fetcher)
        self.parses = 0

    async def parse(self, result: FetchResult, feed_name: str) -> ParsedFeed:
        self.parses += 1
        return await super().parse(result, feed_name)


@pytest.mark.parametrize(
    ("validators", "repeat_status"),
    [
        ({"etag": True, "last_modified": True}, "not_modified"),
        ({"etag": False, "last_modified": True}, "not_modified"),
        ({"etag": False, "last_modified": False}, "unchanged"),
    ],
    ids=["etag", "last-modified-only", "no-validators"],
)
async def test_pipeline_parses_only_when_the_bytes_change(feed_server, validators, repeat_status):
    feed_server.set("wire.xml", FIRST, **validators)
    storage = await SqliteStorage.open(":memory:")
    reader = CountingReader(HttpFetcher())
    now = datetime.now(UTC)

    async def no_queries() -> QueryBook:
        return QueryBook([], [])

    pipeline = Pipeline(storage, reader, no_queries, clock=lambda: now)
    spec = FeedSpec("Wire", feed_server.url("wire.xml"), timedelta(minutes=2))
    try:
        await storage.sync_config_feeds([spec], now)

        async def poll() -> str:
            feed = await storage.get_feed("Wire")
            assert feed is not None
            return (await pipeline.poll(feed, force=True)).status

        first = await poll()
        again = await poll()
        feed_server.set("wire.xml", SECOND, **validators)
        changed = await poll()
    finally:
        await reader.close()
        await storage.close()

    assert (first, again, changed) == ("new", repeat_status, "new")
    assert reader.parses == 2
    assert feed_server.count("wire.xml") == 3


# --- bodies --------------------------------------------------------------------------------------


async def test_gzip_body_is_decompressed(feed_server, fetcher):
    feed_server.set("wire.xml", FIRST, gzip=True)

    result = await fetcher.fetch(feed_at(feed_server.url("wire.xml")))

    assert result.status == FetchStatus.OK
    assert result.body == FIRST
    assert "gzip" in feed_server.request_headers["wire.xml"][0]["Accept-Encoding"]
    parsed = await FeedReader(fetcher).parse(result, "Wire")
    assert [s.title for s in parsed.stories] == ["Kim Jong-un meets Putin"]


async def test_endless_body_stops_at_the_limit(feed_server):
    feed_server.set("huge.xml", stream_bytes=50_000_000)
    limits = FetchLimits(max_bytes=1_000_000, timeout=timedelta(seconds=30))

    result = await fetch_with(limits, feed_at(feed_server.url("huge.xml")))

    assert result.status == FetchStatus.ERROR
    assert result.body is None
    assert result.error == "body exceeds the 1 MB limit (stopped reading)"


async def test_declared_length_over_the_limit_is_refused_without_reading(feed_server):
    feed_server.set("big.xml", b" " * 2_000_000)
    limits = FetchLimits(max_bytes=1_000_000)

    result = await fetch_with(limits, feed_at(feed_server.url("big.xml")))

    assert result.status == FetchStatus.ERROR
    assert result.error == "body of 2 MB exceeds the 1 MB limit (not read)"


async def test_gzip_bomb_is_capped_after_decompression(feed_server):
    bomb = b"<rss>" + b" " * 5_000_000 + b"</rss>"
    assert len(gzip.compress(bomb)) < 100_000
    feed_server.set("bomb.xml", bomb, gzip=True)
    limits = FetchLimits(max_bytes=1_000_000)

    result = await fetch_with(limits, feed_at(feed_server.url("bomb.xml")))

    assert result.status == FetchStatus.ERROR
    assert "1 MB limit" in (result.error or "")


# --- redirects -----------------------------------------------------------------------------------


def redirect_chain(server, hops: int) -> str:
    """hop1 -> hop2 -> ... -> hop<hops> -> final.xml; returns the first URL."""
    server.set("final.xml", FIRST)
    for n in range(1, hops + 1):
        target = server.url("final.xml") if n == hops else server.url(f"hop{n + 1}")
        server.set(f"hop{n}", redirect_to=target)
    return server.url("hop1")


async def test_redirects_within_the_limit_are_followed(feed_server):
    start = redirect_chain(feed_server, 3)

    result = await fetch_with(FetchLimits(max_redirects=5), feed_at(start))

    assert result.status == FetchStatus.OK
    assert result.body == FIRST
    assert result.url == feed_server.url("final.xml")
    assert result.headers["content-location"] == feed_server.url("final.xml")


async def test_redirect_chain_longer_than_the_limit_is_an_error(feed_server):
    start = redirect_chain(feed_server, 6)

    result = await fetch_with(FetchLimits(max_redirects=5), feed_at(start))

    assert result.status == FetchStatus.ERROR
    assert result.error == "more than 5 redirects"
    assert feed_server.count("final.xml") == 0


async def test_exactly_max_redirects_are_followed(feed_server):
    start = redirect_chain(feed_server, 5)

    result = await fetch_with(FetchLimits(max_redirects=5), feed_at(start))

    assert result.status == FetchStatus.OK, result.error


async def test_zero_max_redirects_follows_no_redirect(feed_server):
    start = redirect_chain(feed_server, 1)

    result = await fetch_with(FetchLimits(max_redirects=0), feed_at(start))

    assert result.status == FetchStatus.ERROR
    assert feed_server.count("final.xml") == 0


async def test_redirect_loop_is_an_error(feed_server):
    feed_server.set("a", redirect_to=feed_server.url("b"))
    feed_server.set("b", redirect_to=feed_server.url("a"))

    result = await fetch_with(FetchLimits(max_redirects=5), feed_at(feed_server.url("a")))

    assert result.status == FetchStatus.ERROR
    assert "redirects" in (result.error or "")
    assert feed_server.count("a") + feed_server.count("b") <= 6


# --- slow, failing and refusing servers ----------------------------------------------------------


async def test_slow_drip_times_out(feed_server):
    feed_server.set("slow.xml", FIRST, drip=0.5)
    limits = FetchLimits(timeout=timedelta(seconds=1))

    result = await fetch_with(limits, feed_at(feed_server.url("slow.xml")))

    assert result.status == FetchStatus.ERROR
    assert result.error == "timed out after 1s"


async def test_a_slow_feed_does_not_hold_up_another(feed_server):
    feed_server.set("slow.xml", FIRST, drip=0.5)
    feed_server.set("fast.xml", SECOND)
    async with HttpFetcher(FetchLimits(timeout=timedelta(seconds=1))) as fetcher:
        slow, fast = await asyncio.gather(
            fetcher.fetch(feed_at(feed_server.url("slow.xml"))),
            fetcher.fetch(feed_at(feed_server.url("fast.xml"))),
        )

    assert slow.status == FetchStatus.ERROR
    assert "timed out" in (slow.error or "")
    assert fast.status == FetchStatus.OK
    assert fast.body == SECOND


@pytest.mark.parametrize(
    ("status", "reason"), [(404, "Not Found"), (410, "Gone"), (500, "Internal Server Error")]
)
async def test_http_error_status_is_an_error_naming_it(feed_server, fetcher, status, reason):
    feed_server.set("wire.xml", status=status)

    result = await fetcher.fetch(feed_at(feed_server.url("wire.xml")))

    assert result.status == FetchStatus.ERROR
    assert result.http_status == status
    assert result.error == f"HTTP {status} {reason}"
    assert result.retry_after is None
    assert result.body is None


@pytest.mark.parametrize("status", [429, 503])
async def test_retry_after_seconds_are_reported(feed_server, fetcher, status):
    feed_server.set("wire.xml", status=status, headers={"Retry-After": "120"})

    result = await fetcher.fetch(feed_at(feed_server.url("wire.xml")))

    assert result.status == FetchStatus.ERROR
    assert str(status) in (result.error or "")
    assert result.retry_after == 120


async def test_retry_after_http_date_is_turned_into_seconds(feed_server, fetcher):
    later = format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True)
    feed_server.set("wire.xml", status=503, headers={"Retry-After": later})

    result = await fetcher.fetch(feed_at(feed_server.url("wire.xml")))

    assert result.retry_after is not None
    assert 0 < result.retry_after <= 3600


async def test_retry_after_is_ignored_on_other_errors(feed_server, fetcher):
    feed_server.set("wire.xml", status=500, headers={"Retry-After": "120"})

    result = await fetcher.fetch(feed_at(feed_server.url("wire.xml")))

    assert result.retry_after is None


async def test_garbled_retry_after_does_not_escape_fetch(feed_server, fetcher):
    feed_server.set("wire.xml", status=429, headers={"Retry-After": "\xb2"})

    result = await fetcher.fetch(feed_at(feed_server.url("wire.xml")))

    assert result.status == FetchStatus.ERROR
    assert result.retry_after is None


async def test_closed_port_cannot_connect(fetcher):
    result = await fetcher.fetch(feed_at(f"http://127.0.0.1:{closed_port()}/wire.xml"))

    assert result.status == FetchStatus.ERROR
    assert (result.error or "").startswith("cannot connect to 127.0.0.1:")


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("ftp://wire.example/feed.xml", "unsupported URL scheme 'ftp'"),
        ("javascript:alert(1)", "unsupported URL scheme 'javascript'"),
    ],
    ids=["ftp", "javascript"],
)
async def test_unsupported_scheme_is_an_error(fetcher, url, error):
    result = await fetcher.fetch(feed_at(url))

    assert result.status == FetchStatus.ERROR
    assert result.error == error


async def test_requests_carry_an_honest_user_agent(feed_server, fetcher):
    feed_server.set("wire.xml", FIRST)

    await fetcher.fetch(feed_at(feed_server.url("wire.xml")))

    (request,) = feed_server.request_headers["wire.xml"]
    assert request["User-Agent"].startswith("newsbot/")
    assert "rss" in request["Accept"]


# --- file:// -------------------------------------------------------------------------------------


async def test_file_url_is_read_for_a_config_feed(tmp_path, fetcher):
    path = tmp_path / "wire snapshot.xml"
    path.write_bytes(FIRST)
    feed = feed_at(path.as_uri())

    first = await fetcher.fetch(feed)
    again = await fetcher.fetch(after(feed, first))

    assert first.status == FetchStatus.OK
    assert first.body == FIRST
    assert again.status == FetchStatus.UNCHANGED
    assert again.body is None


async def test_missing_file_is_an_error(tmp_path, fetcher):
    result = await fetcher.fetch(feed_at((tmp_path / "gone.xml").as_uri()))

    assert result.status == FetchStatus.ERROR
    assert (result.error or "").startswith("file not found")


async def test_file_url_is_refused_for_a_chat_feed(tmp_path, fetcher):
    path = tmp_path / "secret.xml"
    path.write_bytes(FIRST)

    result = await fetcher.fetch(feed_at(path.as_uri(), Origin.CHAT))

    assert result.status == FetchStatus.ERROR
    assert result.body is None
    assert result.error == "file:// feeds are only allowed in the config file"


# --- the SSRF guard ------------------------------------------------------------------------------


async def test_chat_feed_to_loopback_is_refused_before_connecting(feed_server):
    feed_server.set("wire.xml", FIRST)

    result = await fetch_with(
        FetchLimits(), feed_at(feed_server.url("wire.xml"), Origin.CHAT), guard=AddressGuard()
    )

    assert result.status == FetchStatus.ERROR
    assert "refusing to connect to 127.0.0.1" in (result.error or "")
    assert "loopback" in (result.error or "")
    assert feed_server.count("wire.xml") == 0


async def test_allowed_network_lets_a_chat_feed_through(feed_server):
    feed_server.set("wire.xml", FIRST)

    result = await fetch_with(
        FetchLimits(),
        feed_at(feed_server.url("wire.xml"), Origin.CHAT),
        guard=AddressGuard(allow=["127.0.0.0/8"]),
    )

    assert result.status == FetchStatus.OK
    assert feed_server.count("wire.xml") == 1


async def test_config_feed_may_reach_loopback(feed_server):
    feed_server.set("wire.xml", FIRST)

    result = await fetch_with(
        FetchLimits(), feed_at(feed_server.url("wire.xml")), guard=AddressGuard()
    )

    assert result.status == FetchStatus.OK
    assert feed_server.count("wire.xml") == 1


async def test_guard_checks_every_redirect_hop(feed_server):
    # 127.0.0.1 is allowed, 127.0.0.2 (loopback too) is not: the redirect must be refused.
    feed_server.set("x", FIRST)
    feed_server.set("hop", redirect_to=f"http://127.0.0.2:{feed_server.port}/x")

    result = await fetch_with(
        FetchLimits(),
        feed_at(feed_server.url("hop"), Origin.CHAT),
        guard=AddressGuard(allow=["127.0.0.1/32"]),
    )

    assert result.status == FetchStatus.ERROR
    assert "refusing to connect to 127.0.0.2" in (result.error or "")
    assert "loopback" in (result.error or "")
    assert feed_server.count("hop") == 1
    assert feed_server.count("x") == 0


async def test_chat_feed_is_guarded_even_without_an_explicit_guard(feed_server):
    feed_server.set("wire.xml", FIRST)

    result = await fetch_with(FetchLimits(), feed_at(feed_server.url("wire.xml"), Origin.CHAT))

    assert result.status == FetchStatus.ERROR
    assert feed_server.count("wire.xml") == 0


# --- parse_retry_after ---------------------------------------------------------------------------

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 120 ", 120.0),
        ("0", 0.0),
        ("Wed, 01 May 2024 12:02:00 GMT", 120.0),
        ("Wed, 01 May 2024 14:02:00 +0200", 120.0),
        ("Wed, 01 May 2024 11:00:00 GMT", 0.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("-5", None),
        ("1.5", None),
        ("Wed, 32 May 2024 12:02:00 GMT", None),
    ],
    ids=[
        "seconds",
        "seconds-padded",
        "zero",
        "http-date",
        "http-date-with-offset",
        "date-in-the-past-is-zero",
        "missing",
        "empty",
        "words",
        "negative",
        "fraction",
        "impossible-date",
    ],
)
def test_parse_retry_after(value, seconds):
    assert parse_retry_after(value, now=NOW) == seconds


def test_parse_retry_after_defaults_to_the_current_time():
    later = format_datetime(datetime.now(UTC) + timedelta(minutes=10), usegmt=True)

    seconds = parse_retry_after(later)

    assert seconds is not None
    assert 0 < seconds <= 600


def test_parse_retry_after_rejects_digit_like_characters():
    assert parse_retry_after("\xb2", now=NOW) is None


@pytest.mark.parametrize(
    "document",
    [
        b'<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>Quiet</title>'
        b"<link>https://q.example/</link><description>d</description></channel></rss>",
        b'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>Quiet</title>'
        b"</feed>",
    ],
    ids=["rss", "atom"],
)
async def test_a_valid_file_feed_with_no_items_yet_is_empty_not_broken(tmp_path, document):
    path = tmp_path / "quiet.xml"
    path.write_bytes(document)
    feed = FeedState(1, "Quiet", path.as_uri(), timedelta(minutes=5), Origin.CONFIG)
    reader = FeedReader(HttpFetcher(FetchLimits()))
    try:
        result = await reader.fetch(feed)
        assert result.status == FetchStatus.OK, result.error
        parsed = await reader.parse(result, "Quiet")
    finally:
        await reader.close()
    assert parsed.stories == []
    assert parsed.title == "Quiet"
    assert parsed.warning is None
