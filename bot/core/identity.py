"""Story identity: which items are the same story, within a feed, across feeds and across time.

Real feeds repeat GUIDs, drop them, re-issue a story under a new one, and carry the same agency
story through several publishers. So a story is known by several compact keys (64-bit hashes):

- GUID (per feed, permanent) when the feed gives one that is unique in its document;
- URL (any feed, permanent): the canonical link, tracking parameters removed;
- TITLE_DATE (per feed, permanent) for items with neither GUID nor link;
- TITLE and SHINGLE (any feed, only within the de-duplication window): the normalised headline,
  and MinHash bands over word pairs of headline + lead, which find near-duplicates cheaply.
  A SHINGLE hit is only a candidate; `same_story` decides.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from functools import lru_cache
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from w3lib.url import canonicalize_url

from bot.core.models import Story
from bot.core.tokens import split_text

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray


class KeyKind(IntEnum):
    GUID = 1
    URL = 2
    TITLE_DATE = 3
    TITLE = 4
    SHINGLE = 5


PERMANENT_KINDS = frozenset({KeyKind.GUID, KeyKind.URL, KeyKind.TITLE_DATE})


class IdentityKey(NamedTuple):
    # A tuple, not a dataclass: a first poll makes a dozen per item, and parse workers send
    # them across a pipe (a frozen dataclass costs several times more to build and to unpickle).
    kind: KeyKind
    value: int  # signed 64-bit, so it fits an SQLite INTEGER


def _hash64(*parts: str) -> int:
    digest = hashlib.blake2b("\x1f".join(parts).encode("utf-8", "surrogatepass"), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


# --- URLs --------------------------------------------------------------------------------------

_TRACKING_PREFIXES = ("utm_", "at_", "wt_", "wt.", "ns_", "pk_", "mtm_", "hsa_", "stm_", "__")
_TRACKING_NAMES = frozenset(
    [
        "fbclid",
        "gclid",
        "dclid",
        "gbraid",
        "wbraid",
        "msclkid",
        "yclid",
        "twclid",
        "igshid",
        "mc_cid",
        "mc_eid",
        "ito",
        "xtor",
        "cmpid",
        "cmp",
        "ocid",
        "smid",
        "smtyp",
        "ref",
        "ref_src",
        "ref_url",
        "rss",
        "feature",
        "icid",
        "intcmp",
        "mbid",
        "s_cid",
        "sr_share",
        "taid",
        "partner",
        "traffic_source",
        "campaign_id",
        "_ga",
        "_gl",
        "ftag",
        "cid",
        "emc",
    ]
)
_GOOGLE_REDIRECT_HOSTS = frozenset({"www.google.com", "google.com", "news.google.com"})


def _is_tracking(name: str) -> bool:
    low = name.lower()
    return low in _TRACKING_NAMES or low.startswith(_TRACKING_PREFIXES)


def unwrap_redirect(url: str) -> str:
    """Google Alerts and similar wrap the real article in a redirect: return the article."""
    parts = urlsplit(url)
    if parts.hostname in _GOOGLE_REDIRECT_HOSTS and parts.path == "/url":
        for name, value in parse_qsl(parts.query):
            if name in ("url", "q") and value.startswith(("http://", "https://")):
                return value
    return url


def safe_link(url: str | None) -> str | None:
    """A link fit to show on a card: http(s) only (no javascript:, data:, ...), redirects
    unwrapped, tracking parameters removed, everything else as the publisher wrote it."""
    if not url:
        return None
    url = url.strip()
    if not url.lower().startswith(("http://", "https://")) or any(c in url for c in '\r\n\t <>"'):
        return None
    url = unwrap_redirect(url)
    try:
        parts = urlsplit(url)
        if not parts.hostname:
            return None
        query = [
            (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _is_tracking(k)
        ]
        return urlunsplit(parts._replace(query=urlencode(query, doseq=True)))
    except ValueError:
        return None


@lru_cache(maxsize=65_536)
def url_key(url: str | None) -> str | None:
    """The form two links to the same article share: scheme, `www.`, default port, fragment,
    tracking parameters, trailing slash and parameter order do not count. Cached: a poll asks
    for each link's key several times (its identity key, what the document lists, a move)."""
    link = safe_link(url)
    if link is None:
        return None
    try:
        canonical = canonicalize_url(link, keep_fragments=False)
        parts = urlsplit(canonical)
    except ValueError:
        return None
    host = (parts.hostname or "").lower().removeprefix("www.")
    default_port = {"http": 80, "https": 443}.get(parts.scheme)
    try:
        port = parts.port
    except ValueError:
        return None
    netloc = host if port in (None, default_port) else f"{host}:{port}"
    path = parts.path.rstrip("/") or "/"
    return f"{netloc}{path}" + (f"?{parts.query}" if parts.query else "")


