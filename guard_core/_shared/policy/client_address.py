"""Who is the client? The peer address, or the address trusted proxies say they forwarded for.

Pure (no I/O); both faces' request checks use it. A peer that is not an IP address (a Unix
socket, Starlette's TestClient's `"testclient"`) gives no client address rather than an
error: the request check then skips the IP-based steps.

Forwarding headers are believed only as far as the proxies that wrote them are trusted: the
resolver walks the chain from the right (the peer, then the addresses each proxy appended),
stepping over at most `hops` trusted proxies, and stops at the first address it does not
trust. A client can prepend anything to `X-Forwarded-For`; it cannot change what a trusted
proxy appended after it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from ipaddress import IPv6Address, IPv6Network

from guard_core._shared.addresses import IPAddress, IPNetwork, parse_ip, parse_network

#: Headers read for the forwarding chain, first present wins.
FORWARDED = "forwarded"
X_FORWARDED_FOR = "x-forwarded-for"
#: Longest forwarding header read, in characters (a longer one is cut at a comma).
MAX_HEADER_LENGTH = 4096


def parse_node(text: str) -> IPAddress | None:
    """The address in one forwarding entry: `1.2.3.4`, `1.2.3.4:80`, `[2001:db8::1]:443`,
    `2001:db8::1`, quoted or not; `None` for `unknown`, obfuscated names and anything else."""
    value = text.strip().strip('"').strip()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        value = value[1:end]
    elif value.count(":") == 1:  # IPv4 with a port
        value = value.partition(":")[0]
    try:
        return parse_ip(value)
    except (ValueError, TypeError):
        return None


def forwarded_for(header: str) -> list[IPAddress | None]:
    """The `for=` addresses of a `Forwarded` header (RFC 7239), in order; `None` for an
    element without a usable one."""
    found: list[IPAddress | None] = []
    for element in header[:MAX_HEADER_LENGTH].split(","):
        node: IPAddress | None = None
        for pair in element.split(";"):
            name, _, value = pair.partition("=")
            if name.strip().lower() == "for":
                node = parse_node(value)
        found.append(node)
    return found


def x_forwarded_for(header: str) -> list[IPAddress | None]:
    """The addresses of an `X-Forwarded-For` header, in order; `None` for unusable entries."""
    return [parse_node(entry) for entry in header[:MAX_HEADER_LENGTH].split(",")]


def group_address(address: IPAddress, ipv6_prefix: int | None) -> str:
    """The rate-limit identity of an address: IPv4 as it is, IPv6 as its /`ipv6_prefix`
    network (one host usually holds a whole /64), or as it is when `ipv6_prefix` is None."""
    if ipv6_prefix is None or not isinstance(address, IPv6Address):
        return str(address)
    return str(IPv6Network((address, ipv6_prefix), strict=False))


def check_ipv6_prefix(prefix: object) -> int | None:
    if prefix is None:
        return None
    if isinstance(prefix, bool) or not isinstance(prefix, int):
        raise TypeError(f"ipv6_prefix must be an int or None, not {type(prefix).__name__}")
    if not 1 <= prefix <= 128:
        raise ValueError(f"ipv6_prefix must be between 1 and 128 (got {prefix})")
    return prefix


class ClientAddressResolver:
    """Finds the client address of a request from its peer and forwarding headers.

    `trusted_proxies` are addresses or CIDR networks whose forwarding headers are believed;
    `hops` is the most proxies stepped over (the depth of the proxy chain in front of the
    application). With no trusted proxies, the peer is the client.
    """

    def __init__(self, trusted_proxies: Iterable[str] = (), *, hops: int = 1) -> None:
        if isinstance(trusted_proxies, str):
            raise TypeError("trusted_proxies must be a list of addresses or networks, not a str")
        self.trusted: tuple[IPNetwork, ...] = tuple(parse_network(p) for p in trusted_proxies)
        if isinstance(hops, bool) or not isinstance(hops, int):
            raise TypeError(f"hops must be an int, not {type(hops).__name__}")
        if not 1 <= hops <= 32:
            raise ValueError(f"hops must be between 1 and 32 (got {hops})")
        self.hops = hops

    def is_trusted(self, address: IPAddress) -> bool:
        return any(address.version == n.version and address in n for n in self.trusted)

    def resolve(self, peer: str | None, headers: Mapping[str, str]) -> IPAddress | None:
        """The client address, or `None` when the peer (or the entry a trusted proxy
        wrote) is not an IP address. `headers` has lower-case names."""
        if peer is None:
            return None
        current = parse_node(peer) if peer.startswith("[") else _parse_or_none(peer)
        if current is None or not self.trusted:
            return current
        chain: list[IPAddress | None] = []
        if FORWARDED in headers:
            chain = forwarded_for(headers[FORWARDED])
        elif X_FORWARDED_FOR in headers:
            chain = x_forwarded_for(headers[X_FORWARDED_FOR])
        steps = 0
        while self.is_trusted(current) and steps < self.hops and chain:
            previous = chain.pop()
            steps += 1
            if previous is None:
                return None  # a trusted proxy forwarded for something that is no address
            current = previous
        return current


def _parse_or_none(text: str) -> IPAddress | None:
    try:
        return parse_ip(text)
    except (ValueError, TypeError):
        return None


def address_in(address: IPAddress, networks: Iterable[IPNetwork]) -> bool:
    """Whether `address` is in one of `networks`."""
    return any(address.version == n.version and address in n for n in networks)


def parse_networks(what: str, values: Iterable[str]) -> tuple[IPNetwork, ...]:
    """Addresses or CIDRs as networks (a bare address is a /32 or /128)."""
    if isinstance(values, str):
        raise TypeError(f"{what} must be a list of addresses or networks, not a str")
    networks = []
    for value in values:
        try:
            networks.append(parse_network(value))
        except ValueError as exc:
            raise ValueError(f"{what}: {exc}") from None
    return tuple(networks)


def lower_headers(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Header pairs as a dict with lower-case names; repeated headers joined with ', '."""
    headers: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


__all__ = [
    "ClientAddressResolver",
    "address_in",
    "check_ipv6_prefix",
    "forwarded_for",
    "group_address",
    "lower_headers",
    "parse_networks",
    "parse_node",
    "x_forwarded_for",
]
