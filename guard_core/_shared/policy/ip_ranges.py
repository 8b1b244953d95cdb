"""Cloud providers' published IP ranges: parsing each provider's format, and lookup tables.

Pure code (no I/O): `guard_core.handlers.cloud_handler` fetches the files and caches them.
Every parser takes the body of the provider's file and returns its CIDRs as canonical
strings, deduplicated in file order; a body that is not in the provider's format, holds an
invalid network, or lists no networks at all raises `ValueError` (so a truncated or
placeholder file never replaces good ranges).
"""

from __future__ import annotations

import json
import math
import re
from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from guard_core._shared.addresses import IPAddress, IPNetwork, parse_network
from guard_core._shared.validation import parse_json

#: Where each provider publishes its ranges. Azure's link is the download page of the weekly
#: Service Tags file; the file's own URL is read from that page.
DEFAULT_URLS: Mapping[str, str] = {
    "AWS": "https://ip-ranges.amazonaws.com/ip-ranges.json",
    "GCP": "https://www.gstatic.com/ipranges/cloud.json",
    "Azure": "https://www.microsoft.com/en-us/download/details.aspx?id=56519",
}

#: The Azure Service Tag whose prefixes are used: all of Azure's public address space.
AZURE_SERVICE_TAG = "AzureCloud"

_AZURE_JSON_LINK = re.compile(
    r"https://download\.microsoft\.com/download/[^\s\"'<>]+?/ServiceTags_Public_(\d+)\.json"
)


def _load_json(provider: str, body: str | bytes) -> Any:
    return parse_json(body, f"{provider} ranges: body")


def _field(provider: str, container: Any, name: str, kind: type | tuple[type, ...]) -> Any:
    if not isinstance(container, dict):
        raise ValueError(f"{provider} ranges: expected an object holding {name!r}")
    value = container.get(name)
    if not isinstance(value, kind):
        raise ValueError(f"{provider} ranges: {name!r} is missing or of the wrong type")
    return value


def _canonical(provider: str, cidrs: Iterable[object]) -> list[str]:
    found: dict[str, None] = {}
    for cidr in cidrs:
        if not isinstance(cidr, str):
            raise ValueError(f"{provider} ranges: prefix {cidr!r} is not a string")
        try:
            found[str(parse_network(cidr))] = None
        except ValueError as exc:
            raise ValueError(f"{provider} ranges: {exc}") from None
    if not found:
        raise ValueError(f"{provider} ranges: the file lists no prefixes")
    return list(found)


def parse_aws(body: str | bytes) -> list[str]:
    """CIDRs of AWS `ip-ranges.json`: `prefixes[].ip_prefix` and `ipv6_prefixes[].ipv6_prefix`,
    of every service (the `AMAZON` service already covers the others)."""
    data = _load_json("AWS", body)
    cidrs: list[object] = []
    for list_name, key in (("prefixes", "ip_prefix"), ("ipv6_prefixes", "ipv6_prefix")):
        for entry in _field("AWS", data, list_name, list):
            cidrs.append(_field("AWS", entry, key, str))
    return _canonical("AWS", cidrs)


def parse_gcp(body: str | bytes) -> list[str]:
    """CIDRs of Google Cloud's `cloud.json`: each of `prefixes[]` has `ipv4Prefix` or
    `ipv6Prefix`."""
    data = _load_json("GCP", body)
    cidrs: list[object] = []
    for entry in _field("GCP", data, "prefixes", list):
        if not isinstance(entry, dict):
            raise ValueError("GCP ranges: a prefix entry is not an object")
        cidr = entry.get("ipv4Prefix", entry.get("ipv6Prefix"))
        if cidr is None:
            raise ValueError("GCP ranges: a prefix entry has neither ipv4Prefix nor ipv6Prefix")
        cidrs.append(cidr)
    return _canonical("GCP", cidrs)


def parse_azure(body: str | bytes) -> list[str]:
    """CIDRs of an Azure Service Tags file: the `addressPrefixes` of the `AzureCloud` value.

    `AzureCloud` is Microsoft's tag for all of Azure's public address space; the regional
    (`AzureCloud.westeurope`) and service tags are subsets of it or cover services that are
    not customer-hosted cloud (Microsoft 365 front doors, for instance), so they are not used.
    """
    data = _load_json("Azure", body)
    for value in _field("Azure", data, "values", list):
        if isinstance(value, dict) and value.get("name") == AZURE_SERVICE_TAG:
            properties = _field("Azure", value, "properties", dict)
            return _canonical("Azure", _field("Azure", properties, "addressPrefixes", list))
    raise ValueError(f"Azure ranges: no {AZURE_SERVICE_TAG!r} value in the Service Tags file")