def link_identity(url: str | None) -> int | None:
    """The identity key a link is stored under (see `strong_keys`): how /why finds the story
    behind a link, whichever feed listed it. None for a text that is no http(s) link."""
    link = url_key(url)
    return _hash64("url", link) if link else None


# --- text fingerprints ------------------------------------------------------------------------


@lru_cache(maxsize=32_768)
def words(text: str) -> tuple[str, ...]:
    # Cached: a poll compares the same headlines and leads many times over (every known item of
    # a changed feed, every near-duplicate candidate).
    # The matcher's splitter: the same words as `tokenize`, without building a Token each.
    return tuple(split_text(text)[1])


def shingles(tokens: Sequence[str]) -> frozenset[str]:
    """Word pairs: order-aware, so two stories with the same vocabulary in another order differ."""
    if len(tokens) < 2:
        return frozenset(tokens)
    return frozenset(f"{a} {b}" for a, b in itertools.pairwise(tokens))


def overlap(a: frozenset[str], b: frozenset[str]) -> float:
    """Overlap coefficient: 1.0 when the smaller set lies inside the larger, which is what a lead
    cut short looks like next to the whole lead."""
    if not a or not b:
        return 0.0
    return len(a & b) / min(len(a), len(b))


# Universal hashing (a*x + b mod p) over one CRC per shingle: stable across processes (the keys
# are stored) and an order of magnitude cheaper than a cryptographic hash per (shingle, band).
_PRIME = (1 << 61) - 1
_BANDS, _ROWS = 12, 2
_COEFFS = [
    (
        int.from_bytes(hashlib.blake2b(f"a{i}".encode(), digest_size=7).digest()) | 1,
        int.from_bytes(hashlib.blake2b(f"b{i}".encode(), digest_size=7).digest()),
    )
    for i in range(_BANDS * _ROWS)
]


class _Lanes(NamedTuple):
    """The hash functions in 64-bit lanes, for `_lanes_minima`."""

    a_hi: NDArray[np.uint64]
    a_lo: NDArray[np.uint64]
    b: NDArray[np.uint64]


@lru_cache(maxsize=1)
def _coefficient_lanes() -> _Lanes:
    return _lanes_of(_COEFFS)


def _lanes_of(coeffs: Sequence[tuple[int, int]]) -> _Lanes:
    """Functions (a, b) cut as `_lanes_minima` reads them: a = a_hi * 2**32 + a_lo."""
    # numpy is imported where MinHash first runs, not with this module: the parse workers
    # compute the keys, and the bot's own process, which imports this module for everything
    # else, is spared about 14 MB.
    import numpy as np

    return _Lanes(
        np.array([a >> 32 for a, _ in coeffs], dtype=np.uint64),
        np.array([a & 0xFFFF_FFFF for a, _ in coeffs], dtype=np.uint64),
        np.array([b for _, b in coeffs], dtype=np.uint64),
    )


def prepare_minhash() -> None:
    """Load numpy and the coefficients now: a parse worker does it as it starts, so that its
    first document's deadline does not pay for the import."""
    _coefficient_lanes()


def minhash_bands(items: frozenset[str]) -> list[int]:
    if not items:
        return []
    bases = [zlib.crc32(s.encode("utf-8", "surrogatepass")) for s in items]
    mins = _lanes_minima(bases, *_coefficient_lanes())
    return [
        _hash64("band", str(band), *map(str, mins[band * _ROWS : (band + 1) * _ROWS]))
        for band in range(_BANDS)
    ]


