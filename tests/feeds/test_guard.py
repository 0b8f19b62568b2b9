"""The address guard's policy: which addresses a feed added from chat may reach.

The fetch-level tests go through HttpFetcher with IP-literal URLs: the guard refuses them at
resolution, before any connection, so they need no network. The table tests cover the public
forms that must stay reachable (no connection is made for those either)."""

from __future__ import annotations

import ipaddress
from datetime import timedelta

import pytest

from bot.core.models import FeedState, Origin
from bot.core.ports import FetchStatus
from bot.feeds.fetch import FetchLimits, HttpFetcher
from bot.feeds.guard import AddressGuard, BlockedAddress

REFUSED = {
    # IETF protocol assignments: Python's ipaddress calls most of 192.0.0.0/24 global.
    "192.0.0.192": "special-purpose",
    "192.0.0.9": "special-purpose",
    "192.88.99.1": "6to4 relay",
    "[fec0::1]": "site-local",
    "[3fff::1]": "documentation",
    # 6to4 (2002::/16) embeds an IPv4 address, and relays deliver to it.
    "[2002:7f00:1::]": "a loopback address (127.0.0.1 inside a 6to4 address)",
    "[2002:a00:1::1]": "a private address (10.0.0.1 inside a 6to4 address)",
    "[2002:a9fe:a9fe::1]": "link-local address (cloud metadata lives here) (169.254.169.254",
    # NAT64: the gateway translates to the embedded address.
    "[64:ff9b::7f00:1]": "a loopback address (127.0.0.1 inside a NAT64 address)",
    "[64:ff9b::a9fe:a9fe]": "169.254.169.254 inside a NAT64 address",
    "[64:ff9b:1::a00:1]": "local-use NAT64",
    "[::ffff:127.0.0.1]": "a loopback address (127.0.0.1 inside an IPv4-mapped address)",
    "[::ffff:c000:c0]": "special-purpose",
}


@pytest.mark.parametrize("host", list(REFUSED), ids=list(REFUSED))
async def test_a_chat_feed_cannot_reach_special_or_embedded_private_addresses(host):
    feed = FeedState(
        id=1,
        name="Sneaky",
        url=f"http://{host}:8080/feed.xml",
        interval=timedelta(minutes=5),
        origin=Origin.CHAT,
    )

    async with HttpFetcher(FetchLimits(timeout=timedelta(seconds=2))) as fetcher:
        result = await fetcher.fetch(feed)

    assert result.status == FetchStatus.ERROR
    address = ipaddress.ip_address(host.strip("[]"))
    assert (result.error or "").startswith(f"refusing to connect to {address}:"), result.error
    assert REFUSED[host] in (result.error or "")


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "2620:4f:8000::1",
        "2002:808:808::1",  # 6to4 for a public IPv4 address: that public host
        "64:ff9b::808:808",  # NAT64 for a public IPv4 address: DNS64 networks depend on it
        "::ffff:8.8.8.8",
    ],
)
def test_public_addresses_in_any_form_are_allowed(address):
    AddressGuard().check(address)


def test_an_allowed_network_is_allowed_in_its_ipv6_forms_too():
    guard = AddressGuard(allow=["10.0.0.0/8"])

    guard.check("10.0.0.5")
    guard.check("::ffff:10.0.0.5")
    guard.check("2002:a00:5::1")
    with pytest.raises(BlockedAddress, match=r"127\.0\.0\.1 inside a 6to4 address"):
        guard.check("2002:7f00:1::")
