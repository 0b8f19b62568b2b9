"""Story identity: canonical links and which texts are the same story."""

from __future__ import annotations

import pickle
import random
import subprocess
import sys
import tracemalloc
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core import identity
from bot.core.identity import (
    fuzzy_keys,
    identify,
    material_change,
    minhash_bands,
    safe_link,
    same_story,
    strong_keys,
    url_key,
    words,
)
from bot.core.models import Story
from bot.core.tokens import tokenize


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (
            "https://www.nytimes.com/2021/07/15/us/x.html?utm_source=rss&smid=tw",
            "http://nytimes.com/2021/07/15/us/x.html",
        ),
        ("HTTPS://WWW.Example.COM:443/a/b/#comments", "https://example.com/a/b"),
        ("https://example.com/a?b=2&a=1", "https://example.com/a?a=1&b=2"),
        ("https://www.lemonde.fr/x.html?xtor=RSS-3208", "https://www.lemonde.fr/x.html"),
        (
            "https://www.dailymail.co.uk/n.html?ns_mchannel=rss&ito=1490&ns_campaign=1490",
            "https://www.dailymail.co.uk/n.html",
        ),
        (
            "https://www.nzherald.co.nz/a/?ref=rss&fbclid=xyz&gclid=1",
            "https://www.nzherald.co.nz/a",
        ),
        (
            "https://www.google.com/url?rct=j&sa=t&url=https://slack.com/blog%3Fa%3D1&ct=ga",
            "https://slack.com/blog?a=1",
        ),
        ("https://liberal.gr/%CE%BA%CF%8C%CF%83%CE%BC%CE%BF%CF%82", "https://liberal.gr/κόσμος"),
    ],
    ids=[
        "tracking-and-scheme",
        "case-port-fragment",
        "parameter-order",
        "xtor",
        "mailonline",
        "ref-fbclid-gclid",
        "google-redirect",
        "percent-encoding",
    ],
)
def test_links_to_the_same_article_share_a_key(a, b):
    assert url_key(a) == url_key(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("https://example.com/a?id=1", "https://example.com/a?id=2"),
        ("https://example.com/a", "https://example.org/a"),
        ("https://example.com:8443/a", "https://example.com/a"),
    ],
    ids=["meaningful-parameter", "other-host", "other-port"],
)
def test_links_to_different_articles_differ(a, b):
    assert url_key(a) != url_key(b)


@pytest.mark.parametrize(
    "link",
    ["javascript:alert(1)", "data:text/html,x", "ftp://x/y", "https://a b/c", "", None, "//x.y/z"],
)
def test_unsafe_or_unusable_links_are_dropped(link):
    assert safe_link(link) is None


def story(title: str, lead: str = "", feed: str = "Wire") -> Story:
    return Story(feed=feed, title=title, summary=lead)


