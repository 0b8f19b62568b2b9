"""The SSRF guard for feeds added from chat: no loopback, private, link-local, multicast or
cloud-metadata addresses, unless the config allows a network explicitly.

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


def _category(addr: IPAddress) -> str | None:
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return _category(addr.ipv4_mapped)
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
        if reason and not any(addr in net for net in self.allow):
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
