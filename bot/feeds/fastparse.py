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
refusing relative values would refuse most feeds with opaque guids."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import feedparser
from feedparser.datetimes import _parse_date
from feedparser.encodings import convert_to_utf8
from feedparser.html import _cp1252
from feedparser.mixin import _FeedParserMixin
from feedparser.urls import _urljoin, make_safe_absolute_uri
from lxml import etree

from bot.core.ports import ParsedFeed
from bot.core.text import clean_text
from bot.feeds.bounds import bound_document
from bot.feeds.parse import BENIGN_PROBLEMS, MAX_ITEMS, response_headers, to_story

Entry = dict[str, Any]


# The feedparser whose code the mirror follows (constraints.txt pins it).
MIRRORED_FEEDPARSER = "6.0.14"


class _Refused(Exception):
    """The document reaches something the mirror does not follow: feedparser reads it."""


# feedparser's namespace table, matched case-insensitively (_FeedParserMixin.__init__).
_MATCH = {uri.lower(): prefix for uri, prefix in _FeedParserMixin.namespaces.items()}
_USERLAND = "http://backend.userland.com/rss"
_XLINK = "http://www.w3.org/1999/xlink"
_XML = "http://www.w3.org/XML/1998/namespace"
_REFUSED_NAMESPACES = frozenset(
    {"http://www.w3.org/1998/Math/MathML", "http://www.w3.org/2000/svg"}
)
_ATOM10 = "http://www.w3.org/2005/atom"
_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"

# Every start and end handler feedparser has: an element whose handler is not mirrored below is
# refused, never silently treated as an unknown element.
_FEEDPARSER_HANDLERS = frozenset(
    name for name in dir(_FeedParserMixin) if name.startswith(("_start_", "_end_"))
)
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
# Keys that handlers fill with lists, dicts and dates: an unknown element named like one of them
# would put a string there (and FeedParserDict computes some of them on reading).
_STRUCTURED = frozenset(
    {
        "links",
        "enclosures",
        "tags",
        "category",
        "license",
        "content",
        "summary",
        "title",
        "link",
        "id",
        "author",
        "authors",
        "author_detail",
        "contributors",
        "publisher_detail",
        "source",
        "image",
        "textinput",
        "guidislink",
        "generator_detail",
        "media_content",
        "media_thumbnail",
        "media_credit",
        "media_rating",
        "media_restriction",
        "media_license",
        "published_parsed",
        "updated_parsed",
        "created_parsed",
        "expired_parsed",
    }
)
_CAN_BE_RELATIVE = frozenset(_FeedParserMixin.can_be_relative_uri)
_HTML_TYPES = frozenset(_FeedParserMixin.html_types)
_NOT_TEXTINPUT = ("title", "link", "description", "name")
_NOT_IMAGE = ("title", "link", "description", "url", "href", "width", "height")
_AMP_NAME = re.compile("&([A-Za-z0-9_]+);")
_PLAIN_URL = re.compile(
    # scheme://host[:port], a path without ; ? #, a query without #, a fragment: printable ASCII
    r"https?://[A-Za-z0-9.:-]+(?:/[\x21\x22\x24-\x3a\x3c-\x3e\x40-\x7e]*)?"
    r"(?:\?[\x21\x22\x24-\x7e]+)?(?:#[\x21-\x7e]+)?"
)
_C1 = re.compile("[\x80-\x9f]")  # the code points feedparser's _cp1252 table maps
# _FeedParserMixin._sync_author_detail's e-mail pattern, verbatim.
_EMAIL = re.compile(
    r"""(([a-zA-Z0-9\_\-\.\+]+)@((\[[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.)|(([a-zA-Z0-9\-]+\.)+))([a-zA-Z]{2,4}|[0-9]{1,3})(\]?))(\?subject=\S+)?"""
)
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


def _entries(
    body: bytes, url: str, headers: Mapping[str, str] | None
) -> tuple[list[Entry], str | None]:
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
    mirror = _Mirror(_base_uri(http_headers), *_namespaces(root, data))
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


