"""The SSRF guard for feeds added from chat: no loopback, private, link-local, multicast,
special-purpose or cloud-metadata addresses, nor IPv6 forms that lead to one (IPv4-mapped, 6to4,
NAT64), unless the config allows a network explicitly.

The check runs inside the connector on the addresses actually connected to: after DNS
resolution, for IP literals, and for every hop of a redirect chain (each hop opens its own
connection), so neither a DNS name pointing at 127.0.0.1 nor a redirect to 169.254.169.254
gets through."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import Any

import aiohttp

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class BlockedAddress(OSError):
    """Subclasses OSError so aiohttp reports it as a connection error carrying this reason."""


# What Python's ipaddress (3.11) counts as global but is not a public host: the IETF protocol
# assignments block (192.0.0.0/24: only two anycast services in it are reachable, none of them a
# feed), the deprecated 6to4 relay anycast, IPv6 site-local (deprecated, still routed inside
# some sites) and the IPv6 documentation range added in 2024.
_SPECIAL: tuple[tuple[IPNetwork, str], ...] = (
    (ipaddress.ip_network("192.0.0.0/24"), "a special-purpose address (IETF protocol assignments)"),
    (ipaddress.ip_network("192.88.99.0/24"), "a special-purpose address (6to4 relay anycast)"),
    (ipaddress.ip_network("fec0::/10"), "a site-local address"),
    (ipaddress.ip_network("3fff::/20"), "a reserved address (documentation)"),
    (ipaddress.ip_network("64:ff9b:1::/48"), "a private address (local-use NAT64)"),
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _embedded(addr: IPAddress) -> tuple[ipaddress.IPv4Address, str] | None:
    """The IPv4 address an IPv6 address stands for, where the network delivers it there: an
    IPv4-mapped address is that host, a 6to4 address (2002::/16) is routed to it through a
    relay, and a NAT64 address (64:ff9b::/96) is translated to it by the gateway."""
    if not isinstance(addr, ipaddress.IPv6Address):
        return None
    if addr.ipv4_mapped is not None:
        return addr.ipv4_mapped, "an IPv4-mapped address"
    if addr.sixtofour is not None:
        return addr.sixtofour, "a 6to4 address"
    if addr in _NAT64:
        return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF), "a NAT64 address"
    return None


def _category(addr: IPAddress) -> str | None:
    embedded = _embedded(addr)
    if embedded is not None:
        inner, kind = embedded
        reason = _category(inner)
        # A 6to4 or NAT64 form of a public IPv4 address is that public host: allowed, like it.
        return f"{reason} ({inner} inside {kind})" if reason else None
    for network, reason in _SPECIAL:
        if addr.version == network.version and addr in network:
            return reason
    if addr.is_loopback:
        return "a loopback address"
    if addr.is_link_local:
        return "a link-local address (cloud metadata lives here)"
    if addr.is_multicast:
        return "a multicast address"
    if addr.is_unspecified or addr.is_reserved:
        return "a reserved address"
    if addr.is_private or not addr.is_global:
        return "a private address"
    return None


class AddressGuard:
    def __init__(self, allow: Iterable[str] = ()) -> None:
        self.allow: tuple[IPNetwork, ...] = tuple(
            ipaddress.ip_network(n, strict=False) for n in allow
        )

    def check(self, host: str) -> None:
        try:
            addr = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            raise BlockedAddress(f"refusing to connect to unparsable address {host!r}") from None
        reason = _category(addr)
        embedded = _embedded(addr)
        # An allowed network is allowed in its IPv6 forms too (::ffff:10.0.0.5 is 10.0.0.5).
        candidates = (addr, embedded[0]) if embedded else (addr,)
        if reason and not any(a in net for a in candidates for net in self.allow):
            raise BlockedAddress(
                f"refusing to connect to {addr}: {reason} (feeds added from chat may only "
                "reach public addresses; an admin can allow a network in [fetch].allow_networks)"
            )

    def connector(self, **kwargs: Any) -> aiohttp.TCPConnector:
        return GuardedConnector(self, **kwargs)


class GuardedConnector(aiohttp.TCPConnector):
    def __init__(self, guard: AddressGuard, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._guard = guard

    async def _resolve_host(
        self, host: str, port: int, traces: Sequence[Any] | None = None
    ) -> list[Any]:
        # aiohttp's resolution step is the one place that sees every address the connection
        # will use, IP literals included (aiohttp itself notes it is where connector-level
        # policy belongs).
        results = await super()._resolve_host(host, port, traces)
        for result in results:
            self._guard.check(result["host"])
        return results
