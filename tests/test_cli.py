"""The `newsbot` command as a real process: the contract operators' scripts depend on."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from pathlib import Path

import pytest

from tests.feedgen import CORPUS, Item, corpus_files, minutes_ago, rss

REPO = Path(__file__).resolve().parents[1]
CARD_FIELDS = {
    "channel",
    "watchlist",
    "title",
    "url",
    "source",
    "published",
    "summary",
    "matched",
    "update",
}


async def newsbot(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode or 0, out.decode(), err.decode()


async def start_run(config: Path) -> asyncio.subprocess.Process:
    """`newsbot run` in the background, for tests that signal it."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "run",
        "--config",
        str(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=REPO,
    )


async def wait_for_line(
    proc: asyncio.subprocess.Process, needle: str, timeout: float = 60
) -> list[str]:
    """Read the process's stderr until a line contains `needle`: the state to wait for, instead
    of a sleep that a loaded machine outlasts. Returns the lines read."""
    assert proc.stderr is not None
    lines: list[str] = []

    async def read() -> list[str]:
        while True:
            line = await proc.stderr.readline()
            if not line:
                raise AssertionError(f"exited before {needle!r}:\n" + "".join(lines))
            lines.append(line.decode())
            if needle in lines[-1]:
                return lines

    return await asyncio.wait_for(read(), timeout)


def write_config(tmp_path: Path, feeds: str, extra: str = "") -> Path:
    path = tmp_path / "newsbot.toml"
    path.write_text(
        f"""
[storage]
path = "{tmp_path / "bot.db"}"
[console]
format = "jsonl"
[http]
enabled = false
{extra}
{feeds}
[[watchlists]]
name = "North Korea"
query = '"North Korea" OR Pyongyang OR "Kim Jong Un"'
channels = ["console:desk", "console:asia"]
[[watchlists]]
name = "Putin"
query = "Putin"
channels = ["console:desk"]
""",
        "utf-8",
    )
    return path


async def test_run_once_alerts_after_baseline_once_per_story_and_channel(feed_server, tmp_path):
    feed_server.set(
        "wire.xml",
        rss(
            [
                Item(
                    "Earlier: markets calm",
                    "Nothing to see.",
                    "https://w.example/0",
                    "0",
                    minutes_ago(50),
                )
            ]
        ),
    )
    config = write_config(
        tmp_path, f'[[feeds]]\nname = "Wire"\nurl = "{feed_server.url("wire.xml")}"\n'
    )

    code, out, err = await newsbot("run", "--once", "--config", str(config))
    assert code == 0, err
    assert out == ""  # first poll of a new feed is a baseline

    feed_server.set(
        "wire.xml",
        rss(
            [
                Item(
                    "Putin Visits North Korea, Pledges Cooperation",
                    "SEOUL (AP) — Putin arrived in Pyongyang.",
                    "https://w.example/1?utm_source=rss",
                    "1",
                    minutes_ago(2),
                ),
                Item(
                    "Kim Jong Un inspects missile factory",
                    "Pyongyang state media said.",
                    "https://w.example/2",
                    "2",
                    minutes_ago(3),
                ),
                Item("Weather: sunny", "Warm.", "https://w.example/3", "3", minutes_ago(4)),
                Item(
                    "Earlier: markets calm",
                    "Nothing to see.",
                    "https://w.example/0",
                    "0",
                    minutes_ago(50),
                ),
            ]
        ),
    )
    code, out, err = await newsbot("run", "--once", "--config", str(config))
    assert code == 0, err
    cards = [json.loads(line) for line in out.splitlines()]
    pairs = sorted((c["title"], c["channel"]) for c in cards)
    assert pairs == sorted(
        [
            ("Putin Visits North Korea, Pledges Cooperation", "console:desk"),
            ("Putin Visits North Korea, Pledges Cooperation", "console:asia"),
            ("Kim Jong Un inspects missile factory", "console:desk"),
            ("Kim Jong Un inspects missile factory", "console:asia"),
        ]
    )
    for card in cards:
        assert card.keys() >= CARD_FIELDS
        assert card["source"] == "Wire" and card["update"] is False
        assert card["published"].endswith("Z")
    putin_desk = next(
        c for c in cards if c["channel"] == "console:desk" and c["title"].startswith("Putin")
    )
    assert putin_desk["watchlist"] == "North Korea, Putin"
    assert putin_desk["url"] == "https://w.example/1"  # tracking parameters removed
    assert putin_desk["matched"] == ["Putin", "North Korea", "Pyongyang"]

    code, out, err = await newsbot("run", "--once", "--config", str(config))
    assert (code, out) == (0, "")
    assert feed_server.conditional_hits["wire.xml"] == 1