@dataclass(frozen=True, slots=True)
class _Tag:
    """What feedparser makes of one element name: its handlers, or the unknown-element key."""

    name: str  # prefix_suffix, the key an unknown element is stored under
    start: Callable[[_Mirror, dict[str, str]], None] | None
    end: Callable[[_Mirror], None] | None
    resets_textinput: bool
    resets_image: bool


class _Mirror:
    """feedparser's _FeedParserMixin state machine, for the handlers listed in _STARTS/_ENDS.
    Names follow feedparser's (`push`, `pop`, `context` for _get_context, ...)."""

    def __init__(
        self,
        base: str,
        namespacemap: dict[str | None, str],
        in_use: dict[str, str],
        written: dict[str, str | None],
    ) -> None:
        self.base = base
        self.namespacemap = namespacemap
        self.in_use = in_use
        self.written = written
        self.tags: dict[str, _Tag] = {}
        self.attribute_keys: dict[str, tuple[str, str]] = {}
        self.feed: Entry = {}
        self.entries: list[Entry] = []
        self.entry_depths: list[dict[str, int]] = []  # property_depth_map, per entry
        self.source: Entry = {}
        self.stack: list[tuple[str, int, list[str]]] = []
        self.depth = 0
        self.infeed = self.inentry = self.insource = self.inimage = self.intextinput = 0
        self.inauthor = self.incontributor = self.incontent = 0
        self.has_content = 0
        self.title_depth = -1
        self.guidislink = False
        self.summary_key: str | None = None
        self.content_type: str | None = None  # contentparams['type']; None once cleared
        self.rdf_about = namespacemap.get("rdf", "rdf") + ":about"

    # --- the document walk (what expat's SAX events would say) ------------------------------

    def check_root(self, root: Any) -> None:
        tag = self.tag(root.tag)
        namespace = etree.QName(root).namespace or ""
        if tag.name == "rss" or (tag.name == "rdf_rdf" and namespace == _RDF):
            return
        if tag.name == "feed" and namespace.lower() == _ATOM10:
            return
        raise _Refused(f"a document of {root.tag!r}")

    def element(self, element: Any) -> None:
        tag = self.tags.get(element.tag) or self.tag(element.tag)
        items = element.items()
        attrs = self.attributes(items) if items else {}
        self.start(tag, attrs)
        stack = self.stack
        text = element.text
        if text and stack:
            stack[-1][2].append(text)
        for child in element:
            if isinstance(child.tag, str):
                self.element(child)
            # else a comment or a processing instruction: SAX reports neither, only the text
            # around it
            tail = child.tail
            if tail and stack:
                stack[-1][2].append(tail)
        self.end(tag)

    def tag(self, qualified: str) -> _Tag:
        """_StrictFeedParser.startElementNS, then _FeedParserMixin.unknown_starttag's name
        matching; endElementNS comes to the same name."""
        if qualified[0] == "{":
            namespace, _, local = qualified[1:].partition("}")
        else:
            namespace, local = "", qualified
        if not local.isascii() or not namespace.isascii():
            raise _Refused("a non-ASCII name")  # expat's name tables are not libxml2's
        if namespace in _REFUSED_NAMESPACES:
            raise _Refused("MathML or SVG")
        lower = namespace.lower()
        if _USERLAND in lower:
            namespace = lower = _USERLAND
        prefix = _MATCH.get(lower)
        if prefix:
            name = prefix.lower() + ":" + local
        else:
            name = local
            if namespace:
                for known, uri in self.in_use.items():
                    if known and uri == namespace:
                        name = known + ":" + local
                        break
        name = name.lower()
        if ":" in name:
            prefix, _, suffix = name.partition(":")
        else:
            prefix, suffix = "", name
        prefix = self.namespacemap.get(prefix, prefix)
        key = f"{prefix}_{suffix}" if prefix else suffix
        start = _STARTS.get(key)
        end = _ENDS.get(key)
        if (start is None and f"_start_{key}" in _FEEDPARSER_HANDLERS) or (
            end is None and f"_end_{key}" in _FEEDPARSER_HANDLERS
        ):
            raise _Refused(f"feedparser's handler for {key!r}")
        if start is None and _KEYMAP.get(key, key) in _STRUCTURED:
            raise _Refused(f"an unknown element named {key!r}")
        info = _Tag(
            key,
            start,
            end,
            resets_textinput=not prefix and name not in _NOT_TEXTINPUT,
            resets_image=not prefix and name not in _NOT_IMAGE,
        )
        self.tags[qualified] = info
        return info

    def attributes(self, items: list[tuple[str, str]]) -> dict[str, str]:
        """The attributes as _StrictFeedParser.startElementNS names them (under the known
        namespace's prefix, then under the name as written over it), normalised by
        _normalize_attributes."""
        keys = self.attribute_keys
        named = []
        for qualified, value in items:
            pair = keys.get(qualified)
            if pair is None:
                pair = keys[qualified] = _attribute_keys(qualified, self.written)
            named.append((pair, value))
        attrs: dict[str, str] = {}
        for (known, _), value in named:
            attrs[known] = value
        for (_, written), value in named:
            attrs[written] = value
        if "xml:base" in attrs or "base" in attrs:
            raise _Refused("xml:base")
        for key in ("rel", "type"):
            if key in attrs:
                attrs[key] = attrs[key].lower()
        return attrs

    def start(self, tag: _Tag, attrs: dict[str, str]) -> None:
        """_FeedParserMixin.unknown_starttag."""
        self.depth += 1
        if self.incontent:
            raise _Refused("markup inside a text element")  # feedparser's inline XHTML mode
        if tag.resets_textinput:
            self.intextinput = 0
        if tag.resets_image:
            self.inimage = 0
        if tag.start is not None:
            tag.start(self, attrs)
        elif attrs:
            _set(self.context(), tag.name, attrs)
        else:
            self.push(tag.name, 1)

    def end(self, tag: _Tag) -> None:
        """_FeedParserMixin.unknown_endtag."""
        if tag.end is not None:
            tag.end(self)
        else:
            self.pop(tag.name)
        self.depth -= 1

    # --- _FeedParserMixin's machinery -------------------------------------------------------

    def push(self, element: str, expecting_text: int) -> None:
        self.stack.append((element, expecting_text, []))

    def pop(self, element: str) -> str | None:
        stack = self.stack
        if not stack or stack[-1][0] != element:
            return None
        _, expecting_text, pieces = stack.pop()
        output = "".join(pieces).strip()
        if not expecting_text:
            return output
        if element in _CAN_BE_RELATIVE and output and (element != "id" or self.guidislink):
            output = _join(self.base, output)
        if not output.isascii():  # both steps leave ASCII as it is
            # "address common error where people take data that is already utf-8, presume
            # that it is iso-8859-1, and re-encode it", then the cp1252 code points.
            with contextlib.suppress(UnicodeEncodeError, UnicodeDecodeError):
                output = output.encode("iso-8859-1").decode("utf-8")
            if _C1.search(output):  # translate() looks every character up: only when it maps one
                output = output.translate(_cp1252)
        if element in ("category", "tags", "itunes_keywords"):
            return output
        if element == "title" and -1 < self.title_depth <= self.depth:
            return output
        if self.inentry and not self.insource:
            entry = self.entries[-1]
            if element == "content":
                entry.setdefault("content", []).append({"value": output})
            elif element == "link":
                if not self.inimage:
                    output = _AMP_NAME.sub(r"&\g<1>", output.replace("&amp;", "&"))
                    entry["link"] = output
                    if output:
                        entry["links"][-1]["href"] = output
            else:
                if element == "description":
                    element = "summary"
                depths = self.entry_depths[-1]
                old = depths.get(element)
                if old is None or self.depth <= old:
                    depths[element] = self.depth
                    _set(entry, element, output)
        elif self.infeed or self.insource:
            context = self.context()
            if element == "description":
                element = "subtitle"
            _set(context, element, output)
            if element == "link":
                output = _AMP_NAME.sub(r"&\g<1>", output)
                context["link"] = output
                context["links"][-1]["href"] = output
        return output

    def push_content(
        self, tag: str, attrs: dict[str, str], default_type: str, expecting_text: int
    ) -> None:
        self.incontent += 1
        content_type = _map_content_type(attrs.get("type", default_type))
        if attrs.get("mode", "") == "base64" or not (
            content_type.startswith("text/") or content_type.endswith(("+xml", "/xml"))
        ):
            raise _Refused("base64 content")
        if content_type == "application/xhtml+xml":
            raise _Refused("XHTML content")  # escaped text, the atom:div unwrapping
        self.content_type = content_type
        self.push(tag, expecting_text)

    def pop_content(self, tag: str) -> str | None:
        value = self.pop(tag)
        self.incontent -= 1
        self.content_type = None
        return value

    def context(self) -> Entry:
        if self.insource:
            return self.source
        if self.inimage and "image" in self.feed:
            return self.feed["image"]  # type: ignore[no-any-return]
        if self.intextinput:
            return self.feed["textinput"]  # type: ignore[no-any-return]
        if self.inentry:
            return self.entries[-1]
        return self.feed

    def save(self, key: str, value: Any, overwrite: bool = False) -> None:
        context = self.context()
        if overwrite or key not in context:
            _set(context, key, value)

    def save_author(self, key: str, value: Any, prefix: str = "author") -> None:
        context = self.context()
        context.setdefault(prefix + "_detail", {})[key] = value
        self.sync_author_detail()
        context.setdefault("authors", [{}])
        context["authors"][-1][key] = value

    def save_contributor(self, key: str, value: Any) -> None:
        context = self.context()
        context.setdefault("contributors", [{}])
        context["contributors"][-1][key] = value

    def sync_author_detail(self, key: str = "author") -> None:
        context = self.context()
        detail = context.get(f"{key}s", [{}])[-1]
        if detail:
            name = detail.get("name")
            email = detail.get("email")
            if name and email:
                context[key] = f"{name} ({email})"
            elif name:
                context[key] = name
            elif email:
                context[key] = email
            return
        author, email = context.get(key), None
        if not author:
            return
        match = _EMAIL.search(author)
        if match:
            email = match.group(0)
            author = author.replace(email, "").replace("()", "").replace("<>", "")
            author = author.replace("&lt;&gt;", "").strip()
            if author and author[0] == "(":
                author = author[1:]
            if author and author[-1] == ")":
                author = author[:-1]
            author = author.strip()
        if author or email:
            context.setdefault(f"{key}_detail", detail)
        if author:
            detail["name"] = author
        if email:
            detail["email"] = email

    def add_tag(self, term: str | None, scheme: str | None, label: str | None) -> None:
        tags = self.context().setdefault("tags", [])
        if not term and not scheme and not label:
            return
        value = {"term": term, "scheme": scheme, "label": label}
        if value not in tags:
            tags.append(value)

    # --- handlers (namespaces/_base.py, dc.py, mediarss.py; the parse.py caption patch) ------

    def _cdf_common(self, attrs: dict[str, str]) -> None:
        if "lastmod" in attrs or "href" in attrs:
            raise _Refused("CDF attributes")

    def start_rss(self, attrs: dict[str, str]) -> None:
        pass  # only the version, which nothing read here depends on (XHTML is refused)

    def start_channel(self, attrs: dict[str, str]) -> None:
        self.infeed = 1
        self._cdf_common(attrs)

    def start_feed(self, attrs: dict[str, str]) -> None:
        self.infeed = 1

    def end_channel(self) -> None:
        self.infeed = 0

    def start_image(self, attrs: dict[str, str]) -> None:
        context = self.context()
        if not self.inentry:
            context.setdefault("image", {})
        self.inimage = 1
        self.title_depth = -1
        self.push("image", 0)

    def end_image(self) -> None:
        self.pop("image")
        self.inimage = 0

    def start_textinput(self, attrs: dict[str, str]) -> None:
        self.context().setdefault("textinput", {})
        self.intextinput = 1
        self.title_depth = -1
        self.push("textinput", 0)

    def end_textinput(self) -> None:
        self.pop("textinput")
        self.intextinput = 0

    def start_author(self, attrs: dict[str, str]) -> None:
        self.inauthor = 1
        self.push("author", 1)
        self.context().setdefault("authors", []).append({})

    def end_author(self) -> None:
        self.pop("author")
        self.inauthor = 0
        self.sync_author_detail()

    def start_contributor(self, attrs: dict[str, str]) -> None:
        self.incontributor = 1
        self.context().setdefault("contributors", []).append({})
        self.push("contributor", 0)

    def end_contributor(self) -> None:
        self.pop("contributor")
        self.incontributor = 0

    def start_dc_contributor(self, attrs: dict[str, str]) -> None:
        self.incontributor = 1
        self.context().setdefault("contributors", []).append({})
        self.push("name", 0)

    def end_dc_contributor(self) -> None:
        self.end_name()
        self.incontributor = 0

    def start_name(self, attrs: dict[str, str]) -> None:
        self.push("name", 0)

    def end_name(self) -> None:
        value = self.pop("name")
        if self.inauthor:
            self.save_author("name", value)
        elif self.incontributor:
            self.save_contributor("name", value)
        elif self.intextinput:
            self.context()["name"] = value

    def start_width(self, attrs: dict[str, str]) -> None:
        self.push("width", 0)

    def end_width(self) -> None:
        self._dimension("width")

    def start_height(self, attrs: dict[str, str]) -> None:
        self.push("height", 0)

    def end_height(self) -> None:
        self._dimension("height")

    def _dimension(self, key: str) -> None:
        value = self.pop(key)
        if value is None:
            raise _Refused("int(None): feedparser fails here")
        try:
            number = int(value)
        except ValueError:
            number = 0
        if self.inimage:
            self.context()[key] = number

    def start_url(self, attrs: dict[str, str]) -> None:
        self.push("href", 1)

    def end_url(self) -> None:
        value = self.pop("href")
        if self.inauthor:
            self.save_author("href", value)
        elif self.incontributor:
            self.save_contributor("href", value)

    def start_email(self, attrs: dict[str, str]) -> None:
        self.push("email", 0)

    def end_email(self) -> None:
        value = self.pop("email")
        if self.inauthor:
            self.save_author("email", value)
        elif self.incontributor:
            self.save_contributor("email", value)

    def start_subtitle(self, attrs: dict[str, str]) -> None:
        self.push_content("subtitle", attrs, "text/plain", 1)

    def end_subtitle(self) -> None:
        self.pop_content("subtitle")

    def start_rights(self, attrs: dict[str, str]) -> None:
        self.push_content("rights", attrs, "text/plain", 1)

    def end_rights(self) -> None:
        self.pop_content("rights")

    def start_info(self, attrs: dict[str, str]) -> None:
        self.push_content("info", attrs, "text/plain", 1)

    def end_info(self) -> None:
        self.pop_content("info")

    def start_item(self, attrs: dict[str, str]) -> None:
        self.entries.append({})
        self.entry_depths.append({})
        self.push("item", 0)
        self.inentry = 1
        self.guidislink = False
        self.title_depth = -1
        about = attrs.get(self.rdf_about)
        if about:
            _set(self.context(), "id", about)
        self._cdf_common(attrs)

    def end_item(self) -> None:
        self.pop("item")
        self.inentry = 0
        self.has_content = 0

    def start_language(self, attrs: dict[str, str]) -> None:
        self.push("language", 1)

    def end_language(self) -> None:
        self.pop("language")  # it becomes feedparser's current language: nothing read here

    def start_webmaster(self, attrs: dict[str, str]) -> None:
        self.push("publisher", 1)

    def end_webmaster(self) -> None:
        self.pop("publisher")
        self.sync_author_detail("publisher")

    def start_published(self, attrs: dict[str, str]) -> None:
        self.push("published", 1)

    def end_published(self) -> None:
        self.save("published_parsed", _parse_date(self.pop("published")), overwrite=True)

    def start_updated(self, attrs: dict[str, str]) -> None:
        self.push("updated", 1)

    def end_updated(self) -> None:
        self.save("updated_parsed", _parse_date(self.pop("updated")), overwrite=True)

    def start_created(self, attrs: dict[str, str]) -> None:
        self.push("created", 1)

    def end_created(self) -> None:
        self.save("created_parsed", _parse_date(self.pop("created")), overwrite=True)

    def start_category(self, attrs: dict[str, str]) -> None:
        self.add_tag(
            attrs.get("term"), attrs.get("scheme", attrs.get("domain")), attrs.get("label")
        )
        self.push("category", 1)

    def end_category(self) -> None:
        value = self.pop("category")
        if not value:
            return
        tags = self.context()["tags"]
        if value and len(tags) and not tags[-1]["term"]:
            tags[-1]["term"] = value
        else:
            self.add_tag(value, None, None)

    def start_media_category(self, attrs: dict[str, str]) -> None:
        attrs.setdefault("scheme", "http://search.yahoo.com/mrss/category_schema")
        self.start_category(attrs)

    def end_media_keywords(self) -> None:
        value = self.pop("media_keywords")
        if value is None:
            return  # feedparser: AttributeError, then an unknown end tag whose pop is a no-op
        for term in value.split(","):
            if term.strip():
                self.add_tag(term.strip(), None, None)

    def start_tags(self, attrs: dict[str, str]) -> None:
        self.push("tags", 1)

    def end_tags(self) -> None:
        value = self.pop("tags")
        if value is None:
            return  # as end_media_keywords
        for term in value.split(","):
            self.add_tag(term.strip(), None, None)

    def start_cloud(self, attrs: dict[str, str]) -> None:
        self.context()["cloud"] = attrs

    def start_link(self, attrs: dict[str, str]) -> None:
        attrs.setdefault("rel", "alternate")
        if attrs["rel"] == "self":
            attrs.setdefault("type", "application/atom+xml")
        else:
            attrs.setdefault("type", "text/html")
        context = self.context()
        attrs = _enforce_href(attrs)
        if "href" in attrs:
            attrs["href"] = _join(self.base, attrs["href"])
        expecting_text = self.infeed or self.inentry or self.insource
        context.setdefault("links", [])
        if not (self.inentry and self.inimage):
            context["links"].append(dict(attrs))
        if "href" in attrs:
            if attrs.get("rel") == "alternate" and _map_content_type(attrs["type"]) in _HTML_TYPES:
                context["link"] = attrs["href"]
        else:
            self.push("link", expecting_text)

    def end_link(self) -> None:
        self.pop("link")

    def start_guid(self, attrs: dict[str, str]) -> None:
        self.guidislink = attrs.get("ispermalink", "true") == "true"
        self.push("id", 1)

    def end_guid(self) -> None:
        value = self.pop("id")
        self.save("guidislink", self.guidislink and "link" not in self.context())
        if self.guidislink:
            self.save("link", value)

    def start_title(self, attrs: dict[str, str]) -> None:
        self.push_content(
            "title", attrs, "text/plain", self.infeed or self.inentry or self.insource
        )

    def end_title(self) -> None:
        value = self.pop_content("title")
        if value:
            self.title_depth = self.depth

    def end_media_title(self) -> None:
        title_depth = self.title_depth
        self.end_title()
        self.title_depth = title_depth

    def start_description(self, attrs: dict[str, str]) -> None:
        if "summary" in self.context() and not self.has_content:
            self.summary_key = "content"
            self.start_content(attrs)
        else:
            self.push_content(
                "description", attrs, "text/html", self.infeed or self.inentry or self.insource
            )

    def end_description(self) -> None:
        if self.summary_key == "content":
            self.end_content()
        else:
            self.pop_content("description")
        self.summary_key = None

    def start_summary(self, attrs: dict[str, str]) -> None:
        if "summary" in self.context() and not self.has_content:
            self.summary_key = "content"
            self.start_content(attrs)
        else:
            self.summary_key = "summary"
            self.push_content("summary", attrs, "text/plain", 1)

    def end_summary(self) -> None:
        if self.summary_key == "content":
            self.end_content()
        else:
            self.pop_content(self.summary_key or "summary")
        self.summary_key = None

    def start_content(self, attrs: dict[str, str]) -> None:
        self.has_content = 1
        self.push_content("content", attrs, "text/plain", 1)
        self.push("content", 1)  # twice, as feedparser does: the outer one is never popped

    def start_content_encoded(self, attrs: dict[str, str]) -> None:
        self.has_content = 1
        self.push_content("content", attrs, "text/html", 1)

    def end_content(self) -> None:
        if self.content_type is None:
            raise _Refused("content ending without its parameters")
        copy_to_summary = self.content_type in ("text/plain", *_HTML_TYPES)
        value = self.pop_content("content")
        if copy_to_summary:
            self.save("summary", value)

    def start_generator(self, attrs: dict[str, str]) -> None:
        if attrs:
            attrs = _enforce_href(attrs)
            if "href" in attrs:
                attrs["href"] = _urljoin(self.base, attrs["href"])
        self.context()["generator_detail"] = dict(attrs)
        self.push("generator", 1)

    def end_generator(self) -> None:
        value = self.pop("generator")
        context = self.context()
        if "generator_detail" in context:
            context["generator_detail"]["name"] = value

    def start_enclosure(self, attrs: dict[str, str]) -> None:
        attrs = _enforce_href(attrs)
        context = self.context()
        attrs["rel"] = "enclosure"
        context.setdefault("links", []).append(dict(attrs))

    def start_source(self, attrs: dict[str, str]) -> None:
        if "url" in attrs:
            self.source["href"] = attrs["url"]
        self.push("source", 1)
        self.insource = 1
        self.title_depth = -1

    def end_source(self) -> None:
        self.insource = 0
        value = self.pop("source")
        if value:
            self.source["title"] = value
        self.context()["source"] = dict(self.source)
        self.source.clear()

    def start_media_group(self, attrs: dict[str, str]) -> None:
        pass

    def start_media_content(self, attrs: dict[str, str]) -> None:
        self.context().setdefault("media_content", []).append(attrs)

    def start_media_thumbnail(self, attrs: dict[str, str]) -> None:
        context = self.context()
        context.setdefault("media_thumbnail", [])
        self.push("url", 1)
        context["media_thumbnail"].append(attrs)

    def end_media_thumbnail(self) -> None:
        url = self.pop("url")
        context = self.context()
        if url is not None and url.strip() and "url" not in context["media_thumbnail"][-1]:
            context["media_thumbnail"][-1]["url"] = url

    def start_media_credit(self, attrs: dict[str, str]) -> None:
        self.context().setdefault("media_credit", []).append(attrs)
        self.push("credit", 1)

    def end_media_credit(self) -> None:
        credit = self.pop("credit")
        if credit is not None and credit.strip():
            self.context()["media_credit"][-1]["content"] = credit

    def start_media_rating(self, attrs: dict[str, str]) -> None:
        self.context().setdefault("media_rating", attrs)
        self.push("rating", 1)

    def end_media_rating(self) -> None:
        rating = self.pop("rating")
        if rating is not None and rating.strip():
            self.context()["media_rating"]["content"] = rating

    def start_media_license(self, attrs: dict[str, str]) -> None:
        self.context().setdefault("media_license", attrs)
        self.push("license", 1)

    def end_media_license(self) -> None:
        value = self.pop("license")
        if value is not None and value.strip():
            self.context()["media_license"]["content"] = value

    def start_media_restriction(self, attrs: dict[str, str]) -> None:
        self.context().setdefault("media_restriction", attrs)
        self.push("restriction", 1)

    def end_media_restriction(self) -> None:
        value = self.pop("restriction")
        if value is not None and value.strip():
            self.context()["media_restriction"]["content"] = [
                code.strip().lower() for code in value.split(" ")
            ]


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
    content_type = content_type.lower()
    if content_type in ("text", "plain"):
        return "text/plain"
    if content_type == "html":
        return "text/html"
    if content_type == "xhtml":
        return "application/xhtml+xml"
    return content_type