def find_azure_json_url(page: str) -> str:
    """The Service Tags JSON link on Microsoft's download page (the newest, when several)."""
    links = [(int(match.group(1)), match.group(0)) for match in _AZURE_JSON_LINK.finditer(page)]
    if not links:
        raise ValueError("Azure ranges: no ServiceTags_Public_*.json link on the download page")
    return max(links)[1]


#: The parser of each provider's file, by provider name (the names `SecurityConfig` uses).
PARSERS: Mapping[str, Callable[[str | bytes], list[str]]] = {
    "AWS": parse_aws,
    "GCP": parse_gcp,
    "Azure": parse_azure,
}


def encode_cached(cidrs: Iterable[str], fetched_at: float) -> str:
    """The text stored in Redis for one provider: its CIDRs and when they were fetched (Unix
    time), as JSON."""
    return json.dumps({"fetched_at": fetched_at, "cidrs": list(cidrs)}, separators=(",", ":"))


def decode_cached(text: str | bytes) -> tuple[float, list[str]]:
    """`(fetched_at, cidrs)` from `encode_cached`'s text; `ValueError` when malformed."""
    data = _load_json("Cached", text)
    fetched_at = _field("Cached", data, "fetched_at", (int, float))
    if isinstance(fetched_at, bool) or not math.isfinite(fetched_at):
        raise ValueError("Cached ranges: 'fetched_at' is not a finite number")
    return float(fetched_at), _canonical("Cached", _field("Cached", data, "cidrs", list))


def check_provider(name: object) -> str:
    """`name` when it is a known provider; otherwise `ValueError` listing the known ones."""
    if not isinstance(name, str):
        raise TypeError(f"provider name must be a str, not {type(name).__name__}")
    if name not in PARSERS:
        raise ValueError(f"unknown cloud provider {name!r} (known: {', '.join(PARSERS)})")
    return name


class _Intervals:
    """Disjoint, sorted, inclusive integer intervals of one address family."""

    __slots__ = ("ends", "starts")

    def __init__(self, intervals: list[tuple[int, int]]) -> None:
        intervals.sort()
        starts: list[int] = []
        ends: list[int] = []
        for start, end in intervals:
            if ends and start <= ends[-1] + 1:  # overlapping or adjacent: merge
                ends[-1] = max(ends[-1], end)
            else:
                starts.append(start)
                ends.append(end)
        self.starts = starts
        self.ends = ends

    def contains(self, value: int) -> bool:
        index = bisect_right(self.starts, value) - 1
        return index >= 0 and value <= self.ends[index]


class IPRangeTable:
    """A set of networks answering membership in O(log n).

    IPv4 and IPv6 ranges are kept apart as sorted, merged `(start, end)` integer intervals;
    a lookup is one bisection. Immutable once built, so it can be shared between threads.
    """

    __slots__ = ("_v4", "_v6")

    def __init__(self, networks: Iterable[str | IPNetwork] = ()) -> None:
        """Build from CIDR strings or network objects (`ValueError` on an invalid one)."""
        by_version: dict[int, list[tuple[int, int]]] = {4: [], 6: []}
        for item in networks:
            network = parse_network(item)
            by_version[network.version].append(
                (int(network.network_address), int(network.broadcast_address))
            )
        self._v4 = _Intervals(by_version[4])
        self._v6 = _Intervals(by_version[6])

    def _family(self, version: int) -> _Intervals:
        if version == 4:
            return self._v4
        if version == 6:
            return self._v6
        raise ValueError(f"IP version must be 4 or 6 (got {version!r})")

    def contains_int(self, value: int, version: int) -> bool:
        """Whether the address with integer `value` of IP `version` (4 or 6) is in a range."""
        return self._family(version).contains(value)

    def contains(self, address: IPAddress) -> bool:
        """Whether `address` is in a range (pass addresses through `parse_ip` first, so
        IPv4-mapped IPv6 is looked up as IPv4)."""
        return self.contains_int(int(address), address.version)

    def intervals(self, version: int) -> list[tuple[int, int]]:
        """The merged inclusive `(first, last)` integer ranges of IP `version`."""
        family = self._family(version)
        return list(zip(family.starts, family.ends, strict=True))

    def __len__(self) -> int:
        """Number of merged ranges, both families."""
        return len(self._v4.starts) + len(self._v6.starts)
