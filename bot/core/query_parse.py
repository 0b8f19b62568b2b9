"""The query language's lexer and recursive-descent parser: `parse_query`.

The grammar, the binding of the operators and the choices behind them are described in
bot.core.query; the values built here are in bot.core.query_ast, the bounds in
bot.core.query_limits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum, auto

from bot.core.query_ast import And, Near, Node, Not, Or, Query, QueryError, Source, Term
from bot.core.query_limits import (
    MAX_DEPTH,
    MAX_NEAR_DISTANCE,
    MAX_NEAR_TERMS,
    MAX_QUERY_LENGTH,
    MAX_TERMS,
    MIN_PREFIX_CHARS,
    refuse_negative_only,
)
from bot.core.tokens import is_spaceless, split_text

__all__ = ["FIELDS", "parse_query"]

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
    refuse_negative_only(text, root)
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
