"""One matcher for every watchlist and subscription.

Build: every term of every query (a word, phrase or prefix, folded) becomes one key of a single
Aho-Corasick automaton. Keys are tokens joined by spaces with a space on both sides, and stories
are scanned as " token token ... ", so a key can only hit whole tokens (" korea " does not hit
inside "koreans"); a prefix key simply has no trailing space (" korea" hits "koreans").

Match: one automaton pass per field of the story (title, content, each category separately, so
a phrase or NEAR never spans two of them) yields every term of every query that occurs. Then:
- a query that is a word, a phrase or an OR-list of them searched in every field (most
  watchlists) is true as soon as one of its terms occurs: those are listed under their terms and
  matched in bulk, with one report per term shared by all of them;
- any other query is evaluated only if one of its triggers occurred: a set of terms (or feeds,
  for source:) of which at least one must be there for the query to be true. For
  `a AND (b OR c)` that is {a}; NOT branches never trigger, which is why `Putin -Kremlin` is
  found through Putin and then checked for the absence of Kremlin.

Cost per story is one regular-expression split, one fold and one automaton pass per field, plus
work proportional to the terms that occur and to the queries they concern; queries whose terms
do not occur cost nothing. See BENCHMARKS.md.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Hashable, Iterable, Sequence
from itertools import pairwise, repeat
from typing import Generic, Protocol, TypeVar

import ahocorasick

from bot.core.query import And, Near, Node, Not, Or, Query, Source, Term, source_key
from bot.core.tokens import split_text

__all__ = ["Matchable", "Matcher"]

K = TypeVar("K", bound=Hashable)

_TITLE, _CONTENT, _CATEGORY = 1, 2, 4
_ANY = _TITLE | _CONTENT | _CATEGORY
_FIELD_BITS = {None: _ANY, "title": _TITLE, "content": _CONTENT, "category": _CATEGORY}
# Occurrences of one NEAR side looked at per story: past this a word is everywhere anyway.
MAX_NEAR_POSITIONS = 5000
_FAR = 1 << 62
# A term with more hits than this in a story has its token positions looked up in an index.
_FEW = 16
_SPACE = re.compile(" ")


class Matchable(Protocol):
    """What the matcher reads from a story. Properties, so frozen dataclasses satisfy it."""

    @property
    def title(self) -> str: ...

    @property
    def content(self) -> str: ...  # full clean text of the story the feed gives

    @property
    def categories(self) -> Sequence[str]: ...

    @property
    def feed(self) -> str: ...  # the feed's name, used by source:"..."


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


# --- compiled queries: test() decides, collect() gathers the spans to report -------------------


class _TermTest:
    __slots__ = ("mask", "term")

    def __init__(self, term: int, mask: int) -> None:
        self.term = term
        self.mask = mask

    def test(self, scan: _Scan) -> bool:
        return (scan.fields.get(self.term, 0) & self.mask) != 0

    def collect(self, scan: _Scan, terms: list[tuple[int, int]], spans: list[Span]) -> None:
        terms.append((self.term, self.mask))


class _SourceTest:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def test(self, scan: _Scan) -> bool:
        return scan.source == self.name

    def collect(self, scan: _Scan, terms: list[tuple[int, int]], spans: list[Span]) -> None:
        pass  # the feed's name is not story text


class _NotTest:
    __slots__ = ("child",)

    def __init__(self, child: _Test) -> None:
        self.child = child

    def test(self, scan: _Scan) -> bool:
        return not self.child.test(scan)

    def collect(self, scan: _Scan, terms: list[tuple[int, int]], spans: list[Span]) -> None:
        pass  # what is absent cannot be reported


class _AndTest:
    # The common parts are checked inline, without a call per child: plain terms, NOT plain
    # terms (`Putin -Kremlin`) and OR-lists of plain terms (`Putin AND (Kim OR Xi)`). Most
    # candidates fail on them, cheaply, before any NEAR work.
    __slots__ = ("absent", "any_of", "children", "others", "terms")

    def __init__(self, children: list[_Test]) -> None:
        self.children = children
        self.terms: list[tuple[int, int]] = []
        self.absent: list[tuple[int, int]] = []
        self.any_of: list[list[tuple[int, int]]] = []
        self.others: list[_Test] = []
        for child in children:
            if isinstance(child, _TermTest):
                self.terms.append((child.term, child.mask))
            elif isinstance(child, _NotTest) and isinstance(child.child, _TermTest):
                self.absent.append((child.child.term, child.child.mask))
            elif isinstance(child, _OrTest) and not child.others:
                self.any_of.append(child.terms)
            else:
                self.others.append(child)

    def test(self, scan: _Scan) -> bool:
        fields = scan.fields
        for term, mask in self.terms:
            if not fields.get(term, 0) & mask:
                return False
        for term, mask in self.absent:
            if fields.get(term, 0) & mask:
                return False
        for group in self.any_of:
            for term, mask in group:
                if fields.get(term, 0) & mask:
                    break
            else:
                return False
        for child in self.others:  # noqa: SIM110 - all() with a generator is slower on this hot path
            if not child.test(scan):
                return False
        return True

    def collect(self, scan: _Scan, terms: list[tuple[int, int]], spans: list[Span]) -> None:
        fields = scan.fields
        terms.extend(self.terms)
        for group in self.any_of:
            terms.extend((term, mask) for term, mask in group if fields.get(term, 0) & mask)
        for child in self.others:
            child.collect(scan, terms, spans)


class _OrTest:
    __slots__ = ("children", "others", "terms")

    def __init__(self, children: list[_Test]) -> None:
        self.children = children
        self.terms = [(c.term, c.mask) for c in children if isinstance(c, _TermTest)]
        self.others = [c for c in children if not isinstance(c, _TermTest)]

    def test(self, scan: _Scan) -> bool:
        fields = scan.fields
        for term, mask in self.terms:
            if fields.get(term, 0) & mask:
                return True
        for child in self.others:  # noqa: SIM110 - any() with a generator is slower on this hot path
            if child.test(scan):
                return True
        return False

    def collect(self, scan: _Scan, terms: list[tuple[int, int]], spans: list[Span]) -> None:
        fields = scan.fields
        terms.extend((term, mask) for term, mask in self.terms if fields.get(term, 0) & mask)
        for child in self.others:
            if child.test(scan):
                child.collect(scan, terms, spans)


class _NearTest:
    __slots__ = ("distance", "key", "left", "right")

    def __init__(self, left: list[_TermTest], right: list[_TermTest], distance: int) -> None:
        self.left = left
        self.right = right
        self.distance = distance
        # Queries that say the same NEAR (many people's, or one repeated) share one result.
        self.key = (
            tuple((t.term, t.mask) for t in left),
            tuple((t.term, t.mask) for t in right),
            distance,
        )

    def _side(self, scan: _Scan, side: list[_TermTest]) -> list[Span]:
        if len(side) == 1:
            spans = scan.spans(side[0].term, side[0].mask)  # already in story order
        else:
            spans = sorted({span for t in side for span in scan.spans(t.term, t.mask)})
        # A word that fills a book is still looked at only so many times.
        return spans[:MAX_NEAR_POSITIONS]

    def _close(self, scan: _Scan) -> tuple[Span, ...]:
        """Every occurrence of a term of either side that has one of the other side close
        enough, in the same field. Sorted positions and a binary search per occurrence, so the
        work grows as n log n with the occurrences, not n * m: a list of common words on both
        sides of a NEAR costs milliseconds on a long story, not seconds."""
        found = scan.near.get(self.key)
        if found is not None:
            return found
        close: tuple[Span, ...] = ()
        fields = scan.fields
        if any(fields.get(t.term, 0) & t.mask for t in self.left) and any(
            fields.get(t.term, 0) & t.mask for t in self.right
        ):
            left, right = self._side(scan, self.left), self._side(scan, self.right)
            d = self.distance
            left_reach, right_reach = _reach(left), _reach(right)
            close = tuple(
                [a for a in left if _has_partner(a, right, d, right_reach)]
                + [b for b in right if _has_partner(b, left, d, left_reach)]
            )
        scan.near[self.key] = close
        return close

    def test(self, scan: _Scan) -> bool:
        return bool(self._close(scan))

    def collect(self, scan: _Scan, terms: list[tuple[int, int]], spans: list[Span]) -> None:
        spans.extend(self._close(scan))


def _reach(spans: list[Span]) -> int:
    """How many tokens past its start the longest of `spans` ends."""
    return max((last - first for _, first, last in spans), default=0)


def _has_partner(a: Span, others: list[Span], distance: int, reach: int) -> bool:
    """Whether `others` (sorted) holds a span other than `a` itself in the same segment with at
    most `distance` words between it and `a`, on either side.

    b is close to a when b starts at most distance + 1 tokens after a ends and ends at most
    distance + 1 tokens before a starts; so b starts in a window around a, widened on the left
    by `reach` (the longest phrase of `others`). Checked from the right end of the window,
    where any span is close: the loop runs more than once only past `a` itself or phrases
    starting left of the window proper."""
    segment, first, last = a
    low = first - distance - 1
    start = bisect_left(others, (segment, low - reach))
    for index in range(
        bisect_right(others, (segment, last + distance + 1, _FAR)) - 1, start - 1, -1
    ):
        b = others[index]
        if b[2] >= low and b != a:
            return True
    return False


_Test = _TermTest | _SourceTest | _NotTest | _AndTest | _OrTest | _NearTest


class _Compiler:
    """Turns query ASTs into tests, numbering each distinct term once for all queries."""

    def __init__(self) -> None:
        self.term_ids: dict[tuple[tuple[str, ...], bool], int] = {}
        self.uses_source = False  # then every story's feed name must be folded for comparison

    def term(self, term: Term) -> _TermTest:
        key = (term.words, term.prefix)
        term_id = self.term_ids.setdefault(key, len(self.term_ids))
        return _TermTest(term_id, _FIELD_BITS[term.field])

    def compile(self, node: Node) -> _Test:
        if isinstance(node, Term):
            return self.term(node)
        if isinstance(node, Source):
            self.uses_source = True
            return _SourceTest(node.name)
        if isinstance(node, Not):
            return _NotTest(self.compile(node.child))
        if isinstance(node, And):
            return _AndTest([self.compile(child) for child in node.children])
        if isinstance(node, Or):
            return _OrTest([self.compile(child) for child in node.children])
        if isinstance(node, Near):
            left = [self.term(t) for t in node.left]
            return _NearTest(left, [self.term(t) for t in node.right], node.distance)
        raise TypeError(f"not a query node: {node!r}")


Triggers = tuple[frozenset[int], frozenset[str]]  # term ids, source names


def _triggers(test: _Test) -> Triggers | None:
    """Terms and sources of which at least one must occur for `test` to be true; None when it
    can be true without any (a NOT)."""
    if isinstance(test, _TermTest):
        return frozenset((test.term,)), frozenset()
    if isinstance(test, _SourceTest):
        return frozenset(), frozenset((test.name,))
    if isinstance(test, _NearTest):
        return frozenset(t.term for t in test.left), frozenset()
    if isinstance(test, _NotTest):
        return None
    children = [_triggers(child) for child in test.children]
    if isinstance(test, _AndTest):
        # Any one conjunct's triggers will do; the fewest means the fewest needless evaluations.
        known = [t for t in children if t is not None]
        return min(known, key=lambda t: len(t[0]) + len(t[1])) if known else None
    if any(t is None for t in children):
        return None
    terms = frozenset().union(*(t[0] for t in children if t is not None))
    return terms, frozenset().union(*(t[1] for t in children if t is not None))


def _any_field_terms(test: _Test) -> frozenset[int] | None:
    """The terms of `test` if it is a word or an OR-list of words, each searched in every
    field: such a query is true as soon as one of its terms occurs, nothing to evaluate."""
    if isinstance(test, _TermTest):
        terms = [(test.term, test.mask)]
    elif isinstance(test, _OrTest) and not test.others:
        terms = test.terms
    else:
        return None
    return frozenset(t for t, _ in terms) if all(mask == _ANY for _, mask in terms) else None


class Matcher(Generic[K]):
    """All queries compiled into one automaton. Immutable: rebuild it when queries change."""

    def __init__(self, queries: Iterable[tuple[K, Query]]) -> None:
        compiler = _Compiler()
        self._keys: list[K] = []
        # Queries come in two kinds:
        # - a word or phrase, or an OR-list of them, searched in every field (most watchlists):
        #   true as soon as one of its terms occurs, so it is listed under each of its terms and
        #   matched in bulk, with one report per term for all the queries of that term;
        found_by: dict[int, list[int]] = {}
        self._lists: dict[int, frozenset[int]] = {}  # the OR-lists among them
        # - anything else: evaluated when one of its triggers (see _triggers) occurred.
        self._tests: dict[int, _Test] = {}
        tests_by_term: dict[int, list[int]] = {}
        tests_by_source: dict[str, list[int]] = {}
        always: list[int] = []  # only for hand-built ASTs: parse_query refuses such queries
        seen: set[K] = set()
        # Queries that could not be compiled, with the reason: left out, so that one bad query
        # (a hand-built AST, a stored query from an older grammar) never stops the others.
        self.skipped: list[tuple[K, str]] = []
        for key, query in queries:
            if key in seen:
                raise ValueError(f"duplicate query key {key!r}")
            seen.add(key)
            try:
                test = compiler.compile(query.root)
                terms = _any_field_terms(test)
                triggers = _triggers(test) if terms is None else None
            except Exception as exc:  # whatever it is, it is this query's alone
                self.skipped.append((key, f"{type(exc).__name__}: {exc}"[:200]))
                continue
            index = len(self._keys)
            self._keys.append(key)
            if terms is not None:
                for term in terms:
                    found_by.setdefault(term, []).append(index)
                if len(terms) > 1:
                    self._lists[index] = terms
                continue
            self._tests[index] = test
            if triggers is None:
                always.append(index)
                continue
            for term in triggers[0]:
                tests_by_term.setdefault(term, []).append(index)
            for name in triggers[1]:
                tests_by_source.setdefault(name, []).append(index)
        self._found_by = {term: tuple(indexes) for term, indexes in found_by.items()}
        self._tests_by_term = {term: tuple(indexes) for term, indexes in tests_by_term.items()}
        self._tests_by_source = tests_by_source
        self._always = tuple(always)
        self._uses_source = compiler.uses_source
        self._lengths: list[tuple[int, int]] = [(0, 0)] * len(compiler.term_ids)
        self._automaton: ahocorasick.Automaton | None = None
        if compiler.term_ids:
            automaton = ahocorasick.Automaton(ahocorasick.STORE_INTS)
            for (words, prefix), term_id in compiler.term_ids.items():
                word = " " + " ".join(words) + ("" if prefix else " ")
                automaton.add_word(word, term_id)
                # A hit is reported at the index of the key's last character; its first token
                # starts len(key) - 2 characters earlier (after the leading space) and its last
                # token is len(words) - 1 tokens further on.
                self._lengths[term_id] = (len(word) - 2, len(words) - 1)
            automaton.make_automaton()
            self._automaton = automaton

    def __len__(self) -> int:
        return len(self._keys)

    def _segments(self, doc: Matchable) -> list[_Segment]:
        automaton = self._automaton
        if automaton is None:  # no terms at all (no queries, or only source:): nothing to find
            return []
        segments = []
        fields = [(_TITLE, doc.title), (_CONTENT, doc.content)]
        fields.extend((_CATEGORY, category) for category in doc.categories)
        for bit, text in fields:
            if not text:
                continue
            pieces, norms = split_text(text)
            if not norms:
                continue
            segment = _Segment(bit, pieces, " " + " ".join(norms) + " ")
            segment.found = list(automaton.iter(segment.haystack))
            segments.append(segment)
        return segments

    def match(self, doc: Matchable) -> dict[K, tuple[str, ...]]:
        """Keys of the queries `doc` matches -> the matched terms as written in the story."""
        source = source_key(doc.feed) if self._uses_source else ""
        scan = _Scan(self._segments(doc), self._lengths, source)
        fields = scan.fields
        matched: list[tuple[int, tuple[str, ...]]] = []  # (query index, reported terms)
        candidates: set[int] = set(self._always)
        found_by, tests_by_term, any_reports = self._found_by, self._tests_by_term, scan.any_reports
        for term in fields:
            queries = found_by.get(term)
            if queries:
                key = frozenset((term,))
                report = any_reports.get(key) or scan.any_report(key)
                matched.extend(zip(queries, repeat(report)))
            queries = tests_by_term.get(term)
            if queries:
                candidates.update(queries)
        if source:
            candidates.update(self._tests_by_source.get(source, ()))
        tests = self._tests
        for index in candidates:
            test = tests[index]
            if test.test(scan):
                terms: list[tuple[int, int]] = []
                spans: list[Span] = []
                test.collect(scan, terms, spans)
                matched.append((index, scan.report(tuple(terms), tuple(spans))))
        matched.sort()  # in the order the queries were given
        keys = self._keys
        result = {keys[index]: terms for index, terms in matched}
        if len(result) < len(matched):
            # An OR-list with several of its terms in the story was matched once per term:
            # report all of them.
            for (index, _), (following, _) in pairwise(matched):
                if index == following:
                    occurred = self._lists[index].intersection(fields)
                    result[keys[index]] = scan.any_report(occurred)
        return result
