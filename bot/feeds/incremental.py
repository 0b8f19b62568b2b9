"""The items of each feed's last document, held by the bot so that the next body of the feed
only costs its new and changed items (bot.feeds.items parses those in the worker).

Bounded: per feed, only the items of its last document. The document is put back together
here, in order, with its identity: the per-item parts (link key, fingerprint, primary
identities) come from the worker or from what is held, and what depends on the whole document
(which GUIDs are unique, which story is listed twice, the boilerplate word pairs and the fuzzy
keys that leave them out) is worked out here as bot.core.identity.identify does; a test holds
the two to the same result over the whole corpus."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from bot.core.identity import (
    BOILERPLATE_ITEMS,
    DocumentIdentity,
    IdentityKey,
    ItemIdentity,
    fuzzy_keys,
)
from bot.core.models import Story
from bot.core.ports import ParsedFeed
from bot.feeds.items import ItemizedFeed, ItemResult, Known


class Stale(Exception):
    """The worker counted on an item the bot no longer holds (two parses of one feed at once)."""


@dataclass(slots=True)
class _Held:
    result: ItemResult
    fuzzy: tuple[IdentityKey, ...] | None = None
    ignore: frozenset[str] | None = None  # the boilerplate `fuzzy` left out


@dataclass(slots=True)
class _Feed:
    known: Known
    title: str | None
    items: dict[bytes, _Held]


class ItemCache:
    def __init__(self) -> None:
        self._feeds: dict[str, _Feed] = {}

    def known(self, feed_name: str) -> Known | None:
        feed = self._feeds.get(feed_name)
        return feed.known if feed is not None else None

    def forget(self, feed_name: str) -> None:
        self._feeds.pop(feed_name, None)

    def __len__(self) -> int:
        return sum(len(feed.items) for feed in self._feeds.values())

    def merge(self, feed_name: str, itemized: ItemizedFeed) -> ParsedFeed:
        """The whole document's ParsedFeed; the feed's held items become this document's."""
        feed = self._feeds.get(feed_name)
        old = feed.items if feed is not None and feed.known.context == itemized.context else {}
        if not itemized.title_read and feed is None:
            raise Stale("the feed's title is no longer held")
        title = itemized.title if itemized.title_read else feed.title  # type: ignore[union-attr]
        items: dict[bytes, _Held] = {}
        order: list[_Held] = []
        for key in itemized.order:
            held = items.get(key)
            if held is None:
                result = itemized.new.get(key)
                held = _Held(result) if result is not None else old.get(key)
                if held is None:
                    raise Stale("an item is no longer held")
                items[key] = held
            order.append(held)
        self._feeds[feed_name] = _Feed(
            Known(itemized.context, itemized.outside, frozenset(items)), title, items
        )
        kept = [held for held in order if held.result.story is not None]
        stories: list[Story] = [held.result.story for held in kept]  # type: ignore[misc]
        return ParsedFeed(stories, title=title, warning=None, identity=_identity(kept))


def _identity(kept: list[_Held]) -> DocumentIdentity:
    """identify(stories), from each item's parts: bot.core.identity's _unique_indices,
    boilerplate and identify, step by step."""
    guids = Counter(h.result.story.guid for h in kept if h.result.story.guid)  # type: ignore[union-attr]
    seen: set[str] = set()
    unique: list[tuple[int, bool, _Held]] = []
    for index, held in enumerate(kept):
        guid = held.result.story.guid  # type: ignore[union-attr]
        guid_unique = guid is not None and guids[guid] == 1
        identity = held.result.by_guid if guid_unique else held.result.fallback
        if identity in seen:
            continue
        seen.add(identity)
        unique.append((index, guid_unique, held))
    counts: Counter[str] = Counter()
    for _, _, held in unique:
        counts.update(held.result.print.full)  # type: ignore[union-attr]
    ignore = frozenset(s for s, n in counts.items() if n >= BOILERPLATE_ITEMS)
    items = []
    for index, guid_unique, held in unique:
        if held.fuzzy is None or held.ignore != ignore:
            held.fuzzy = fuzzy_keys(held.result.story, ignore)  # type: ignore[arg-type]
            held.ignore = ignore
        items.append(
            ItemIdentity(index, guid_unique, held.result.link, held.fuzzy, held.result.print)  # type: ignore[arg-type]
        )
    return DocumentIdentity(tuple(items), ignore)
