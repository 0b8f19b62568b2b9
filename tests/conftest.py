from __future__ import annotations

import pytest

from tests.fakes.feed_server import FeedServer


@pytest.fixture
async def feed_server():
    async with FeedServer() as server:
        yield server
