"""Clean text out of feed markup, and cut it to a length without breaking words."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

ELLIPSIS = "…"

# Tags after which a reader sees a break: keep words on either side apart.
_BREAKING_TAGS = frozenset(
    [
        "p",
        "br",
        "div",
        "li",
        "ul",
        "ol",
        "tr",
        "td",
        "th",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "blockquote",
        "figure",
        "figcaption",
        "section",
        "article",
        "header",
        "footer",
        "table",
        "hr",
        "pre",
        "dd",
        "dt",
    ]
)
_INVISIBLE_TAGS = frozenset({"script", "style", "noscript", "template", "iframe", "object"})
_TAG = re.compile(r"<\s*[A-Za-z/!?]")
_ENTITY = re.compile(r"&(#\d+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]{1,31});")
# Control characters become spaces; invisible formatting characters are dropped, so that
# "Pyong\u200byang" stays one word (ZWNJ and ZWJ too: a stray one in Latin text is junk, and a
# headline loses nothing a reader needs without them). Every bidirectional control goes: the
# embeddings and overrides (U+202A-202E), the isolates (U+2066-2069) and the marks (U+200E,
# U+200F, U+061C) can make a headline display in an order other than its text, so what a reader
# sees would not be what matched or what a link says. Also dropped: the soft hyphen, the
# Mongolian vowel separator (a format character since Unicode 6.3), the other invisible
# operators and deprecated format characters of U+2060-206F, and the interlinear annotation
# characters U+FFF9-FFFB, which are never meant to reach plain text. U+2028 and U+2029 (line
# and paragraph separators) are whitespace to `\s`, so they become one space like a newline.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_INVISIBLE = re.compile(
    r"[\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]"
)
_SPACE = re.compile(r"\s+")


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _INVISIBLE_TAGS:
            self._hidden += 1
        elif tag in _BREAKING_TAGS:
            self.parts.append(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BREAKING_TAGS:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _INVISIBLE_TAGS:
            self._hidden = max(0, self._hidden - 1)
        elif tag in _BREAKING_TAGS:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data)

    def unknown_decl(self, data: str) -> None:
        # A CDATA section left in the text is text, not markup to throw away.
        if data.startswith("CDATA[") and not self._hidden:
            self.parts.append(data[len("CDATA[") :])


def _strip_tags(markup: str) -> str:
    parser = _TextExtractor()
    parser.feed(markup)
    parser.close()
    return "".join(parser.parts)


def clean_text(raw: str | None) -> str:
    """Plain text from feed markup: tags stripped, entities decoded (double-escaped ones too,
    e.g. ``&amp;#39;``), control characters dropped, whitespace collapsed."""
    if not raw:
        return ""
    text = raw
    # Feeds escape their HTML once, twice, or not at all; peel layers until nothing is left.
    for _ in range(4):
        if _TAG.search(text):
            text = _strip_tags(text)
        elif _ENTITY.search(text):
            text = html.unescape(text)
        else:
            break
    text = _INVISIBLE.sub("", _CONTROL.sub(" ", text))
    return _SPACE.sub(" ", text).strip()


_SENTENCE_END = re.compile(r"[.!?。！？](?:[\"'”’)\]]*)(?=\s|$)|[。！？]")


def truncate(text: str, limit: int, *, prefer_sentence: bool = False) -> str:
    """Cut `text` to at most `limit` characters at a word boundary (never mid-word), adding an
    ellipsis when something was cut. With `prefer_sentence`, end at a full sentence when one ends
    in the second half of the allowance."""
    if limit <= 0:
        return ""
    if len(text) <= limit:
        return text
    if prefer_sentence:
        ends = [m.end() for m in _SENTENCE_END.finditer(text, 0, limit + 1) if m.end() <= limit]
        if ends and ends[-1] >= limit // 2:
            return text[: ends[-1]].rstrip()
    room = limit - len(ELLIPSIS)
    if room <= 0:
        return ELLIPSIS[:limit]
    cut = text[: room + 1]
    space = cut.rfind(" ")
    if space >= room // 2:
        head = cut[:space]
    elif _is_unspaced_script(text[room - 1 : room + 1]):
        # Chinese, Japanese, Thai...: there are no spaces; a character boundary is a word boundary.
        head = text[:room]
    elif space > 0:
        head = cut[:space]
    else:
        head = text[:room]  # one enormous "word" (a URL, garbage): better cut than nothing
    return head.rstrip(" ,;:-–—") + ELLIPSIS


def _is_unspaced_script(chars: str) -> bool:
    return any(
        "\u2e80" <= c <= "\u9fff"
        or "\u3040" <= c <= "\u30ff"
        or "\uac00" <= c <= "\ud7af"
        or "\u0e00" <= c <= "\u0eff"
        or "\uf900" <= c <= "\ufaff"
        for c in chars
    )


SUMMARY_LIMIT = 300


def summarise(text: str, limit: int = SUMMARY_LIMIT) -> str:
    """The story's lead for a card: at most `limit` characters, ending at a sentence or a word."""
    return truncate(text, limit, prefer_sentence=True)
