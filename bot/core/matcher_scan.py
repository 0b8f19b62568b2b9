"""What the matcher's automaton found in one story: the scanned fields (segments) and, computed
lazily from the hits, where each term occurs and the text to report for it.

The matcher itself, and how the pieces fit, is described in bot.core.matcher.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable

_TITLE, _CONTENT, _CATEGORY = 1, 2, 4
_ANY = _TITLE | _CONTENT | _CATEGORY
# A term with more hits than this in a story has its token positions looked up in an index.
_FEW = 16
_SPACE = re.compile(" ")

Span = tuple[int, int, int]  # (segment index, first token, last token), inclusive
Terms = tuple[tuple[int, int], ...]  # (term id, bits of the fields it is looked for in)


class _Segment:
    """One field of one story (a category is a segment of its own), scanned once."""

    __slots__ = ("_spaces", "bit", "found", "haystack", "pieces")

    def __init__(self, bit: int, pieces: list[str], haystack: str) -> None:
        self.bit = bit
        self.pieces = pieces  # separators and words as written, see tokens.split_text
        self.haystack = haystack  # " tok tok ... " (folded tokens)
        self.found: list[tuple[int, int]] = []  # (haystack index of a key's last char, term id)
        self._spaces: list[int] | None = None

    def spaces(self) -> list[int]:
        """Where the separators of `haystack` are, in order (made on first use)."""
        if self._spaces is None:
            self._spaces = [m.start() for m in _SPACE.finditer(self.haystack)]
        return self._spaces


class _Scan:
    """Everything the automaton found in one story, with lazily computed positions."""

    __slots__ = (
        "_positions",
        "_reports",
        "_spans",
        "any_reports",
        "fields",
        "lengths",
        "near",
        "segments",
        "source",
    )

    def __init__(self, segments: list[_Segment], lengths: list[tuple[int, int]], source: str):
        self.segments = segments
        self.lengths = lengths  # per term id: see Matcher._lengths
        self.source = source
        fields: dict[int, int] = {}  # term id -> bits of the fields it occurs in
        positions: dict[int, list[tuple[int, int]]] = {}  # term id -> (segment, hit end)
        for index, segment in enumerate(segments):
            bit = segment.bit
            for end, term in segment.found:
                known = positions.get(term)
                if known is None:
                    positions[term] = [(index, end)]
                    fields[term] = bit
                else:
                    known.append((index, end))
                    fields[term] |= bit
        self.fields = fields
        self._positions = positions
        self._spans: dict[tuple[int, int], list[Span]] = {}
        self.any_reports: dict[frozenset[int], tuple[str, ...]] = {}
        self._reports: dict[tuple[Terms, tuple[Span, ...]], tuple[str, ...]] = {}
        self.near: dict[tuple[object, ...], tuple[Span, ...]] = {}  # see _NearTest._close

    def spans(self, term: int, mask: int) -> list[Span]:
        """Where `term` occurs in the fields of `mask`, in story order."""
        key = (term, mask)
        spans = self._spans.get(key)
        if spans is None:
            back, extra = self.lengths[term]
            spans = self._spans[key] = []
            segments = self.segments
            positions = self._positions.get(term, ())
            many = len(positions) > _FEW
            for index, end in positions:
                segment = segments[index]
                if segment.bit & mask:
                    # The token index of the hit's first character: the separators before it,
                    # counted at C speed for a few hits, looked up for a word that is
                    # everywhere (counting would read the story once per hit).
                    if many:
                        first = bisect_right(segment.spaces(), end - back) - 1
                    else:
                        first = segment.haystack.count(" ", 0, end - back + 1) - 1
                    spans.append((index, first, first + extra))
        return spans

    def any_report(self, terms: frozenset[int]) -> tuple[str, ...]:
        """`report` for terms looked for in every field (the commonest case), cached by the
        set of terms; the matcher reads `any_reports` directly on its hottest path."""
        found = self.any_reports.get(terms)
        if found is None:
            if len(terms) == 1:
                (term,) = terms
                found = self._texts(self.spans(term, _ANY))  # already in story order
            else:
                found = self._texts(sorted({s for t in terms for s in self.spans(t, _ANY)}))
            self.any_reports[terms] = found
        return found

    def report(self, terms: Terms, spans: tuple[Span, ...] = ()) -> tuple[str, ...]:
        """The text of `terms` and `spans` as written in the story, de-duplicated
        case-insensitively, in order of first appearance. Terms that do not occur add nothing.

        Many matched queries report the same terms (every query that matched through "Trump"),
        so results are cached for the story.
        """
        if not spans and all(mask == _ANY for _, mask in terms):
            return self.any_report(frozenset(term for term, _ in terms))  # shares the cache
        key = (terms, spans)
        found = self._reports.get(key)
        if found is None:
            union = set(spans)
            for term, mask in terms:
                union.update(self.spans(term, mask))
            found = self._reports[key] = self._texts(sorted(union))
        return found

    def _texts(self, spans: Iterable[Span]) -> tuple[str, ...]:
        """The text of `spans` (in story order), de-duplicated case-insensitively."""
        seen: set[str] = set()
        found = []
        segments = self.segments
        for index, first, last in spans:
            pieces = segments[index].pieces
            if first == last:
                text = pieces[2 * first + 1]
            else:  # the words with what separates them in the story, as in "Kim Jong-un"
                text = " ".join("".join(pieces[2 * first + 1 : 2 * last + 2]).split())
            folded = text.casefold()
            if folded not in seen:
                seen.add(folded)
                found.append(text)
        return tuple(found)
