"""A fast path for ordinary feed documents: lxml reads the XML, and a mirror of the part of
feedparser that ordinary feeds reach turns the tree into the entries feedparser would make.

Why: feedparser costs about a quarter of a millisecond per item, most of it in its SAX handler
(a URL join per element, FeedParserDict look-ups, deep copies, a Python call per text chunk).
The first poll of 1,000 feeds x 50 items, on 2 cores, must cost no more than a plain loop of
`feedparser.parse` over them, and the bot has work of its own besides parsing. libxml2 builds
the tree in C, and the mirror walks it once (bench/parsing.py prints the numbers).

Exactness is the contract: a document is either turned into exactly the ParsedFeed that
parse.py's feedparser path makes (same Stories, same title, no warning), or refused with None,
"not sure, ask feedparser". So the mirror does not paraphrase feedparser: it follows the code
of feedparser 6.0.14 (feedparser.mixin._FeedParserMixin and the namespace handlers it
inherits) step by step, each handler named after the one it mirrors (start_title is
_start_title), and calls feedparser's own functions for everything that is not state keeping:
encoding detection (convert_to_utf8), dates (_parse_date), URL joining (_urljoin), the cp1252
table. parse.py's to_story then makes the Stories from the same entry values. Under any other
feedparser version the fast path declines every document until the mirror is checked again.

It refuses:

- anything feedparser would not read with its strict (expat) parser: XML errors of any kind
  (libxml2 and expat agree on well-formedness; non-ASCII names, where their tables differ, are
  refused), an encoding feedparser cannot decode, no entries at all (those end in FeedError or
  an empty feed, which the feedparser path words);
- a DOCTYPE or an entity declaration (nothing is ever expanded: the parser neither loads nor
  resolves them), so billion-laughs and external-entity documents always go to feedparser;
- xml:base (feedparser resolves links against it per element), XLink, MathML and SVG
  namespaces, a namespace prefix bound to two URIs, a namespace map feedparser would apply
  differently at different points of the document;
- a root other than RSS, RDF or Atom 1.0;
- markup inside a text element (feedparser switches to its inline XHTML mode), XHTML and
  base64 content, and every feedparser handler this mirror does not follow (iTunes, GeoRSS,
  Creative Commons, PSC chapters, media:player, ...): the set of handlers is read from
  feedparser's class at import, so a handler added by a new feedparser version is refused
  until it is mirrored here;
- any state the mirror does not expect (a KeyError where feedparser would raise too, say).

Relative links and guids are resolved as feedparser resolves them, with its _urljoin against
the same base (the document URL): a guid without isPermaLink="false" is joined to the base, so
refusing relative values would refuse most feeds with opaque guids.

The package: this module reads the bytes (encoding, declarations, lxml) and hands the tree to
walk.py's _Mirror, which is built up in layers: state.py holds _FeedParserMixin's state and
machinery (push, pop, context, ...), handlers.py mirrors feedparser.namespaces._base and
dc_media.py its dc and mediarss namespaces, and walk.py walks the tree as expat's SAX events
would, naming each element as feedparser does (its _STARTS/_ENDS tables say which handler, or
none, an element name reaches). namespaces.py works out feedparser's namespace map and base
URI for the whole document; values.py holds what they all share (_Refused, _set, _join)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

import feedparser
from feedparser.encodings import convert_to_utf8
from lxml import etree

from bot.core.models import Story
from bot.core.ports import ParsedFeed
from bot.core.text import clean_text
from bot.feeds.bounds import bound_document
from bot.feeds.fastparse.namespaces import _base_uri, _namespaces
from bot.feeds.fastparse.values import Entry, _Refused
from bot.feeds.fastparse.values import _join as _join
from bot.feeds.fastparse.walk import _ENDS as _ENDS
from bot.feeds.fastparse.walk import _STARTS as _STARTS
from bot.feeds.fastparse.walk import _Mirror
from bot.feeds.parse import BENIGN_PROBLEMS, MAX_ITEMS, response_headers, to_story

# The feedparser whose code the mirror follows (constraints.txt pins it).
MIRRORED_FEEDPARSER = "6.0.14"

_FIRST_ELEMENT = re.compile(rb"<\w")  # where feedparser's replace_doctype stops looking
_DECLARATION = re.compile(rb"<!(?!--)")  # a DOCTYPE or ENTITY (in a comment too: refuse that)
# lxml reports a relative namespace URI (the Daily Mail's "//search.yahoo.com/mrss/") as a
# warning; expat accepts it, so does feedparser, and so does the mirror.
_HARMLESS_WARNINGS = frozenset({"NS_URI_RELATIVE", "WAR_NS_URI_RELATIVE"})


def fast_parse(
    body: bytes, *, feed_name: str, url: str = "", headers: Mapping[str, str] | None = None
) -> ParsedFeed | None:
    """The ParsedFeed parse.py's feedparser path makes of `body`, or None when this fast path
    is not sure it would make exactly the same one."""
    if not body or not body.strip() or feedparser.__version__ != MIRRORED_FEEDPARSER:
        return None
    try:
        entries, title = _entries(body, url, headers)
        stories = [s for s in (to_story(e, feed_name) for e in entries) if s is not None]
        return ParsedFeed(stories, title=clean_text(title) or None, warning=None)
    except (_Refused, etree.LxmlError):
        return None
    except (KeyError, IndexError, TypeError, AttributeError, ValueError):
        # A state feedparser may handle differently (or fail on): it decides.
        return None


def fast_parse_items(
    body: bytes,
    *,
    feed_name: str,
    url: str = "",
    headers: Mapping[str, str] | None = None,
    keep_first: bool = True,
) -> tuple[list[Story | None], str | None, int] | None:
    """For bot.feeds.items, which parses a document made of some of a feed's items: one
    Story (or None) per entry, in order, the feed title, and whether the part before the
    first item left feedparser's `hasContent` set (then the first item reads differently
    from the others). `keep_first`: the first item here is the feed's first item; otherwise
    it reads as the one after another item does. None when the fast path is not sure."""
    if not body or not body.strip() or feedparser.__version__ != MIRRORED_FEEDPARSER:
        return None
    try:
        mirror = _ItemMirror(keep_first)
        entries, title = _entries(body, url, headers, mirror)
        stories = [to_story(e, feed_name) for e in entries]
        return stories, clean_text(title) or None, mirror.head_content or 0
    except (_Refused, etree.LxmlError):
        return None
    except (KeyError, IndexError, TypeError, AttributeError, ValueError):
        return None


class _ItemMirror:
    """Makes the walk's mirror with a hook on each item's start: an item after another one
    starts with `hasContent` cleared (feedparser's _end_item clears it), whatever came before
    it in this document."""

    def __init__(self, keep_first: bool) -> None:
        self.keep_first = keep_first
        self.head_content: int | None = None

    def __call__(self, *args: Any) -> _Mirror:
        mirror = _Mirror(*args)
        start_item = _STARTS["item"]

        def item_start(m: _Mirror, attrs: dict[str, str]) -> None:
            if self.head_content is None:
                self.head_content = m.has_content
            if m.entries or not self.keep_first:
                m.has_content = 0
            start_item(m, attrs)

        tag = mirror.tag

        def hooked(qualified: str) -> Any:
            info = tag(qualified)
            if info.start is start_item:
                info = dataclasses.replace(info, start=item_start)
                mirror.tags[qualified] = info
            return info

        mirror.tag = hooked  # type: ignore[method-assign]
        return mirror


def _entries(
    body: bytes, url: str, headers: Mapping[str, str] | None, make: Any = _Mirror
) -> tuple[list[Entry], str | None]:
    """The entries (at most MAX_ITEMS) and the feed title feedparser would make of `body`, as
    the dicts parse.py's to_story reads; raises _Refused, or lxml's error, otherwise."""
    # The same bytes feedparser gets (parse.py), decoded and re-declared as UTF-8 by its own
    # encoding detection, so that the text is the same text.
    bounded = bound_document(bytes(body), max_items=MAX_ITEMS)
    http_headers = response_headers(url, headers)
    outcome: dict[str, Any] = {}
    data = convert_to_utf8(http_headers, bounded, outcome)
    problem = outcome.get("bozo_exception")
    if not outcome.get("encoding") or (
        problem is not None and not isinstance(problem, BENIGN_PROBLEMS)
    ):
        raise _Refused("an encoding feedparser does not decode")
    first = _FIRST_ELEMENT.search(data)
    if first is None or _DECLARATION.search(data, 0, first.start()):
        raise _Refused("a DOCTYPE or entity declaration")
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        recover=False,
    )
    root = etree.fromstring(data, parser)
    for error in parser.error_log:
        if error.type_name not in _HARMLESS_WARNINGS:
            raise _Refused(f"libxml2 reported {error.type_name}")
    if root.getroottree().docinfo.doctype:
        raise _Refused("a DOCTYPE")
    mirror = make(_base_uri(http_headers), *_namespaces(root, data))
    mirror.check_root(root)
    mirror.element(root)
    if not mirror.entries:
        raise _Refused("no entries: feedparser words what the document is")
    entries = mirror.entries[:MAX_ITEMS]
    for entry in entries:
        links = entry.get("links")
        if links is not None:
            # FeedParserDict computes `enclosures` from `links` on reading.
            entry["enclosures"] = [
                {k: v for k, v in link.items() if k != "rel"}
                for link in links
                if link["rel"] == "enclosure"
            ]
    return entries, mirror.feed.get("title")
