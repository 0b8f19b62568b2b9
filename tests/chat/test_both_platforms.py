"""Discord and Slack in one process: one matching story reaches a Discord channel and a Slack
channel once each, from the same outbox, next to the console."""

from __future__ import annotations

import io
import json

import pytest

from bot.app import NewsBot, build_platforms
from config.settings import settings_from_dict
from tests.fakes.discord_server import FakeDiscord
from tests.fakes.slack_server import FakeSlack
from tests.feedgen import Item, minutes_ago, rss

DISCORD_CHANNEL = 1_400_000_000_000_000_001
SLACK_CHANNEL = "C0NEWSDESK"

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(var, raising=False)


async def test_one_story_reaches_discord_slack_and_console_once_each(tmp_path, feed_server):
    feed_server.set("wire.xml", rss([]))
    async with (
        FakeDiscord(text_channel_ids=(DISCORD_CHANNEL,)) as discord_fake,
        FakeSlack() as slack_fake,
    ):
        slack_fake.add_channel(SLACK_CHANNEL, name="newsdesk")
        env = {
            "DISCORD_TOKEN": discord_fake.token,
            "SLACK_BOT_TOKEN": slack_fake.bot_token,
            "SLACK_APP_TOKEN": slack_fake.app_token,
        }
        settings = settings_from_dict(
            {
                "storage": {"path": str(tmp_path / "bot.db")},
                "console": {"format": "jsonl"},
                "http": {"enabled": False},
                "discord": {
                    "api_base": discord_fake.api_base,
                    "gateway_url": discord_fake.gateway_url,
                },
                "slack": {"api_base": slack_fake.api_base},
                "feeds": [{"name": "Wire", "url": feed_server.url("wire.xml")}],
                "watchlists": [
                    {
                        "name": "North Korea",
                        "query": '"North Korea" OR Pyongyang',
                        "channels": [
                            f"discord:{DISCORD_CHANNEL}",
                            f"slack:{SLACK_CHANNEL}",
                            "console:desk",
                        ],
                    }
                ],
            },
            env,
        )
        platforms = build_platforms(settings)
        assert [p.name for p in platforms] == ["discord", "slack"]
        out = io.StringIO()
        async with NewsBot(settings, stdout=out, platforms=platforms) as bot:
            await bot.run_once()  # baseline
            feed_server.set(
                "wire.xml",
                rss(
                    [
                        Item(
                            "North Korea fires ballistic missile toward Sea of Japan",
                            "Pyongyang launched the missile early on Sunday, Seoul said.",
                            "https://wire.example/nk-missile",
                            "nk-1",
                            minutes_ago(2),
                        )
                    ]
                ),
            )
            await bot.run_once()
            await bot.run_once()  # nothing new: nothing more anywhere
        discord_cards = discord_fake.messages_in(DISCORD_CHANNEL)
        assert [m.embeds[0]["title"] for m in discord_cards] == [
            "North Korea fires ballistic missile toward Sea of Japan"
        ]
        slack_cards = slack_fake.messages_in(SLACK_CHANNEL)
        assert len(slack_cards) == 1
        assert "North Korea fires ballistic missile toward Sea of Japan" in slack_cards[0].text
        console = [json.loads(line) for line in out.getvalue().splitlines()]
        assert [c["channel"] for c in console] == ["console:desk"]
