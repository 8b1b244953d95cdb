"""Who is the client? The peer address, or the address trusted proxies say they forwarded for.

Pure (no I/O); both faces' request checks use it. A peer that is not an IP address (a Unix
socket, Starlette's TestClient's `"testclient"`) gives no client address rather than an
error: the request check then skips the IP-based steps.

Forwarding headers are believed only as far as the proxies that wrote them are trusted: the
resolver walks the chain from the right (the peer, then the addresses each proxy appended),
stepping over at most `hops` trusted proxies, and stops at the first address it does not
trust. A client can prepend anything to `X-Forwarded-For`; it cannot change what a trusted
proxy appended after it.

One header is read, the one the trusted proxies set (`header`: `X-Forwarded-For` by
default, or `Forwarded`); the other is ignored whatever it holds, so a client cannot pick
the header it would rather be believed in. The chain is bounded: a header of more than
`MAX_ENTRIES` entries or `MAX_HEADER_LENGTH` characters (several lines of it counted
together) arriving through a trusted proxy is untrusted, and the request is refused
(`Resolved.refused`): its rightmost entries could be read, but no proxy appends that many,
so a chain that long is a client's padding, and refusing it leaves no way to line the
padding up with `hops`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from ipaddress import IPv6Address, IPv6Network
from typing import NamedTuple

from guard_core._shared.addresses import IPAddress, IPNetwork, parse_ip, parse_network

#: The forwarding headers; `ClientAddressResolver(header=...)` names the one to read.
FORWARDED = "forwarded"
X_FORWARDED_FOR = "x-forwarded-for"
FORWARDING_HEADERS = (X_FORWARDED_FOR, FORWARDED)
#: Longest forwarding chain considered, in characters and in entries: a longer one is
#: untrusted (the request is refused).
MAX_HEADER_LENGTH = 8192
MAX_ENTRIES = 64


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


def _rightmost(header: str) -> list[str]:
    """The header's comma-separated entries, at most the last `MAX_HEADER_LENGTH`
    characters of it (a cut entry is dropped) and the last `MAX_ENTRIES` entries: the
    right end is what the proxies appended."""
    if len(header) <= MAX_HEADER_LENGTH:
        entries = header.split(",")
    else:
        entries = header[-MAX_HEADER_LENGTH:].split(",")[1:]
    return entries[-MAX_ENTRIES:]


def forwarded_for(header: str) -> list[IPAddress | None]:
    """The `for=` addresses of a `Forwarded` header (RFC 7239), in order; `None` for an
    element without a usable one. Quotes are not parsed across commas: a comma always ends
    an element, so a client's unclosed quote cannot swallow what a proxy appended."""
    found: list[IPAddress | None] = []
    for element in _rightmost(header):
        node: IPAddress | None = None
        for pair in element.split(";"):
            name, _, value = pair.partition("=")
            if name.strip().lower() == "for":
                node = parse_node(value)
        found.append(node)
    return found


def x_forwarded_for(header: str) -> list[IPAddress | None]:
    """The addresses of an `X-Forwarded-For` header, in order; `None` for unusable entries."""
    return [parse_node(entry) for entry in _rightmost(header)]


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


def check_forwarding_header(header: object) -> str:
    if not isinstance(header, str) or header.lower() not in FORWARDING_HEADERS:
        raise ValueError(
            f"forwarded_header must be 'x-forwarded-for' or 'forwarded' (got {header!r})"
        )
    return header.lower()


def too_long(header: str) -> bool:
    """Whether a forwarding chain is past the bound (and so untrusted)."""
    return len(header) > MAX_HEADER_LENGTH or header.count(",") >= MAX_ENTRIES


class Resolved(NamedTuple):
    """The client address (None: the peer or the entry a trusted proxy wrote is not an IP
    address) and whether the request is refused (a forwarding chain past the bound; the
    address is then the trusted proxy that sent it)."""

    address: IPAddress | None
    refused: bool = False


class ClientAddressResolver:
    """Finds the client address of a request from its peer and forwarding headers.

    `trusted_proxies` are addresses or CIDR networks whose forwarding headers are believed;
    `hops` is the most proxies stepped over (the depth of the proxy chain in front of the
    application); `header` is the forwarding header those proxies set (`x-forwarded-for`
    or `forwarded`; the other one is ignored). With no trusted proxies, the peer is the
    client.
    """

    def __init__(
        self,
        trusted_proxies: Iterable[str] = (),
        *,
        hops: int = 1,
        header: str = X_FORWARDED_FOR,
    ) -> None:
        if isinstance(trusted_proxies, str):
            raise TypeError("trusted_proxies must be a list of addresses or networks, not a str")
        self.trusted: tuple[IPNetwork, ...] = tuple(parse_network(p) for p in trusted_proxies)
        if isinstance(hops, bool) or not isinstance(hops, int):
            raise TypeError(f"hops must be an int, not {type(hops).__name__}")
        if not 1 <= hops <= 32:
            raise ValueError(f"hops must be between 1 and 32 (got {hops})")
        self.hops = hops
        self.header = check_forwarding_header(header)
        self._parse = forwarded_for if self.header == FORWARDED else x_forwarded_for

    def is_trusted(self, address: IPAddress) -> bool:
        return any(address.version == n.version and address in n for n in self.trusted)

    def resolve(self, peer: str | None, headers: Mapping[str, str]) -> IPAddress | None:
        """The client address, or `None` when the peer (or the entry a trusted proxy
        wrote) is not an IP address, or the chain is refused. `headers` has lower-case
        names."""
        address, refused = self.resolve_request(peer, headers)
        return None if refused else address

    def resolve_request(self, peer: str | None, headers: Mapping[str, str]) -> Resolved:
        """The client address and whether the request is refused (see the module)."""
        if peer is None:
            return Resolved(None)
        current = parse_node(peer) if peer.startswith("[") else _parse_or_none(peer)
        if current is None or not self.trusted or not self.is_trusted(current):
            return Resolved(current)
        header = headers.get(self.header)
        if not header:
            return Resolved(current)
        if too_long(header):
            return Resolved(current, refused=True)
        chain = self._parse(header)
        steps = 0
        while self.is_trusted(current) and steps < self.hops and chain:
            previous = chain.pop()
            steps += 1
            if previous is None:
                return Resolved(None)  # a trusted proxy forwarded for something not an address
            current = previous
        return Resolved(current)


#: Peer texts parsed lately (addresses are immutable): a server sees the same few peers
#: (its proxies, its busiest clients) on most requests. Emptied when full.
_PEERS: dict[str, IPAddress | None] = {}
_PEERS_MAX = 4096


def _parse_or_none(text: str) -> IPAddress | None:
    try:
        return _PEERS[text]
    except KeyError:
        pass
    try:
        address: IPAddress | None = parse_ip(text)
    except (ValueError, TypeError):
        address = None
    if len(_PEERS) >= _PEERS_MAX:
        _PEERS.clear()
    _PEERS[text] = address
    return address


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
    "Resolved",
    "address_in",
    "check_forwarding_header",
    "check_ipv6_prefix",
    "forwarded_for",
    "group_address",
    "lower_headers",
    "parse_networks",
    "parse_node",
    "x_forwarded_for",
]
