"""Quiet hours and digests for people, end to end on Slack: the real bot, slack_bolt over Socket
Mode and SQLite against FakeSlack and a local feed server, with the bot's clock moved by the
test. The settings are typed as `/news subscribe` flags; the help shows them with an example."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.app import NewsBot
from bot.chat.slack import SlackPlatform
from tests.chat.slack import test_slack_e2e as slack_e2e
from tests.chat.slack.test_slack_e2e import REPORTER, story
from tests.fakes.slack_server import FakeSlack

fake = slack_e2e.fake


class Clock:
    """Real time plus an offset the test moves."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


class Desk(slack_e2e.Desk):
    """The Slack end-to-end desk, with a clock the test can move."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.clock = Clock()

    async def start(self, *, connect: bool = True, **options: Any) -> NewsBot:
        settings = self.settings(**options)
        self.platform = SlackPlatform(settings)
        self.bot = NewsBot(
            settings, stdout=io.StringIO(), clock=self.clock, platforms=[self.platform]
        )
        await self.bot.open()
        await self.bot.run_once()
        self.starts += 1
        await self.fake.wait_connected(self.starts)
        return self.bot


async def test_quiet_hours_set_in_slack_hold_stories_for_one_digest(
    tmp_path, fake: FakeSlack, feed_server
) -> None:
    desk = Desk(tmp_path, fake, feed_server)
    try:
        await desk.start()
        now = datetime.now(UTC)
        quiet = f"{now - timedelta(hours=1):%H:%M}-{now + timedelta(hours=1):%H:%M}"
        reply = await fake.slash_command(
            f"subscribe Kremlin --quiet {quiet} --timezone utc", user_id=REPORTER
        )
        assert "Subscribed. Stories matching Kremlin" in reply.text
        assert f"time zone UTC · quiet hours {quiet}" in reply.text

        await desk.publish(
            story("Kremlin denies report", "k1"),
            story("BREAKING: Kremlin announces snap vote", "k2"),
            story("Kremlin spokesman briefs press", "k3"),
        )
        # Urgent stories come through (the default); the rest wait.
        [urgent] = fake.dms_to(REPORTER)
        assert "Kremlin announces snap vote" in urgent.visible_text

        listed = await fake.slash_command("subscriptions", user_id=REPORTER)
        assert f"quiet hours {quiet} · mode instant · urgent stories come at once" in listed.text

        helped = await fake.slash_command("help subscribe", user_id=REPORTER)
        for flag in ("--timezone Area/City", "--quiet HH:MM-HH:MM", "--urgent yes|no"):
            assert flag in helped.text
        assert "--mode instant|hourly|daily" in helped.text and "--at HH:MM" in helped.text
        assert "--quiet 22:00-07:00 --timezone Europe/London" in helped.text  # the example

        bad = await fake.slash_command("subscribe --mode weekly", user_id=REPORTER)
        assert "Unknown mode 'weekly': use instant, hourly or daily." in bad.text

        desk.clock.offset = timedelta(hours=2)
        assert desk.bot is not None
        await desk.bot.run_once()
        _, digest = fake.dms_to(REPORTER)
        assert "*2 stories* from your quiet hours" in digest.visible_text
        assert "Kremlin denies report" in digest.visible_text
        assert "Kremlin spokesman briefs press" in digest.visible_text
        assert len(fake.dms_to(REPORTER)) == 2
    finally:
        await desk.stop()