def _enforce_href(attrs: dict[str, str]) -> dict[str, str]:
    href = attrs.get("url", attrs.get("uri", attrs.get("href")))
    if href:
        attrs.pop("url", None)
        attrs.pop("uri", None)
        attrs["href"] = href
    return attrs


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


def _handlers(kind: str) -> dict[str, Any]:
    return {
        name.removeprefix(kind): function
        for name, function in vars(_Mirror).items()
        if name.startswith(kind)
    }


_STARTS: dict[str, Callable[[_Mirror, dict[str, str]], None]] = _handlers("start_")
_ENDS: dict[str, Callable[[_Mirror], None]] = _handlers("end_")
# feedparser's aliases: one behaviour under several element names.
_STARTS.update(
    {
        "entry": _Mirror.start_item,
        "managingeditor": _Mirror.start_author,
        "dc_author": _Mirror.start_author,
        "dc_creator": _Mirror.start_author,
        "homepage": _Mirror.start_url,
        "uri": _Mirror.start_url,
        "tagline": _Mirror.start_subtitle,
        "copyright": _Mirror.start_rights,
        "dc_rights": _Mirror.start_rights,
        "feedburner_browserfriendly": _Mirror.start_info,
        "dc_language": _Mirror.start_language,
        "dc_publisher": _Mirror.start_webmaster,
        "issued": _Mirror.start_published,
        "pubdate": _Mirror.start_published,
        "dcterms_issued": _Mirror.start_published,
        "modified": _Mirror.start_updated,
        "lastbuilddate": _Mirror.start_updated,
        "dc_date": _Mirror.start_updated,
        "dcterms_modified": _Mirror.start_updated,
        "dcterms_created": _Mirror.start_created,
        "keywords": _Mirror.start_category,
        "dc_subject": _Mirror.start_category,
        "id": _Mirror.start_guid,
        "dc_title": _Mirror.start_title,
        "media_title": _Mirror.start_title,
        "dc_description": _Mirror.start_description,
        # parse.py's patch: a caption is always a content value.
        "media_description": _Mirror.start_content,
        "fullitem": _Mirror.start_content_encoded,
    }
)
_ENDS.update(
    {
        "feed": _Mirror.end_channel,
        "entry": _Mirror.end_item,
        "managingeditor": _Mirror.end_author,
        "dc_author": _Mirror.end_author,
        "dc_creator": _Mirror.end_author,
        "homepage": _Mirror.end_url,
        "uri": _Mirror.end_url,
        "tagline": _Mirror.end_subtitle,
        "copyright": _Mirror.end_rights,
        "dc_rights": _Mirror.end_rights,
        "feedburner_browserfriendly": _Mirror.end_info,
        "dc_language": _Mirror.end_language,
        "dc_publisher": _Mirror.end_webmaster,
        "issued": _Mirror.end_published,
        "pubdate": _Mirror.end_published,
        "dcterms_issued": _Mirror.end_published,
        "modified": _Mirror.end_updated,
        "lastbuilddate": _Mirror.end_updated,
        "dc_date": _Mirror.end_updated,
        "dcterms_modified": _Mirror.end_updated,
        "dcterms_created": _Mirror.end_created,
        "keywords": _Mirror.end_category,
        "dc_subject": _Mirror.end_category,
        "media_category": _Mirror.end_category,
        "id": _Mirror.end_guid,
        "dc_title": _Mirror.end_title,
        "dc_description": _Mirror.end_description,
        "media_description": _Mirror.end_content,
        "content_encoded": _Mirror.end_content,
        "fullitem": _Mirror.end_content,
    }
)
