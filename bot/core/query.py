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
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from dataclasses import dataclass
from enum import Enum, auto
from typing import TypeAlias

from bot.core.tokens import is_spaceless, split_text

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
# Field names as typed (lower-cased) -> the field they mean.
FIELDS = {
    "title": "title",
    "content": "content",
    "category": "category",
    "categories": "category",
    "source": "source",
}
_FIELD_HINT = "Fields are title:, content:, category: and source:."
_OPERAND = 'a word, a "phrase" or a (group)'

_QUOTES = '"“”„'
_SPECIAL = frozenset("(),") | frozenset(_QUOTES)
_FIELD_RE = re.compile(r"([A-Za-z]+):")
_NEAR_RE = re.compile(r"NEAR/(\d+)")


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
    # Advice on a query that is valid but probably not what was meant (see _Parser.hint_words).
    hints: tuple[str, ...] = dataclasses.field(default=(), compare=False)


def source_key(feed_name: str) -> str:
    """The comparable form of a feed name for `source:`."""
    return " ".join(split_text(feed_name)[1])


# --- lexer -------------------------------------------------------------------------------------


class _Kind(Enum):
    WORD = auto()
    QUOTED = auto()
    LPAREN = auto()
    RPAREN = auto()
    COMMA = auto()
    AND = auto()
    OR = auto()
    NOT = auto()
    MINUS = auto()
    NEAR = auto()
    FIELD = auto()


@dataclass(frozen=True, slots=True)
class _Lexeme:
    kind: _Kind
    text: str  # as typed; for QUOTED the text between the quotes, for FIELD the field
    pos: int
    number: int = 0  # NEAR distance


_UNIT_STARTS = frozenset(
    {_Kind.WORD, _Kind.QUOTED, _Kind.LPAREN, _Kind.FIELD, _Kind.NOT, _Kind.MINUS}
)


def _lex(query: str) -> list[_Lexeme]:
    out: list[_Lexeme] = []
    i, n = 0, len(query)
    while i < n:
        c = query[i]
        if c.isspace():
            i += 1
        elif c in "(),":
            kind = {"(": _Kind.LPAREN, ")": _Kind.RPAREN, ",": _Kind.COMMA}[c]
            out.append(_Lexeme(kind, c, i))
            i += 1
        elif c in _QUOTES:
            close = next((j for j in range(i + 1, n) if query[j] in _QUOTES), -1)
            if close < 0:
                raise QueryError("Unclosed quote", query, i, 'Close the phrase with a ".')
            out.append(_Lexeme(_Kind.QUOTED, query[i + 1 : close], i))
            i = close + 1
        elif c == "-":
            if i + 1 >= n or query[i + 1].isspace() or query[i + 1] in "),":
                raise QueryError(
                    "'-' must be followed directly by what to exclude",
                    query,
                    i,
                    'For example: "South Korea" -Seoul',
                )
            out.append(_Lexeme(_Kind.MINUS, c, i))
            i += 1
        else:
            j = i
            while j < n and not query[j].isspace() and query[j] not in _SPECIAL:
                j += 1
            i = _lex_word(query, i, j, out)
    return out


def _lex_word(query: str, start: int, end: int, out: list[_Lexeme]) -> int:
    """Lex query[start:end], a run without spaces or specials; return where to continue."""
    word = query[start:end]
    if word in ("AND", "OR", "NOT"):
        out.append(_Lexeme(_Kind[word], word, start))
        return end
    if word == "NEAR" or word.startswith("NEAR/"):
        near = _NEAR_RE.fullmatch(word)
        if near is None:
            raise QueryError(
                "NEAR needs a distance in words", query, start, "For example: Putin NEAR/5 Kim"
            )
        distance = int(near.group(1))
        if distance == 0:
            raise QueryError(
                "NEAR needs a distance of at least 1 word",
                query,
                start,
                'For words right next to each other, write the phrase: "Kim Jong Un"',
            )
        if distance > MAX_NEAR_DISTANCE:
            raise QueryError(
                f"NEAR distance must be at most {MAX_NEAR_DISTANCE} words", query, start
            )
        out.append(_Lexeme(_Kind.NEAR, word, start, distance))
        return end
    field_match = _FIELD_RE.match(word)
    if field_match:
        name = field_match.group(1)
        if name.lower() not in FIELDS:
            raise QueryError(f"Unknown field '{name}:'", query, start, _FIELD_HINT)
        after = start + field_match.end()
        if after >= len(query) or query[after].isspace() or query[after] in "),":
            raise QueryError(
                f"'{name}:' must be followed directly by {_OPERAND}",
                query,
                start,
                f'For example: {name.lower()}:"North Korea"',
            )
        out.append(_Lexeme(_Kind.FIELD, FIELDS[name.lower()], start))
        return after
    out.append(_Lexeme(_Kind.WORD, word, start))
    return end


