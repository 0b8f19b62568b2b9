"""Parsing feed documents with feedparser into clean Story values.

feedparser recovers from most broken documents (wrong encodings, bad markup, truncation); what it
cannot make a feed of (an HTML error page, a truncated server error with no items) is a FeedError.
It holds the GIL for about a quarter of a millisecond per item, so the bot runs it off the event
loop; an ordinary well-formed document goes through bot.feeds.fastparse instead, which makes
exactly the same ParsedFeed several times faster and hands everything else back to feedparser."""

from __future__ import annotations

import calendar
import io
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import feedparser
from feedparser.namespaces import mediarss

from bot.core.identity import safe_link
from bot.core.models import Story
from bot.core.ports import FeedError, ParsedFeed
from bot.core.text import PARAGRAPH, clean_body, clean_text, summarise, truncate
from bot.feeds.bounds import bound_document

TITLE_LIMIT = 500
CONTENT_LIMIT = 20_000
AUTHOR_LIMIT = 200
CATEGORY_LIMIT = 100
MAX_CATEGORIES = 20
MAX_TEXTS = 20  # content values of one item read (a media:group can list dozens of captions)
GUID_LIMIT = 2_000
MAX_ITEMS = 2_000  # a feed with more is a dump, not a feed: keep the first (newest) items
# A 10 MB feed (the fetch size cap) of ordinary items parses in well under this; a document still
# parsing after it is hostile or broken, and it must not hold a worker for long. It stays under
# the shortest poll interval ([fetch].min_interval, 30 s), so that one slow document delays
# another feed's parse by less than a poll.
PARSE_TIME_LIMIT = timedelta(seconds=20)


@dataclass(frozen=True, slots=True)
class ParseLimits:
    time_limit: timedelta = PARSE_TIME_LIMIT


# feedparser flags these but parses the document fine: not worth a warning in the feed's health.
BENIGN_PROBLEMS = (feedparser.CharacterEncodingOverride, feedparser.NonXMLContentType)
_HTML_PAGE = re.compile(rb"<\s*(!doctype\s+html|html[\s>]|head[\s>]|body[\s>])", re.IGNORECASE)
_IMAGE_EXT = re.compile(r"\.(jpe?g|png|gif|webp|avif)(\?|$)", re.IGNORECASE)


def _caption_as_content(self: Any, attrs_d: Any) -> None:
    self._start_content(attrs_d)


def _end_caption(self: Any) -> None:
    self._end_content()


# feedparser treats media:description (a photo caption) as a second description: it becomes a
# content value while the item has none, and after that it *replaces* the description (an item
# with content:encoded, or with two captions, loses its description to a caption). A caption is
# always a content value here; it still becomes the summary when the item has no description,
# as before. Patched once, at import, in every process that parses.
mediarss.Namespace._start_media_description = _caption_as_content
mediarss.Namespace._end_media_description = _end_caption


def parse_document(
    body: bytes, *, feed_name: str, url: str = "", headers: Mapping[str, str] | None = None
) -> ParsedFeed:
    # Imported here: fastparse makes its Stories with this module's to_story.
    from bot.feeds.fastparse import fast_parse

    try:
        fast = fast_parse(body, feed_name=feed_name, url=url, headers=headers)
    except Exception as exc:
        raise _unreadable(exc) from exc
    if fast is not None:
        return fast
    return _feedparser_document(body, feed_name=feed_name, url=url, headers=headers)


def _unreadable(exc: Exception) -> FeedError:
    """A parser's own failure on a strange document (feedparser raises KeyError on a textInput
    inside an item, UnicodeEncodeError on a surrogate character reference): the feed fails with
    the reason, like any unreadable document, and backs off; it must not look like a crash of
    the bot on every poll. The exception's type and text are in the reason its health shows."""
    return FeedError(
        f"the document could not be read: the parser failed ({type(exc).__name__}: "
        f"{_describe(exc)})"
    )


def response_headers(url: str, headers: Mapping[str, str] | None) -> dict[str, str]:
    """The response headers as feedparser is given them: lower-case names, and the document's
    URL as its Content-Location, so that relative links resolve against it."""
    lowered = {k.lower(): v for k, v in (headers or {}).items()}
    if url and "content-location" not in lowered:
        lowered["content-location"] = url
    return lowered


def _feedparser_document(
    body: bytes, *, feed_name: str, url: str = "", headers: Mapping[str, str] | None = None
) -> ParsedFeed:
    """parse_document by feedparser alone: every document fastparse declines, and the
    reference its results are tested against."""
    try:
        return _read_with_feedparser(body, feed_name=feed_name, url=url, headers=headers)
    except FeedError:
        raise
    except Exception as exc:
        raise _unreadable(exc) from exc


