"""Queries compiled for the matcher: a tree of tests per query (test() decides whether a scanned
story matches, collect() gathers the terms and spans to report), the compiler that numbers each
distinct term once for all queries, and the triggers that decide which queries a story needs
evaluated. NEAR is evaluated here, on sorted positions.

The matcher itself, and how the pieces fit, is described in bot.core.matcher.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right

from bot.core.matcher_scan import _ANY, _CATEGORY, _CONTENT, _TITLE, Span, _Scan
from bot.core.query import And, Near, Node, Not, Or, Source, Term

_FIELD_BITS = {None: _ANY, "title": _TITLE, "content": _CONTENT, "category": _CATEGORY}
# Occurrences of one NEAR side looked at per story: past this a word is everywhere anyway.
MAX_NEAR_POSITIONS = 5000
_FAR = 1 << 62

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
