"""WebSub push (issue 17; W3C WebSub): a feed that advertises a hub is pushed to us, so a story
is posted seconds after it is published instead of at the next poll.

Only with `[http] public_url` set (the address hubs reach our HTTP server at): without it this
module is not wired and nothing changes. With it:

- **Discovery**: after each poll that read a body, the feed's hub and topic are read from the
  HTTP `Link:` header and from the document's own `<link rel="hub">` / `<atom:link rel="hub">`
  and `rel="self"` (the topic; the feed's URL when it names none). A feed that stops
  advertising a hub loses its subscription (it lapses at the hub with its lease).
- **Subscribing**: one subscription per feed, stored (storage's WebSubStore), with a random
  secret and a random callback path `/websub/<callback>`: the path names the subscription
  without saying which feed it is, and is not the secret. It is renewed at 80% of the lease
  the hub granted; a hub that refuses, or accepts and never verifies, is asked again with
  backoff (RETRY_MIN doubling to RETRY_MAX).
- **The callback**: GET is the hub's verification (its `hub.challenge` is echoed only for the
  topic of a subscription we asked for; anything else is 404). POST is a delivery: the body is
  read up to the fetch size cap, its `X-Hub-Signature` (HMAC of the body with the secret:
  sha1, sha256, sha384 or sha512) checked in constant time, and a missing or wrong one refused
  (403) without parsing the content. A good one is answered 202 at once and ingested in a task
  through the same parse -> dedupe -> match -> outbox path as a poll (Pipeline.ingest), so a
  story pushed and polled later is one card. Polling goes on as the safety net: while the hub's
  lease runs, at the ceiling (`[polling] max_interval`; a feed's own fixed interval, or
  adaptive polling off, still wins), back at the feed's own rate once the lease has lapsed.

Several workers on one PostgreSQL database (bot.cluster): the hub may call any of them (behind
one public URL). Every worker serves the callback from the shared table; pushed content goes
through that worker's Pipeline.ingest, whose ingest session takes the cluster-wide ingest lock,
so de-duplication against the other workers' polls holds. Each subscription attempt is made by
one worker: the first to claim it (Coordinator.first_to_handle, keyed by the attempt's due
time), which moves the next attempt on before it asks the hub, so a worker that dies mid-way
only delays the attempt by a retry."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import html
import logging
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp import web

from bot.core.cluster import Coordinator, LeaseLost
from bot.core.models import FeedState
from bot.core.pipeline import Pipeline, PollReport
from bot.core.ports import FeedError, FetchResult, FetchStatus
from bot.core.store import PollOutcome, Storage, WebSubSubscription
from bot.feeds.fetch import HttpFetcher
from bot.feeds.guard import BlockedAddress

log = logging.getLogger(__name__)

CALLBACK_PATH = "/websub/{callback}"
# Renew when this share of the lease has passed: a hub that is slow to verify still has time.
RENEW_AT = 0.8
# A hub that names no lease (or an absurd one): renew as if it had granted this.
DEFAULT_LEASE = timedelta(days=1)
MAX_LEASE = timedelta(days=366)
RETRY_MIN = timedelta(minutes=1)
RETRY_MAX = timedelta(hours=6)
# The subscription loop looks again at least this often (a wake-up makes it look at once).
CHECK_EVERY = timedelta(minutes=1)
# Hubs are declared in the feed's head; the document is read up to its first item, at most this.
HEAD_BYTES = 256 * 1024

_ALGORITHMS: dict[str, Callable[..., hashlib._Hash]] = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha384": hashlib.sha384,
    "sha512": hashlib.sha512,
}
_FIRST_ITEM = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?(?:item|entry)[\s>/]")
# `[^<>]`, not `[^>]`: a tag's attributes never hold a bare "<", and a head of unclosed "<link"
# openers must cost one pass, not a rescan to the end from each (256 KB of them took 45 s,
# with the event loop blocked).
_LINK_TAG = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?link\b([^<>]*)>", re.IGNORECASE)
_ATTRIBUTE = re.compile(rb"""([\w:.-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_LINK_VALUE = re.compile(r"<([^>]*)>\s*((?:;\s*[^;,]*)*)")
_LINK_PARAM = re.compile(r""";\s*([\w*-]+)\s*=\s*(?:"([^"]*)"|([^;,\s]*))""")


@dataclass(frozen=True, slots=True)
class Advert:
    """What a feed says of its push: the hub to subscribe at, and the topic (its self URL)."""

    hub: str
    topic: str


def _web_url(value: str | None, base: str) -> str | None:
    if not value:
        return None
    url = urljoin(base, value.strip())
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return url


def _header_links(value: str, base: str) -> dict[str, str]:
    """rel -> URL, the first of each, from a `Link:` header (RFC 8288)."""
    found: dict[str, str] = {}
    for match in _LINK_VALUE.finditer(value):
        target = match.group(1)
        for name, quoted, bare in _LINK_PARAM.findall(match.group(2)):
            if name.lower() != "rel":
                continue
            for rel in (quoted or bare).lower().split():
                url = _web_url(target, base)
                if url and rel not in found:
                    found[rel] = url
    return found


def _document_links(body: bytes, base: str) -> dict[str, str]:
    """rel -> URL, the first of each, from the `<link>` elements of the document's head."""
    head = body[:HEAD_BYTES]
    first_item = _FIRST_ITEM.search(head)
    if first_item is not None:
        head = head[: first_item.start()]
    found: dict[str, str] = {}
    for tag in _LINK_TAG.finditer(head):
        attributes = {
            name.lower(): (double if double or not single else single)
            for name, double, single in _ATTRIBUTE.findall(tag.group(1))
        }
        rel, href = attributes.get(b"rel"), attributes.get(b"href")
        if not rel or not href:
            continue
        text = html.unescape(href.decode("utf-8", "replace"))
        for name in rel.decode("utf-8", "replace").lower().split():
            url = _web_url(text, base)
            if url and name not in found:
                found[name] = url
    return found


def discover(body: bytes, headers: Mapping[str, str], url: str) -> Advert | None:
    """The hub a fetched feed advertises, and its topic; None when it advertises none. The
    `Link:` header comes first (WebSub's order), then the document; the topic is the self URL
    found where the hub was, else the other place's, else the document's own URL."""
    lowered = {name.lower(): value for name, value in headers.items()}
    from_header = _header_links(lowered.get("link", ""), url)
    from_document = _document_links(body, url)
    for first, second in ((from_header, from_document), (from_document, from_header)):
        hub = first.get("hub")
        topic = first.get("self") or second.get("self") or _web_url(url, url)
        if hub and topic:  # a file:// feed naming no web address of its own has no topic
            return Advert(hub, topic)
    return None


def signature_ok(secret: str, body: bytes, header: str | None) -> bool:
    """Whether `X-Hub-Signature` (`method=hexdigest`) is the HMAC of `body` with `secret`,
    compared in constant time. Missing, malformed or of another method: False."""
    if not header:
        return False
    method, _, given = header.strip().partition("=")
    algorithm = _ALGORITHMS.get(method.strip().lower())
    if algorithm is None or not given:
        return False
    expected = hmac.new(secret.encode(), body, algorithm).hexdigest().encode()
    return hmac.compare_digest(expected, given.strip().lower().encode("utf-8", "replace"))


def _backoff(failures: int) -> timedelta:
    return min(RETRY_MIN * 2 ** min(max(failures - 1, 0), 16), RETRY_MAX)


class BodyTooLarge(Exception):
    pass


class WebSub:
    """The subscriptions of this bot (see the module docstring). Made by the composition root
    only when `[http] public_url` is set; `advertised` is the pipeline's hook after a poll,
    `mount` puts the callback on the HTTP server, `start`/`close` run the subscription loop."""

    def __init__(
        self,
        storage: Storage,
        pipeline: Pipeline,
        fetcher: HttpFetcher,
        *,
        public_url: str,
        max_bytes: int,
        clock: Callable[[], datetime],
        coordinator: Coordinator | None = None,
        on_ingested: Callable[[PollReport], None] = lambda report: None,
    ) -> None:
        self.storage = storage
        self.pipeline = pipeline
        self.fetcher = fetcher
        self.public_url = public_url.rstrip("/")
        self.max_bytes = max_bytes
        self.clock = clock
        self.coordinator = coordinator
        self.on_ingested = on_ingested
        self._wake = asyncio.Event()
        self._loop: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # pushed content being ingested
        self._errors: dict[int, str] = {}  # per feed, the last attempt's error (logged once)

    def callback_url(self, callback: str) -> str:
        return self.public_url + CALLBACK_PATH.format(callback=callback)

    # --- discovery (the pipeline's hook after a poll) -----------------------------------------

    async def advertised(self, feed: FeedState, result: FetchResult) -> None:
        """What the poll's document and headers say of a hub: subscribe, move, or give up.
        Never raises: push is a bonus on top of the poll, which has succeeded."""
        try:
            if result.body is None or feed.id <= 0:
                return
            advert = discover(result.body, result.headers, result.url)
            current = await self.storage.get_websub(feed.id)
            if advert is None:
                if current is not None:
                    log.info("feed %r no longer advertises a hub; polling only", feed.name)
                    await self.storage.remove_websub(feed.id)
                return
            if current is not None and (current.hub, current.topic) == (advert.hub, advert.topic):
                return
            await self.storage.save_websub(
                WebSubSubscription(
                    feed_id=feed.id,
                    hub=advert.hub,
                    topic=advert.topic,
                    callback=secrets.token_urlsafe(18),
                    secret=secrets.token_urlsafe(32),
                    next_attempt_at=self.clock(),
                )
            )
            log.info("feed %r advertises the WebSub hub %s; subscribing", feed.name, advert.hub)
            self.wake()
        except Exception:
            log.exception("reading the WebSub hub of feed %r failed", feed.name)

    async def pushing(self, feed: FeedState) -> bool:
        """Whether the feed's hub pushes it now (verified, lease running): its polls are then
        only the safety net, at the ceiling. Never raises: in doubt, polled as usual."""
        try:
            sub = await self.storage.get_websub(feed.id)
        except Exception:
            log.exception("reading the WebSub subscription of feed %r failed", feed.name)
            return False
        expires = None if sub is None else sub.lease_expires_at
        return expires is not None and expires > self.clock()

    # --- the subscription loop ----------------------------------------------------------------

    def start(self) -> None:
        if self._loop is None:
            self._loop = asyncio.create_task(self._run(), name="websub-subscriptions")

    def wake(self) -> None:
        """Look at the subscriptions now (a new one, or the clock moved in a test)."""
        self._wake.set()

    async def close(self) -> None:
        tasks = [t for t in (self._loop, *self._tasks) if t is not None]
        self._loop = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    async def _run(self) -> None:
        while True:
            wait = CHECK_EVERY
            try:
                wait = await self.attempt_due()
            except Exception:
                log.exception("WebSub subscriptions: the round failed; trying again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(wait.total_seconds(), 0.0))
            self._wake.clear()

    async def attempt_due(self) -> timedelta:
        """Ask the hubs of the subscriptions that are due; returns the wait until the next."""
        now = self.clock()
        wait = CHECK_EVERY
        for sub in await self.storage.websub_subscriptions():
            if sub.next_attempt_at is None:
                continue
            if sub.next_attempt_at > now:
                wait = min(wait, sub.next_attempt_at - now)
                continue
            await self._attempt(sub, now)
        return wait

    async def _attempt(self, sub: WebSubSubscription, now: datetime) -> None:
        feed = await self.storage.get_feed_by_id(sub.feed_id)
        if feed is None:  # gone from the config file (kept inactive): nothing to push to
            await self.storage.remove_websub(sub.feed_id)
            return
        if self.coordinator is not None and sub.next_attempt_at is not None:
            key = f"websub:{sub.feed_id}:{sub.callback}:{sub.next_attempt_at.timestamp()}"
            if not await self.coordinator.first_to_handle(key):
                return  # another worker makes this attempt
        # The next attempt is moved on before the hub is asked: the hub may verify before it
        # answers, and its verification sets the renewal time; a worker that dies here only
        # delays the subscription by a retry.
        failures = sub.failures + 1
        pending = replace(sub, failures=failures, next_attempt_at=now + _backoff(failures))
        await self.storage.save_websub(pending)
        error = await self._ask_hub(feed, sub)
        if error is None:
            log.debug("hub %s accepted the subscription of %r", sub.hub, feed.name)
            self._errors.pop(feed.id, None)
            return
        latest = await self.storage.get_websub(sub.feed_id)
        if latest is not None and latest.callback == sub.callback and latest.failures:
            await self.storage.save_websub(replace(latest, last_error=error))
        if self._errors.get(feed.id) != error:
            self._errors[feed.id] = error
            log.warning(
                "WebSub hub %s refused the subscription of feed %r: %s (asking again in %s; "
                "polling goes on meanwhile)",
                sub.hub,
                feed.name,
                error,
                _backoff(failures),
            )

    async def _ask_hub(self, feed: FeedState, sub: WebSubSubscription) -> str | None:
        """The subscription request; None when the hub accepted it (2xx), else why not."""
        form = {
            "hub.mode": "subscribe",
            "hub.topic": sub.topic,
            "hub.callback": self.callback_url(sub.callback),
            "hub.secret": sub.secret,
        }
        try:
            session = self.fetcher.session_for(feed)
            async with session.post(sub.hub, data=form, allow_redirects=False) as response:
                if 200 <= response.status < 300:
                    return None
                text = (await response.content.read(300)).decode("utf-8", "replace").strip()
                text = text.replace(sub.secret, "[secret]")  # a hub echoing the form, logged
                reason = f"HTTP {response.status}"
                return f"{reason}: {text[:200]}" if text else reason
        except TimeoutError:
            return "timed out"
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, BlockedAddress):  # the SSRF guard's reason, plainly
                return str(exc.os_error)
            return f"{type(exc).__name__}: {exc}"
        except (aiohttp.ClientError, OSError) as exc:
            return f"{type(exc).__name__}: {exc}"

    # --- the callback -------------------------------------------------------------------------

    def mount(self, app: web.Application) -> None:
        app.router.add_get(CALLBACK_PATH, self._verify)
        app.router.add_post(CALLBACK_PATH, self._deliver)

    async def _verify(self, request: web.Request) -> web.Response:
        """The hub's verification of intent (or its word that it denied us)."""
        query = request.query
        sub = await self.storage.websub_by_callback(request.match_info["callback"])
        mode, topic = query.get("hub.mode", ""), query.get("hub.topic", "")
        if sub is None or topic != sub.topic:
            return web.Response(status=404, text="unknown subscription")
        if mode == "denied":
            reason = query.get("hub.reason", "no reason given")[:200]
            await self.storage.save_websub(replace(sub, last_error=f"denied by the hub: {reason}"))
            log.warning("WebSub hub %s denied a subscription: %s", sub.hub, reason)
            return web.Response(status=200, text="ok")
        challenge = query.get("hub.challenge", "")
        if mode != "subscribe" or not challenge:
            # An unsubscribe we never asked for (we want every subscription we store).
            return web.Response(status=404, text="not confirmed")
        lease = DEFAULT_LEASE
        with contextlib.suppress(ValueError):
            seconds = int(query.get("hub.lease_seconds", ""))
            if seconds > 0:
                lease = min(timedelta(seconds=seconds), MAX_LEASE)
        now = self.clock()
        await self.storage.save_websub(
            replace(
                sub,
                lease_expires_at=now + lease,
                next_attempt_at=now + lease * RENEW_AT,
                failures=0,
                last_error=None,
            )
        )
        self._errors.pop(sub.feed_id, None)
        log.info("WebSub hub %s verified a subscription for %s", sub.hub, lease)
        return web.Response(status=200, text=challenge, content_type="text/plain")

    async def _deliver(self, request: web.Request) -> web.Response:
        """A push: checked, answered at once, ingested in a task."""
        sub = await self.storage.websub_by_callback(request.match_info["callback"])
        if sub is None:
            return web.Response(status=404, text="unknown subscription")
        try:
            body = await self._read_capped(request)
        except BodyTooLarge:
            log.warning("a WebSub push for feed %d exceeded the size limit; ignored", sub.feed_id)
            return web.Response(status=413, text="too large")
        if not signature_ok(sub.secret, body, request.headers.get("X-Hub-Signature")):
            log.warning(
                "a WebSub push for feed %d had a missing or wrong signature; ignored", sub.feed_id
            )
            return web.Response(status=403, text="bad signature")
        content_type = request.headers.get("Content-Type", "application/xml")
        task = asyncio.create_task(
            self._ingest(sub, body, content_type), name=f"websub-push-{sub.feed_id}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return web.Response(status=202, text="accepted")

    async def _read_capped(self, request: web.Request) -> bytes:
        declared = request.content_length
        if declared is not None and declared > self.max_bytes:
            raise BodyTooLarge
        body = bytearray()
        async for chunk in request.content.iter_chunked(64 * 1024):
            body += chunk
            if len(body) > self.max_bytes:
                raise BodyTooLarge
        return bytes(body)

    async def _ingest(self, sub: WebSubSubscription, body: bytes, content_type: str) -> None:
        feed = await self.storage.get_feed_by_id(sub.feed_id)
        if feed is None:
            return
        result = FetchResult(
            FetchStatus.OK,
            sub.topic,
            body=body,
            headers={"content-type": content_type, "content-location": sub.topic},
        )
        try:
            parsed = await self.pipeline.reader.parse(result, feed.name)
            report = await self.pipeline.ingest(
                feed, parsed.stories, _as_it_was(feed), parsed.identity
            )
        except FeedError as exc:
            log.warning("feed %r: pushed content is not a feed (%s); ignored", feed.name, exc)
            return
        except LeaseLost:
            # This worker's poll of the feed was taken over meanwhile: its next poll (by the
            # worker that holds it now) brings the story.
            log.info("feed %r: pushed content left to the worker now polling it", feed.name)
            return
        except Exception:
            # The poll that follows will find the story: the push was only the faster way.
            log.exception("feed %r: ingesting pushed content failed", feed.name)
            return
        self.on_ingested(report)
        log.info(
            "feed %r: pushed %d stories, %d new, %d updated, %d alerts",
            feed.name,
            report.stories,
            report.new,
            report.updated,
            report.alerts,
        )


def _as_it_was(feed: FeedState) -> PollOutcome:
    """The feed's fetch state unchanged: a push is not a poll, so the next conditional GET,
    the body hash and a failing feed's backoff stay as the polls left them."""
    if feed.failures:
        return PollOutcome(
            ok=False,
            etag=feed.etag,
            last_modified=feed.last_modified,
            body_hash=feed.body_hash,
            error=feed.last_error,
            failures=feed.failures,
            retry_at=feed.retry_at,
        )
    return PollOutcome(
        ok=True, etag=feed.etag, last_modified=feed.last_modified, body_hash=feed.body_hash
    )
