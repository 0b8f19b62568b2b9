"""Watchlists and subscriptions compiled into one matcher, and matches turned into destinations.

One card per story per destination: two watchlists posting to the same channel give one card
naming both; a person's subscriptions give one direct message naming what matched."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from bot.core.matcher import Matchable, Matcher
from bot.core.models import Subscription, Updates, Watchlist, dm_target
from bot.core.pings import PingBook
from bot.core.query import Query, QueryError, parse_query

log = logging.getLogger(__name__)

QueryKey = tuple[str, int]  # ("w", watchlist id) or ("s", subscription id)


@lru_cache(maxsize=65_536)
def parsed(text: str) -> Query:
    """parse_query, cached for stored queries: a rebuild after one edit re-parses nothing else
    (10,000 queries parse in ~0.2 s), nor does a subscribe that costs a person's others."""
    return parse_query(text)


@dataclass(frozen=True, slots=True)
class Route:
    """What one story owes one destination."""

    target: str
    watchlists: tuple[str, ...]
    subscriber: str | None
    matched: tuple[str, ...]
    # Updates of the story go under the card as thread replies: one of the destination's
    # matching watchlists asked for it (`updates = "thread"`). A person's DMs edit in place.
    thread: bool = False


def _merge(terms: list[str], more: Iterable[str]) -> None:
    seen = {t.casefold() for t in terms}
    for term in more:
        if term.casefold() not in seen:
            seen.add(term.casefold())
            terms.append(term)


@dataclass(frozen=True, slots=True)
class SkippedQuery:
    """A stored query the matcher left out, and whose it is: the ops channel and /status say."""

    key: QueryKey
    what: str  # "watchlist 'Putin'" or "subscription of <platform>:<user id>"
    query: str
    reason: str


class QueryBook:
    """Immutable: a change to watchlists or subscriptions builds a new book.

    Queries are validated before they are stored, but one that no longer parses or compiles (a
    grammar change, a tighter limit, a row written by an older version) must not take the others
    down with it: it is left out and listed in `skipped`."""

    def __init__(self, watchlists: Iterable[Watchlist], subscriptions: Iterable[Subscription]):
        self.watchlists = {w.id: w for w in watchlists}
        # Who each watchlist's cards may ping: read by the delivery worker, rebuilt with this.
        self.pings = PingBook(self.watchlists.values())
        self.subscriptions = {s.id: s for s in subscriptions}
        compiled: list[tuple[QueryKey, Query]] = []
        texts: dict[QueryKey, tuple[str, str]] = {}
        skipped: list[SkippedQuery] = []
        for key, query, what in [
            *((("w", w.id), w.query, f"watchlist {w.name!r}") for w in self.watchlists.values()),
            *(
                (("s", s.id), s.query, f"subscription of {s.subscriber}")
                for s in self.subscriptions.values()
            ),
        ]:
            texts[key] = (what, query)
            try:
                compiled.append((key, parsed(query)))
            except QueryError as exc:
                skipped.append(SkippedQuery(key, what, query, exc.message))
            except Exception as exc:  # RecursionError and the like: this query's alone
                skipped.append(SkippedQuery(key, what, query, f"{type(exc).__name__}: {exc}"))
        self.matcher: Matcher[QueryKey] = Matcher(compiled)
        skipped += (SkippedQuery(key, *texts[key], reason) for key, reason in self.matcher.skipped)
        for item in skipped:
            log.warning("skipping %s (%s): %s", item.what, item.query[:80], item.reason)
        self.skipped = tuple(skipped)

    def __len__(self) -> int:
        return len(self.matcher)

    def route(self, doc: Matchable) -> list[Route]:
        matches = self.matcher.match(doc)
        if not matches:
            return []
        by_target: dict[str, tuple[list[str], str | None, list[str]]] = {}
        threaded: set[str] = set()
        for (kind, ident), terms in matches.items():
            if kind == "w":
                watchlist = self.watchlists[ident]
                for channel in watchlist.channels:
                    names, _, matched = by_target.setdefault(channel, ([], None, []))
                    if watchlist.name not in names:
                        names.append(watchlist.name)
                    _merge(matched, terms)
                    if watchlist.updates == Updates.THREAD:
                        threaded.add(channel)
            else:
                sub = self.subscriptions[ident]
                target = dm_target(sub.subscriber)
                _, _, matched = by_target.setdefault(target, ([], sub.subscriber, []))
                _merge(matched, terms)
        # Terms in reading order, whichever query found them.
        text = f"{doc.title}\n{doc.content}\n{' '.join(doc.categories)}".casefold()

        def position(term: str) -> int:
            found = text.find(term.casefold())
            return found if found >= 0 else len(text)

        return [
            Route(
                target,
                tuple(names),
                subscriber,
                tuple(sorted(matched, key=position)),
                thread=target in threaded,
            )
            for target, (names, subscriber, matched) in by_target.items()
        ]
