"""`newsbot demo`: the real pipeline over bundled wire snapshots, offline, in a few seconds.

Real fetching (file:// feeds in a temporary folder, rewritten between polls as a wire would),
a real SQLite database, the real matcher and de-duplication, and the console channel."""

from __future__ import annotations

import logging
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from importlib import resources
from pathlib import Path
from typing import TextIO

from bot.app import NewsBot
from config.settings import PACKAGED_CONFIG, load_settings, settings_from_dict

log = logging.getLogger(__name__)

FEEDS = {"AP Wire": "ap", "Korea Wire": "korea"}

STEPS: list[tuple[str, dict[str, str], str]] = [
    (
        "Poll 1 - two wires, seen for the first time",
        {"AP Wire": "ap_1.xml", "Korea Wire": "yonhap_1.xml"},
        "A new feed's first poll is a baseline: its stories are recorded, nothing alerts.",
    ),
    (
        "Poll 2 - AP moves the Putin story",
        {"AP Wire": "ap_2.xml"},
        "Both watchlists match and both post to console:desk: one card names both.",
    ),
    (
        "Poll 3 - a second wire carries the same AP story, its lead cut short",
        {"Korea Wire": "yonhap_2.xml"},
        "Recognised as the story already alerted (headline and lead): no second card.",
    ),
    (
        "Poll 4 - AP rewrites the headline (a writethru under the same GUID)",
        {"AP Wire": "ap_3.xml"},
        "The card already posted is updated in place, marked UPDATED; nothing new is posted.",
    ),
]


def render_snapshot(name: str, now: datetime) -> bytes:
    """Bundled snapshots carry {{minutes_ago:N}} so their stories are always fresh news."""
    text = (resources.files("config") / "demo" / name).read_text("utf-8")
    while "{{minutes_ago:" in text:
        start = text.index("{{minutes_ago:")
        end = text.index("}}", start)
        minutes = int(text[start + len("{{minutes_ago:") : end])
        text = (
            text[:start]
            + format_datetime(now - timedelta(minutes=minutes), usegmt=True)
            + text[end + 2 :]
        )
    return text.encode("utf-8")


async def run_demo(out: TextIO | None = None) -> int:
    out = out or sys.stdout
    defaults = load_settings(PACKAGED_CONFIG, env={})
    with tempfile.TemporaryDirectory(prefix="newsbot-demo-") as folder:
        root = Path(folder)
        paths = {name: root / f"{slug}.xml" for name, slug in FEEDS.items()}
        settings = settings_from_dict(
            {
                "storage": {"path": str(root / "demo.db")},
                "console": {"format": "text"},
                "http": {"enabled": False},
                "feeds": [{"name": n, "url": p.as_uri()} for n, p in paths.items()],
                "watchlists": [w.model_dump() for w in defaults.watchlists],
            },
            {},
            source="newsbot demo",
        )
        print("newsbot demo: the real pipeline over bundled wire snapshots (offline)\n", file=out)
        for watchlist in settings.watchlists:
            print(
                f"  watchlist {watchlist.name!r}: {watchlist.query}  ->  "
                f"{', '.join(watchlist.channels)}",
                file=out,
            )
        async with NewsBot(settings, stdout=out) as bot:
            assert bot.worker is not None and bot.storage is not None
            for title, files, explanation in STEPS:
                print(f"\n=== {title}\n    {explanation}\n", file=out)
                now = datetime.now(UTC)
                for feed, snapshot in files.items():
                    paths[feed].write_bytes(render_snapshot(snapshot, now))
                sent_before = bot.worker.sent
                reports = await bot.run_once()
                for report in reports:
                    if report.status == "new":
                        print(
                            f"    {report.feed}: {report.stories} stories, {report.new} new, "
                            f"{report.updated} updated, {report.alerts} alerts",
                            file=out,
                        )
                if bot.worker.sent == sent_before and not any(r.updated for r in reports):
                    print("    (no card)", file=out)
            counts = await bot.storage.delivery_counts()
            stored = await bot.storage.count_stories()
        print(
            f"\nDone: {stored} stories stored, {counts['sent']} cards sent, "
            f"{counts['pending']} pending, {counts['failed']} failed.",
            file=out,
        )
        print("Run it for real with `newsbot run` (see config/newsbot.toml).", file=out)
    return 0
