"""Fetching feeds with aiohttp: conditional GET, a size cap, a timeout, few redirects.

Every failure becomes a FetchResult with a one-line reason; nothing raises to the scheduler, so
one feed's trouble never delays or stops another."""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

import aiohttp
from multidict import CIMultiDictProxy

from bot.core.models import FeedState, Origin
from bot.core.ports import FetchResult, FetchStatus
from bot.feeds.guard import AddressGuard, BlockedAddress
from bot.feeds.hints import max_age

log = logging.getLogger(__name__)

VERSION = "0.1.0"
DEFAULT_USER_AGENT = f"newsbot/{VERSION} (newsroom alert bot; polite polling with conditional GET)"
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml, application/xml;q=0.9, "
    "text/xml;q=0.9, */*;q=0.5"
)


@dataclass(frozen=True, slots=True)
class FetchLimits:
    timeout: timedelta = timedelta(seconds=20)
    max_bytes: int = 10_000_000
    max_redirects: int = 5
    concurrency: int = 32
    per_host: int = 4
    user_agent: str = DEFAULT_USER_AGENT


def body_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:g} MB" if size >= 1_000_000 else f"{size // 1000} KB"


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After is seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if re.fullmatch(r"[0-9]{1,9}", value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class TooLarge(Exception):
    pass


class HttpFetcher:
    """Reads feed bodies over HTTP(S), and from file:// for feeds the config file lists."""

    def __init__(
        self,
        limits: FetchLimits | None = None,
        *,
        guard: AddressGuard | None = None,
        allow_file: Callable[[FeedState], bool] = lambda feed: feed.origin == Origin.CONFIG,
    ) -> None:
        self.limits = limits or FetchLimits()
        # Chat-added feeds are always guarded; an explicit guard only adds allowed networks.
        self.guard = guard or AddressGuard()
        self.allow_file = allow_file
        # Two sessions: feeds from the config file may live on the newsroom's own network;
        # feeds added from chat go through the address guard.
        self._sessions: dict[bool, aiohttp.ClientSession] = {}

    async def __aenter__(self) -> HttpFetcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _get_session(self, guarded: bool) -> aiohttp.ClientSession:
        session = self._sessions.get(guarded)
        if session is None or session.closed:
            limit, per_host = self.limits.concurrency, self.limits.per_host
            connector = (
                self.guard.connector(limit=limit, limit_per_host=per_host, ttl_dns_cache=300)
                if guarded and self.guard
                else aiohttp.TCPConnector(limit=limit, limit_per_host=per_host, ttl_dns_cache=300)
            )
            seconds = self.limits.timeout.total_seconds()
            session = self._sessions[guarded] = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=seconds, sock_connect=min(seconds, 10)),
                headers={
                    "User-Agent": self.limits.user_agent or DEFAULT_USER_AGENT,
                    "Accept": ACCEPT,
                },
                # Feeds cookies are noise; a shared jar would leak one publisher's into another.
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=True,
            )
        return session

    def session_for(self, feed: FeedState) -> aiohttp.ClientSession:
        """The session a feed's requests go through (its WebSub hub's too): through the
        address guard unless the feed is the config file's."""
        return self._get_session(guarded=feed.origin != Origin.CONFIG)

    async def close(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            await session.close()

    async def fetch(self, feed: FeedState) -> FetchResult:
        url = feed.url.strip()
        scheme = urlsplit(url).scheme.lower()
        if scheme == "file":
            if not self.allow_file(feed):
                return FetchResult(
                    FetchStatus.ERROR,
                    url,
                    error="file:// feeds are only allowed in the config file",
                )
            return await self._fetch_file(feed, url)
        if scheme not in ("http", "https"):
            return FetchResult(FetchStatus.ERROR, url, error=f"unsupported URL scheme {scheme!r}")
        try:
            return await self._fetch_http(feed, url)
        except TimeoutError:
            return FetchResult(
                FetchStatus.ERROR,
                url,
                error=f"timed out after {self.limits.timeout.total_seconds():g}s",
            )
        except BlockedAddress as exc:
            return FetchResult(FetchStatus.ERROR, url, error=str(exc))
        except aiohttp.TooManyRedirects:
            return FetchResult(
                FetchStatus.ERROR, url, error=f"more than {self.limits.max_redirects} redirects"
            )
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, BlockedAddress):
                return FetchResult(FetchStatus.ERROR, url, error=str(exc.os_error))
            return FetchResult(
                FetchStatus.ERROR,
                url,
                error=f"cannot connect to "
                f"{exc.host}:{exc.port}: {exc.os_error.strerror or exc.os_error}",
            )
        except aiohttp.InvalidURL:
            return FetchResult(FetchStatus.ERROR, url, error="invalid URL")
        except aiohttp.ClientPayloadError as exc:
            return FetchResult(FetchStatus.ERROR, url, error=f"broken response body: {exc}")
        except aiohttp.ClientError as exc:
            return FetchResult(FetchStatus.ERROR, url, error=f"{type(exc).__name__}: {exc}")
        except TooLarge as exc:
            return FetchResult(FetchStatus.ERROR, url, error=str(exc))

    async def _fetch_http(self, feed: FeedState, url: str) -> FetchResult:
        headers: dict[str, str] = {"Accept-Encoding": "gzip, deflate"}
        if feed.etag:
            headers["If-None-Match"] = feed.etag
        if feed.last_modified:
            headers["If-Modified-Since"] = feed.last_modified
        session = self._get_session(guarded=feed.origin != Origin.CONFIG)
        # aiohttp gives up once it has followed max_redirects - 1, and treats 0 as "unlimited":
        # translate so that 5 means five redirects followed and 0 means none.
        follow = self.limits.max_redirects > 0
        async with session.get(
            url,
            headers=headers,
            allow_redirects=follow,
            max_redirects=self.limits.max_redirects + 1,
        ) as response:
            final_url = str(response.url)
            if not follow and 300 <= response.status < 400 and response.status != 304:
                return FetchResult(
                    FetchStatus.ERROR,
                    final_url,
                    http_status=response.status,
                    error=f"HTTP {response.status} redirect, and redirects are "
                    "disabled ([fetch].max_redirects = 0)",
                )
            # How long the server would have us wait (bot.core.polling: these only ever lengthen
            # a feed's interval, up to [polling] max_interval).
            cached_for = max_age(response.headers.get("Cache-Control"))
            if response.status == 304:
                return FetchResult(
                    FetchStatus.NOT_MODIFIED,
                    final_url,
                    http_status=304,
                    etag=feed.etag,
                    last_modified=feed.last_modified,
                    body_hash=feed.body_hash,
                    max_age=cached_for,
                    retry_after=parse_retry_after(response.headers.get("Retry-After")),
                )
            if response.status >= 400:
                retry_after = None
                if response.status in (429, 503):
                    retry_after = parse_retry_after(response.headers.get("Retry-After"))
                reason = f"HTTP {response.status} {response.reason or ''}".strip()
                return FetchResult(
                    FetchStatus.ERROR,
                    final_url,
                    http_status=response.status,
                    error=reason,
                    retry_after=retry_after,
                )
            declared = response.content_length
            if (
                declared is not None
                and declared > self.limits.max_bytes
                and not response.headers.get("Content-Encoding")
            ):
                raise TooLarge(
                    f"body of {_megabytes(declared)} exceeds the "
                    f"{_megabytes(self.limits.max_bytes)} limit (not read)"
                )
            body = await self._read_capped(response)
            etag = response.headers.get("ETag")
            last_modified = response.headers.get("Last-Modified")
            digest = body_hash(body)
            status = FetchStatus.UNCHANGED if digest == feed.body_hash else FetchStatus.OK
            return FetchResult(
                status,
                final_url,
                body=None if status == FetchStatus.UNCHANGED else body,
                headers=_feedparser_headers(response.headers, final_url),
                etag=etag,
                last_modified=last_modified,
                body_hash=digest,
                http_status=response.status,
                max_age=cached_for,
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )

    async def _read_capped(self, response: aiohttp.ClientResponse) -> bytes:
        limit = self.limits.max_bytes
        body = bytearray()
        # Counted after decompression, so a gzip bomb stops at the cap like any large body.
        async for chunk in response.content.iter_chunked(64 * 1024):
            body += chunk
            if len(body) > limit:
                raise TooLarge(f"body exceeds the {_megabytes(limit)} limit (stopped reading)")
        return bytes(body)

    async def _fetch_file(self, feed: FeedState, url: str) -> FetchResult:
        path = Path(url2pathname(unquote(urlsplit(url).path)))
        try:
            body = await asyncio.to_thread(_read_file, path, self.limits.max_bytes)
        except FileNotFoundError:
            return FetchResult(FetchStatus.ERROR, url, error=f"file not found: {path}")
        except TooLarge as exc:
            return FetchResult(FetchStatus.ERROR, url, error=str(exc))
        except OSError as exc:
            return FetchResult(FetchStatus.ERROR, url, error=f"cannot read {path}: {exc.strerror}")
        digest = body_hash(body)
        if digest == feed.body_hash:
            return FetchResult(FetchStatus.UNCHANGED, url, body_hash=digest)
        # A file has no Content-Type; without one feedparser flags every document, and a valid
        # feed with no items yet came out as "broken". application/xml (unlike text/xml) lets
        # the document's own XML declaration name its encoding.
        headers = {"content-location": url, "content-type": "application/xml"}
        return FetchResult(FetchStatus.OK, url, body=body, body_hash=digest, headers=headers)


def _read_file(path: Path, limit: int) -> bytes:
    with path.open("rb") as handle:
        body = handle.read(limit + 1)
    if len(body) > limit:
        raise TooLarge(f"file exceeds the {_megabytes(limit)} limit")
    return body


def _feedparser_headers(headers: Mapping[str, str], final_url: str) -> dict[str, str]:
    # feedparser wants lower-case names; content-location makes relative links resolve against
    # where the document really came from (after redirects).
    wanted = ("content-type", "content-language", "etag", "last-modified")
    out = {name: headers[name] for name in wanted if name in headers}
    # WebSub hubs are advertised in Link headers too (bot.feeds.websub); a server may send several.
    links = headers.getall("Link", []) if isinstance(headers, CIMultiDictProxy) else []
    if links:
        out["link"] = ", ".join(links)
    out["content-location"] = final_url
    return out
