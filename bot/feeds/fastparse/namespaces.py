"""Namespaces as feedparser sees them: its namespace table, the namespace map and the
namespaces in use for the whole document, the base URI links are joined to, and the names an
attribute is filed under."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from feedparser.mixin import _FeedParserMixin
from feedparser.urls import _urljoin, make_safe_absolute_uri
from lxml import etree

from bot.feeds.fastparse.values import _Refused

# feedparser's namespace table, matched case-insensitively (_FeedParserMixin.__init__).
_MATCH = {uri.lower(): prefix for uri, prefix in _FeedParserMixin.namespaces.items()}
_USERLAND = "http://backend.userland.com/rss"
_XLINK = "http://www.w3.org/1999/xlink"
_XML = "http://www.w3.org/XML/1998/namespace"


def _base_uri(http_headers: Mapping[str, str]) -> str:
    """The base feedparser resolves links against (feedparser.api.parse, then
    _FeedParserMixin.unknown_starttag at each element), when no element has an xml:base."""
    location = http_headers.get("content-location", "")
    base = make_safe_absolute_uri("", location) or make_safe_absolute_uri(location) or ""
    # Each element start re-joins the base with itself; it must settle at once.
    first = (make_safe_absolute_uri(base, base) or base) if base else _urljoin(base, base)
    second = (make_safe_absolute_uri(first, first) or first) if first else _urljoin(first, first)
    if first != second:
        raise _Refused("a base URI that does not settle")
    return first


def _declarations(root: Any, data: bytes) -> list[tuple[str | None, str]]:
    """Every namespace declaration of the document, in document order."""
    own = list(root.nsmap.items())
    if data.count(b"xmlns") == len(own):
        return own  # every `xmlns` in the document is one of the root's declarations
    found = own
    for element in root.iter(etree.Element):
        parent = element.getparent()
        if parent is None:
            continue
        inherited = parent.nsmap
        found += [(p, uri) for p, uri in element.nsmap.items() if inherited.get(p) != uri]
    return found


def _namespaces(
    root: Any, data: bytes
) -> tuple[dict[str | None, str], dict[str, str], dict[str, str | None]]:
    """feedparser's `namespacemap` and `namespaces_in_use` for the whole document
    (_StrictFeedParser.startPrefixMapping, _FeedParserMixin.track_namespace), and the prefix
    each namespace URI is written with (None when it has several).

    feedparser builds both as it meets declarations and never forgets one; they are computed
    once here, which is the same only when no prefix is bound twice and no late declaration
    can change how an earlier element is read: otherwise, refused."""
    bound: dict[str | None, str] = {}
    written: dict[str, str | None] = {_XML: "xml"}
    namespacemap: dict[str | None, str] = {}
    in_use: dict[str, str] = {}
    for prefix, uri in _declarations(root, data):
        if not uri:
            continue
        if bound.setdefault(prefix, uri) != uri:
            raise _Refused("a namespace prefix bound to two URIs")
        if prefix:
            written[uri] = prefix if written.setdefault(uri, prefix) == prefix else None
        if prefix and uri == _XLINK:
            raise _Refused("XLink")  # feedparser adds its declaration to the element's attributes
        lower = uri.lower()
        if _USERLAND in lower:
            uri = lower = _USERLAND
        known = _MATCH.get(lower)
        key = known if known is not None else prefix or ""
        if known is not None:
            namespacemap[prefix] = known
        # Under "" (the RSS/Atom namespaces, a default namespace) feedparser never looks.
        if key and in_use.setdefault(key, uri) != uri:
            raise _Refused("two namespaces feedparser files under one name")
    significant = {p.lower() for p in _MATCH.values()} | {k.lower() for k in in_use}
    for prefix, known in namespacemap.items():
        if prefix is not None and prefix != known and prefix.lower() in significant:
            raise _Refused("a prefix feedparser would map onto another namespace")
    return namespacemap, in_use, written


def _attribute_keys(qualified: str, written: dict[str, str | None]) -> tuple[str, str]:
    """The two names _StrictFeedParser.startElementNS files an attribute under, lower-cased:
    with the prefix feedparser knows its namespace by (none for an unknown one), and as
    written in the document (expat reports the prefix: the SAX reader sets
    namespace_prefixes)."""
    if qualified[0] != "{":
        if not qualified.isascii():
            raise _Refused("a non-ASCII name")
        return qualified.lower(), qualified.lower()
    namespace, _, local = qualified[1:].partition("}")
    if not local.isascii() or not namespace.isascii():
        raise _Refused("a non-ASCII name")
    prefix = written.get(namespace)
    if prefix is None:
        raise _Refused("an attribute namespace written with several prefixes")
    known = _MATCH.get(namespace.lower(), "")
    return (f"{known}:{local}" if known else local).lower(), f"{prefix}:{local}".lower()
