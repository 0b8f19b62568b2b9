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

This module holds the automaton and `Matcher`; bot.core.matcher_scan what one story's scan found
(segments, positions, reported text); bot.core.matcher_compile the compiled tests (NEAR
included), the compiler and the triggers.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from itertools import pairwise, repeat
from typing import Generic, Protocol, TypeVar

import ahocorasick

from bot.core.matcher_compile import MAX_NEAR_POSITIONS as MAX_NEAR_POSITIONS
from bot.core.matcher_compile import _any_field_terms, _Compiler, _Test, _triggers
from bot.core.matcher_compile import _NearTest as _NearTest  # bench/hostile.py swaps its _close
from bot.core.matcher_scan import _CATEGORY, _CONTENT, _TITLE, Span, _Scan, _Segment
from bot.core.query import Query, source_key
from bot.core.tokens import split_text

__all__ = ["Matchable", "Matcher"]

K = TypeVar("K", bound=Hashable)


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
