"""Small helpers to write feed documents in tests, and the path of the real-feed corpus."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

# Byte-exact copies of ../shared/feeds (with their MANIFEST.md): the suite runs on a clone with
# nothing beside it. .gitattributes keeps git from touching their line endings.
CORPUS = Path(__file__).resolve().parent / "corpus"


def corpus_files() -> list[Path]:
    return sorted(p for p in CORPUS.iterdir() if p.suffix in (".xml", ".rss"))


@dataclass
class Item:
    title: str
    description: str = ""
    link: str | None = None
    guid: str | None = None
    published: datetime | None = None
    categories: tuple[str, ...] = ()


def minutes_ago(n: float) -> datetime:
    return datetime.now(UTC) - timedelta(minutes=n)


def rss(items: Iterable[Item], title: str = "Test Wire") -> bytes:
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<rss version="2.0"><channel>',
        f"<title>{escape(title)}</title><link>https://wire.example/</link>",
        "<description>test feed</description>",
    ]
    for item in items:
        parts.append("<item>")
        parts.append(f"<title>{escape(item.title)}</title>")
        if item.link:
            parts.append(f"<link>{escape(item.link)}</link>")
        if item.guid:
            parts.append(f'<guid isPermaLink="false">{escape(item.guid)}</guid>')
        if item.description:
            parts.append(f"<description>{escape(item.description)}</description>")
        if item.published:
            parts.append(f"<pubDate>{format_datetime(item.published, usegmt=True)}</pubDate>")
        for category in item.categories:
            parts.append(f"<category>{escape(category)}</category>")
        parts.append("</item>")
    parts.append("</channel></rss>")
    return "\n".join(parts).encode("utf-8")
