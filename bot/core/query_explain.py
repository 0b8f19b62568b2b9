"""Why a query did not match a story, in a few plain words: the first part of it that failed.

Each part is judged by the real matcher (a leaf at a time, as a query of its own), so what /why
says a query lacks is exactly what kept it from alerting; the boolean structure is walked here.
`"Kim Jong Un" AND NOT sport` against a story without the name gives
`"Kim Jong Un" not found in the story`."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from bot.core.matcher import Matchable, Matcher
from bot.core.query import And, Near, Node, Not, Or, Query, Source, Term, source_key
from bot.core.tokens import split_text

_QUOTES = '"“”„'
_WHERE = {
    None: "the story",
    "title": "the title",
    "content": "the text",
    "category": "the categories",
}
MAX_ALTERNATIVES = 3  # failing alternatives of an OR named one by one; the rest are counted


def failing_part(query: Query, doc: Matchable) -> str | None:
    """None when the query matches the story; otherwise the first part that failed."""
    return failing_parts([query], doc)[0]


def failing_parts(queries: Sequence[Query], doc: Matchable) -> list[str | None]:
    """`failing_part` of each query. Every word, phrase and NEAR of them all is matched in one
    pass (one automaton), so judging a desk's hundreds of watchlists costs about one match."""
    leaves: dict[Node, int] = {}
    for query in queries:
        for leaf in _leaves(query.root):
            leaves.setdefault(leaf, len(leaves))
    matcher = Matcher([(index, Query("", leaf)) for leaf, index in leaves.items()])
    found = set(matcher.match(doc))
    present = {leaf: index in found for leaf, index in leaves.items()}
    return [_Explainer(query.text, doc, present).fails(query.root) for query in queries]


def _leaves(node: Node) -> Iterator[Node]:
    """The parts the matcher judges: words, phrases, NEARs (a NEAR's terms too, to say which
    side is missing)."""
    match node:
        case Term():
            yield node
        case Near():
            yield node
            yield from node.left
            yield from node.right
        case Not():
            yield from _leaves(node.child)
        case And() | Or():
            for child in node.children:
                yield from _leaves(child)


def node_text(node: Node, text: str = "") -> str:
    """A part of a query written back as a query. `text`: the query it comes from, whose
    spelling of words and phrases is shown where it can be found."""
    match node:
        case Term():
            return _term_text(node, text)
        case Source():
            return f'source:"{node.name}"'
        case Not():
            return f"NOT {node_text(node.child, text)}"
        case And():
            return " AND ".join(_grouped(c, text) for c in node.children)
        case Or():
            return " OR ".join(_grouped(c, text) for c in node.children)
        case Near():
            return f"{_side(node.left, text)} NEAR/{node.distance} {_side(node.right, text)}"
    return "?"


def _grouped(node: Node, text: str) -> str:
    shown = node_text(node, text)
    return f"({shown})" if isinstance(node, (And, Or)) else shown


def _side(terms: tuple[Term, ...], text: str) -> str:
    shown = [_term_text(t, text) for t in terms]
    return shown[0] if len(shown) == 1 else f"({', '.join(shown)})"


def _term_text(term: Term, text: str) -> str:
    words = _as_typed(term, text) or " ".join(term.words)
    field = f"{term.field}:" if term.field else ""
    return f'{field}"{words}{"*" if term.prefix else ""}"'


def _as_typed(term: Term, text: str) -> str | None:
    """The term as the query spells it (`Kim Jong Un` for the folded kim jong un), if found
    where the parser saw it."""
    rest = text[term.pos :]
    if not rest:
        return None
    if rest[0] in _QUOTES:
        end = next((i for i, c in enumerate(rest[1:], 1) if c in _QUOTES), len(rest))
        candidate = rest[1:end].strip()
    else:
        taken: list[str] = []
        for chunk in rest.split():
            taken.append(chunk)
            if len(split_text(" ".join(taken))[1]) >= len(term.words):
                break
        candidate = " ".join(taken).rstrip(",)*")
    candidate = candidate.rstrip("*").strip()
    return candidate if tuple(split_text(candidate)[1]) == term.words else None


class _Explainer:
    def __init__(self, text: str, doc: Matchable, present: dict[Node, bool]) -> None:
        self.text = text
        self.doc = doc
        self.present = present  # each leaf: whether the matcher found it in the story

    def matches(self, node: Node) -> bool:
        match node:
            case Source():
                return source_key(self.doc.feed) == node.name
            case Not():
                return not self.matches(node.child)
            case And():
                return all(self.matches(c) for c in node.children)
            case Or():
                return any(self.matches(c) for c in node.children)
        # A word, phrase or NEAR: the matcher's own answer, for this part alone.
        return self.present.get(node, False)

    def fails(self, node: Node) -> str | None:
        if self.matches(node):
            return None
        match node:
            case Term():
                where = _WHERE.get(node.field, "the story")
                return f"{_term_text(node, self.text)} not found in {where}"
            case Source():
                return f'the story is from "{self.doc.feed}", not source:"{node.name}"'
            case Not():
                return (
                    f"{node_text(node.child, self.text)} is in the story, and the query excludes it"
                )
            case And():
                for child in node.children:
                    reason = self.fails(child)
                    if reason is not None:
                        return reason
            case Or():
                reasons = [self.fails(c) or "?" for c in node.children]
                if len(reasons) == 1:
                    return reasons[0]
                shown = reasons[:MAX_ALTERNATIVES]
                more = len(reasons) - len(shown)
                tail = f"; and {more} more" if more > 0 else ""
                return "no alternative matched: " + "; ".join(shown) + tail
            case Near():
                for side in (node.left, node.right):
                    if not any(self.matches(t) for t in side):
                        return self.fails(side[0] if len(side) == 1 else Or(side))
                return (
                    f"{_side(node.left, self.text)} and {_side(node.right, self.text)} are never "
                    f"within {node.distance} words of each other"
                )
        return f"{node_text(node, self.text)} did not match"
