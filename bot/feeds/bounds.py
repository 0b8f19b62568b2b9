"""Caps applied to a feed's bytes before feedparser sees them, where feedparser's work grows
faster than the document.

feedparser 6 is quadratic in a few places that a hostile (or broken) feed can reach:

- every tag of an item is checked against the item's earlier tags with `not in` on a list:
  100,000 `<category>` elements (2.3 MB) took 434 s;
- an author's text is searched with an e-mail regex that backtracks over the whole string for
  every starting position: a 50,000-character `<author>` took 13 s (and a DOCTYPE entity can
  multiply a few bytes into that many characters);
- the SAX layer looks every attribute up by a linear search over the element's attributes:
  20,000 attributes on one element took 5 s.

So, in one linear pass over the bytes, and keeping the XML as well-formed as it came:

- at most MAX_TAGS_PER_ITEM tags (`category`, `subject`, and the terms of `keywords`/`tags`, in
  any namespace) per item, and as many outside items; the rest are removed, children and all;
- author-like fields (`author`, `creator`, `name`, `email`, `publisher`, ...) cut to
  FIELD_LIMIT bytes of text;
- DOCTYPE entity values cut to ENTITY_LIMIT bytes (feedparser keeps plain-text entity
  declarations, which would let `&x;` stand for any amount of text);
- at most MAX_ATTRIBUTES attributes per element (namespace declarations aside);
- items after the first `max_items` removed before parsing rather than after.

Every real feed in the corpus comes through byte for byte (tests/feeds/test_bounds.py). The caps
bound the known quadratic shapes; the parse time limit (bot.feeds.pool) bounds everything else,
including documents in encodings this pass cannot read (UTF-16 and UTF-32 are passed through)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_TAGS_PER_ITEM = 100
FIELD_LIMIT = 512  # bytes; the Story keeps 200 characters of the author
ENTITY_LIMIT = 16  # bytes; `&nbsp;`-style declarations are a handful of bytes
MAX_ATTRIBUTES = 64
_LONG_TAG = 512  # only start tags at least this long can hold MAX_ATTRIBUTES attributes

_TAGS = frozenset({b"category", b"subject"})
_KEYWORDS = frozenset({b"keywords", b"tags"})  # comma-separated terms, each a tag
_ITEMS = frozenset({b"item", b"entry"})
_FIELDS = frozenset(
    {
        b"author",
        b"creator",
        b"publisher",
        b"managingeditor",
        b"webmaster",
        b"owner",
        b"name",
        b"email",
        b"contributor",
    }
)
_NAMES = b"|".join(sorted(_TAGS | _KEYWORDS | _ITEMS | _FIELDS))
# A name is whatever is not a delimiter, so an odd namespace prefix (non-ASCII, say) cannot
# hide a category from the count. Possessive quantifiers: no backtracking, so every pattern
# here runs in time linear in what it looks at.
_PREFIX = rb"(?:[^\s<>/!?=\"':]++:)?"
_UNITS = rb"(?:[^<>\"']++|\"[^<\"]*+\"|'[^<']*+')"
_TOKEN = re.compile(
    rb"<(?:"
    rb"(?P<cdata>!\[CDATA\[)"
    rb"|(?P<comment>!--)"
    rb"|(?P<end>/?)(?P<prefix>" + _PREFIX + rb")(?P<name>" + _NAMES + rb")(?=[\s/>])"
    # a long start tag of any name: it may carry too many attributes
    rb"|(?=[^\s<>/!?](?:[^<>\"']|\"[^<\"]*+\"|'[^<']*+'){" + str(_LONG_TAG).encode() + rb"})"
    rb")",
    re.IGNORECASE,
)
_TAG = re.compile(rb"<(/?)([^\s<>/!?=\"']++)(" + _UNITS + rb"*+)>")
_ATTRIBUTE = re.compile(rb"\s*+([^\s<>/=\"']++)\s*+=\s*+(\"[^<\"]*+\"|'[^<']*+')")
_CDATA_END = re.compile(rb"\]\]>")
_COMMENT_END = re.compile(rb"-->")
# The rest of a text-only element: text, CDATA and comments, then an end tag.
_SIMPLE_REST = re.compile(
    rb"(?:[^<]++|<!\[CDATA\[(?:[^\]]++|\](?!\]>))*+\]\]>|<!--(?:[^-]++|-(?!->))*+-->)*+"
    rb"</(" + _PREFIX + rb"[^\s<>/!?=\"':]++)\s*+>"
)
_PROLOG_END = re.compile(rb"<\w")  # where feedparser's DOCTYPE handling stops looking
_ENTITY_DECL = re.compile(rb'(<!ENTITY\s+\w+\s+")([^&"]*+)(")')


def bound_document(body: bytes, *, max_items: int) -> bytes:
    """`body` with the caps above applied; the same object when nothing needed cutting."""
    if _wide_encoding(body):
        return body
    return _Pass(body, max_items).run()


def _wide_encoding(body: bytes) -> bool:
    # UTF-16/32 (with or without a BOM): the byte patterns above cannot see their markup.
    head = body[:4]
    return head[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in head


@dataclass
class _Field:
    name: bytes  # the qualified name, lower case
    budget: int
    keywords: bool


@dataclass
class _Pass:
    body: bytes
    max_items: int
    out: list[bytes] = field(default_factory=list)
    changed: bool = False
    items: int = 0
    in_item: bool = False
    item_tags: int = MAX_TAGS_PER_ITEM
    feed_tags: int = MAX_TAGS_PER_ITEM
    fields: list[_Field] = field(default_factory=list)

    def run(self) -> bytes:
        body = self._cap_entities(self.body)
        pos, size = 0, len(body)
        while pos < size:
            if self.fields:
                # Inside an author-like field every piece of text counts, so stop at every tag.
                lt = body.find(b"<", pos)
                if lt < 0:
                    lt = size
                self._text(body, pos, lt)
                if lt >= size:
                    break
                token = _TOKEN.match(body, lt)
                if token is None:
                    tag = _TAG.match(body, lt)
                    if tag is None:  # a stray '<': text, malformed
                        self._text(body, lt, lt + 1)
                        pos = lt + 1
                    else:
                        self._emit_tag(tag.group(0))
                        pos = tag.end()
                    continue
            else:
                token = _TOKEN.search(body, pos)
                if token is None:
                    self.out.append(body[pos:])
                    break
                self.out.append(body[pos : token.start()])
            pos = self._token(body, token)
        if not self.changed:
            return self.body
        return b"".join(self.out)

    # --- tokens -----------------------------------------------------------------------------

    def _token(self, body: bytes, token: re.Match[bytes]) -> int:
        start = token.start()
        if token.group("cdata") is not None:
            end = _CDATA_END.search(body, token.end())
            stop = end.end() if end else len(body)
            if self.fields:
                self._cdata(body, start, token.end(), end.start() if end else stop, stop)
            else:
                self.out.append(body[start:stop])
            return stop
        if token.group("comment") is not None:
            end = _COMMENT_END.search(body, token.end())
            stop = end.end() if end else len(body)
            self.out.append(body[start:stop])
            return stop
        tag = _TAG.match(body, start)
        if tag is None:  # '<name' with no end: malformed, let feedparser cope
            self.out.append(body[start : token.end()])
            return token.end()
        if token.group("name") is None:  # a long tag of another name
            self._emit_tag(tag.group(0))
            return tag.end()
        name = token.group("name").lower()
        qname = (token.group("prefix") + token.group("name")).lower()
        closing = bool(token.group("end"))
        empty = tag.group(3).endswith(b"/")
        if name in _ITEMS:
            return self._item(body, tag, closing, empty)
        if name in _TAGS:
            return self._tag(body, tag, closing, empty)
        if closing:
            if self.fields and self.fields[-1].name == qname:
                self.fields.pop()
            self._emit_tag(tag.group(0))
            return tag.end()
        if name in _KEYWORDS:
            if not empty:
                budget = FIELD_LIMIT if self._take_tags(1) else 0
                self.fields.append(_Field(qname, budget, keywords=True))
        elif not empty:
            self.fields.append(_Field(qname, FIELD_LIMIT, keywords=False))
        self._emit_tag(tag.group(0))
        return tag.end()

    def _item(self, body: bytes, tag: re.Match[bytes], closing: bool, empty: bool) -> int:
        if closing:
            self.in_item = False
            self.fields.clear()  # an unclosed author ends with its item
            self._emit_tag(tag.group(0))
            return tag.end()
        self.items += 1
        if self.items > self.max_items:
            self.changed = True
            return tag.end() if empty else self._skip(body, tag.end(), _ITEMS)
        self.in_item = not empty
        self.item_tags = MAX_TAGS_PER_ITEM
        self.fields.clear()
        self._emit_tag(tag.group(0))
        return tag.end()

    def _skip(self, body: bytes, pos: int, family: frozenset[bytes]) -> int:
        """Drop everything up to the end of the element just opened (or of the document, if it
        never ends). Elements of the same family nest: `<itunes:category>` does."""
        self.changed = True
        simple = _SIMPLE_REST.match(body, pos)
        if simple is not None:
            name = simple.group(1).lower()
            if name.rpartition(b":")[2] in family:
                return simple.end()  # the usual case: text only, then the end tag
        depth = 1
        while True:
            token = _TOKEN.search(body, pos)
            if token is None:
                return len(body)
            if token.group("cdata") is not None or token.group("comment") is not None:
                end = (_CDATA_END if token.group("cdata") is not None else _COMMENT_END).search(
                    body, token.end()
                )
                pos = end.end() if end else len(body)
                continue
            tag = _TAG.match(body, token.start())
            if tag is None:
                pos = token.end()
                continue
            pos = tag.end()
            name = token.group("name")
            if name is None or name.lower() not in family or tag.group(3).endswith(b"/"):
                continue
            depth += -1 if token.group("end") else 1
            if depth == 0:
                return pos

    def _tag(self, body: bytes, tag: re.Match[bytes], closing: bool, empty: bool) -> int:
        if closing or self._take_tags(1):
            self._emit_tag(tag.group(0))
            return tag.end()
        self.changed = True
        return tag.end() if empty else self._skip(body, tag.end(), _TAGS)

    def _take_tags(self, count: int) -> bool:
        if self.in_item:
            if self.item_tags < count:
                return False
            self.item_tags -= count
        else:
            if self.feed_tags < count:
                return False
            self.feed_tags -= count
        return True

    def _emit_tag(self, tag: bytes) -> None:
        if len(tag) >= _LONG_TAG and not tag.startswith(b"</"):
            capped = _cap_attributes(tag)
            if capped is not tag:
                self.changed = True
                tag = capped
        self.out.append(tag)

    # --- text inside author-like fields ----------------------------------------------------

    def _text(self, body: bytes, start: int, end: int) -> None:
        if start >= end:
            return
        current = self.fields[-1]
        keep = _allowance(body, start, end, current.budget)
        if current.keywords and keep > start:
            keep = self._keyword_terms(body, start, keep)
        current.budget -= _cost(body, start, keep)
        if keep < end:
            current.budget = 0
            self.changed = True
        self.out.append(body[start:keep])

    def _cdata(self, body: bytes, start: int, inner: int, end: int, stop: int) -> None:
        """A CDATA section inside a field: `inner`..`end` is its text, `stop` past its end."""
        current = self.fields[-1]
        budget = max(current.budget, 0)
        keep = end if end - inner <= budget else _utf8_cut(body, inner, inner + budget)
        if current.keywords and keep > inner:
            keep = self._keyword_terms(body, inner, keep)
        current.budget -= keep - inner
        if keep == end:
            self.out.append(body[start:stop])
            return
        current.budget = 0
        self.changed = True
        if keep > inner:
            self.out.append(b"<![CDATA[" + body[inner:keep] + b"]]>")

    def _keyword_terms(self, body: bytes, start: int, end: int) -> int:
        """Charge each comma-separated term to the item's tags; cut where they run out."""
        comma = body.find(b",", start, end)
        while comma >= 0:
            if not self._take_tags(1):
                self.fields[-1].budget = 0
                return comma
            comma = body.find(b",", comma + 1, end)
        return end

    # --- the prolog ------------------------------------------------------------------------

    def _cap_entities(self, body: bytes) -> bytes:
        prolog = _PROLOG_END.search(body)
        head_end = prolog.start() if prolog else len(body)
        if b"<!ENTITY" not in body[:head_end]:
            return body

        def cap(match: re.Match[bytes]) -> bytes:
            value = match.group(2)
            if len(value) <= ENTITY_LIMIT:
                return match.group(0)
            self.changed = True
            cut = _utf8_cut(value, 0, ENTITY_LIMIT)
            return match.group(1) + value[:cut] + match.group(3)

        head = _ENTITY_DECL.sub(cap, body[:head_end])
        return head + body[head_end:]


