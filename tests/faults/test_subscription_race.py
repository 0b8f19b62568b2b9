"""A burst of /subscribe from one person: the real command handler over real SQLite."""

from __future__ import annotations

import asyncio

from bot.app import NewsBot
from bot.core.commands import MAX_SUBSCRIPTIONS, Actor
from config.settings import settings_from_dict


async def test_eighty_concurrent_subscribes_store_exactly_the_limit(tmp_path):
    settings = settings_from_dict(
        {
            "storage": {"path": str(tmp_path / "bot.db")},
            "console": {"format": "jsonl"},
            "http": {"enabled": False},
        },
        {},
    )
    reporter = Actor("discord", "284917365023981569", "reporter")
    async with NewsBot(settings) as bot:
        replies = await asyncio.gather(
            *(bot.commands.subscribe(reporter, f"topic{n}") for n in range(80))
        )

        stored = await bot.storage.list_subscriptions(reporter.key)
        assert len(stored) == MAX_SUBSCRIPTIONS
        accepted = [r for r in replies if r.ok and r.text.startswith("Subscribed.")]
        refused = [r for r in replies if not r.ok]
        assert len(accepted) == MAX_SUBSCRIPTIONS
        assert len(refused) == 80 - MAX_SUBSCRIPTIONS
        assert all("the most allowed; remove one first" in r.text for r in refused)
        # What was accepted is what was stored.
        assert sorted(s.query for s in stored) == sorted(
            r.text.removeprefix("Subscribed. Stories matching ").split(" will come")[0]
            for r in accepted
        )