async def test_bad_config_exits_2_naming_the_key(tmp_path):
    config = write_config(
        tmp_path, '[[feeds]]\nname = "Wire"\nurl = "https://w.example/rss"\ninterval = "soon"\n'
    )
    code, _out, err = await newsbot("run", "--once", "--config", str(config))
    assert code == 2
    assert "feeds[0].interval" in err and "soon" in err
    assert "Traceback" not in err


async def test_bad_watchlist_query_exits_2_showing_where(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text('[[watchlists]]\nname = "X"\nquery = "Putin AND (Kim"\n', "utf-8")
    code, _, err = await newsbot("run", "--once", "--config", str(config))
    assert code == 2
    assert "watchlists[0].query" in err and "^" in err


async def test_unreachable_feeds_are_reported_once_and_sigterm_stops_cleanly(tmp_path):
    feeds = "".join(
        f'[[feeds]]\nname = "Dead {n}"\nurl = "http://127.0.0.1:9/{n}.xml"\ninterval = "1s"\n'
        for n in (1, 2)
    )
    config = write_config(tmp_path, feeds, '[fetch]\nmin_interval = "1s"\ntimeout = "2s"\n')
    proc = await start_run(config)
    seen = await wait_for_line(proc, "newsbot running")
    await asyncio.sleep(4.5)  # several poll intervals: each feed is retried, with backoff
    assert proc.returncode is None, "the bot must keep running when every feed is down"
    proc.send_signal(signal.SIGTERM)
    out, err_bytes = await asyncio.wait_for(proc.communicate(), timeout=10)
    err = "".join(seen) + err_bytes.decode()
    assert proc.returncode == 0
    for n in (1, 2):
        assert err.count(f"feed 'Dead {n}' failed: cannot connect") == 1, err
    assert "Traceback" not in err
    assert out == b""


async def test_sigint_stops_cleanly(tmp_path):
    config = write_config(tmp_path, "")
    proc = await start_run(config)
    await wait_for_line(proc, "newsbot running")  # the signal handlers are in place
    proc.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(proc.communicate(), timeout=10)
    assert proc.returncode == 0, err.decode()
    assert "Traceback" not in err.decode()


async def test_ctrl_c_on_tasks_run_from_another_folder_stops_cleanly_after_the_baseline(
    tmp_path, feed_server
):
    """`python3 tasks.py run --config my.toml` from the user's own folder, then Ctrl-C: the
    terminal signals the whole process group (bot and parse workers alike)."""
    feed_server.set(
        "wire.xml", rss([Item("Putin visits", "Putin lands.", "https://w.example/1", "1")])
    )
    elsewhere = tmp_path / "desk"
    elsewhere.mkdir()
    (elsewhere / "my.toml").write_text(
        f'[storage]\npath = "{tmp_path / "bot.db"}"\n[http]\nenabled = false\n'
        f'[fetch]\nallow_networks = ["127.0.0.1/32"]\n'
        f'[[feeds]]\nname = "Wire"\nurl = "{feed_server.url("wire.xml")}"\n'
        '[[watchlists]]\nname = "Putin"\nquery = "Putin"\nchannels = ["console:desk"]\n',
        "utf-8",
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(REPO / "tasks.py"),
        "run",
        "--config",
        "my.toml",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=elsewhere,
        start_new_session=True,  # its own process group, as a terminal gives it
    )
    seen = await wait_for_line(proc, "recorded as a baseline")
    os.killpg(proc.pid, signal.SIGINT)
    _, rest = await asyncio.wait_for(proc.communicate(), timeout=20)
    err = "".join(seen) + rest.decode()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert f"config {elsewhere / 'my.toml'}" in err
    assert "feed 'Wire': first poll, 1 stories recorded as a baseline without alerting" in err
    assert "stopping" in err


async def test_version_and_verbose_after_the_sub_command():
    code, out, _ = await newsbot("--version")
    assert code == 0 and out.startswith("newsbot ")
    code, _, err = await newsbot("preview", "-v", str(CORPUS / "nonexistent.xml"), "--query", "x")
    assert code == 1 and "neither a URL nor a readable file" in err  # -v was accepted


async def test_once_exits_1_when_every_feed_failed(tmp_path):
    feeds = '[[feeds]]\nname = "Dead"\nurl = "http://127.0.0.1:9/x.xml"\n'
    config = write_config(tmp_path, feeds, '[fetch]\ntimeout = "2s"\n')
    code, _, err = await newsbot("run", "--once", "--config", str(config))
    assert code == 1, err
    assert "polled 1 feeds (1 failed)" in err


async def test_demo_shows_one_card_then_an_update():
    code, out, err = await newsbot("demo", timeout=30)
    assert code == 0, err
    assert out.count("Putin Visits North Korea, Pledges Cooperation Amid Sanctions Pressure") == 1
    assert out.count("[UPDATED] Putin and Kim Sign Mutual Defense Pact in Pyongyang") == 1
    assert "North Korea + Putin" in out
    assert "1 cards sent" in out


async def test_preview_json_prints_matching_stories(tmp_path):
    code, out, err = await newsbot(
        "preview",
        str(CORPUS / "smh_2020-09-03_putin_kremlin_kim.xml"),
        "--query",
        "Putin OR Kremlin",
        "--json",
    )
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert rows and all({"title", "url", "published", "matched"} <= r.keys() for r in rows)
    assert all(set(r["matched"]) & {"Putin", "Kremlin", "Putin's"} for r in rows)


async def test_preview_refuses_a_bad_query_with_its_position():
    code, out, err = await newsbot(
        "preview", str(CORPUS / "smh_2020-09-03_putin_kremlin_kim.xml"), "--query", '"North Korea'
    )
    assert code == 2 and out == ""
    assert "^" in err and "Traceback" not in err


@pytest.fixture
def root_logging():
    """`main` configures the root logger (level, handlers) as the console script must: give
    the tests that follow theirs back."""
    root = logging.getLogger()
    level, handlers = root.level, root.handlers[:]
    yield
    root.setLevel(level)
    root.handlers[:] = handlers


def test_preview_json_works_on_every_corpus_file(capsys, root_logging):
    """In-process for speed: the same `main` the console script calls."""
    from bot.cli import main

    for path in corpus_files():
        code = main(
            [
                "preview",
                str(path),
                "--query",
                "Putin OR Russia* OR Korea* OR 普京 OR Росі*",
                "--json",
            ]
        )
        out, err = capsys.readouterr()
        if path.name.startswith(("latimes", "reuters_mostread")):
            assert (code == 1 and "not a feed" in err) or "broken feed" in err, (path.name, err)
            continue
        assert code == 0, (path.name, err)
        for line in out.splitlines():
            row = json.loads(line)
            assert row["matched"], (path.name, row)


@pytest.mark.parametrize("argv", [["run", "--bogus"], ["preview"], ["frobnicate"]])
async def test_wrong_arguments_exit_2_with_usage(argv):
    code, _, err = await newsbot(*argv)
    assert code == 2 and "usage:" in err


def test_the_start_line_names_a_database_server_without_its_password(tmp_path, monkeypatch):
    from bot.cli import _database
    from config.settings import settings_from_dict

    monkeypatch.delenv("NEWSBOT_DATABASE_URL", raising=False)
    url = "postgresql://newsbot:s3cret@db.example:5432/desk"
    on_server = settings_from_dict({"storage": {"url": url}}, {})
    on_file = settings_from_dict({"storage": {"path": str(tmp_path / "bot.db")}}, {})

    assert "s3cret" not in _database(on_server)
    assert "db.example:5432/desk" in _database(on_server)
    assert _database(on_file) == str(tmp_path / "bot.db")


def test_a_database_password_is_among_the_secrets_the_log_never_shows(monkeypatch):
    from bot.cli import _secrets_of
    from config.settings import settings_from_dict

    monkeypatch.setenv("NEWSBOT_DATABASE_URL", "postgresql://bot:p%40ss@db.example/desk")
    settings = settings_from_dict({"storage": {"url": "postgresql://x@y/z?password=Q1"}}, {})
    assert {"p%40ss", "p@ss"} <= set(_secrets_of(settings))  # the environment wins
    monkeypatch.delenv("NEWSBOT_DATABASE_URL")
    assert "Q1" in _secrets_of(settings)