def _cap_attributes(tag: bytes) -> bytes:
    match = _TAG.match(tag)
    if match is None:
        return tag
    attributes = list(_ATTRIBUTE.finditer(match.group(3)))
    ordinary = [a for a in attributes if not a.group(1).lower().startswith(b"xmlns")]
    if len(ordinary) <= MAX_ATTRIBUTES:
        return tag
    kept = {id(a) for a in ordinary[:MAX_ATTRIBUTES]}
    parts = [
        b" " + a.group(1) + b"=" + a.group(2)
        for a in attributes
        if id(a) in kept or a.group(1).lower().startswith(b"xmlns")
    ]
    close = b"/>" if match.group(3).rstrip().endswith(b"/") else b">"
    return b"<" + match.group(2) + b"".join(parts) + close


def _cost(body: bytes, start: int, end: int) -> int:
    # A reference to an entity declared in the DOCTYPE stands for up to ENTITY_LIMIT bytes.
    return (end - start) + body.count(b"&", start, end) * ENTITY_LIMIT


def _allowance(body: bytes, start: int, end: int, budget: int) -> int:
    """How far text from `start` may go within `budget`: not into an entity reference, nor
    into a multi-byte character."""
    if budget <= 0:
        return start
    if _cost(body, start, end) <= budget:
        return end
    cut = start
    spent = 0
    while cut < end:
        amp = body.find(b"&", cut, end)
        plain_end = end if amp < 0 else amp
        room = budget - spent
        if plain_end - cut >= room:
            return _utf8_cut(body, start, cut + room)
        spent += plain_end - cut
        cut = plain_end
        semi = body.find(b";", amp, min(end, amp + 64))
        reference_end = end if semi < 0 else semi + 1
        spent += (reference_end - amp) + ENTITY_LIMIT
        if spent > budget:
            return amp
        cut = reference_end
    return end


def _utf8_cut(data: bytes, start: int, cut: int) -> int:
    """Back `cut` off to a character boundary: after an ASCII byte if one is close (safe in
    every ASCII-compatible encoding), else at the start of a UTF-8 sequence."""
    if cut >= len(data):
        return len(data)
    for back in range(min(8, cut - start) + 1):
        if cut - back == start or data[cut - back - 1] < 0x80:
            return cut - back
    while cut > start and 0x80 <= data[cut] < 0xC0:
        cut -= 1
    return cut
