"""Fixtures shared by the Discord and Slack tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from tests.chat.hostile import HOSTILE_LINK, HOSTILE_SLACK_LINK


@pytest.fixture
async def hostile_feed_url() -> AsyncIterator[str]:
    """A feed server that refuses every request with an HTTP reason phrase of its own choosing:
    a link, in both platforms' markup. The bot quotes the reason in /feed add's answer, in
    /status and in the ops channel's notice."""

    async def refuse(request: web.Request) -> web.Response:
        reason = f"Bad Gateway {HOSTILE_LINK} {HOSTILE_SLACK_LINK}"
        return web.Response(status=502, reason=reason, text="down")

    app = web.Application()
    app.router.add_get("/{tail:.*}", refuse)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/feed.xml"
    finally:
        await runner.cleanup()
