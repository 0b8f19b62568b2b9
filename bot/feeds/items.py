"""Parsing only the items of a feed that changed (in the parse worker).

A changed body usually differs from the last one by a few items and a new lastBuildDate, yet a
whole parse costs every item again. So the body is cut into its items (RSS `<item>`, Atom
`<entry>`, RDF `<item>`) with one regex pass, each item's bytes are hashed, and only the items
whose hash is not in the memo of the feed's last document (which the bot holds and sends with
the body) are parsed: in one document made of the part before the first item, those items, and
the part after the last one, through the same fast path (bot.feeds.fastparse) as a whole
parse. The document is put back together here from those and the memo's items
(bot.feeds.incremental), so the bot receives the same ParsedFeed as from a whole parse.

That is exactly a whole parse only where an item reads the same wherever it stands, so a body
is cut only when nothing but whitespace lies between its items, no item declares a namespace or
holds another item, the encoding keeps `<` a byte of its own, there is no DOCTYPE, and the fast
path takes every part; feedparser's one state that crosses from the channel into the first item
(`hasContent`) is checked. Anything else is parsed whole, as before, and held by nobody. A held
item is only reused under the same skeleton (the tags outside the items, without their text),
URL, headers and encoding: a new lastBuildDate keeps the items, a new namespace does not."""

from __future__ import annotations

import codecs
import hashlib
import itertools
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from feedparser.encodings import convert_to_utf8

from bot.core.identity import identify
from bot.core.ports import ParsedFeed
from bot.feeds.incremental import ItemResult, Memo, assemble, dump, item_result, load
from bot.feeds.parse import BENIGN_PROBLEMS, MAX_ITEMS, parse_document, response_headers

log = logging.getLogger(__name__)

# An item's start or end tag, or what may hide one: CDATA, a comment, a processing instruction.
# In well-formed XML every other `<` starts a tag, and a tag name cannot contain these bytes.
_ITEM_TAGS = re.compile(
    rb"<!\[CDATA\[.*?\]\]>|<!--.*?-->|<\?.*?\?>"
    rb"|<(/?)(?:[^\s<>/!?=\"':]+:)?(?:item|entry)((?:[^>\"']++|\"[^\"]*+\"|'[^']*+')*+)>",
    re.DOTALL | re.IGNORECASE,
)
_ITEM_NAME = re.compile(rb"[\s/>]")  # what follows the name of an item's tag, not <items>
_DECLARATION = re.compile(rb"<!(?!--|\[CDATA\[)")  # a DOCTYPE or ENTITY
_SKELETON = re.compile(rb"<!\[CDATA\[.*?\]\]>|<!--.*?-->|<[^>]*>", re.DOTALL)
_XML_SPACE = b" \t\r\n"
# Encodings in which every byte below 0x80 is that ASCII character, whatever precedes it.
_SAFE_CODECS = frozenset(
    {"utf-8", "ascii", "latin-1", "koi8-r", "koi8-u"}
    | {f"iso8859-{n}" for n in range(1, 17)}
    | {f"cp125{n}" for n in range(9)}
)


def digest(*parts: bytes) -> bytes:
    hasher = hashlib.blake2b(digest_size=16)
    for part in parts:
        hasher.update(len(part).to_bytes(8, "big"))
        hasher.update(part)
    return hasher.digest()


@dataclass(frozen=True, slots=True)
class Itemized:
    """What the worker made of a body: the document, the feed's next memo (None when the body
    was parsed whole: nothing is held), and how many items it parsed and took from the memo."""

    parsed: ParsedFeed
    memo: bytes | None
    items_parsed: int
    items_reused: int


@dataclass(frozen=True, slots=True)
class Split:
    head: bytes
    items: list[bytes]
    tail: bytes


def split(body: bytes) -> Split | None:
    """The body cut into its items, or None when it does not cut cleanly."""
    if _DECLARATION.search(body):
        return None
    spans: list[tuple[int, int]] = []
    start = -1
    for match in _ITEM_TAGS.finditer(body):
        closing = match.group(1)
        if closing is None:
            continue  # CDATA, a comment, a processing instruction
        attrs = match.group(2)
        if attrs and not _ITEM_NAME.match(attrs):
            continue  # <items>, <entryPoint>: another element
        if closing:
            if start < 0 or attrs.strip(_XML_SPACE):
                return None
            spans.append((start, match.end()))
            start = -1
        else:
            if start >= 0 or attrs.rstrip(_XML_SPACE).endswith(b"/"):
                return None  # an item inside an item, an empty <item/>
            if len(spans) == MAX_ITEMS:
                return None  # a dump, not a feed: the bounds pass drops the rest
            start = match.start()
    if start >= 0 or not spans:
        return None
    items = [body[a:b] for a, b in spans]
    if any(b"xmlns" in item for item in items):
        return None
    for (_, end), (next_start, _) in itertools.pairwise(spans):
        if body[end:next_start].strip(_XML_SPACE):
            return None
    return Split(body[: spans[0][0]], items, body[spans[-1][1] :])


