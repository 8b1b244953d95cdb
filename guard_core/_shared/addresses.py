"""Parsing IP addresses and networks the same way everywhere in guard-core.

An IPv4-mapped IPv6 address (`::ffff:1.2.3.4`, what a dual-stack socket reports for an IPv4
client) is treated as the IPv4 address it carries, so one client has one identity. Scoped
IPv6 text (`fe80::1%eth0`) is rejected: a zone names an interface of one host, not a client.
"""

from __future__ import annotations

from ipaddress import (
    IPv4Address,
    IPv4Network,
    IPv6Address,
    IPv6Network,
    ip_address,
    ip_network,
)

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

_MAPPED = IPv6Network("::ffff:0:0/96")
_LOOPBACK = (IPv4Network("127.0.0.0/8"), IPv6Network("::1/128"))


def _text(kind: str, value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{kind} must be a str, not {type(value).__name__}")
    if "%" in value:
        raise ValueError(f"{kind} must not carry an IPv6 zone (%...): {value!r}")
    return value


def parse_ip(text: object) -> IPAddress:
    """The address in `text` (a str, or an address object); IPv4-mapped IPv6 becomes IPv4.

    Raises `ValueError` naming the text when it is not an IP address, `TypeError` when it is
    neither a str nor an address.
    """
    if isinstance(text, IPv4Address | IPv6Address):
        address: IPAddress = text
    else:
        raw = _text("IP address", text)
        try:
            address = ip_address(raw)
        except ValueError:
            raise ValueError(f"not a valid IP address: {raw!r}") from None
    if isinstance(address, IPv6Address):
        if address.scope_id is not None:
            raise ValueError(f"IP address must not carry an IPv6 zone (%...): {str(address)!r}")
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
    return address


def canonical_ip(text: object) -> str:
    """The canonical text of an address (`::FFFF:192.0.2.1` -> `192.0.2.1`), as `parse_ip`."""
    return str(parse_ip(text))


def canonical_identifier(text: str) -> str:
    """An identifier as one client: canonical when it is an IP address, else unchanged."""
    try:
        return canonical_ip(text)
    except ValueError:
        return text


def parse_network(text: object) -> IPNetwork:
    """The network in `text` (CIDR such as `192.0.2.0/24`; a bare address is a /32 or /128).

    Host bits must be zero: `192.0.2.1/24` raises `ValueError` rather than being silently
    widened. An IPv6 network inside `::ffff:0:0/96` becomes the IPv4 network it maps.
    """
    if isinstance(text, IPv4Network | IPv6Network):
        network: IPNetwork = text
    else:
        raw = _text("IP network", text)
        try:
            network = ip_network(raw, strict=True)
        except ValueError as exc:
            if "host bits set" in str(exc):
                raise ValueError(f"network {raw!r} has host bits set") from None
            raise ValueError(f"not a valid IP network: {raw!r}") from None
    if (
        isinstance(network, IPv6Network)
        and network.prefixlen >= _MAPPED.prefixlen
        and network.subnet_of(_MAPPED)
    ):
        mapped = network.network_address.ipv4_mapped
        assert mapped is not None  # inside ::ffff:0:0/96
        return IPv4Network((mapped, network.prefixlen - _MAPPED.prefixlen))
    return network


def canonical_target(target: object) -> str:
    """An address or a CIDR network (a ban's or an allow-list entry's target) in canonical
    form; TypeError/ValueError naming a bad one."""
    if isinstance(target, str) and "/" in target:
        return str(parse_network(target))
    return str(parse_ip(target))


def is_loopback(addr: object) -> bool:
    """Whether `addr` is a loopback address, or a network that includes loopback addresses.

    Accepts what `parse_ip` accepts, and network objects (`0.0.0.0/0` includes 127.0.0.1).
    """
    if isinstance(addr, IPv4Network | IPv6Network):
        network = parse_network(addr)
        return any(network.version == loop.version and network.overlaps(loop) for loop in _LOOPBACK)
    return parse_ip(addr).is_loopback
