from __future__ import annotations

import pytest

from tests.fakes.feed_server import FeedServer


@pytest.fixture
async def feed_server():
    async with FeedServer() as server:
        yield server


class BotRun:
    """A real NewsBot on a temporary SQLite file, printing jsonl cards into memory."""

    def __init__(self, tmp_path, feeds, watchlists, **sections) -> None:
        import io

        from config.settings import settings_from_dict

        self.out = io.StringIO()
        raw = {
            "storage": {"path": str(tmp_path / "newsbot.db")},
            "console": {"format": "jsonl"},
            "http": {"enabled": False},
            "feeds": feeds,
            "watchlists": watchlists,
            **sections,
        }
        self.settings = settings_from_dict(raw, {})
        self._read = 0

    async def poll(self) -> list[dict]:
        """Open the bot, poll every feed once, deliver, close: like `newsbot run --once`."""
        from bot.app import NewsBot

        async with NewsBot(self.settings, stdout=self.out) as bot:
            self.reports = await bot.run_once()
        return self.new_cards()

    def new_cards(self) -> list[dict]:
        import json

        lines = self.out.getvalue().splitlines()[self._read :]
        self._read += len(lines)
        return [json.loads(line) for line in lines if line.strip()]


@pytest.fixture
def bot_run(tmp_path):
    def make(feeds, watchlists, **sections) -> BotRun:
        return BotRun(tmp_path, feeds, watchlists, **sections)

    return make
