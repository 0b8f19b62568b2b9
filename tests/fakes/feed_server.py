"""A local feed server on 127.0.0.1: serves documents the test sets, honours conditional GET,
counts every request, and misbehaves on demand (status codes, Retry-After, slow drips, redirect
loops, huge or compressed bodies)."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
from collections import Counter
from dataclasses import dataclass, field
from email.utils import formatdate

from aiohttp import web


@dataclass
class Route:
    body: bytes = b""
    content_type: str = "application/rss+xml; charset=utf-8"
    status: int = 200
    etag: bool = True
    last_modified: bool = True
    headers: dict[str, str] = field(default_factory=dict)
    gzip: bool = False
    drip: float | None = None  # seconds between bytes
    redirect_to: str | None = None
    version: int = 0  # bumped with each new body; drives ETag and Last-Modified
    stream_bytes: int | None = None  # serve this many filler bytes, generated on the fly


class FeedServer:
    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: Counter[str] = Counter()
        self.conditional_hits: Counter[str] = Counter()  # answered 304
        self.request_headers: dict[str, list[dict[str, str]]] = {}
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> FeedServer:
        app = web.Application()
        app.router.add_route("GET", "/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> FeedServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def set(self, path: str, body: bytes | str = b"", **options: object) -> Route:
        """Serve `body` at `path` from now on; a changed body gets a new ETag/Last-Modified."""
        data = body.encode() if isinstance(body, str) else body
        old = self.routes.get(path.lstrip("/"))
        route = Route(body=data, **options)  # type: ignore[arg-type]
        route.version = (old.version + (old.body != data)) if old else 1
        self.routes[path.lstrip("/")] = route
        return route

    def count(self, path: str) -> int:
        return self.requests[path.lstrip("/")]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"]
        self.requests[path] += 1
        self.request_headers.setdefault(path, []).append(dict(request.headers))
        route = self.routes.get(path)
        if route is None:
            return web.Response(status=404, text="not found")
        if route.redirect_to is not None:
            raise web.HTTPFound(route.redirect_to)
        if route.status != 200:
            return web.Response(
                status=route.status, text=f"status {route.status}", headers=route.headers
            )
        etag = f'"v{route.version}-{hashlib.sha1(route.body).hexdigest()[:8]}"'
        modified = formatdate(1_700_000_000 + route.version * 60, usegmt=True)
        headers = {"Content-Type": route.content_type, **route.headers}
        if route.etag:
            headers["ETag"] = etag
            if request.headers.get("If-None-Match") == etag:
                self.conditional_hits[path] += 1
                return web.Response(status=304, headers={"ETag": etag})
        if route.last_modified:
            headers["Last-Modified"] = modified
            if not route.etag and request.headers.get("If-Modified-Since") == modified:
                self.conditional_hits[path] += 1
                return web.Response(status=304)
        if route.stream_bytes is not None:
            return await self._stream(request, route, headers)
        body = route.body
        if route.gzip:
            body = gzip.compress(body)
            headers["Content-Encoding"] = "gzip"
        if route.drip is not None:
            response = web.StreamResponse(headers=headers)
            await response.prepare(request)
            for i in range(len(body)):
                await response.write(body[i : i + 1])
                await asyncio.sleep(route.drip)
            return response
        return web.Response(body=body, headers=headers)

    async def _stream(
        self, request: web.Request, route: Route, headers: dict[str, str]
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers=headers)
        await response.prepare(request)
        chunk = b"<!-- " + b"x" * (64 * 1024 - 9) + b" -->"
        sent = 0
        try:
            while sent < (route.stream_bytes or 0):
                await response.write(chunk)
                sent += len(chunk)
        except (ConnectionResetError, RuntimeError):
            pass  # the client stopped reading: that is the point
        return response
