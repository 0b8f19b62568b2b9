"""WebSub's pure parts: finding a feed's hub and topic, and checking a push's signature, on
ordinary and hostile input."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from bot.feeds.websub import HEAD_BYTES, Advert, discover, signature_ok

FEED_URL = "https://wire.example/feeds/world.xml"


def atom(head: str, entries: str = "") -> bytes:
    return (
        '<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom">'
        f"<title>W</title>{head}{entries}</feed>"
    ).encode()


def test_an_atom_feed_names_its_hub_and_its_self_url():
    body = atom(
        '<link rel="self" href="https://wire.example/world"/>'
        "<link rel='hub' href='https://hub.example/'/>"
    )
    assert discover(body, {}, FEED_URL) == Advert(
        "https://hub.example/", "https://wire.example/world"
    )


def test_an_rss_feed_names_them_with_atom_link_and_relative_urls_resolve():
    body = (
        b'<rss version="2.0"><channel><title>W</title>'
        b'<atom:link xmlns:atom="http://www.w3.org/2005/Atom" rel="hub" href="/hub?a=1&amp;b=2"/>'
        b"<item><title>x</title></item></channel></rss>"
    )
    advert = discover(body, {}, FEED_URL)
    # No self link: the topic is the document's own URL.
    assert advert == Advert("https://wire.example/hub?a=1&b=2", FEED_URL)


def test_the_link_header_comes_first_and_may_list_several_links():
    headers = {
        "Link": '<https://wire.example/self>; rel="self", <https://hub.example/h>; rel="hub"'
    }
    body = atom('<link rel="hub" href="https://other-hub.example/"/>')
    assert discover(body, headers, FEED_URL) == Advert(
        "https://hub.example/h", "https://wire.example/self"
    )
    # One rel naming two relations, unquoted, in any letter case.
    header = {"link": "<https://hub.example/>; REL=hub"}
    assert discover(b"<rss/>", header, FEED_URL) == Advert("https://hub.example/", FEED_URL)


@pytest.mark.parametrize(
    "head",
    [
        "",  # no hub at all
        '<link rel="alternate" href="https://hub.example/"/>',
        '<link rel="hub" href="javascript:alert(1)"/>',  # not a web address
        '<link rel="hub" href="file:///etc/passwd"/>',
        '<link rel="hub"/>',  # no address
        '<link href="https://hub.example/"/>',  # no relation
    ],
)
def test_no_usable_hub_is_no_advert(head):
    assert discover(atom(head), {}, FEED_URL) is None


def test_a_file_feed_without_a_web_address_of_its_own_has_no_topic():
    body = atom('<link rel="hub" href="https://hub.example/"/>')
    assert discover(body, {}, "file:///srv/feeds/world.xml") is None
    with_self = atom(
        '<link rel="hub" href="https://hub.example/"/><link rel="self" href="https://w.example/f"/>'
    )
    assert discover(with_self, {}, "file:///srv/feeds/world.xml") == Advert(
        "https://hub.example/", "https://w.example/f"
    )


def test_a_hub_named_inside_an_item_is_not_the_feeds():
    entry = '<entry><title>x</title><link rel="hub" href="https://evil.example/"/></entry>'
    assert discover(atom("", entry), {}, FEED_URL) is None
    broken = {"Link": "<https://hub.example/; rel=hub", "X": "y"}  # an unclosed target
    assert discover(b"\xff\xfe<<<not xml at all", broken, FEED_URL) is None


SECRET = "the-subscription-secret"
BODY = b"<rss>pushed</rss>"


def sign(method: str, body: bytes = BODY, secret: str = SECRET) -> str:
    return f"{method}={hmac.new(secret.encode(), body, method).hexdigest()}"


@pytest.mark.parametrize("method", ["sha1", "sha256", "sha384", "sha512"])
def test_each_signature_method_of_websub_is_checked(method):
    assert signature_ok(SECRET, BODY, sign(method))
    assert signature_ok(SECRET, BODY, sign(method).upper().replace(method.upper(), method))
    assert not signature_ok(SECRET, BODY + b" ", sign(method))
    assert not signature_ok("another-secret", BODY, sign(method))


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "sha256",
        "sha256=",
        "md5=" + hashlib.md5(BODY).hexdigest(),  # a method WebSub does not allow
        sign("sha256")[:-2],
        sign("sha256").replace("sha256=", "sha512="),
        "sha256=é" + sign("sha256")[8:],  # not ASCII
    ],
)
def test_a_missing_malformed_or_foreign_signature_is_refused(header):
    assert not signature_ok(SECRET, BODY, header)


@pytest.mark.timeout(20)
def test_a_head_of_unclosed_link_openers_costs_one_pass():
    # A hostile or broken feed: "<link" after "<link" with no ">" in the part of the head that
    # is read (HEAD_BYTES; the comment closes beyond it). Discovery runs on the event loop after
    # each poll: a rescan from every opener took 45 s on this, every chat connection and
    # delivery frozen meanwhile.
    hub = "<link rel='hub' href='https://hub.example/'/>"
    body = atom(hub + "<!--" + "<link " * 50_000 + "-->")
    assert len(body) > HEAD_BYTES
    assert discover(body, {}, FEED_URL) == Advert("https://hub.example/", FEED_URL)
