"""The watchlist / subscription query language: a parser into a small frozen AST.

Grammar (operators are upper case only; "and", "or", "not", "near" are plain words):

    query   := or EOF
    or      := and (("OR" | ",") and)*
    and     := unary (["AND"] unary)*          -- units next to each other are ANDed
    unary   := ("NOT" | "-") unary | near
    near    := primary ["NEAR/" n primary]      -- n = at most n words between, either order
    primary := [field ":"] (words | '"' text '"' | "(" or ")")
    words   := word word*                       -- bare words next to each other are ONE phrase

Binding, loosest first: OR (and comma), AND, NOT, NEAR. So `a OR b c -d` means
`a OR ("b c" AND NOT d)`, and `NOT a NEAR/3 b` means `NOT (a NEAR/3 b)`.

Choices worth knowing:
- A field prefix and `-` apply to the whole following unit: `title:North Korea` is
  `title:"North Korea"` and `-North Korea` is `NOT "North Korea"`.
- Quoted phrases, groups and field terms next to anything are ANDed: `Putin (Kim OR Xi)`.
- `word*` is a prefix of the last word of a phrase (at least 3 letters in the whole term); a `*`
  after a character of a script written without spaces is dropped (those match as substrings).
- `source:` compares the feed's name for equality after folding (case, accents, punctuation and
  spacing are ignored); it cannot take `*` and cannot be an operand of NEAR.
- NEAR operands are words, phrases or parenthesised OR-lists of them: `(Putin, Kremlin) NEAR/5 Kim`.
- A query that could match a story containing none of its words is refused: only NOT terms, or
  an OR alternative that only excludes (`Putin OR -Kremlin`). It would alert on nearly everything.
- Typographic quotes (“ ” „) work like straight ones, because phones type them.

This module is the language's public face: import from here. Behind it, bot.core.query_ast holds
the values (the AST, `Query`, `QueryError`), bot.core.query_parse the lexer and parser, and
bot.core.query_limits the bounds, the refusal of queries that match everything, and the cost.
"""

from __future__ import annotations

from bot.core.query_ast import (
    And,
    Near,
    Node,
    Not,
    Or,
    Query,
    QueryError,
    Source,
    Term,
    source_key,
)
from bot.core.query_limits import (
    MAX_DEPTH,
    MAX_NEAR_DISTANCE,
    MAX_NEAR_TERMS,
    MAX_QUERY_LENGTH,
    MAX_TERMS,
    MIN_PREFIX_CHARS,
    QueryCost,
    query_cost,
)
from bot.core.query_parse import FIELDS, parse_query

__all__ = [
    "FIELDS",
    "MAX_DEPTH",
    "MAX_NEAR_DISTANCE",
    "MAX_NEAR_TERMS",
    "MAX_QUERY_LENGTH",
    "MAX_TERMS",
    "MIN_PREFIX_CHARS",
    "And",
    "Near",
    "Node",
    "Not",
    "Or",
    "Query",
    "QueryCost",
    "QueryError",
    "Source",
    "Term",
    "parse_query",
    "query_cost",
    "source_key",
]
