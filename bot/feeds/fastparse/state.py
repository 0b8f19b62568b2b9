"""feedparser's _FeedParserMixin state and the machinery its handlers share: the element
stack (push, pop), content parameters, the current context, authors, contributors, tags."""

from __future__ import annotations

import contextlib
import re
from typing import TYPE_CHECKING, Any

from feedparser.html import _cp1252
from feedparser.mixin import _FeedParserMixin

from bot.feeds.fastparse.values import Entry, _join, _map_content_type, _Refused, _set

if TYPE_CHECKING:
    from bot.feeds.fastparse.walk import _Tag

_CAN_BE_RELATIVE = frozenset(_FeedParserMixin.can_be_relative_uri)
_AMP_NAME = re.compile("&([A-Za-z0-9_]+);")
_C1 = re.compile("[\x80-\x9f]")  # the code points feedparser's _cp1252 table maps
# _FeedParserMixin._sync_author_detail's e-mail pattern, verbatim.
_EMAIL = re.compile(
    r"""(([a-zA-Z0-9\_\-\.\+]+)@((\[[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.)|(([a-zA-Z0-9\-]+\.)+))([a-zA-Z]{2,4}|[0-9]{1,3})(\]?))(\?subject=\S+)?"""
)


class _State:
    """_FeedParserMixin's state (its attribute names, in snake case) and the machinery its
    handlers call; walk.py's _Mirror adds the handlers and the walk."""

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
        # The walk's caches (walk.py): what feedparser makes of an element or attribute name.
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
        # A non-empty title already kept at this depth or a shallower one (end_title sets
        # title_depth; each item, image, textinput and source resets it) is not replaced.
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
                # A value from a deeper element does not replace one from a shallower one.
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
            # feedparser's _is_base64: a type that is neither text nor XML is decoded as base64
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
            return self.feed["image"]
        if self.intextinput:
            return self.feed["textinput"]
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
