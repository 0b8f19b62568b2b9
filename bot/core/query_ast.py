"""The query language's values: the frozen AST, the parsed `Query` and `QueryError`.

The grammar and the choices behind it are described in bot.core.query, the public face of the
language; the parser that builds these values is in bot.core.query_parse.
"""

from __future__ import annotations

import dataclasses
import unicodedata
from dataclasses import dataclass
from typing import TypeAlias

from bot.core.tokens import split_text

__all__ = [
    "And",
    "Near",
    "Node",
    "Not",
    "Or",
    "Query",
    "QueryError",
    "Source",
    "Term",
    "source_key",
]


class QueryError(ValueError):
    """A query that does not parse. `str()` shows where, with a caret under the column."""

    def __init__(self, message: str, query: str, position: int, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.query = query
        self.position = position  # 0-based column of the problem
        self.hint = hint

    def __str__(self) -> str:
        excerpt, caret = _point_at(self.query, self.position)
        # The column is shown 1-based because people count that way; `position` stays 0-based.
        text = f"{self.message} at column {self.position + 1}:\n  {excerpt}\n  {caret}^"
        return f"{text}\n{self.hint}" if self.hint else text


def _point_at(query: str, position: int, width: int = 60) -> tuple[str, str]:
    """A one-line excerpt of `query` around `position` and the padding that puts a caret there."""
    line = "".join(" " if c.isspace() else c for c in query)
    start = max(0, min(position - width // 2, len(line) - width))
    excerpt = line[start : start + width]
    before = line[start:position]
    if start > 0:
        excerpt, before = "…" + excerpt, "…" + before
    if start + width < len(line):
        excerpt += "…"
    # Wide (CJK) characters take two columns in the monospace block chat shows this in.
    pad = sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in before)
    return excerpt, " " * pad


# --- AST ---------------------------------------------------------------------------------------
# `pos` is where the node starts in the query text; it is for error messages, not for equality.


@dataclass(frozen=True, slots=True)
class Term:
    """A word or phrase: folded tokens that must appear consecutively in one field."""

    words: tuple[str, ...]
    prefix: bool = False  # the last word is a prefix (`Korea*`)
    field: str | None = None  # "title" | "content" | "category"; None = any of them
    pos: int = dataclasses.field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Source:
    """The story comes from the feed with this name (as returned by `source_key`)."""

    name: str
    pos: int = dataclasses.field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Not:
    child: Node
    pos: int = dataclasses.field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class And:
    children: tuple[Node, ...]
    pos: int = dataclasses.field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Or:
    children: tuple[Node, ...]
    pos: int = dataclasses.field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Near:
    """Some occurrence of a term of `left` and one of `right` in the same field, with at most
    `distance` words between them, in either order."""

    left: tuple[Term, ...]  # alternatives (a parenthesised OR-list) or a single term
    right: tuple[Term, ...]
    distance: int
    pos: int = dataclasses.field(default=0, compare=False)


Node: TypeAlias = Term | Source | Not | And | Or | Near


@dataclass(frozen=True, slots=True)
class Query:
    text: str  # the query as the user typed it
    root: Node
    # Advice on a query that is valid but probably not what was meant (see hint_words in
    # bot.core.query_parse).
    hints: tuple[str, ...] = dataclasses.field(default=(), compare=False)


def source_key(feed_name: str) -> str:
    """The comparable form of a feed name for `source:`."""
    return " ".join(split_text(feed_name)[1])