def _read_with_feedparser(
    body: bytes, *, feed_name: str, url: str = "", headers: Mapping[str, str] | None = None
) -> ParsedFeed:
    # A stream, never a str or bytes: given a str, feedparser would treat it as a URL and go
    # fetch it; given bytes, it first tries them as a file name (a body of b"/etc/passwd"
    # would be read from the local disk).
    # No HTML sanitising or URI rewriting inside content: clean_text reduces every field to plain
    # text (script and style contents dropped) and platforms escape it, so feedparser's passes
    # over the markup were 15-20% of parse time for identical Stories (all 39 corpus files).
    # The bounds pass first: where feedparser is quadratic, cap what it is given.
    parsed = feedparser.parse(
        io.BytesIO(bound_document(bytes(body), max_items=MAX_ITEMS)),
        response_headers=response_headers(url, headers),
        sanitize_html=False,
        resolve_relative_uris=False,
    )
    entries = parsed.entries
    problem = parsed.get("bozo_exception")
    if not entries:
        if not parsed.get("version"):
            if _HTML_PAGE.search(body[:4096]):
                raise FeedError(
                    "not a feed: the server sent an HTML page (an error or login page?)"
                )
            if not body.strip():
                raise FeedError("not a feed: the body is empty")
            raise FeedError(f"not a feed: {_describe(problem) or 'no RSS, Atom or RDF found'}")
        if parsed.bozo:
            raise FeedError(f"broken feed with no items: {_describe(problem)}")
    feed_title = clean_text(parsed.feed.get("title")) or None
    stories = [s for s in (to_story(e, feed_name) for e in entries[:MAX_ITEMS]) if s is not None]
    warning = None
    if parsed.bozo and not isinstance(problem, BENIGN_PROBLEMS):
        warning = f"recovered from malformed feed: {_describe(problem)}"
    return ParsedFeed(stories, title=feed_title, warning=warning)


def _describe(problem: Any) -> str:
    if problem is None:
        return ""
    return truncate(clean_text(str(problem)), 200)


def _when(entry: Mapping[str, Any]) -> datetime | None:
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        # dict.get: FeedParserDict.get maps missing date keys onto each other, with a warning.
        value = dict.get(cast("dict[str, Any]", entry), key)
        if isinstance(value, time.struct_time):
            try:
                # feedparser normalises every date it understands to UTC.
                return datetime.fromtimestamp(calendar.timegm(value), UTC)
            except (OverflowError, ValueError, OSError):
                continue
    return None


def _texts(entry: Mapping[str, Any]) -> tuple[str, str]:
    """(lead source, content): every text the publisher gives for the item is matched, but only
    the description makes a good lead.

    feedparser puts the description in `summary`, and content:encoded, media:description (photo
    captions) and the like in `content`. A caption can be longer than the description and say
    nothing of the story, so the content is all of them: the description, then each other
    text not already contained in another one, in document order."""
    description = clean_body(entry.get("summary"))
    contents = [
        clean_body(c.get("value"))
        for c in list(entry.get("content") or ())[:MAX_TEXTS]
        if c.get("value")
    ]
    lead = description or max(contents, key=len, default="")
    return lead, truncate(PARAGRAPH.join(_distinct([description, *contents])), CONTENT_LIMIT)


def _distinct(texts: list[str]) -> list[str]:
    """The texts, less the empty ones, repeats and those contained in another (a summary that
    is the first paragraph of content:encoded), compared across paragraph breaks."""
    flat = [t.replace(PARAGRAPH, " ") for t in texts]
    return [
        text
        for i, text in enumerate(texts)
        if text
        and not any(
            j != i and flat[i] in other and (len(other) > len(flat[i]) or j < i)
            for j, other in enumerate(flat)
        )
    ]


def _image(entry: Mapping[str, Any]) -> str | None:
    candidates: list[str | None] = []
    candidates += [m.get("url") for m in entry.get("media_thumbnail") or ()]
    for media in entry.get("media_content") or ():
        kind = (media.get("medium") or media.get("type") or "").lower()
        if kind.startswith("image") or _IMAGE_EXT.search(media.get("url") or ""):
            candidates.append(media.get("url"))
    for link in [*(entry.get("enclosures") or ()), *(entry.get("links") or ())]:
        if (link.get("type") or "").lower().startswith("image/"):
            candidates.append(link.get("href") or link.get("url"))
    for candidate in candidates:
        safe = safe_link(candidate)
        if safe:
            return safe
    return None


def _categories(entry: Mapping[str, Any]) -> tuple[str, ...]:
    out: dict[str, None] = {}  # ordered, and a lookup that does not grow with the tags seen
    for tag in entry.get("tags") or ():
        term = truncate(clean_text(tag.get("term") or tag.get("label")), CATEGORY_LIMIT)
        if term:
            out[term] = None
            if len(out) == MAX_CATEGORIES:
                break
    return tuple(out)


def to_story(entry: Mapping[str, Any], feed_name: str) -> Story | None:
    lead_source, content = _texts(entry)
    title = clean_text(entry.get("title"))
    link = safe_link(entry.get("feedburner_origlink")) or safe_link(entry.get("link"))
    if not title:
        if not lead_source and not link:
            return None  # nothing a reader could recognise
        title = truncate(lead_source.replace(PARAGRAPH, " "), 120) or link or ""
    guid = entry.get("id") or entry.get("guid")
    return Story(
        feed=feed_name,
        title=truncate(title, TITLE_LIMIT),
        link=link,
        guid=truncate(str(guid).strip(), GUID_LIMIT) if guid else None,
        summary=summarise(lead_source),
        content=content,
        published=_when(entry),
        author=truncate(clean_text(entry.get("author")), AUTHOR_LIMIT) or None,
        categories=_categories(entry),
        image=_image(entry),
    )
