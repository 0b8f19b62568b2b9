"""What one query may be and cost: the bounds the parser enforces, the refusal of queries that
would match everything, and `query_cost`, what a per-person budget counts."""

from __future__ import annotations

from dataclasses import dataclass

from bot.core.query_ast import And, Near, Node, Not, Or, Query, QueryError

__all__ = [
    "MAX_DEPTH",
    "MAX_NEAR_DISTANCE",
    "MAX_NEAR_TERMS",
    "MAX_QUERY_LENGTH",
    "MAX_TERMS",
    "MIN_PREFIX_CHARS",
    "QueryCost",
    "query_cost",
    "refuse_negative_only",
]

MAX_QUERY_LENGTH = 1000
# `ab*` would match "about", "above", "abuse"...: a prefix that short alerts on everything.
MIN_PREFIX_CHARS = 3
MAX_NEAR_DISTANCE = 100
# Bounds on what one query may cost, whoever wrote it. Parentheses and NOT nest at most this
# deep, so nothing that walks a query (parser, compiler, matcher) can run out of stack; a real
# query nests two or three levels.
MAX_DEPTH = 10
# Terms in one query (each word, phrase or source: counts once): a watchlist of 100 names is
# long; more is a list that belongs in several watchlists.
MAX_TERMS = 100
# Alternatives on one side of NEAR: the matcher compares the positions of every alternative of
# one side with those of the other, so this bounds the work per story.
MAX_NEAR_TERMS = 10


# --- queries that would match everything -------------------------------------------------------


def _needs_a_term(node: Node) -> bool:
    """True if `node` can only be true when one of its non-negated terms (or source:) matches."""
    if isinstance(node, Not):
        return False
    if isinstance(node, And):
        return any(_needs_a_term(child) for child in node.children)
    if isinstance(node, Or):
        return all(_needs_a_term(child) for child in node.children)
    return True


def refuse_negative_only(text: str, root: Node) -> None:
    if _needs_a_term(root):
        return
    culprit = root  # walk down to the NOT that makes the query match without any of its terms
    while isinstance(culprit, (And, Or)):
        culprit = next(child for child in culprit.children if not _needs_a_term(child))
    if _has_positive_term(root):
        raise QueryError(
            "An OR alternative made only of NOT terms",
            text,
            culprit.pos,
            "It would match almost every story. Give it a word to look for, or exclude"
            " outside the OR: (Putin OR Kim) -Seoul",
        )
    raise QueryError(
        "A query cannot be made only of NOT terms",
        text,
        culprit.pos,
        "Add a word to look for, for example: Putin -Kremlin",
    )


def _has_positive_term(node: Node) -> bool:
    if isinstance(node, Not):
        return False
    if isinstance(node, (And, Or)):
        return any(_has_positive_term(child) for child in node.children)
    return True


# --- what a query costs ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueryCost:
    """What one query adds to the matcher's work: what a per-person budget counts."""

    terms: int  # words, phrases and source: names
    near: int  # NEAR operators: the only part whose cost grows with the story's length


def query_cost(query: Query) -> QueryCost:
    terms = near = 0
    stack: list[Node] = [query.root]
    while stack:
        node = stack.pop()
        if isinstance(node, Not):
            stack.append(node.child)
        elif isinstance(node, (And, Or)):
            stack.extend(node.children)
        elif isinstance(node, Near):
            near += 1
            terms += len(node.left) + len(node.right)
        else:
            terms += 1
    return QueryCost(terms, near)
