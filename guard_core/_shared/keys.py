"""Key layout `{redis_prefix}{namespace}:{key}`, glob escaping and input validation.

Every Redis key guard-core touches is built here, so the layout lives in one place: the
namespaces and fixed key parts below, the window keys of rate limits, and the endpoint part
the adapters give each route's limit. The storage, the adapters and the command all build
their keys through this module.

In Cluster mode the key part is wrapped in a hash tag: `{redis_prefix}{namespace}:{{key}}`
(e.g. `guard_core:banned_ips:{10.0.0.1}`). Redis hashes only what is between the braces,
so every key of one identifier lands in one slot, whatever its namespace, and a Lua script
or transaction on them never spans slots. Inside the tag, `%`, `{` and `}` of the key part
are percent-encoded (`%25`, `%7B`, `%7D`): the tag then always holds the whole key part
and never ends early. A Cluster prefix must not contain braces (SecurityConfig refuses it).
"""

from __future__ import annotations

import math

from guard_core._shared.addresses import canonical_identifier
from guard_core._shared.validation import MAX_TTL, check_text, shown_number

_GLOB_SPECIAL = frozenset("*?[]\\")

# -- the namespaces guard-core writes -------------------------------------------------------

BANNED_IPS = "banned_ips"
BAN_LIFTS = "ban_lifts"
BAN_INDEX = "ban_index"
BANNED_NETWORKS = "banned_networks"
NETWORK_EXPIRY = "banned_networks_expiry"
ALLOWED_IPS = "allowed_ips"
ALLOWED_EXPIRY = "allowed_ips_expiry"
PATTERNS = "patterns"
PATTERN_CHANGES = "pattern_changes"
SECURITY_HEADERS = "security_headers"
CLOUD_RANGES = "cloud_ranges"
RATE_LIMIT = "rate_limit"
BEHAVIOR_USAGE = "behavior_usage"
MEMBERS = "members"
INVALIDATIONS = "invalidations"

#: Every namespace, with what its keys hold.
NAMESPACES: dict[str, str] = {
    BANNED_IPS: "address bans, expiring with the ban",
    BAN_LIFTS: "when each address ban was last lifted",
    BAN_INDEX: "the listing index of address bans and its version",
    BANNED_NETWORKS: "network bans and lifts, with a version",
    NETWORK_EXPIRY: "when each network record ends",
    ALLOWED_IPS: "the shared allow list: addresses and networks never checked, with a version",
    ALLOWED_EXPIRY: "when each allow-list record ends",
    PATTERNS: "the custom attack patterns",
    PATTERN_CHANGES: "when each custom pattern was last added or removed",
    SECURITY_HEADERS: "the security-header configuration",
    CLOUD_RANGES: "cloud providers' address ranges, cached",
    RATE_LIMIT: "rate-limit windows",
    BEHAVIOR_USAGE: "behaviour counters",
    MEMBERS: "the live instances sharing rate limits",
    INVALIDATIONS: "the channel of pushed changes",
}

# fixed key parts
ADDRESS_INDEX = "addresses"  # ban_index:addresses
INDEX_VERSION = "version"  # ban_index:version
NETWORK_INDEX = "index"  # banned_networks:index, allowed_ips:index and their expiry sets
CUSTOM_PATTERNS = "custom"  # patterns:custom, pattern_changes:custom
HEADERS_CONFIG = "csp_config"  # security_headers:csp_config
INSTANCES = "instances"  # members:instances
CHANNEL = "changes"  # invalidations:changes

#: The route the adapters count the limits of every route under (`rate_limit` per
#: `rate_limit_window`, all routes together).
ALL_ROUTES = "*"
#: The route of requests that matched no route (404s: one window, not one per path).
UNMATCHED_ROUTE = "<unmatched>"


def rate_window_key(identifier: str, endpoint: str = "") -> str:
    """The key, in namespace `rate_limit`, of the window of `identifier` (and `endpoint`):
    `rate:{identifier}[:{endpoint}]`, the identifier canonical (an address in any of its
    forms is one client) and percent-encoded; TypeError/ValueError for bad text."""
    identifier = check_text("identifier", identifier)
    endpoint = check_text("endpoint", endpoint, allow_empty=True)
    # one client, one window; the first ':' ends the (encoded) identifier, so no two
    # (identifier, endpoint) pairs share a key
    identifier = encode_key_part(canonical_identifier(identifier))
    return f"rate:{identifier}:{endpoint}" if endpoint else f"rate:{identifier}"


def shared_route(scope: str) -> str:
    """The route a shared limit's scope counts under (`shared:{scope}`): every view marked
    with the scope counts in its window. Route templates start with '/', so none is one."""
    return f"shared:{scope}"


def route_endpoint(route: str, window: int) -> str:
    """The endpoint the adapters count a route's limit under: `{route}|{window}s`, so that
    two limits of one route (`5/minute`, `100/hour`) keep windows of their own."""
    return f"{route}|{window}s"


def validate_namespace(namespace: object) -> str:
    """A namespace is a non-empty str without ':' (the separator)."""
    text = check_text("namespace", namespace, allow_empty=False)
    if ":" in text:
        raise ValueError(f"namespace must not contain ':' (got {text!r})")
    return text


def validate_key(key: object) -> str:
    """A key is a non-empty str; ':' is allowed inside it (`rate:10.0.0.1`)."""
    return check_text("key", key, allow_empty=False)


