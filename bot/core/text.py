"""Clean text out of feed markup, and cut it to a length without breaking words.

Two forms: `clean_text` is one line (headlines, names, tags); `clean_body` keeps the paragraphs a
publisher marked up (block elements become PARAGRAPH) and drops the publisher's boilerplate
(calls to action, promotions), for the text that is matched and the lead shown on cards."""

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
# Where a block element opened or closed, until the text is split into paragraphs. A private-use
# character, removed from the input first, so a feed cannot forge one.
_BREAK = "\ue000"
PARAGRAPH = "\n\n"
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


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _INVISIBLE_TAGS:
            self._hidden += 1
        elif tag in _BREAKING_TAGS:
            self.parts.append(_BREAK)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BREAKING_TAGS:
            self.parts.append(_BREAK)

    def handle_endtag(self, tag: str) -> None:
        if tag in _INVISIBLE_TAGS:
            self._hidden = max(0, self._hidden - 1)
        elif tag in _BREAKING_TAGS:
            self.parts.append(_BREAK)

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
    """Plain text from feed markup, on one line: tags stripped, entities decoded (double-escaped
    ones too, e.g. ``&amp;#39;``), control characters dropped, whitespace collapsed."""
    return " ".join(_paragraphs(raw))


def clean_body(raw: str | None) -> str:
    """A story's text from feed markup: as `clean_text`, but each block element (``<p>``,
    ``<br>``, ``<li>``, ``<div>``...) ends a paragraph, so the last word of one paragraph is never
    run into the first of the next; paragraphs are joined with PARAGRAPH, and the publisher's
    boilerplate (see `is_boilerplate`, `_TRAILING_CALL`) is dropped."""
    kept = [p for p in _paragraphs(raw) if not is_boilerplate(p)]
    if kept:
        kept[-1] = _TRAILING_CALL.sub("", kept[-1]).rstrip()
    return PARAGRAPH.join(p for p in kept if p)


def _paragraphs(raw: str | None) -> list[str]:
    if not raw:
        return []
    text = raw.replace(_BREAK, "")
    # Feeds escape their HTML once, twice, or not at all; peel layers until nothing is left.
    for _ in range(4):
        if _TAG.search(text):
            text = _strip_tags(text)
        elif _ENTITY.search(text):
            text = html.unescape(text)
        else:
            break
    text = _INVISIBLE.sub("", _CONTROL.sub(" ", text))
    # Whitespace runs become one space: str.split() splits on what `\s` matches (every code
    # point agrees), and a third faster than a regex substitution and strip per paragraph.
    return [p for p in (" ".join(part.split()) for part in text.split(_BREAK)) if p]


# Publisher boilerplate: a paragraph that is all call to action or promotion, never the story.
# Left in, it would make poor leads ("...Continue reading...") and false matches: "See all our
# Ukraine coverage" under every Guardian world story would alert a Ukraine watchlist for each.
# Seen in the corpus (tests/corpus, Guardian) and in the captures of issue 13.
_CALL = (
    r"(?:continue|keep) reading|read (?:more|on|the (?:full|whole) (?:story|article))"
    r"|click here(?: to read(?: more)?)?|full story"
)
_ARROWS = r"(?:\.{2,}|…|»|›|>>|→|\s)*"
_BOILERPLATE = re.compile(
    rf"(?:{_CALL}){_ARROWS}(?:(?:at|on) [^.]{{1,60}})?{_ARROWS}"
    # "See all our Ukraine coverage", "Follow our Australia news live blog for the latest updates"
    r"|(?:see|read|follow) (?:all )?our [^.]{0,80}(?:coverage|live ?blog|live updates)\b.*"
    # "Get our free news app, morning email briefing or daily news podcast"
    r"|(?:get|sign up (?:for|to)|subscribe to|download) (?:our|the) [^.]{0,100}"
    r"(?:app|newsletter|e-?mail|briefing|podcast|alerts?)\b.*"
    # Guardian's "Related: <another article's headline>": another story, not this one's text.
    r"|related: .*",
    re.IGNORECASE,
)
_BOILERPLATE_LIMIT = 200  # a promotion is one short line; a real paragraph is never dropped
# A call to action at the very end of the text, inside its last paragraph ("...analysed.
# Continue reading..."): capitalised or marked with an arrow, so "...people should read more"
# stays.
_TRAILING_CALL = re.compile(
    r"(?:(?<=\s)|^)(?:\[\s*)?(?:(?:Continue|Keep) reading|Read more|Read the full (?:story|article))"
    rf"{_ARROWS}\]?$"
)


def is_boilerplate(paragraph: str) -> bool:
    """A paragraph that is only a call to action or a promotion of the publisher."""
    return len(paragraph) <= _BOILERPLATE_LIMIT and bool(_BOILERPLATE.fullmatch(paragraph))


# A sentence ends at its mark, or where its paragraph ends (a standfirst often has no full stop).
_SENTENCE_END = re.compile(r"[.!?。！？](?:[\"'”’)\]]*)(?=\s|$)|[。！？]|(?<=\S)(?=\n)")


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
    space = max(cut.rfind(" "), cut.rfind("\n"))
    if space >= room // 2:
        head = cut[:space]
    elif _is_unspaced_script(text[room - 1 : room + 1]):
        # Chinese, Japanese, Thai...: there are no spaces; a character boundary is a word boundary.
        head = text[:room]
    elif space > 0:
        head = cut[:space]
    else:
        head = text[:room]  # one enormous "word" (a URL, garbage): better cut than nothing
    return head.rstrip(" \n,;:-–—") + ELLIPSIS


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
