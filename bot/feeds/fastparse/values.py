"""What the other modules share: the refusal, the entry type, and feedparser's small
value-level steps (FeedParserDict's key mapping, URL joining, content types, hrefs)."""

from __future__ import annotations

import re
from typing import Any

from feedparser.urls import _urljoin

Entry = dict[str, Any]


class _Refused(Exception):
    """The document reaches something the mirror does not follow: feedparser reads it."""


# FeedParserDict.keymap as __setitem__ applies it.
_KEYMAP = {
    "channel": "feed",
    "items": "entries",
    "guid": "id",
    "date": "updated",
    "date_parsed": "updated_parsed",
    "description": "summary",
    "description_detail": "summary_detail",
    "url": "href",
    "modified": "updated",
    "modified_parsed": "updated_parsed",
    "issued": "published",
    "issued_parsed": "published_parsed",
    "copyright": "rights",
    "copyright_detail": "rights_detail",
    "tagline": "subtitle",
    "tagline_detail": "subtitle_detail",
}
_PLAIN_URL = re.compile(
    # scheme://host[:port], a path without ; ? #, a query without #, a fragment: printable ASCII
    r"https?://[A-Za-z0-9.:-]+(?:/[\x21\x22\x24-\x3a\x3c-\x3e\x40-\x7e]*)?"
    r"(?:\?[\x21\x22\x24-\x7e]+)?(?:#[\x21-\x7e]+)?"
)


def _set(context: Entry, key: str, value: Any) -> None:
    """FeedParserDict.__setitem__: some keys are stored under another name."""
    context[_KEYMAP.get(key, key)] = value


def _join(base: str, uri: str) -> str:
    """feedparser's _urljoin(base, uri), without its cost for the usual absolute http(s) link:
    one with no empty query or fragment and no `;` in the path comes back unchanged from
    urllib's urljoin (whatever the base) and from _urljoin's slash fixing."""
    if _PLAIN_URL.fullmatch(uri):
        return uri
    return _urljoin(base, uri)


def _map_content_type(content_type: str) -> str:
    """_FeedParserMixin._map_content_type: the short names Atom allows, as MIME types."""
    content_type = content_type.lower()
    if content_type in ("text", "plain"):
        return "text/plain"
    if content_type == "html":
        return "text/html"
    if content_type == "xhtml":
        return "application/xhtml+xml"
    return content_type


def _enforce_href(attrs: dict[str, str]) -> dict[str, str]:
    """_FeedParserMixin._enforce_href: a url or uri attribute becomes href."""
    href = attrs.get("url", attrs.get("uri", attrs.get("href")))
    if href:
        attrs.pop("url", None)
        attrs.pop("uri", None)
        attrs["href"] = href
    return attrs