SEED_TITLE = "Putin Visits North Korea, Pledges Cooperation Amid Sanctions Pressure"
SEED_LEAD = (
    "SEOUL (AP) — Russian President Vladimir Putin arrived in Pyongyang on Wednesday for his first "
    "visit to North Korea in 24 years, where Kim Jong Un greeted him at the airport."
)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (story(SEED_TITLE, SEED_LEAD), story(SEED_TITLE, SEED_LEAD[:120] + "...")),
        (
            story(SEED_TITLE, SEED_LEAD),
            story("Putin visits North Korea, pledges cooperation", SEED_LEAD),
        ),
        (
            story("Amid mounting speculation, South Korea says Kim Jong Un is 'alive and well'"),
            story("Amid mounting speculation, South Korea says Kim Jong Un is 'alive and well'"),
        ),
        (
            story(
                "Biden Will Press Merkel on China and Russia",
                "Aware of the need to rebuild ties with the outgoing chancellor, President Biden has taken pains.",
            ),
            story(
                "Biden Will Press Merkel on China and Russia",
                "Aware of the need to rebuild ties with the outgoing chancellor, President Biden has taken pains.",
            ),
        ),
    ],
    ids=["lead-cut-short", "headline-reworded", "cnn-same-headline-no-lead", "nyt-reissue"],
)
def test_the_same_story_told_twice(a, b):
    assert same_story(a, b) and same_story(b, a)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (
            story(
                "North Korea fires ballistic missile towards sea, South Korea says",
                "North Korea fired a short-range ballistic missile off its east coast on Sunday, South Korea's military said.",
            ),
            story(
                "North Korea fires two ballistic missiles, Japan says",
                "North Korea launched two ballistic missiles into the sea off its east coast on Tuesday, Japan's defence ministry said.",
            ),
        ),
        (
            story(
                "Coronavirus Briefing: What Happened Today", "Vaccination rates rose in the South."
            ),
            story(
                "Coronavirus Briefing: What Happened Today",
                "Schools in New York will reopen fully in the fall.",
            ),
        ),
        (
            story(
                "Flood warnings issued for the Severn",
                "Read the full story on our website for all the details.",
            ),
            story("Markets calm today", "Read the full story on our website for all the details."),
        ),
        (story("Live updates"), story("Live updates")),
    ],
    ids=[
        "two-missile-stories",
        "daily-briefing-same-headline",
        "boilerplate-lead",
        "short-generic-headline",
    ],
)
def test_different_stories_stay_apart(a, b):
    assert not same_story(a, b)


def test_a_new_headline_or_lead_is_a_material_change():
    base = story(SEED_TITLE, SEED_LEAD)
    assert material_change(base, story("Putin and Kim Sign Mutual Defense Pact", SEED_LEAD))
    assert material_change(
        base, story(SEED_TITLE, "Putin and Kim signed a pact pledging mutual defense.")
    )
    # The whole lead after a cut-short one, or punctuation and case, is not.
    assert not material_change(story(SEED_TITLE, SEED_LEAD[:120] + "..."), base)
    assert not material_change(base, story(SEED_TITLE.upper(), SEED_LEAD))


@pytest.mark.parametrize(
    ("headline", "urgent"),
    [
        ("BREAKING: Explosion reported in Seoul", True),
        ("Breaking: Explosion reported in Seoul", True),
        ("URGENT North Korea fires missile", True),
        ("FLASH - Kremlin confirms talks", True),
        ("Breaking news | Markets fall", True),
        ("Alert issued as typhoon nears Okinawa", False),
        ("Breaking the silence: a memoir", False),
        ("Flash floods hit Pakistan", False),
    ],
)
def test_urgency_is_read_from_wire_style_headlines(headline, urgent):
    from bot.core.cards import is_urgent

    assert is_urgent(headline) is urgent


# Stored keys: a database written by an earlier version must still recognise its stories, so
# the values may never change, whatever is done to make computing them cheaper.
PINNED_STORY = Story(
    feed="Wire",
    title="Magnitude 7.1 earthquake strikes off northern Japan coast",
    link="https://www.news.example/2026/quake-japan/?utm_source=rss",
    guid="wire-1",
    summary=(
        "A magnitude 7.1 earthquake struck off the northern coast of Japan on Tuesday, "
        "the meteorological agency said."
    ),
)
PINNED_STRONG = [-3010769079266282851, -2445172015924034387]
PINNED_FUZZY = [
    8106104630750934689,
    -3621359497980128871,
    -4118785053400007782,
    2871210886523464804,
    1708906795174739569,
    393197325202210032,
    7154222652580289501,
    -8125881894050407195,
    8489359711733517746,
    -5097024561526623517,
    593324671570942548,
    7796678527745881577,
    250931276386664197,
]