def validate_pattern(pattern: object) -> str:
    """A glob pattern (Redis MATCH syntax) relative to the prefix."""
    return check_text("pattern", pattern, allow_empty=True)


def validate_ttl(ttl: object, name: str = "ttl") -> int | None:
    """`None` (no expiry) or a whole number of seconds in 1..MAX_TTL, as a plain int."""
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, int):
        raise TypeError(
            f"{name} must be an int number of seconds or None, not {type(ttl).__name__}"
        )
    if not 1 <= ttl <= MAX_TTL:
        raise ValueError(
            f"{name} must be between 1 and {MAX_TTL} seconds (got {shown_number(ttl)})"
        )
    return int(ttl)  # an IntEnum would be sent as its repr


def validate_value(value: object) -> str | bytes | int | float:
    """Values Redis stores as strings: str, UTF-8 bytes, int or finite float (not bool or None).

    Replies are decoded as UTF-8, so other bytes could be written but never read back. An
    int or float subclass (`IntEnum`) is stored as the plain number, not as its `repr`.
    """
    if isinstance(value, bool) or not isinstance(value, str | bytes | int | float):
        raise TypeError(f"value must be str, bytes, int or float, not {type(value).__name__}")
    if isinstance(value, float):
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"value must be a finite float (got {value!r})")
    elif isinstance(value, int):
        value = int(value)
        try:
            str(value)
        except ValueError:  # beyond sys.get_int_max_str_digits(): cannot be sent as text
            raise ValueError(
                f"value is an int too large to store ({value.bit_length()} bits)"
            ) from None
    elif isinstance(value, bytes):
        try:
            value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"value bytes are not valid UTF-8: {exc.reason}") from None
    else:
        check_text("value", value, allow_empty=True)
    return value


def escape_glob(text: str) -> str:
    """Escape Redis glob metacharacters so `text` matches only itself."""
    return "".join("\\" + ch if ch in _GLOB_SPECIAL else ch for ch in text)


def encode_hash_tag(text: str) -> str:
    """`text` with '%', '{' and '}' percent-encoded, to sit inside a Cluster hash tag."""
    return text.replace("%", "%25").replace("{", "%7B").replace("}", "%7D")


def decode_hash_tag(text: str) -> str:
    """The inverse of `encode_hash_tag`."""
    return text.replace("%7B", "{").replace("%7D", "}").replace("%25", "%")


def build_key(prefix: str, namespace: str, key: str, *, cluster: bool = False) -> str:
    """The full Redis key: `{prefix}{namespace}:{key}`, or `{prefix}{namespace}:{{key}}` in
    Cluster mode (the key part, encoded, is the hash tag)."""
    namespace = validate_namespace(namespace)
    key = validate_key(key)
    if cluster:
        return f"{prefix}{namespace}:{{{encode_hash_tag(key)}}}"
    return f"{prefix}{namespace}:{key}"


def build_pattern(prefix: str, pattern: str, *, cluster: bool = False) -> str:
    """A SCAN pattern confined to `prefix`: the prefix is escaped, `pattern` is a glob.

    In Cluster mode a pattern `namespace:rest` (a namespace without glob characters) is
    moved into the hash-tag layout, `namespace:{rest}`, so that `banned_ips:10.*` still
    finds `banned_ips:{10.0.0.1}`; other patterns (`*`, `*:x`) are used as they are.
    """
    pattern = validate_pattern(pattern)
    if cluster:
        namespace, colon, rest = pattern.partition(":")
        plain_namespace = bool(namespace) and not any(ch in _GLOB_SPECIAL for ch in namespace)
        if colon and plain_namespace and rest != "*":
            pattern = f"{namespace}:{{{encode_hash_tag(rest)}}}"
    return escape_glob(prefix) + pattern


def key_in_namespace(
    prefix: str, namespace: str, full_key: str, *, cluster: bool | None = None
) -> str:
    """The `key` part of a full key (ValueError if the key is not in that namespace).

    `cluster=False` reads `{prefix}{namespace}:{key}`, `cluster=True` the Cluster layout
    `{prefix}{namespace}:{{key}}`. `None` (the default) tells them apart by shape: a rest
    that is one hash tag, `{...}` without other braces, is read as the Cluster layout. A
    standalone key part of that very shape is then misread: pass `cluster=False` (or use
    `RedisManager.key_part`, which knows the mode) where key parts may look like that.
    """
    head = f"{prefix}{namespace}:"
    if not full_key.startswith(head):
        raise ValueError(f"{full_key!r} is not in namespace {namespace!r}")
    rest = full_key[len(head) :]
    tagged = (
        len(rest) >= 3
        and rest[0] == "{"
        and rest[-1] == "}"
        and "{" not in rest[1:-1]
        and "}" not in rest[1:-1]
    )
    if cluster is None:
        cluster = tagged
    if cluster:
        if not tagged:
            raise ValueError(f"{full_key!r} is not a Cluster key of namespace {namespace!r}")
        return decode_hash_tag(rest[1:-1])
    return rest


def encode_key_part(text: str) -> str:
    """`text` with '%' and ':' percent-encoded, so that it ends at the next ':' of a key:
    `rate:{identifier}:{endpoint}` stays unambiguous when the identifier is an IPv6 address.
    """
    return text.replace("%", "%25").replace(":", "%3A")
