"""Tokens come from the environment and never appear in logs, errors, /healthz or /metrics,
even when they are wrong and the platforms refuse them."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.fakes.discord_server import FakeDiscord
from tests.fakes.slack_server import FakeSlack

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(60)

DISCORD_SECRET = "MTIzNDU2Nzg5MDEyMzQ1Njc4.wrong.token-that-must-never-be-printed"
SLACK_BOT_SECRET = "xoxb-1111-2222-wrongwrongwrongwrong"
SLACK_APP_SECRET = "xapp-1-A111-2222-wrongwrongwrongwrong"


async def test_wrong_tokens_are_reported_without_being_printed(tmp_path, monkeypatch):
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(var, raising=False)
    async with FakeDiscord() as discord_fake, FakeSlack() as slack_fake:
        config = tmp_path / "bot.toml"
        config.write_text(
            f"""
[storage]
path = "{tmp_path / "bot.db"}"
[http]
port = 0
[discord]
api_base = "{discord_fake.api_base}"
gateway_url = "{discord_fake.gateway_url}"
[slack]
api_base = "{slack_fake.api_base}"
""",
            "utf-8",
        )
        env = {
            **os.environ,
            "DISCORD_TOKEN": DISCORD_SECRET,
            "SLACK_BOT_TOKEN": SLACK_BOT_SECRET,
            "SLACK_APP_TOKEN": SLACK_APP_SECRET,
        }
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "-v",
            "run",
            "--config",
            str(config),
            cwd=REPO,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        lines: list[str] = []
        port = None
        async with asyncio.timeout(30):
            while port is None or not any("Slack" in line and "fail" in line for line in lines):
                line = (await proc.stderr.readline()).decode()
                assert line, "".join(lines)
                lines.append(line)
                if found := re.search(r"http://127\.0\.0\.1:(\d+)/healthz", line):
                    port = int(found.group(1))
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
                health = await response.text()
                assert response.status == 503  # the chat connections are down
            async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
                metrics = await response.text()
        proc.send_signal(signal.SIGTERM)
        rest, more = await asyncio.wait_for(proc.communicate(), 10)
    log = "".join(lines) + more.decode() + rest.decode()
    assert "Discord login failed" in log
    for secret in (DISCORD_SECRET, SLACK_BOT_SECRET, SLACK_APP_SECRET):
        for where, text in (("log", log), ("healthz", health), ("metrics", metrics)):
            assert secret not in text, f"token leaked into {where}"
            assert secret[-16:] not in text, f"part of a token leaked into {where}"
