"""A local WebSub hub on 127.0.0.1: takes subscription requests, verifies each with a GET to the
subscriber's callback (a challenge that must come back), and publishes content to the verified
subscribers, signed with their secret, or wrongly signed, or not signed, on demand.

It records every subscription request (`requests`), can refuse the next ones (`refuse`), and
lets a test wait for the next verified subscription (`verified`)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from dataclasses import dataclass

import aiohttp
from aiohttp import web


@dataclass
class Subscriber:
    callback: str
    topic: str
    secret: str
    lease_seconds: int


class FakeHub:
    def __init__(self, *, lease_seconds: int = 3600, host: str = "127.0.0.1") -> None:
        self.lease_seconds = lease_seconds
        self.host = host
        self.requests: list[dict[str, str]] = []  # every subscription request's form
        self.subscribers: dict[tuple[str, str], Subscriber] = {}  # (callback, topic): verified
        self.verifications: list[tuple[str, int, str]] = []  # (callback, status, body)
        self.refuse = 0  # refuse this many more requests (HTTP 503)
        self._verified: asyncio.Queue[Subscriber] = asyncio.Queue()
        self._requested: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None
        self.port = 0

    async def __aenter__(self) -> FakeHub:
        app = web.Application()
        app.router.add_post("/", self._subscribe)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._http = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    async def verified(self, timeout: float = 10) -> Subscriber:
        """The next subscription this hub verified (its callback echoed the challenge)."""
        return await asyncio.wait_for(self._verified.get(), timeout)

    async def next_request(self, timeout: float = 10) -> dict[str, str]:
        """The next subscription request this hub received (refused or not)."""
        return await asyncio.wait_for(self._requested.get(), timeout)

    async def _subscribe(self, request: web.Request) -> web.Response:
        form = {key: str(value) for key, value in (await request.post()).items()}
        self.requests.append(form)
        self._requested.put_nowait(form)
        if self.refuse:
            self.refuse -= 1
            return web.Response(status=503, text="hub busy")
        if form.get("hub.mode") != "subscribe" or not form.get("hub.callback"):
            return web.Response(status=400, text="bad request")
        task = asyncio.create_task(self._verify(form))  # asynchronous verification, as allowed
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return web.Response(status=202, text="accepted")

    async def _verify(self, form: dict[str, str]) -> None:
        challenge = secrets.token_hex(8)
        status, body = await self.challenge(
            form["hub.callback"], form.get("hub.topic", ""), challenge, self.lease_seconds
        )
        if status // 100 == 2 and body == challenge:
            subscriber = Subscriber(
                form["hub.callback"],
                form.get("hub.topic", ""),
                form.get("hub.secret", ""),
                self.lease_seconds,
            )
            self.subscribers[(subscriber.callback, subscriber.topic)] = subscriber
            await self._verified.put(subscriber)

    async def challenge(
        self,
        callback: str,
        topic: str,
        challenge: str = "a-challenge",
        lease_seconds: int | None = 3600,
        mode: str = "subscribe",
    ) -> tuple[int, str]:
        """The verification GET a hub makes; (status, body) of the callback's answer."""
        assert self._http is not None
        params = {"hub.mode": mode, "hub.topic": topic, "hub.challenge": challenge}
        if lease_seconds is not None:
            params["hub.lease_seconds"] = str(lease_seconds)
        async with self._http.get(callback, params=params) as response:
            body = await response.text()
        self.verifications.append((callback, response.status, body))
        return response.status, body

    async def publish(
        self,
        topic: str,
        body: bytes,
        *,
        content_type: str = "application/rss+xml",
        sign: str = "good",
        method: str = "sha256",
    ) -> list[int]:
        """Push `body` to every verified subscriber of `topic`: `sign` is "good", "bad" (the
        HMAC of other bytes) or "none"; returns the status of each callback's answer."""
        assert self._http is not None
        statuses = []
        for subscriber in list(self.subscribers.values()):
            if subscriber.topic != topic:
                continue
            headers = {"Content-Type": content_type}
            if sign != "none":
                signed = body if sign == "good" else body + b"tampered"
                digest = hmac.new(subscriber.secret.encode(), signed, getattr(hashlib, method))
                headers["X-Hub-Signature"] = f"{method}={digest.hexdigest()}"
            async with self._http.post(subscriber.callback, data=body, headers=headers) as resp:
                statuses.append(resp.status)
        return statuses
