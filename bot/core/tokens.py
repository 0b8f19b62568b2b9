"""Text normalisation and tokenisation shared by the query parser and the matcher.

Queries and stories go through exactly the same two steps, which is what makes matching
symmetric: a word split (on the ORIGINAL text, so offsets can report the original spelling)
followed by `fold` (case and accents removed) of each word.

Word rules:
- A word is a run of letters and digits; combining marks and in-word joiners (soft hyphen,
  ZWJ/ZWNJ) stay attached to it. Everything else separates words: whitespace, punctuation
  (hyphens and apostrophes, straight or typographic, included) and symbols. So "Kim Jong-un"
  gives kim/jong/un and "Putin's" gives putin/s.
- Characters of scripts written without spaces (Han, kana, Thai, Lao, Khmer, Myanmar, Tibetan,
  Yi) are one token each, so a query term like 普京 becomes a phrase of single-character tokens
  and therefore matches as a substring.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["WORD_RE", "Token", "fold", "is_spaceless", "split_text", "tokenize"]

# Scripts written without spaces between words. One token per character there; see module doc.
_SPACELESS_RANGES = (
    (0x0E00, 0x0EFF),  # Thai, Lao
    (0x0F00, 0x0FFF),  # Tibetan (syllables are separated by a tsheg, not by spaces)
    (0x1000, 0x109F),  # Myanmar
    (0x1780, 0x17FF),  # Khmer
    (0x19E0, 0x19FF),  # Khmer symbols
    (0x2E80, 0x2FDF),  # CJK radicals, Kangxi radicals
    (0x3005, 0x3007),  # 々 〆 〇: CJK iteration / closing marks that are letters
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x3100, 0x312F),  # Bopomofo
    (0x31A0, 0x31FF),  # Bopomofo ext., Katakana phonetic ext.
    (0x3400, 0x4DBF),  # CJK ext. A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xA000, 0xA4CF),  # Yi
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0xFF66, 0xFF9F),  # half-width Katakana
    (0x20000, 0x323AF),  # CJK ext. B-H and compatibility supplement
)

# In-word format characters: a soft hyphen or a ZWNJ (Persian, Indic) is part of the word it
# sits in, not a word break. `fold` removes them.
_JOINERS = "\u00ad\u200c\u200d\u2060\ufeff"
# Half-width katakana voicing marks are letters in Unicode but belong to the kana before them.
_KANA_VOICING = "\uff9e\uff9f"


def _char_ranges(ranges: Iterable[tuple[int, int]]) -> str:
    """A regular-expression character-class body for the given code point ranges."""
    return "".join(
        re.escape(chr(lo)) if lo == hi else f"{re.escape(chr(lo))}-{re.escape(chr(hi))}"
        for lo, hi in ranges
    )


def _mark_ranges() -> list[tuple[int, int]]:
    # Python's `re` has no \p{M}; the table is computed once at import (about 10 ms). Marks
    # live below U+20000, plus the variation selectors supplement.
    code_points = [cp for cp in range(0x20000) if unicodedata.category(chr(cp)).startswith("M")]
    code_points.extend(range(0xE0100, 0xE01F0))
    ranges: list[tuple[int, int]] = []
    for cp in code_points:
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1] = (ranges[-1][0], cp)
        else:
            ranges.append((cp, cp))
    return ranges


def _word_pattern(spaceless: str, marks: str) -> str:
    # `[^\W_...]` is "a letter or digit that is not in a spaceless script": a negated class is
    # the only set difference `re` offers. A word starts with a letter or digit; marks only ever
    # extend a word (a stray mark is dropped). The alternatives are over disjoint classes, so the
    # pattern cannot backtrack badly.
    letter = f"[^\\W_{spaceless}]"
    mark = f"[{marks}]"
    return f"{letter}+(?:{mark}+{letter}*)*|[{spaceless}]{mark}*"


_MARKS = _mark_ranges()
_IN_WORD = re.escape(_JOINERS + _KANA_VOICING)
_SPACELESS = _char_ranges(_SPACELESS_RANGES)
_SPACELESS_RE = re.compile(f"[{_SPACELESS}]")
_WORD = _word_pattern(_SPACELESS, _char_ranges(_MARKS) + _IN_WORD)
# The same pattern without any character beyond U+FFFF. `re` tests a class made only of BMP
# characters with a bitmap but scans a list of ranges as soon as one range is astral, which made
# the full pattern twice as slow; texts without astral characters (nearly all news) use this one.
# For ASCII text (most wire copy) a plain class gives the same words faster still.
_BMP_WORD = _word_pattern(
    _char_ranges(r for r in _SPACELESS_RANGES if r[1] <= 0xFFFF),
    _char_ranges(r for r in _MARKS if r[1] <= 0xFFFF) + _IN_WORD,
)
_ASCII_WORD = "[A-Za-z0-9]+"
_ASTRAL_RE = re.compile("[\U00010000-\U0010ffff]")
# Each pattern as a finder and as a splitter (the capturing group keeps the words in the output
# of re.split, between the separators).
_FINDERS = tuple(re.compile(p) for p in (_ASCII_WORD, _BMP_WORD, _WORD))
_SPLITTERS = tuple(re.compile(f"({p})") for p in (_ASCII_WORD, _BMP_WORD, _WORD))
WORD_RE = _FINDERS[2]


def _kind(text: str) -> int:
    """Which of the equivalent patterns is the fastest for `text`."""
    if text.isascii():
        return 0
    return 1 if _ASTRAL_RE.search(text) is None else 2


def is_spaceless(char: str) -> bool:
    """Whether `char` belongs to a script written without spaces (one token per character)."""
    return _SPACELESS_RE.match(char) is not None


# Marks that are accents for readers and for search: the generic combining-diacritics blocks
# (used by Latin, Greek and Cyrillic), Hebrew points and Arabic vowel signs (usually absent from
# news text), plus the in-word joiners. Script-specific marks that change the letter (Devanagari
# vowel signs, the kana voicing marks of が) are kept, so が does not equal か.
_DROPPED_RANGES = (
    (0x0300, 0x036F),
    (0x0591, 0x05BD),
    (0x05BF, 0x05BF),
    (0x05C1, 0x05C2),
    (0x05C4, 0x05C5),
    (0x05C7, 0x05C7),
    (0x0610, 0x061A),
    (0x064B, 0x065F),
    (0x0670, 0x0670),
    (0x0640, 0x0640),  # Arabic tatweel: a stretching stroke, not a letter
    (0x1AB0, 0x1AFF),
    (0x1DC0, 0x1DFF),
    (0x20D0, 0x20FF),
    (0xFE20, 0xFE2F),
)
_FOLD_TABLE: dict[int, str | None] = {
    cp: None for lo, hi in _DROPPED_RANGES for cp in range(lo, hi + 1)
}
_FOLD_TABLE.update(dict.fromkeys(map(ord, _JOINERS)))
# Latin letters that readers see as accented but that NFKD does not decompose (Łódź, Đoàn, Ørsted)
# and the dotless i, so that Turkish "ılık" and "ILIK" fold alike.
_FOLD_TABLE.update(
    {ord(k): v for k, v in {"ł": "l", "đ": "d", "ø": "o", "ħ": "h", "ŧ": "t", "ı": "i"}.items()}
)


def fold(text: str) -> str:
    """The comparable form of `text`: Unicode case folding with accents removed.

    NFKD first, so compatibility forms (full-width Latin, ligatures) become plain letters and
    accents become separate marks; casefold; NFKD again because case folding can produce
    compatibility characters; drop the accents (see _FOLD_TABLE); NFC at the end only recomposes
    what is left (Hangul syllables, kana with voicing marks) so the output stays readable.
    """
    if text.isascii():  # the common case for English wire copy, and much cheaper
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", text).casefold())
    return unicodedata.normalize("NFC", decomposed.translate(_FOLD_TABLE))


@lru_cache(maxsize=65536)
def _fold_word(word: str) -> str:
    # A few compatibility characters decompose to text containing spaces (U+FDFA); a token must
    # never contain the separator the matcher joins tokens with.
    return "".join(fold(word).split())


def split_text(text: str) -> tuple[list[str], list[str]]:
    """`text` cut into words: (pieces, norms), the hot path of the matcher.

    `pieces` alternates what separates words and the words as written: word i is
    pieces[2 * i + 1], and "".join(pieces[2 * i + 1 : 2 * j + 2]) is words i..j with their
    original separators ("Kim Jong-un"). `norms[i]` is word i folded. One regular-expression
    pass, then one `fold` over all words joined by spaces (folding is context-free, so this equals
    folding word by word, much faster).
    """
    pieces = _SPLITTERS[_kind(text)].split(text)
    words = pieces[1::2]
    if not words:
        return pieces, []
    norms = fold(" ".join(words)).split(" ")
    if len(norms) != len(words):  # a word folded to something containing a space
        norms = [_fold_word(word) for word in words]
    return pieces, norms


@dataclass(frozen=True, slots=True)
class Token:
    norm: str  # folded token
    start: int  # offsets into the ORIGINAL text, so the original spelling can be reported
    end: int


def tokenize(text: str) -> list[Token]:
    """Split `text` into folded tokens that remember where they came from."""
    return [
        Token(_fold_word(m.group()), m.start(), m.end())
        for m in _FINDERS[_kind(text)].finditer(text)
    ]