# --- parser ------------------------------------------------------------------------------------


def parse_query(text: str) -> Query:
    """Parse a query; raise QueryError (with the column of the problem) if it is not valid."""
    if len(text) > MAX_QUERY_LENGTH:
        raise QueryError(
            f"Query is too long ({len(text)} characters, the limit is {MAX_QUERY_LENGTH})",
            text,
            MAX_QUERY_LENGTH,
        )
    if not text.strip():
        raise QueryError("Empty query", text, 0, "Type a word or phrase to look for.")
    parser = _Parser(text, _lex(text))
    root = parser.parse()
    _refuse_negative_only(text, root)
    return Query(text, root, tuple(dict.fromkeys(parser.hints)))


class _Parser:
    def __init__(self, query: str, lexemes: list[_Lexeme]) -> None:
        self.query = query
        self.lexemes = lexemes
        self.i = 0
        self.field: str | None = None  # set while inside `field:( ... )`
        self.depth = 0  # parentheses and NOTs open around the current position
        self.terms = 0
        self.hints: list[str] = []

    def deeper(self, lexeme: _Lexeme) -> None:
        """Enter one more level of nesting, refusing past MAX_DEPTH: every walk over the tree
        (here, in the compiler and in the matcher) recurses per level."""
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(
                f"Nested too deeply (more than {MAX_DEPTH} levels of parentheses and NOT)",
                lexeme.pos,
                "Simplify it: NOT NOT a is a, and ((a)) is a.",
            )

    # helpers

    def peek(self) -> _Lexeme | None:
        return self.lexemes[self.i] if self.i < len(self.lexemes) else None

    def take(self) -> _Lexeme:
        lexeme = self.lexemes[self.i]
        self.i += 1
        return lexeme

    def previous(self) -> _Lexeme | None:
        return self.lexemes[self.i - 1] if self.i > 0 else None

    def error(self, message: str, position: int, hint: str = "") -> QueryError:
        return QueryError(message, self.query, position, hint)

    def missing_operand(self) -> QueryError:
        """The error for 'a word was expected here', phrased around the neighbouring lexeme."""
        here, before = self.peek(), self.previous()
        if before is not None and before.kind == _Kind.LPAREN:
            if here is None:
                return self.error("Unclosed '('", before.pos, "Add the ')' that closes it.")
            if here.kind == _Kind.RPAREN:
                return self.error("Empty parentheses", before.pos)
        elif before is not None:
            return self.error(f"{_name(before)} needs {_OPERAND} after it", before.pos)
        if here is None:
            return self.error("Empty query", len(self.query))
        if here.kind == _Kind.RPAREN:
            return self.error("Unmatched ')'", here.pos, "Remove it or add the '(' it closes.")
        return self.error(f"{_name(here)} needs {_OPERAND} before it", here.pos)

    # grammar

    def parse(self) -> Node:
        root = self.parse_or()
        extra = self.peek()
        if extra is not None:  # only a ')' can be left over: every other lexeme is consumed
            raise self.error("Unmatched ')'", extra.pos, "Remove it or add the '(' it closes.")
        return root

    def parse_or(self) -> Node:
        first = self.parse_and()
        children = [first]
        while (lexeme := self.peek()) is not None and lexeme.kind in (_Kind.OR, _Kind.COMMA):
            self.take()
            children.append(self.parse_and())
        return first if len(children) == 1 else Or(_flatten(Or, children), first.pos)

    def parse_and(self) -> Node:
        first = self.parse_unary()
        children = [first]
        while (lexeme := self.peek()) is not None:
            if lexeme.kind == _Kind.AND:
                self.take()
            elif lexeme.kind not in _UNIT_STARTS:
                break
            children.append(self.parse_unary())
        return first if len(children) == 1 else And(_flatten(And, children), first.pos)

    def parse_unary(self) -> Node:
        lexeme = self.peek()
        if lexeme is not None and lexeme.kind in (_Kind.NOT, _Kind.MINUS):
            self.take()
            self.deeper(lexeme)
            child = self.parse_unary()
            self.depth -= 1
            return Not(child, lexeme.pos)
        return self.parse_near()

    def parse_near(self) -> Node:
        start = self.peek()
        left = self.parse_primary()
        near = self.peek()
        if near is None or near.kind != _Kind.NEAR:
            return left
        self.take()
        right_start = self.peek()
        right = self.parse_primary()
        assert start is not None and right_start is not None  # parse_primary raised otherwise
        again = self.peek()
        if again is not None and again.kind == _Kind.NEAR:
            raise self.error(
                "NEAR cannot be chained",
                again.pos,
                "Combine pairs with AND: (a NEAR/5 b) AND (b NEAR/5 c)",
            )
        return Near(
            self.near_operand(left, start.pos),
            self.near_operand(right, right_start.pos),
            near.number,
            left.pos,
        )

    def near_operand(self, node: Node, position: int) -> tuple[Term, ...]:
        if isinstance(node, Term):
            return (node,)
        if isinstance(node, Or) and all(isinstance(child, Term) for child in node.children):
            if len(node.children) > MAX_NEAR_TERMS:
                raise self.error(
                    f"NEAR takes at most {MAX_NEAR_TERMS} alternatives on each side"
                    f" (this side has {len(node.children)})",
                    position,
                    "Split it into several queries, or use AND for the long list:"
                    " (a, b, c) AND (x NEAR/5 y)",
                )
            return tuple(child for child in node.children if isinstance(child, Term))
        raise self.error(
            "NEAR needs a word, a phrase or an (a OR b) list on each side",
            position,
            'For example: (Putin, Kremlin) NEAR/5 "Kim Jong Un"',
        )

    def parse_primary(self) -> Node:
        lexeme = self.peek()
        if lexeme is None or lexeme.kind not in _UNIT_STARTS - {_Kind.NOT, _Kind.MINUS}:
            raise self.missing_operand()
        if lexeme.kind == _Kind.FIELD:
            return self.parse_field()
        if lexeme.kind == _Kind.LPAREN:
            self.take()
            self.deeper(lexeme)
            inner = self.parse_or()
            close = self.peek()
            if close is None or close.kind != _Kind.RPAREN:
                raise self.error("Unclosed '('", lexeme.pos, "Add the ')' that closes it.")
            self.take()
            self.depth -= 1
            return inner
        if lexeme.kind == _Kind.QUOTED:
            self.take()
            if not lexeme.text.strip():
                raise self.error("Empty quotes", lexeme.pos)
            # The text starts one column after the opening quote.
            return self.make_term([(lexeme.text, lexeme.pos + 1)], lexeme.pos)
        words = []
        while (word := self.peek()) is not None and word.kind == _Kind.WORD:
            words.append((self.take().text, word.pos))
        self.hint_words([text for text, _ in words])
        return self.make_term(words, lexeme.pos)

    def hint_words(self, words: list[str]) -> None:
        """`putin or kremlin` is the phrase "putin or kremlin" (operators are upper case, so that
        "Trinidad and Tobago" stays a phrase); say so, since it is rarely what was meant."""
        for word in words[1:-1]:
            operator = word.upper().split("/")[0]
            if word != word.upper() and operator in ("AND", "OR", "NOT", "NEAR"):
                phrase = " ".join(words)
                meant = " ".join(w.upper() if w == word else w for w in words)
                self.hints.append(
                    f"'{phrase}' is looked for as one phrase, '{word}' included. If you meant"
                    f" the operator, write it in capitals: {meant}. To keep the phrase, quote"
                    f' it: "{phrase}"'
                )

    def parse_field(self) -> Node:
        lexeme = self.take()
        if self.field is not None:
            raise self.error(
                "Fields cannot be nested",
                lexeme.pos,
                f"This is already inside {self.field}:( ... ).",
            )
        target = self.peek()
        if target is None or target.kind not in (_Kind.WORD, _Kind.QUOTED, _Kind.LPAREN):
            # The lexer guarantees something follows; here it is an operator such as NOT.
            raise self.error(
                f"'{lexeme.text}:' must be followed directly by {_OPERAND}", lexeme.pos
            )
        self.field = lexeme.text
        try:
            return self.parse_primary()
        finally:
            self.field = None

    def make_term(self, pieces: list[tuple[str, int]], position: int) -> Term | Source:
        """A term from one or more adjacent bare words, or from the text of a quoted phrase.

        `pieces` are (text, column of its first character) pairs.
        """
        norms: list[str] = []
        star = -1  # column of the prefix '*', if any
        for index, (text, offset) in enumerate(pieces):
            if "*" in text:
                star = self.check_star(text, offset, is_last=index == len(pieces) - 1)
                text = text[: star - offset]
            norms.extend(split_text(text)[1])
        if not norms:
            raise self.error("Nothing to search for here: no letters or digits", position)
        self.terms += 1
        if self.terms > MAX_TERMS:
            raise self.error(
                f"Too many terms (the limit is {MAX_TERMS} words or phrases in one query)",
                position,
                "Split the list into several watchlists or subscriptions.",
            )
        if self.field == "source":
            if star >= 0:
                raise self.error("source: takes a feed's full name, without '*'", star)
            return Source(" ".join(norms), position)
        prefix = star >= 0
        if prefix and len(norms[-1]) == 1 and is_spaceless(norms[-1]):
            # Scripts written without spaces already match as substrings: '*' adds nothing.
            prefix = False
        elif prefix and sum(map(len, norms)) < MIN_PREFIX_CHARS:
            raise self.error(
                f"A prefix needs at least {MIN_PREFIX_CHARS} letters before '*'",
                star,
                "Short prefixes match almost every story; for example: Korea*",
            )
        return Term(tuple(norms), prefix, self.field, position)

    def check_star(self, text: str, offset: int, is_last: bool) -> int:
        """Validate the '*' in one piece of a term; return its column."""
        index = text.index("*")
        star = offset + index
        after = text[index + 1 :]
        if after[:1] and not after[:1].isspace():  # "Ko*rea", "Korea**"
            raise self.error(
                "'*' is only allowed at the end of a word", star, "For example: Korea*"
            )
        if after.strip() or not is_last:  # a word follows in the same phrase
            raise self.error(
                "'*' is only allowed on the last word of a phrase",
                star,
                "To look for the words separately, use AND: Korea* AND Pyongyang",
            )
        if index == 0 or not text[index - 1].isalnum():  # a bare '*', or "Korea *"
            raise self.error(
                f"A prefix needs at least {MIN_PREFIX_CHARS} letters before '*'",
                star,
                "For example: Korea*",
            )
        return star


def _name(lexeme: _Lexeme) -> str:
    return "A comma" if lexeme.kind == _Kind.COMMA else lexeme.text


def _flatten(kind: type[And] | type[Or], children: list[Node]) -> tuple[Node, ...]:
    """`a OR (b OR c)` is `a OR b OR c`: flat nodes evaluate with fewer calls."""
    flat: list[Node] = []
    for child in children:
        flat.extend(child.children if isinstance(child, kind) else (child,))
    return tuple(flat)


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


def _refuse_negative_only(text: str, root: Node) -> None:
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