def _lanes_minima(
    bases: list[int], a_hi: NDArray[np.uint64], a_lo: NDArray[np.uint64], b: NDArray[np.uint64]
) -> list[int]:
    """min((a*x + b) mod p for x in bases) for each function a = a_hi * 2**32 + a_lo, b, with
    p = 2**61 - 1, a and b below p and each x below 2**32: exactly, every function at once, in
    a few array operations per story where Python's integers took 24 multiplications per word
    pair (a cache of those held 80 MB per process and still cost a news feed's first poll a
    fifth of its parse workers' time).

    a*x is cut into a_hi*x*2**32 + a_lo*x: a_lo*x fits 64 bits, a_hi*x fits 61, and times 2**32
    modulo the Mersenne prime it is a rotation (2**61 = 1 mod p). Every sum stays below 2**63."""
    import numpy as np  # see _coefficient_lanes

    u64 = np.uint64
    p = u64(_PRIME)
    x = np.array(bases, dtype=u64)[:, None]
    high = a_hi * x  # < 2**61
    total = (high >> u64(29)) + ((high & u64((1 << 29) - 1)) << u64(32))  # a_hi*x*2**32 mod p
    low = a_lo * x  # < 2**64
    total += (low & p) + (low >> u64(61))  # + a_lo*x mod p: below 2**62 + 2**61 + 8
    total += b  # below p
    total = (total & p) + (total >> u64(61))  # below p + 4
    # Subtracting p wraps a value below it around to near 2**64: the minimum of the two is
    # the remainder.
    total = np.minimum(total, total - p)
    minima: list[int] = total.min(axis=0).tolist()
    return minima


