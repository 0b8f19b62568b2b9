"""bot.core.text: clean text out of feed markup, and cut it without breaking words."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.text import ELLIPSIS, SUMMARY_LIMIT, clean_body, clean_text, summarise, truncate

# --- clean_text ----------------------------------------------------------------------------------

CLEAN = [
    # markup
    pytest.param("<p>Hello <b>big <i>world</i></b></p>", "Hello big world", id="nested-tags"),
    pytest.param("Pyong<b>yang</b> fires", "Pyongyang fires", id="inline-tag-keeps-the-word"),
    pytest.param("<p>one</p><p>two</p>", "one two", id="block-tags-keep-words-apart"),
    pytest.param("one<br>two<br/>three", "one two three", id="line-breaks-become-spaces"),
    pytest.param("<ul><li>a</li><li>b</li></ul>", "a b", id="list-items"),
    pytest.param(
        '<a href="https://x.example/?a=1&amp;b=2" title="t">link</a> text',
        "link text",
        id="attributes-dropped",
    ),
    pytest.param("<script>alert('x')</script>News", "News", id="script-dropped"),
    pytest.param("<SCRIPT>alert(1)</SCRIPT>Shout", "Shout", id="uppercase-script-dropped"),
    pytest.param("<style>p { color: red }</style>Text", "Text", id="style-dropped"),
    pytest.param("Before <noscript>enable js</noscript>after", "Before after", id="noscript"),
    pytest.param("a<!-- comment -->b", "ab", id="comment-dropped"),
    pytest.param("<p></p>", "", id="only-markup"),
    # entities, once or more
    pytest.param("It&#39;s", "It's", id="numeric-entity"),
    pytest.param("&#x2019;Quote&#8217;", "’Quote’", id="hex-and-decimal-entities"),
    pytest.param("Smith &mdash; Jones", "Smith — Jones", id="named-entity"),
    pytest.param("&#128512; party", "😀 party", id="astral-entity"),
    pytest.param("It&amp;#39;s", "It's", id="double-escaped-numeric"),
    pytest.param("Rock &amp;amp; roll", "Rock & roll", id="double-escaped-amp"),
    pytest.param("It&amp;amp;#39;s", "It's", id="triple-escaped"),
    pytest.param("&lt;b&gt;Slack&lt;/b&gt; rises", "Slack rises", id="escaped-markup"),
    pytest.param(
        "&amp;lt;b&amp;gt;Slack&amp;lt;/b&amp;gt; rises",
        "Slack rises",
        id="double-escaped-markup",
    ),
    pytest.param(
        "&lt;p&gt;One&lt;/p&gt;&lt;p&gt;Two&lt;/p&gt;", "One Two", id="escaped-paragraphs"
    ),
    # spaces
    pytest.param("a&nbsp;b", "a b", id="nbsp-entity"),
    pytest.param("a&nbsp;&nbsp; b", "a b", id="nbsp-run"),
    pytest.param("a\xa0b", "a b", id="raw-nbsp"),
    pytest.param("&amp;nbsp;Lead", "Lead", id="double-escaped-nbsp"),
    pytest.param("line\nbreak\r\n\ttab", "line break tab", id="newlines-and-tabs"),
    pytest.param("  padded   out  ", "padded out", id="surrounding-and-inner-runs"),
    pytest.param("\ufeffBOM", "BOM", id="byte-order-mark"),
    # text that only looks like markup stays as it is
    pytest.param("5 < 6 and 7 > 3", "5 < 6 and 7 > 3", id="comparison-signs"),
    pytest.param("AT&T and Fish & Chips", "AT&T and Fish & Chips", id="bare-ampersands"),
    pytest.param("&bogus; stays", "&bogus; stays", id="unknown-entity"),
    pytest.param("Kim Jong-un meets Putin", "Kim Jong-un meets Putin", id="plain-text"),
    pytest.param(None, "", id="none"),
    pytest.param("", "", id="empty"),
]


@pytest.mark.parametrize(("raw", "clean"), CLEAN)
def test_clean_text(raw, clean):
    assert clean_text(raw) == clean


HIDDEN = {
    "nul": "\x00",
    "bell": "\x07",
    "escape": "\x1b",
    "delete": "\x7f",
    "c1-control": "\x9b",
    "zero-width-space": "\u200b",
    "left-to-right-mark": "\u200e",
    "right-to-left-override": "\u202e",
    "word-joiner": "\u2060",
    "byte-order-mark": "\ufeff",
    # Bidirectional controls reorder what a reader sees: every one of them goes.
    "arabic-letter-mark": "\u061c",
    "right-to-left-mark": "\u200f",
    "left-to-right-embedding": "\u202a",
    "left-to-right-isolate": "\u2066",
    "right-to-left-isolate": "\u2067",
    "first-strong-isolate": "\u2068",
    "pop-directional-isolate": "\u2069",
    "soft-hyphen": "\u00ad",
    "mongolian-vowel-separator": "\u180e",
    "inhibit-symmetric-swapping": "\u206a",
    "interlinear-annotation-anchor": "\ufff9",
    "interlinear-annotation-separator": "\ufffa",
    "interlinear-annotation-terminator": "\ufffb",
}


@pytest.mark.parametrize("char", HIDDEN.values(), ids=HIDDEN.keys())
def test_control_and_zero_width_characters_do_not_survive(char):
    cleaned = clean_text(f"alpha{char}beta gamma{char}")

    assert char not in cleaned
    assert cleaned.replace(" ", "") == "alphabetagamma"
    assert cleaned == cleaned.strip()


def test_an_isolate_cannot_make_a_headline_display_out_of_order():
    # U+2067 RLI ... U+2069 PDI shows "Kremlin denies" after "report" in a client that honours it.
    assert clean_text("Putin \u2067Kremlin denies\u2069 report") == "Putin Kremlin denies report"


@pytest.mark.parametrize("separator", ["\u2028", "\u2029"], ids=["line", "paragraph"])
def test_line_and_paragraph_separators_are_a_space(separator):
    assert clean_text(f"Kim meets{separator}Putin{separator}") == "Kim meets Putin"


@pytest.mark.parametrize(
    "raw",
    ["Pyong\u200byang", "می\u200cخواهم", "👩\u200d💻", "Kim\u2060Jong"],
    ids=["zero-width-space", "zero-width-non-joiner", "zero-width-joiner", "word-joiner"],
)
def test_zero_width_characters_inside_a_word_do_not_split_it(raw):
    assert " " not in clean_text(raw)


@pytest.mark.parametrize(
    "raw",
    ["<![CDATA[Kim meets Putin]]>", "&lt;![CDATA[Kim meets Putin]]&gt;"],
    ids=["cdata-left-in-text", "escaped-cdata"],
)
def test_cdata_leftovers_keep_their_text(raw):
    assert clean_text(raw) == "Kim meets Putin"


# --- truncate ------------------------------------------------------------------------------------

TRUNCATE = [
    pytest.param("Hello", 50, "Hello", id="shorter-than-the-limit-unchanged"),
    pytest.param("Hello", 5, "Hello", id="exactly-the-limit-unchanged"),
    pytest.param("", 10, "", id="empty"),
    pytest.param("Hello world foo bar", 10, "Hello…", id="cut-at-a-word"),
    pytest.param("Word1 word2 word3", 12, "Word1 word2…", id="space-right-at-the-cut"),
    pytest.param("Kim Jong-un meets Putin", 14, "Kim Jong-un…", id="hyphenated-word-kept-whole"),
    pytest.param("Hello, world and more", 8, "Hello…", id="trailing-comma-dropped"),
    pytest.param("Talks end - early", 13, "Talks end…", id="trailing-dash-dropped"),
    pytest.param("中文" * 20, 10, "中文中文中文中文中…", id="cjk-cut-at-a-character"),
    pytest.param("東京で会談した。" * 5, 12, "東京で会談した。東京で…", id="japanese"),
    pytest.param("x" * 50, 10, "x" * 9 + ELLIPSIS, id="one-long-word-cut-rather-than-lost"),
    pytest.param(
        "https://example.com/a/very/long/path/to/a/story",
        20,
        "https://example.com…",
        id="long-url-cut",
    ),
    pytest.param("a b", 1, ELLIPSIS, id="limit-of-one"),
    pytest.param("abc", 0, "", id="limit-of-zero"),
]


@pytest.mark.parametrize(("text", "limit", "cut"), TRUNCATE)
def test_truncate(text, limit, cut):
    result = truncate(text, limit)

    assert result == cut
    assert len(result) <= max(limit, 0)


SUMMARISE = [
    pytest.param("The cat sat. The dog ran far away", 20, "The cat sat.", id="prefers-a-sentence"),
    pytest.param("Really? Yes! It is true and more", 20, "Really? Yes!", id="question-exclamation"),
    pytest.param(
        "He said “Stop.” Then he left town", 20, "He said “Stop.”", id="closing-quote-kept"
    ),
    pytest.param("中文句子。然后更多的中文内容在这里", 10, "中文句子。", id="cjk-full-stop"),
    pytest.param(
        "Hi. alpha beta gamma delta epsilon zeta eta",
        30,
        "Hi. alpha beta gamma delta…",
        id="sentence-too-early-falls-back-to-a-word",
    ),
    pytest.param(
        "Prices rose 3.5 percent in March",
        20,
        "Prices rose 3.5…",
        id="decimal-point-is-not-a-sentence-end",
    ),
    pytest.param("Short lead.", 300, "Short lead.", id="short-lead-unchanged"),
]


@pytest.mark.parametrize(("text", "limit", "lead"), SUMMARISE)
def test_summarise(text, limit, lead):
    assert summarise(text, limit) == lead


def test_summarise_defaults_to_300_characters_ending_at_a_sentence():
    text = " ".join(f"Sentence number {n} says something about the talks." for n in range(40))

    lead = summarise(text)

    assert SUMMARY_LIMIT == 300
    assert len(lead) <= 300
    assert lead.endswith("talks.")
    assert text.startswith(lead)


SAMPLES = {
    "english": (
        "The quick brown fox jumps over the lazy dog. Then it naps, happily; nobody minds - "
        "not even the farmer, who is asleep too!"
    ),
    "russian": (
        "Путин и Ким Чен Ын встретились во Владивостоке. Переговоры длились три часа, "
        "сообщает Кремль."
    ),
    "punctuated": "Kim Jong-un meets Putin: state-of-the-art talks (with U.S. observers) end early!",
}
_SENTENCE_END = re.compile(r"[.!?。！？][\"'”’)\]]*$")


@pytest.mark.parametrize("prefer_sentence", [False, True], ids=["word", "sentence"])
@pytest.mark.parametrize("text", SAMPLES.values(), ids=SAMPLES.keys())
def test_every_limit_is_respected_and_no_word_is_broken(text, prefer_sentence):
    for limit in range(1, len(text) + 2):
        result = truncate(text, limit, prefer_sentence=prefer_sentence)

        assert len(result) <= limit, (limit, result)
        if len(text) <= limit:
            assert result == text
            continue
        if result.endswith(ELLIPSIS):
            head = result[: -len(ELLIPSIS)]
        else:
            assert prefer_sentence, (limit, result)
            assert _SENTENCE_END.search(result), (limit, result)
            head = result
        assert text.startswith(head), (limit, result)
        if " " in text[1:limit]:  # a word boundary was within reach
            assert not (head[-1:].isalnum() and text[len(head)].isalnum()), (limit, result)


# --- clean_body: paragraphs kept, publisher boilerplate dropped (issue 13, part 5) --------------

BODY = [
    pytest.param(
        "<p>to the global south</p><p>The UN general assembly</p>",
        "to the global south\n\nThe UN general assembly",
        id="paragraphs-are-not-run-together",
    ),
    pytest.param("one<br>two<br/>three", "one\n\ntwo\n\nthree", id="line-breaks"),
    pytest.param("<ul><li>a</li><li>b</li></ul>", "a\n\nb", id="list-items"),
    pytest.param("<div>a</div><div> </div><div>b</div>", "a\n\nb", id="empty-blocks-dropped"),
    pytest.param(
        "&lt;p&gt;escaped&lt;/p&gt;&lt;p&gt;twice&lt;/p&gt;", "escaped\n\ntwice", id="escaped-html"
    ),
    pytest.param("Pyong<b>yang</b> fires", "Pyongyang fires", id="inline-tag-keeps-the-word"),
    pytest.param(
        '<p>Lead.</p> <a href="https://g.example/x">Continue reading...</a>',
        "Lead.",
        id="continue-reading",
    ),
    pytest.param("<p>Lead.</p><p>Read more »</p>", "Lead.", id="read-more"),
    pytest.param(
        '<p>Protests grow</p><ul><li><a href="https://g.example/ukraine">See all our Ukraine'
        ' coverage</a></li></ul> <a href="https://g.example/x">Continue reading...</a>',
        "Protests grow",
        id="see-all-our-coverage",
    ),
    pytest.param(
        "<p>Objects returned</p><p>Get our <a>free news app</a>, <a>morning email briefing</a>"
        " or <a>daily news podcast</a></p><p>Four objects will be returned.</p>",
        "Objects returned\n\nFour objects will be returned.",
        id="newsletter-promotion-in-the-middle",
    ),
    pytest.param(
        "<ul><li><a>Follow our Australia news live blog for the latest updates</a></li></ul>"
        "<p>Floods in NSW.</p>",
        "Floods in NSW.",
        id="live-blog-promotion",
    ),
    pytest.param(
        "<p>Speech analysed.</p><p> <span>Related: </span><a>Fact check: the address</a> </p>",
        "Speech analysed.",
        id="related-link",
    ),
    pytest.param(
        "Officials said the report was ready. Continue reading…",
        "Officials said the report was ready.",
        id="trailing-call-in-the-last-paragraph",
    ),
    pytest.param(
        "Experts say people should read more",
        "Experts say people should read more",
        id="ordinary-words-stay",
    ),
    pytest.param(
        "<p>Get our free news app, says the minister, who spent the week announcing a state"
        " programme that pays for every household in the region to be connected to the"
        " national broadband network, at a cost the opposition puts at several billion dollars"
        " over the next decade.</p>",
        "Get our free news app, says the minister, who spent the week announcing a state"
        " programme that pays for every household in the region to be connected to the"
        " national broadband network, at a cost the opposition puts at several billion dollars"
        " over the next decade.",
        id="a-long-paragraph-is-never-a-promotion",
    ),
    pytest.param("<p>Continue reading...</p>", "", id="nothing-but-boilerplate"),
    pytest.param("a\ue000b", "ab", id="break-marker-cannot-be-forged"),
]


@pytest.mark.parametrize(("raw", "expected"), BODY)
def test_clean_body(raw, expected):
    assert clean_body(raw) == expected


# Every Unicode whitespace character (what `\s` matches), words, and nothing that is markup, an
# entity or a control character.
_SPACES = [chr(c) for c in range(0x110000) if chr(c).isspace()]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.sampled_from(_SPACES),
            st.text(st.characters(categories=("L", "N", "Zs")), min_size=1, max_size=8),
        ),
        max_size=30,
    ).map("".join)
)
def test_every_run_of_whitespace_becomes_one_space(raw):
    assert clean_text(raw) == re.sub(r"\s+", " ", raw).strip()


def test_clean_text_stays_on_one_line():
    assert clean_text("<p>to the global south</p><p>The UN</p>") == "to the global south The UN"


def test_a_lead_ends_where_its_paragraph_ends():
    standfirst = "Prince Faisal decries as cynical accusations about the country's image " * 3
    body = clean_body(f"<p>{standfirst}</p><p>{'it would be cynical to see it so ' * 8}.</p>")
    summary = summarise(body)
    assert summary == standfirst.strip()


def test_a_lead_cut_mid_paragraph_never_ends_on_a_break():
    body = clean_body(f"<p>Short standfirst</p><p>{'word ' * 100}</p>")
    summary = summarise(body)
    assert summary.startswith("Short standfirst\n\nword")
    assert summary.endswith("word" + ELLIPSIS)
