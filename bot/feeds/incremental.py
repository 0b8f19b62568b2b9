"""What a feed's last document leaves for the next one (its memo), and the document put back
together from held and newly parsed items (in the parse worker, for bot.feeds.items).

The bot holds one memo per feed, compressed: per feed only the items of its last document, each
with its Story and what identifying it takes (link key, fingerprint, primary identities, fuzzy
keys). Held as objects, they cost about 27 KB per item (the fingerprints' word-pair sets above
all): 1.3 GB for 1,000 feeds of 50 items. Pickled, each item is about 1 KB, and the memo is
compressed whole (about 250 bytes per item: the items of one feed share most of their words),
and the bot never opens it: the worker does, so the event loop receives a ParsedFeed as it did
before. Items were once compressed one by one: twice the bytes, and on a first poll zlib's set-up
per item cost more than pickling it (issue 13).

What depends on the whole document (which GUIDs are unique, which story is listed twice, the
boilerplate word pairs and the fuzzy keys that leave them out) is worked out here as
bot.core.identity.identify does; a test holds the two to the same result over the corpus."""

from __future__ import annotations

import operator
import pickle
import zlib
from collections import Counter
from typing import NamedTuple

from bot.core.identity import (
    BOILERPLATE_ITEMS,
    DocumentIdentity,
    Fingerprint,
    IdentityKey,
    ItemIdentity,
    KeyKind,
    fingerprint,
    fuzzy_keys,
    primary_identity,
    url_key,
)
from bot.core.models import Story
from bot.core.ports import ParsedFeed


class ItemResult(NamedTuple):
    """One parsed item, with what identifying it takes short of the other items."""

    story: Story | None  # None: nothing a reader could recognise (no Story in a whole parse)
    link: str | None = None  # url_key(story.link)
    print: tuple[tuple[str, ...], frozenset[str], frozenset[str]] | None = None
    by_guid: str = ""  # primary_identity when its GUID is unique in the document
    fallback: str = ""  # primary_identity otherwise
    fuzzy: tuple[IdentityKey, ...] | None = None  # fuzzy_keys under the memo's `ignore`


class Memo(NamedTuple):
    context: bytes  # skeleton, URL, headers, encoding: an item reads the same under it
    outside: bytes  # every byte outside the items: the metadata
    title: str | None
    ignore: frozenset[str]  # the document's boilerplate, which the items' fuzzy keys leave out
    # By the hash of the item's bytes, each item packed on its own (`pack`): a changed body
    # packs only its new items again.
    items: dict[bytes, bytes]


def item_result(story: Story | None) -> ItemResult:
    if story is None:
        return ItemResult(None)
    # Its full-text word pairs share the lead's strings (identity.text_print): a memo holds,
    # and unpickles, each once.
    found = fingerprint(story)
    return ItemResult(
        story,
        url_key(story.link),
        (found.title, found.lead, found.full),
        primary_identity(story, guid_unique=True),
        primary_identity(story, guid_unique=False),
    )


_STORY_FIELDS = Story.__slots__
_story_fields = operator.attrgetter(*_STORY_FIELDS)
_KINDS = {int(kind): kind for kind in KeyKind}


def pack(result: ItemResult) -> bytes:
    """The item as plain tuples, pickled: a dataclass pickles several times slower. (The memo
    is compressed whole: `dump`.)"""
    story = result.story
    fields = None if story is None else _story_fields(story)
    fuzzy = None if result.fuzzy is None else tuple((int(k), v) for k, v in result.fuzzy)
    flat = (fields, result.link, result.print, result.by_guid, result.fallback, fuzzy)
    return pickle.dumps(flat, pickle.HIGHEST_PROTOCOL)


def unpack(blob: bytes) -> ItemResult:
    # Made by a parse worker and held in the bot's memory, never read from outside (the pipe
    # to the workers is pickle already).
    fields, link, print_, by_guid, fallback, fuzzy = pickle.loads(blob)  # noqa: S301
    new = tuple.__new__
    return ItemResult(
        None if fields is None else Story(*fields),
        link,
        print_,
        by_guid,
        fallback,
        None if fuzzy is None else tuple(new(IdentityKey, (_KINDS[k], v)) for k, v in fuzzy),
    )


def dump(memo: Memo) -> bytes:
    return zlib.compress(pickle.dumps(memo, pickle.HIGHEST_PROTOCOL), 1)


def load(blob: bytes | None) -> Memo | None:
    if blob is None:
        return None
    try:
        memo = pickle.loads(zlib.decompress(blob))  # noqa: S301 (see unpack)
    except Exception:  # a memo from another version of this module: parse all again
        return None
    return memo if isinstance(memo, Memo) else None


def assemble(
    order: list[bytes],
    items: dict[bytes, ItemResult],
    packed: dict[bytes, bytes],
    old_ignore: frozenset[str] | None,
    context: bytes,
    outside: bytes,
    title: str | None,
) -> tuple[ParsedFeed, Memo]:
    """The document's ParsedFeed and its memo, from its items in `order` (by hash): `items`,
    and `packed` (the memo's) for those not in `items`.

    Its identity is identify(stories) made from each item's parts: bot.core.identity's
    _unique_indices, boilerplate and identify, step by step."""
    for key in order:
        if key not in items:
            items[key] = unpack(packed[key])
    kept = [key for key in order if items[key].story is not None]
    guids = Counter(items[k].story.guid for k in kept if items[k].story.guid)  # type: ignore[union-attr]
    seen: set[str] = set()
    unique: list[tuple[int, bool]] = []
    for index, key in enumerate(kept):
        result = items[key]
        guid = result.story.guid  # type: ignore[union-attr]
        guid_unique = guid is not None and guids[guid] == 1
        identity = result.by_guid if guid_unique else result.fallback
        if identity in seen:
            continue
        seen.add(identity)
        unique.append((index, guid_unique))
    counts: Counter[str] = Counter()
    for index, _ in unique:
        counts.update(items[kept[index]].print[2])  # type: ignore[index]
    ignore = frozenset(s for s, n in counts.items() if n >= BOILERPLATE_ITEMS)
    # Fuzzy keys depend on the boilerplate only through the item's word pairs it removes: an
    # item none of whose pairs came into it or left it keeps its keys.
    changed = None if old_ignore is None else ignore ^ old_ignore
    held: dict[bytes, bytes] = {}
    for key in order:
        if key in held:
            continue
        result = items[key]
        fresh = key not in packed
        if result.story is not None and (
            result.fuzzy is None or changed is None or not changed.isdisjoint(result.print[2])  # type: ignore[index]
        ):
            result = items[key] = result._replace(fuzzy=fuzzy_keys(result.story, ignore))
            fresh = True
        held[key] = pack(result) if fresh else packed[key]
    prints = {key: Fingerprint(*items[key].print) for key in set(kept)}  # type: ignore[misc]
    identities = tuple(
        ItemIdentity(
            index,
            guid_unique,
            items[kept[index]].link,
            items[kept[index]].fuzzy,  # type: ignore[arg-type]
            prints[kept[index]],
        )
        for index, guid_unique in unique
    )
    stories: list[Story] = [items[key].story for key in kept]  # type: ignore[misc]
    parsed = ParsedFeed(
        stories, title=title, warning=None, identity=DocumentIdentity(identities, ignore)
    )
    return parsed, Memo(context, outside, title, ignore, held)
