"""Crash consistency: the real bot as a process, killed with SIGKILL while it posts a burst, then
restarted; at the fake Discord every alert arrives exactly once.

The crash window that matters is between Discord accepting a message and the bot recording it as
sent: the restarted bot re-sends those deliveries with the same nonce, and Discord (here the fake,
which implements enforce_nonce the same way) returns the existing message instead of a new one.

The burst is 60 stories and 3 kills by default; NEWSBOT_CRASH_BURST / NEWSBOT_CRASH_KILLS run a
bigger version."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.fakes.discord_server import FakeDiscord
from tests.feedgen import Item, minutes_ago, rss

REPO = Path(__file__).resolve().parents[2]
CHANNEL = 1_400_000_000_000_000_001
BURST = int(os.environ.get("NEWSBOT_CRASH_BURST", "60"))
KILLS = int(os.environ.get("NEWSBOT_CRASH_KILLS", "3"))

pytestmark = pytest.mark.timeout(120)


def config(tmp_path: Path, feed_url: str, fake: FakeDiscord) -> Path:
    path = tmp_path / "crash.toml"
    path.write_text(
        f"""
[storage]
path = "{tmp_path / "bot.db"}"
[console]
format = "jsonl"
[alerts]
burst_limit = 100
[fetch]
min_interval = "1s"
[http]
enabled = false
[discord]
api_base = "{fake.api_base}"
gateway_url = "{fake.gateway_url}"
[[feeds]]
name = "Wire"
url = "{feed_url}"
interval = "1s"
[[watchlists]]
name = "Desk"
query = "Pyongyang"
channels = ["discord:{CHANNEL}"]
""",
        "utf-8",
    )
    return path


async def start_bot(path: Path, token: str) -> asyncio.subprocess.Process:
    log = open(path.with_suffix(".log"), "ab")  # noqa: SIM115, ASYNC230 - the child owns it; a local file
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "run",
        "--config",
        str(path),
        cwd=REPO,
        env={**os.environ, "DISCORD_TOKEN": token},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=log,
    )


async def wait_for(
    predicate, what: str, bot: asyncio.subprocess.Process, timeout: float = 30
) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not predicate():  # noqa: ASYNC110 - the condition lives in another process
                await asyncio.sleep(0.002)
    except TimeoutError:
        bot.kill()
        await bot.wait()
        pytest.fail(f"timed out waiting for {what}")


async def test_sigkill_during_a_burst_posts_every_alert_exactly_once(tmp_path, feed_server):
    feed_server.set(
        "wire.xml",
        rss([Item("Quiet start", "nothing", "https://w.example/0", "0", minutes_ago(5))]),
    )
    async with FakeDiscord(text_channel_ids=(CHANNEL,)) as fake:
        path = config(tmp_path, feed_server.url("wire.xml"), fake)
        bot = await start_bot(path, fake.token)
        # The first poll is a baseline; wait until it has happened before the burst appears.
        await wait_for(lambda: feed_server.count("wire.xml") >= 2, "baseline poll", bot)
        feed_server.set(
            "wire.xml",
            rss(
                [
                    Item(
                        f"Pyongyang report number {n}",
                        f"Story {n} from Pyongyang.",
                        f"https://w.example/{n}",
                        f"g{n}",
                        minutes_ago(1),
                    )
                    for n in range(1, BURST + 1)
                ]
            ),
        )
        posted = lambda: len(fake.messages_in(CHANNEL))  # noqa: E731
        at_kill = []
        for kill in range(1, KILLS + 1):
            # Kill at different depths of the burst: early, middle, late.
            target = max(1, min(BURST, 90) * kill // (KILLS + 1))
            await wait_for(
                lambda t=target: posted() >= t, f"{target} messages before kill {kill}", bot
            )
            bot.send_signal(signal.SIGKILL)
            await bot.wait()
            at_kill.append(posted())
            bot = await start_bot(path, fake.token)

        def everything() -> bool:
            text = " ".join(str(m.embeds[0]) for m in fake.messages_in(CHANNEL))
            return len(re.findall(r"Pyongyang report number", text)) >= BURST

        await wait_for(everything, "the whole burst", bot, timeout=60)
        await asyncio.sleep(1.5)  # a late duplicate would show up here
        bot.send_signal(signal.SIGTERM)
        await asyncio.wait_for(bot.wait(), 10)
        assert bot.returncode == 0, (tmp_path / "crash.log").read_text()[-2000:]

        # The first kill landed in the middle of the burst (otherwise nothing was tested).
        assert at_kill[0] < BURST, at_kill
        # Each story once, whether as its own card or as a line of a burst digest.
        seen = Counter(
            int(n)
            for m in fake.messages_in(CHANNEL)
            for n in re.findall(
                r"Pyongyang report number (\d+)",
                f"{m.embeds[0].get('title')}\n{m.embeds[0].get('description')}",
            )
        )
        assert sorted(seen) == list(range(1, BURST + 1))
        assert set(seen.values()) == {1}, [n for n, count in seen.items() if count > 1]


SLACK_CHANNEL = "C0CRASHDESK"
SLACK_BURST = int(os.environ.get("NEWSBOT_CRASH_SLACK_BURST", "8"))


async def test_sigkill_while_posting_to_slack_posts_every_alert_exactly_once(
    tmp_path, feed_server, monkeypatch
):
    """Slack paces a channel to one message a second, so its burst is smaller. A re-send after
    the crash finds the delivery id in the channel's message metadata instead of posting."""
    from tests.fakes.slack_server import FakeSlack

    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(var, raising=False)
    feed_server.set(
        "wire.xml",
        rss([Item("Quiet start", "nothing", "https://w.example/0", "0", minutes_ago(5))]),
    )
    async with FakeSlack() as fake:
        fake.add_channel(SLACK_CHANNEL, name="desk")
        path = tmp_path / "slack.toml"
        path.write_text(
            f"""
[storage]
path = "{tmp_path / "bot.db"}"
[alerts]
burst_limit = 100
[fetch]
min_interval = "1s"
[http]
enabled = false
[slack]
api_base = "{fake.api_base}"
[[feeds]]
name = "Wire"
url = "{feed_server.url("wire.xml")}"
interval = "1s"
[[watchlists]]
name = "Desk"
query = "Pyongyang"
channels = ["slack:{SLACK_CHANNEL}"]
""",
            "utf-8",
        )
        env = {**os.environ, "SLACK_BOT_TOKEN": fake.bot_token, "SLACK_APP_TOKEN": fake.app_token}

        async def start() -> asyncio.subprocess.Process:
            log = open(path.with_suffix(".log"), "ab")  # noqa: SIM115, ASYNC230 - the child owns it
            return await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                "run",
                "--config",
                str(path),
                cwd=REPO,
                env=env,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=log,
            )

        bot = await start()
        await wait_for(lambda: feed_server.count("wire.xml") >= 2, "baseline poll", bot)
        feed_server.set(
            "wire.xml",
            rss(
                [
                    Item(
                        f"Pyongyang report number {n}",
                        f"Story {n} from Pyongyang.",
                        f"https://w.example/{n}",
                        f"g{n}",
                        minutes_ago(1),
                    )
                    for n in range(1, SLACK_BURST + 1)
                ]
            ),
        )
        posted = lambda: len(fake.messages_in(SLACK_CHANNEL))  # noqa: E731
        at_kill = []
        for target in (2, SLACK_BURST // 2 + 1):
            await wait_for(lambda t=target: posted() >= t, f"{target} Slack messages", bot)
            bot.send_signal(signal.SIGKILL)
            await bot.wait()
            at_kill.append(posted())
            bot = await start()
        await wait_for(lambda: posted() >= SLACK_BURST, "the whole burst", bot, timeout=60)
        await asyncio.sleep(1.5)  # a late duplicate would show up here
        bot.send_signal(signal.SIGTERM)
        await asyncio.wait_for(bot.wait(), 10)
        assert bot.returncode == 0, path.with_suffix(".log").read_text()[-2000:]

        assert at_kill[0] < SLACK_BURST, at_kill
        seen = Counter(
            int(n)
            for m in fake.messages_in(SLACK_CHANNEL)
            for n in re.findall(r"Pyongyang report number (\d+)", m.text or "")
        )
        assert sorted(seen) == list(range(1, SLACK_BURST + 1))
        assert set(seen.values()) == {1}, seen