def test_identity_keys_never_change():
    assert [k.value for k in strong_keys(PINNED_STORY, 7, guid_unique=True)] == PINNED_STRONG
    assert [k.value for k in fuzzy_keys(PINNED_STORY)] == PINNED_FUZZY
    # A worker's whole-document pass gives the same keys as the functions one by one.
    (item,) = identify([PINNED_STORY]).items
    assert [k.value for k in item.fuzzy] == PINNED_FUZZY


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_identity_words_are_the_tokenizer_words(text):
    assert list(words(text)) == [t.norm for t in tokenize(text)]


@settings(max_examples=200, deadline=None)
@given(st.frozensets(st.text(min_size=1, max_size=30), min_size=1, max_size=60))
def test_minhash_is_the_textbook_minimum_per_hash_function(shingle_set):
    bases = [zlib.crc32(s.encode("utf-8", "surrogatepass")) for s in shingle_set]
    textbook = [min((a * x + b) % identity._PRIME for x in bases) for a, b in identity._COEFFS]
    rows = identity._ROWS
    expected = [
        identity._hash64("band", str(band), *map(str, textbook[band * rows : (band + 1) * rows]))
        for band in range(identity._BANDS)
    ]
    assert minhash_bands(shingle_set) == expected


def test_minhash_in_64_bit_lanes_is_exact_where_a_carry_or_a_wrap_would_show():
    # The arithmetic runs in numpy's uint64 (bot.core.identity._lanes_minima): at the ends of
    # the CRC range, at the largest coefficients, and at sums that land on the prime itself.
    p = identity._PRIME

    def lanes(bases, coeffs):
        return identity._lanes_minima(bases, *identity._lanes_of(coeffs))

    def textbook(bases, coeffs):
        return [min((a * x + b) % p for x in bases) for a, b in coeffs]

    rng = random.Random(13)
    ends = [0, 1, 2, 0xFFFF_FFFF, 0xFFFF_FFFE, 1 << 31]
    bases = ends + [rng.getrandbits(32) for _ in range(500)]
    for x in bases:
        assert lanes([x], identity._COEFFS) == textbook([x], identity._COEFFS)
    big = [(p - 1, p - 1), (p - 2, 0), ((1 << 60) + 1, p - 2), (1, 0)]
    assert lanes(ends, big) == textbook(ends, big)
    # a*x + b = p, p + 1 and p - 1: remainders 0, 1 and p - 1.
    x = 0xFFFF_FFFF
    exact = [(1, p - x), (1, p - x + 1), (1, p - x - 1)]
    assert lanes([x], exact) == [0, 1, p - 1]