def _skeleton(data: bytes) -> bytes:
    return b"".join(t for t in _SKELETON.findall(data) if not t.startswith((b"<![CDATA[", b"<!--")))


def _encoding(body: bytes, url: str, headers: Mapping[str, str] | None) -> str | None:
    """The encoding feedparser reads the whole body in, when cutting it cannot change that."""
    outcome: dict[str, Any] = {}
    convert_to_utf8(response_headers(url, headers), body, outcome)
    problem = outcome.get("bozo_exception")
    if problem is not None and not isinstance(problem, BENIGN_PROBLEMS):
        return None
    if problem is not None and "override" in type(problem).__name__.lower():
        return None  # the declared encoding failed somewhere: another part might not fail
    try:
        name = codecs.lookup(outcome.get("encoding") or "").name
    except LookupError:
        return None
    return name if name in _SAFE_CODECS else None


def parse_items(
    body: bytes,
    *,
    feed_name: str,
    url: str = "",
    headers: Mapping[str, str] | None = None,
    memo: bytes | None = None,
) -> Itemized:
    """The items of `body` not in the feed's `memo` parsed and the document put back together,
    or, when the body does not cut cleanly, the whole document parsed as before."""
    try:
        itemized = _itemized(body, feed_name, url, headers, load(memo))
    except Exception:
        # A memo that does not open, a document this module misjudged: the whole parse is
        # always right, and the feed is parsed whole again (and held anew) next time.
        log.exception("parsing %r item by item failed; parsed whole", feed_name)
        itemized = None
    if itemized is not None:
        return itemized
    parsed = parse_document(body, feed_name=feed_name, url=url, headers=headers)
    parsed = replace(parsed, identity=identify(parsed.stories))
    return Itemized(parsed, None, len(parsed.stories), 0)


def _itemized(
    body: bytes, feed_name: str, url: str, headers: Mapping[str, str] | None, memo: Memo | None
) -> Itemized | None:
    parts = split(body)
    if parts is None:
        return None
    encoding = _encoding(body, url, headers)
    if encoding is None:
        return None
    lowered = sorted(response_headers(url, headers).items())
    context = digest(
        _skeleton(parts.head),
        _skeleton(parts.tail),
        url.encode(),
        repr(lowered).encode(),
        encoding.encode(),
        body[: body.find(b"<")],  # a byte-order mark
    )
    outside = digest(context, parts.head, parts.tail)
    hashes = [digest(item) for item in parts.items]
    if memo is not None and memo.context != context:
        memo = None
    held = memo.items if memo is not None else {}
    wanted = [i for i, h in enumerate(hashes) if h not in held]
    title_read = memo is None or memo.outside != outside
    if not wanted and title_read:
        # Only the metadata changed: read it along with the shortest item.
        wanted = [min(range(len(parts.items)), key=lambda i: len(parts.items[i]))]
    title = memo.title if memo is not None else None
    items: dict[bytes, ItemResult] = {}
    if wanted:
        if len(wanted) == len(parts.items):
            document = body
        else:
            document = parts.head + b"\n".join(parts.items[i] for i in wanted) + parts.tail
        # Imported here: fastparse imports parse.py, which importers of this module may be
        # loading.
        from bot.feeds.fastparse import fast_parse_items

        read = fast_parse_items(
            document, feed_name=feed_name, url=url, headers=headers, keep_first=wanted[0] == 0
        )
        if read is None:
            return None
        stories, read_title, head_content = read
        if len(stories) != len(wanted) or head_content:
            # Items that are not one entry each, or a channel whose content would make the
            # first item read differently from the others: parsed whole, held by nobody.
            return None
        for i, story in zip(wanted, stories, strict=True):
            items[hashes[i]] = item_result(story)
        if title_read:
            title = read_title
    old_ignore = memo.ignore if memo is not None else None
    parsed, next_memo = assemble(hashes, items, held, old_ignore, context, outside, title)
    return Itemized(parsed, dump(next_memo), len(wanted), len(hashes) - len(wanted))
