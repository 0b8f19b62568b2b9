"""Parsing cost per item: feedparser against the lxml fast path (bot/feeds/fastparse/).

    .venv/bin/python -m bench.parsing [--quick]

In this process, one document after another (no workers, no I/O), best of several rounds:

- `feedparser.parse`: the plain call, as a naive loop would make it;
- feedparser path: parse.py's _feedparser_document (bounds pass, feedparser, Stories);
- fast path: fast_parse (bounds pass, lxml, the mirror of feedparser, the same Stories),
  and how that splits between reading the document and making the Stories.

On the benchmark's generated feeds (bench/feedserver.py: formulaic, and ordinary ones made
from the corpus) and on the 39 corpus documents (those the fast path declines are counted at
feedparser's cost in its column). Printed, never asserted (tests/feeds/test_fastparse.py
checks that the results are equal)."""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import feedparser

from bench.common import machine
from bench.corpus import FEEDS as CORPUS
from bench.feedserver import FeedSet
from bot.core.ports import FeedError
from bot.feeds.fastparse import _entries, fast_parse
from bot.feeds.parse import _feedparser_document, to_story

HEADERS = {"Content-Type": "application/rss+xml; charset=utf-8"}
URL = "https://www.publisher.example/feed.xml"


def _best(documents: list[Any], parse: Callable[[Any], object], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for body in documents:
            # The corpus's error page and truncated error raise FeedError: they cost as much.
            with contextlib.suppress(FeedError):
                parse(body)
        best = min(best, time.perf_counter() - start)
    return best


def _row(name: str, documents: list[bytes], items: int, rounds: int) -> str:
    def per_item(seconds: float) -> str:
        return f"{seconds / items * 1e3:.3f}"

    plain = _best(documents, lambda b: feedparser.parse(b), rounds)
    slow = _best(
        documents,
        lambda b: _feedparser_document(b, feed_name="bench", url=URL, headers=HEADERS),
        rounds,
    )

    def fast_or_fallback(body: bytes) -> object:
        parsed = fast_parse(body, feed_name="bench", url=URL, headers=HEADERS)
        if parsed is None:
            return _feedparser_document(body, feed_name="bench", url=URL, headers=HEADERS)
        return parsed

    fast = _best(documents, fast_or_fallback, rounds)
    accepted = [b for b in documents if fast_parse(b, feed_name="bench", url=URL, headers=HEADERS)]
    reading = _best(accepted, lambda b: _entries(b, URL, HEADERS), rounds)
    entries = [_entries(b, URL, HEADERS)[0] for b in accepted]
    stories = _best(entries, lambda es: [to_story(e, "bench") for e in es], rounds)
    accepted_items = sum(len(e) for e in entries)
    return (
        f"| {name} | {len(accepted)}/{len(documents)} | {items} | {per_item(plain)} "
        f"| {per_item(slow)} | {per_item(fast)} | {slow / fast:.1f}x "
        f"| {reading / max(accepted_items, 1) * 1e3:.3f} "
        f"| {stories / max(accepted_items, 1) * 1e3:.3f} |"
    )


def run(quick: bool = False) -> str:
    count, rounds = (20, 3) if quick else (100, 5)
    now = datetime(2025, 3, 1, 12, tzinfo=UTC)
    lines = [
        "| documents | read fast | items | feedparser.parse ms/item | feedparser path "
        "ms/item | fast path ms/item | speed-up | fast: reading ms/item | fast: Stories "
        "ms/item |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for formulaic in (True, False):
        feeds = FeedSet(count, 10, now, formulaic=formulaic).feeds
        documents = [f.body for f in feeds]
        items = sum(len(f.items) for f in feeds)
        name = "formulaic (bench)" if formulaic else "ordinary (bench)"
        lines.append(_row(name, documents, items, rounds))
    corpus = [p.read_bytes() for p in sorted(CORPUS.iterdir()) if p.suffix in (".xml", ".rss")]
    items = sum(
        len(feedparser.parse(b, response_headers={"content-type": "text/xml"}).entries)
        for b in corpus
    )
    lines.append(_row("corpus (39 real feeds)", corpus, items, rounds))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.parsing", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer documents and rounds")
    args = parser.parse_args()
    print(f"Machine: {machine()}\n")
    print(run(quick=args.quick))


if __name__ == "__main__":
    main()