def test_the_fingerprints_kept_for_later_comparisons_stay_within_a_memory_budget():
    # The writing process keeps the prints of recent stories (the near-duplicate candidates
    # of the next polls). Bounded by their number, 8,192 news-sized prints held 180 MB; the
    # budget is by size: a first cycle of a thousand feeds of long leads must stay small.
    rng = random.Random(5)
    vocabulary = [f"{rng.choice('bcdfgklmnprst')}{rng.choice('aeiou')}{n}" for n in range(5000)]

    def story(n: int) -> Story:
        title = " ".join(rng.choices(vocabulary, k=12))
        lead = " ".join(rng.choices(vocabulary, k=90))
        return Story("Wire", title, f"https://w.example/{n}", f"g{n}", lead, lead)

    stories = [story(n) for n in range(6000)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for s in stories:
            identity.fingerprint(s)  # computed here, and kept
        identity.words.cache_clear()  # its own bound; only the prints are measured
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < 45_000_000, f"{held / 1e6:.0f} MB held by the kept fingerprints"
    # And the newest are the ones kept: the last story's print is found, not recomputed.
    last = stories[-1]
    assert identity.fingerprint(last) is identity._PRINTS[(last.title, last.summary)]


def test_a_print_holds_each_word_pair_of_the_lead_once_even_after_the_pipe():
    # Most of the headline-and-lead pairs are the lead's: the same strings, not copies, in
    # the parse worker and in the bot after unpickling (memory, and the pickle's size).
    story = Story(
        "Wire",
        "Floods close the Rhine to shipping at Kaub",
        "https://w.example/1",
        "g1",
        "Barges were halted on Tuesday as the Rhine rose past the marker at Kaub, a key "
        "chokepoint for fuel and grain shipments into southern Germany.",
    )
    made = identity.text_print(story.title, story.summary)
    for print_ in (made, pickle.loads(pickle.dumps(made))):
        lead = {id(pair) for pair in print_.lead}
        shared = [pair for pair in print_.full if pair in print_.lead]
        assert len(shared) == len(print_.lead) > 10
        assert all(id(pair) in lead for pair in shared)


_WORDS = st.sampled_from(["kim", "jong", "un", "china", "team", "medical", "north", "korea", "the"])


@settings(max_examples=300, deadline=None)
@given(
    st.lists(_WORDS, min_size=0, max_size=8),
    st.lists(_WORDS, min_size=0, max_size=8),
    st.lists(_WORDS, min_size=0, max_size=14),
    st.lists(_WORDS, min_size=0, max_size=14),
    st.booleans(),
)
def test_a_candidate_refused_on_its_headline_alone_is_never_the_same_story(ta, tb, la, lb, co):
    # The planner reads a candidate's headline before it makes the candidate's print (the
    # costly part): that shortcut must never refuse a story same_story would accept.
    a = Story("A", " ".join(ta), None, None, " ".join(la))
    b = Story("B", " ".join(tb), None, None, " ".join(lb))
    allowed = identity.headlines_allow(
        identity.words(a.title), identity.words(b.title), co_listed=co
    )
    if not allowed:
        assert not identity.same_story(a, b, co_listed=co)


def test_a_parse_workers_caches_are_emptied_past_their_bounds_and_kept_below(monkeypatch):
    # A parse worker reads most texts once: between documents it bounds its caches (about
    # 120 MB each at the writing process's sizes after a first poll of 1,000 news feeds),
    # while a bulletin feed's small vocabulary stays cached.
    monkeypatch.setattr(identity, "PRINTS_WEIGHT", identity.PRINTS_WEIGHT)  # restored after
    identity.words.cache_clear()
    bulletin = Story(
        "Quakes", "M 4.2 earthquake near Kobe", "https://q.example/1", None, "Depth 10 km"
    )
    identity.fuzzy_keys(bulletin)
    held_words = identity.words.cache_info().currsize
    identity.bound_caches(words_kept=100, prints_weight=1_000_000)
    assert identity.words.cache_info().currsize == held_words  # under the bounds: kept

    for n in range(300):
        identity.fuzzy_keys(
            Story(
                "Wire",
                f"Story {n} of many words {n * 7}",
                f"https://w.example/{n}",
                None,
                f"Lead {n} with {n + 1} more words",
            )
        )
    assert identity.words.cache_info().currsize > 100
    identity.bound_caches(words_kept=100, prints_weight=50)
    assert identity.words.cache_info().currsize == 0
    assert identity._prints_weight <= 50
    for n in range(20):  # and the prints kept from now on stay within the new bound
        identity.fingerprint(
            Story(
                "Wire",
                f"Another story {n} told",
                f"https://w.example/a{n}",
                None,
                f"Its lead {n} here",
            )
        )
    assert 0 < identity._prints_weight <= 50


def test_the_bots_own_process_does_not_load_numpy_until_minhash_runs():
    # numpy (about 14 MB of the writing process's RSS, whose peak in a simulated month is held
    # under 250 MB: BENCHMARKS.md) is for MinHash, which the parse workers compute.
    probe = (
        "import sys, bot.app, bot.cli, bot.runtime\n"
        "before = 'numpy' in sys.modules\n"
        "from bot.core.identity import minhash_bands\n"
        "minhash_bands(frozenset(['a b', 'b c']))\n"
        "print(before, 'numpy' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert done.stdout.split() == ["False", "True"]
