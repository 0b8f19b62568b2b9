"""The document walk: what expat's SAX events would tell feedparser, element by element,
and which handler (or none) feedparser calls for each element name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from feedparser.mixin import _FeedParserMixin
from lxml import etree

from bot.feeds.fastparse.dc_media import _DcMediaHandlers
from bot.feeds.fastparse.handlers import _Handlers
from bot.feeds.fastparse.namespaces import _MATCH, _USERLAND, _attribute_keys
from bot.feeds.fastparse.values import _KEYMAP, _Refused, _set

_REFUSED_NAMESPACES = frozenset(
    {"http://www.w3.org/1998/Math/MathML", "http://www.w3.org/2000/svg"}
)
_ATOM10 = "http://www.w3.org/2005/atom"
_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"

# Every start and end handler feedparser has: an element whose handler is not mirrored (in
# _STARTS/_ENDS below) is refused, never silently treated as an unknown element.
_FEEDPARSER_HANDLERS = frozenset(
    name for name in dir(_FeedParserMixin) if name.startswith(("_start_", "_end_"))
)
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
_NOT_TEXTINPUT = ("title", "link", "description", "name")
_NOT_IMAGE = ("title", "link", "description", "url", "href", "width", "height")


@dataclass(frozen=True, slots=True)
class _Tag:
    """What feedparser makes of one element name: its handlers, or the unknown-element key."""

    name: str  # prefix_suffix, the key an unknown element is stored under
    start: Callable[[_Mirror, dict[str, str]], None] | None
    end: Callable[[_Mirror], None] | None
    # unknown_starttag's "special hack": an element without a prefix and not named in
    # _NOT_TEXTINPUT / _NOT_IMAGE ends the textinput / image feedparser thinks it is in.
    resets_textinput: bool
    resets_image: bool


class _Mirror(_DcMediaHandlers):
    """feedparser's _FeedParserMixin state machine, for the handlers listed in _STARTS/_ENDS:
    the state and its machinery (state.py), the handlers (handlers.py, dc_media.py), and here
    the walk that calls them as expat's SAX events would. Names follow feedparser's (`push`,
    `pop`, `context` for _get_context, ...)."""

    def check_root(self, root: Any) -> None:
        """Only RSS (any version), RSS 1.0 (rdf:RDF) and Atom 1.0 roots go through the mirror."""
        tag = self.tag(root.tag)
        namespace = etree.QName(root).namespace or ""
        if tag.name == "rss" or (tag.name == "rdf_rdf" and namespace == _RDF):
            return
        if tag.name == "feed" and namespace.lower() == _ATOM10:
            return
        raise _Refused(f"a document of {root.tag!r}")

    def element(self, element: Any) -> None:
        tag = self.tags.get(element.tag) or self.tag(element.tag)  # tag() fills self.tags
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
        # startElementNS's two loops: every attribute under its known-prefix name, then every
        # one under its name as written, which wins where two names are the same key.
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


def _handlers(kind: str) -> dict[str, Any]:
    """The mirrored handlers of one kind ("start_" or "end_") by element key: start_title is
    the "title" start handler. Only the handler classes name methods so."""
    return {
        name.removeprefix(kind): function
        for cls in (_Handlers, _DcMediaHandlers)
        for name, function in vars(cls).items()
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
