"""Real news text for the pipeline benchmark, from the captures in tests/corpus.

Every item of every capture is read with feedparser (titles, descriptions, full text, authors,
categories). A benchmark needs far more distinct stories than the corpus holds (1,000 feeds of 50
items, 500,000 stories for a month), so a story is *spliced*: the first half of one real headline
joined to the second half of another, over sentences drawn from real descriptions. The words,
scripts and lengths are those of real news; the identities are distinct, so the de-duplication
treats them as different stories (a share of exact copies across feeds is added on purpose, as
agency copy is in a real feed list).

Watchlist queries are made of names found in the same text (runs of capitalised words, plus
Cyrillic and Chinese names), in the shapes people write.
"""

from __future__ import annotations

import html
import random
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

FEEDS = Path(__file__).resolve().parents[1] / "tests" / "corpus"  # copies of ../shared/feeds

_TAG = re.compile(r"<[^>]+>")
_SENTENCE = re.compile(r"(?<=[.!?。])\s+")


def clean(text: str | None) -> str:
    return " ".join(html.unescape(_TAG.sub(" ", text or "")).split())


@dataclass(frozen=True, slots=True)
class Item:
    title: str
    description: str
    content: str
    author: str
    categories: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Corpus:
    items: tuple[Item, ...]
    titles: tuple[str, ...]
    sentences: tuple[str, ...]
    paragraphs: tuple[str, ...]
    authors: tuple[str, ...]
    categories: tuple[str, ...]


@lru_cache(maxsize=1)
def load() -> Corpus:
    import feedparser

    items: list[Item] = []
    seen: set[str] = set()
    for path in sorted(FEEDS.iterdir()):
        if path.suffix not in (".xml", ".rss"):
            continue
        parsed = feedparser.parse(path.read_bytes())
        for entry in parsed.entries:
            title = clean(entry.get("title"))
            if len(title) < 12 or title in seen:
                continue
            seen.add(title)
            bodies = [clean(c.get("value")) for c in entry.get("content") or ()]
            description = clean(entry.get("summary"))
            content = max([description, *bodies], key=len)
            tags = tuple(clean(t.get("term")) for t in entry.get("tags") or () if t.get("term"))
            items.append(Item(title, description, content, clean(entry.get("author")), tags[:5]))
    sentences = sorted(
        {
            s
            for item in items
            for text in (item.description, item.content)
            for s in _SENTENCE.split(text)
            if 30 <= len(s) <= 400
        }
    )
    paragraphs = sorted({i.content for i in items if len(i.content) >= 300})
    authors = sorted({i.author for i in items if 3 <= len(i.author) <= 60})
    categories = sorted({c for i in items for c in i.categories if 2 <= len(c) <= 40})
    return Corpus(
        tuple(items),
        tuple(i.title for i in items),
        tuple(sentences),
        tuple(paragraphs),
        tuple(authors),
        tuple(categories),
    )


def splice_title(corpus: Corpus, rng: random.Random) -> str:
    a, b = rng.choice(corpus.titles), rng.choice(corpus.titles)
    wa, wb = a.split(), b.split()
    if len(wa) < 2 or len(wb) < 2:  # scripts written without spaces: splice by characters
        return a[: max(2, len(a) // 2)] + b[len(b) // 2 :]
    return " ".join(wa[: max(2, len(wa) // 2)] + wb[len(wb) // 2 :])


def splice_sentence(corpus: Corpus, rng: random.Random) -> str:
    a, b = rng.choice(corpus.sentences), rng.choice(corpus.sentences)
    wa, wb = a.split(), b.split()
    if len(wa) < 4 or len(wb) < 4:
        return a[: len(a) // 2] + b[len(b) // 2 :]
    return " ".join(wa[: len(wa) // 2] + wb[len(wb) // 2 :])


def description(corpus: Corpus, rng: random.Random, sentences: int) -> str:
    """Spliced sentences: whole ones drawn from a pool of ~1,500 would make unrelated stories
    share a lead often enough for the de-duplication to call them one story."""
    return " ".join(splice_sentence(corpus, rng) for _ in range(sentences))


def full_text(corpus: Corpus, rng: random.Random, paragraphs: int) -> list[str]:
    return [rng.choice(corpus.paragraphs) for _ in range(paragraphs)]


# --- watchlist queries ---------------------------------------------------------------------------

_UPPER, _LOWER_LETTER = "A-ZÀ-ÖØ-Þ", "a-zß-öø-ÿ"
_NAME = re.compile(
    f"[{_UPPER}][{_LOWER_LETTER}]+(?:[-'’][A-Za-z][{_LOWER_LETTER}]+)?"
    f"(?:\\s+[{_UPPER}][{_LOWER_LETTER}]+){{0,2}}"
)
_BEFORE = re.compile(r"[a-z,]+\s+$")
_LOWER = re.compile(r"\b[a-z][a-z]+\b")
_OTHER_SCRIPTS = (
    "Путин", "Росія", "Україна", "Київ", "Зеленський", "Москва", "Харків", "Одеса",
    "普京", "俄罗斯", "中国", "乌克兰", "习近平", "朝鲜", "美国", "北京", "台湾", "香港",
)  # fmt: skip


@lru_cache(maxsize=1)
def names() -> tuple[str, ...]:
    """Proper names and phrases from the corpus (people, places, organisations)."""
    corpus = load()
    texts = [t for i in corpus.items for t in (i.title, i.content)]
    lower = {w for text in texts for w in _LOWER.findall(text)}
    found: dict[str, int] = {}
    for text in texts:
        for match in _NAME.finditer(text):
            name = match.group()
            if not _BEFORE.search(text[max(0, match.start() - 30) : match.start()]):
                continue
            if " " not in name and name.lower() in lower:
                continue
            found[name] = found.get(name, 0) + 1
    return tuple(sorted(found)) + _OTHER_SCRIPTS


def make_queries(count: int, seed: int) -> list[str]:
    """`count` distinct, valid queries: names, phrases, OR lists, AND, NOT, NEAR, prefixes."""
    from bot.core.query import QueryError, parse_query

    rng = random.Random(seed)
    population = names()

    def quoted(name: str) -> str:
        return f'"{name}"' if " " in name else name

    queries: list[str] = []
    seen: set[str] = set()
    attempts = 0
    while len(queries) < count:
        attempts += 1
        a, b, c = (rng.choice(population) for _ in range(3))
        shape = rng.random()
        if shape < 0.40:
            query = quoted(a)
        elif shape < 0.50:
            if " " in a or len(a) < 6 or not a.isascii():
                continue
            query = a[: len(a) - rng.randint(0, 2)] + "*"
        elif shape < 0.65:
            query = ", ".join(quoted(n) for n in (a, b, c)[: rng.randint(2, 3)])
        elif shape < 0.80:
            query = f"{quoted(a)} AND ({quoted(b)} OR {quoted(c)})"
        elif shape < 0.90:
            query = f"{quoted(a)} -{quoted(b)}"
        else:
            query = f"{quoted(a)} NEAR/{rng.randint(3, 10)} {quoted(b)}"
        if attempts > count * 50:
            # A small vocabulary runs out of distinct single names: qualify with a number.
            query = f'{query} OR "{a} {len(queries)}"'
        if query in seen:
            continue
        try:
            parse_query(query)
        except QueryError:
            continue
        seen.add(query)
        queries.append(query)
    return queries