# Fewer word pairs than this and a fuzzy match is too likely to be a coincidence.
MIN_SHINGLES = 6
SAME_STORY_OVERLAP = 0.7
SAME_HEADLINE_LEAD_OVERLAP = 0.5
MATERIAL_LEAD_OVERLAP = 0.8
MIN_TITLE_WORDS = 4
MIN_HEADLINE_OVERLAP = 0.3


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What `same_story` compares, computed once per story and reused for every comparison
    (a poll compares one stored story with many sightings)."""

    title: tuple[str, ...]
    lead: frozenset[str]
    full: frozenset[str]


def fingerprint(story: Story) -> Fingerprint:
    return text_print(story.title, story.summary)


def text_print(title: str, summary: str) -> Fingerprint:
    """The fingerprint of a story's headline and lead (all that it reads of a story: a stored
    near-duplicate candidate is read as just these two)."""
    key = (title, summary)
    found = _PRINTS.get(key)
    if found is None:
        lead = shingles(words(summary))
        pairs = shingles(words(f"{title} {summary}"))
        # The same pairs, but those of the lead as the lead's own strings: one copy of each
        # in memory and in a parse worker's pickle (the union keeps the left set's objects).
        found = Fingerprint(words(title), lead, (lead & pairs) | pairs)
        _keep_print(key, found)
    return found


def remember_print(story: Story, print_: Fingerprint) -> None:
    """Keep a story's fingerprint for the next comparisons: a story stored a minute ago is the
    near-duplicate candidate of many new ones (a first poll of formulaic feeds), and its print
    came from a parse worker, not from this process. The pipeline keeps only the prints of
    stories a poll may store (one the store holds already by GUID or link is kept by
    `text_print` if it is ever checked as a candidate). The newest are kept; a print read again
    is not moved to the end (a first poll of 1,000 feeds reads a hundred thousand, and moving
    each cost more than the evictions it spared)."""
    _keep_print((story.title, story.summary), print_)


def _keep_print(key: tuple[str, str], print_: Fingerprint) -> None:
    # Under a lock: the planner's thread and the event loop (a poll's sightings) both keep
    # prints, and two evictions at once would both pick the same oldest key.
    global _prints_weight
    with _PRINTS_LOCK:
        old = _PRINTS.pop(key, None)
        if old is not None:
            _prints_weight -= _weight(old)
        _PRINTS[key] = print_
        _prints_weight += _weight(print_)
        while _prints_weight > PRINTS_WEIGHT and len(_PRINTS) > 1:
            _prints_weight -= _weight(_PRINTS.pop(next(iter(_PRINTS))))


def _weight(print_: Fingerprint) -> int:
    return len(print_.title) + len(print_.lead) + len(print_.full)


_PRINTS: dict[tuple[str, str], Fingerprint] = {}  # insertion order = least recently kept first
_PRINTS_LOCK = threading.Lock()
# The prints kept, bounded by their words and word pairs (about 120 bytes each with their
# share of the sets), not by their number: a news story's print is 20-30 KB, a bulletin's about
# 4 KB, and 8,192 of the first were some 180 MB of the bot's memory. About 40 MB: some 6,000
# bulletins or 1,700 news stories of a 90-word lead.
PRINTS_WEIGHT = 350_000
_prints_weight = 0


def bound_caches(*, words_kept: int, prints_weight: int) -> None:
    """Empty the word cache when it holds more entries than given, and keep at most
    `prints_weight` of prints from now on. For a parse worker, between documents: it reads most
    texts once, and at the writing process's sizes its caches held about 120 MB after a first
    poll of 1,000 news feeds (a bulletin feed's few hundred words still stay)."""
    global PRINTS_WEIGHT, _prints_weight
    if words.cache_info().currsize > words_kept:
        words.cache_clear()
    with _PRINTS_LOCK:
        PRINTS_WEIGHT = prints_weight
        while _prints_weight > PRINTS_WEIGHT and _PRINTS:
            _prints_weight -= _weight(_PRINTS.pop(next(iter(_PRINTS))))


# A word pair under this many items of one document is the feed's boilerplate (a helpline
# under every live blog, "Read the full story at..."), not the story's.
BOILERPLATE_ITEMS = 3


def boilerplate(stories: Iterable[Story]) -> frozenset[str]:
    """Word pairs that a document repeats under several of its items: a shared lead, a
    headline formula ("... live news: ...", "M 4.2 earthquake - ... km NE of ..."). They say
    which feed an item is from, not which story: neither candidates nor checks count them."""
    counts: Counter[str] = Counter()
    for story in stories:
        counts.update(fingerprint(story).full)
    return frozenset(s for s, n in counts.items() if n >= BOILERPLATE_ITEMS)


def headlines_allow(a: tuple[str, ...], b: tuple[str, ...], *, co_listed: bool = False) -> bool:
    """Whether two headlines (their `words`) leave room for one story: `same_story` is False
    whenever this is, and this needs no lead (a candidate's print is costly to make, its
    headline's words are not)."""
    if a == b and len(a) >= MIN_TITLE_WORDS:
        return True
    if co_listed:
        return False
    # Different headlines must still share words: feeds that repeat a boilerplate lead
    # ("Read the full story...") under every headline must not merge their stories.
    return overlap(frozenset(a), frozenset(b)) >= MIN_HEADLINE_OVERLAP


def same_story(
    a: Story | Fingerprint,
    b: Story | Fingerprint,
    *,
    co_listed: bool = False,
    ignore: frozenset[str] = frozenset(),
) -> bool:
    """Two texts of one story: the same headline over a compatible lead, or headline and lead
    that mostly overlap (one cut short, a headline rewritten, a word changed).

    `co_listed`: both are listed in one document at once. A publisher does not list one story
    twice under two headlines, so only the same headline counts then. `ignore`: word pairs that
    do not count towards similarity (the document's boilerplate)."""
    fa = a if isinstance(a, Fingerprint) else fingerprint(a)
    fb = b if isinstance(b, Fingerprint) else fingerprint(b)
    if fa.title == fb.title and len(fa.title) >= MIN_TITLE_WORDS:
        lead_a, lead_b = fa.lead - ignore, fb.lead - ignore
        if not lead_a or not lead_b:
            return True
        # A daily "Briefing: what happened today" keeps its headline but not its lead.
        return overlap(lead_a, lead_b) >= SAME_HEADLINE_LEAD_OVERLAP
    if not headlines_allow(fa.title, fb.title, co_listed=co_listed):
        return False
    full_a, full_b = fa.full - ignore, fb.full - ignore
    if min(len(full_a), len(full_b)) < MIN_SHINGLES:
        return False
    return overlap(full_a, full_b) >= SAME_STORY_OVERLAP


def material_change(old: Story, new: Story) -> bool:
    """A change a reader would want to see: another headline, or a lead that says something else.
    A lead that only grew (the whole text after a cut-short one) or lost a typo is not one."""
    if words(old.title) != words(new.title):
        return True
    lead_old, lead_new = shingles(words(old.summary)), shingles(words(new.summary))
    if not lead_old or not lead_new:
        return bool(lead_new) and not lead_old
    return overlap(lead_old, lead_new) < MATERIAL_LEAD_OVERLAP


# --- keys ---------------------------------------------------------------------------------------


def primary_identity(story: Story, *, guid_unique: bool) -> str:
    """Identity within one feed document: GUID when unique, else canonical link, else a hash of
    title and date."""
    if story.guid and guid_unique:
        return f"guid:{story.guid}"
    key = url_key(story.link)
    if key:
        return f"url:{key}"
    date = story.published.isoformat() if story.published else ""
    return f"title:{' '.join(words(story.title))}|{date}"


def _unique_indices(items: Sequence[Story]) -> list[tuple[int, bool]]:
    """Each story of a document once (first occurrence wins), by its index, paired with whether
    its GUID was unique in the document and can therefore be trusted as an identity."""
    guid_counts = Counter(s.guid for s in items if s.guid)
    seen: set[str] = set()
    unique: list[tuple[int, bool]] = []
    for index, story in enumerate(items):
        guid_unique = story.guid is not None and guid_counts[story.guid] == 1
        identity = primary_identity(story, guid_unique=guid_unique)
        if identity in seen:
            continue
        seen.add(identity)
        unique.append((index, guid_unique))
    return unique


_UNKNOWN = "?"


def strong_keys(
    story: Story, feed_id: int, *, guid_unique: bool, link: str | None = _UNKNOWN
) -> tuple[IdentityKey, ...]:
    """Keys that identify a story exactly and are kept for a long time. `link`: the story's
    `url_key`, when already known."""
    keys: list[IdentityKey] = []
    if story.guid and guid_unique:
        keys.append(IdentityKey(KeyKind.GUID, _hash64("guid", str(feed_id), story.guid)))
    if link == _UNKNOWN:
        link = url_key(story.link)
    if link:
        keys.append(IdentityKey(KeyKind.URL, _hash64("url", link)))
    if not keys:
        date = story.published.isoformat() if story.published else ""
        keys.append(
            IdentityKey(
                KeyKind.TITLE_DATE, _hash64("td", str(feed_id), " ".join(words(story.title)), date)
            )
        )
    return tuple(keys)


def fuzzy_keys(story: Story, ignore: frozenset[str] = frozenset()) -> tuple[IdentityKey, ...]:
    """Keys that find near-duplicates within the de-duplication window (candidates only).
    `ignore`: the document's boilerplate (see `boilerplate`)."""
    keys: list[IdentityKey] = []
    title = words(story.title)
    if len(title) >= MIN_TITLE_WORDS:
        keys.append(IdentityKey(KeyKind.TITLE, _hash64("title", " ".join(title))))
    grams = fingerprint(story).full - ignore  # the print's pairs: computed once per story
    if len(grams) >= MIN_SHINGLES:
        keys.extend(IdentityKey(KeyKind.SHINGLE, band) for band in minhash_bands(grams))
    return tuple(keys)


# --- a whole document -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ItemIdentity:
    """What identifying one item of a document takes, short of its feed's id and the database."""

    index: int  # in the document's stories
    guid_unique: bool
    link: str | None  # url_key of its link
    fuzzy: tuple[IdentityKey, ...]
    print: Fingerprint


@dataclass(frozen=True, slots=True)
class DocumentIdentity:
    items: tuple[ItemIdentity, ...]  # each story of the document once, first occurrence wins
    ignore: frozenset[str]  # the document's boilerplate (see `boilerplate`)

    def __reduce__(self) -> tuple[Any, ...]:
        # Sent by each parse worker for every document: as plain tuples, rebuilt in one pass
        # (pickling the objects themselves cost the bot about 2.5 s per 50,000 items). A key
        # goes as a plain (kind, value) pair: pickle writes each KeyKind member once per
        # document and refers back to it after that.
        flat = tuple(
            (
                i.index,
                i.guid_unique,
                i.link,
                tuple(map(tuple, i.fuzzy)),
                i.print.title,
                i.print.lead,
                i.print.full,
            )
            for i in self.items
        )
        return (_document_identity, (flat, self.ignore))


def _document_identity(
    flat: tuple[tuple[Any, ...], ...], ignore: frozenset[str]
) -> DocumentIdentity:
    # map over tuple.__new__: the keys are rebuilt without a Python call each (a first poll
    # unpickles a dozen per item).
    new, cls = tuple.__new__, itertools.repeat(IdentityKey)
    return DocumentIdentity(
        tuple(
            ItemIdentity(
                index,
                unique,
                link,
                tuple(map(new, cls, fuzzy)),
                Fingerprint(title, lead, full),
            )
            for index, unique, link, fuzzy, title, lead, full in flat
        ),
        ignore,
    )


def identify(stories: Sequence[Story]) -> DocumentIdentity:
    """Every key and fingerprint of a document's stories that needs no database: CPU work done
    once, in the process that parsed the document (a parse worker), so that the one process
    that writes to the database does not (about a third of its work per item otherwise)."""
    unique = _unique_indices(stories)
    ignore = boilerplate(stories[index] for index, _ in unique)
    return DocumentIdentity(
        tuple(
            ItemIdentity(
                index,
                guid_unique,
                url_key(stories[index].link),
                fuzzy_keys(stories[index], ignore),
                fingerprint(stories[index]),
            )
            for index, guid_unique in unique
        ),
        ignore,
    )
