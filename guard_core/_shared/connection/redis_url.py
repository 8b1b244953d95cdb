"""What a `redis_url` names: one server, a master found through Sentinel, or a Cluster.

Standalone URLs (`redis://`, `rediss://`, `unix://`) are handed to redis-py once checked
here: port 1..65535, database 0..15, no fragment, a socket path for `unix://`, and no query
parameter that would override a configured bound (timeouts, retries, pool size).
The topology schemes list several `host:port` addresses separated by commas:

- `redis+sentinel://[user:password@]host:port[,host:port...]/service_name`: the addresses
  are sentinels; the credentials are those of the master (and its replicas). Sentinels
  that need credentials of their own take `?sentinel_username=...&sentinel_password=...`.
- `redis+cluster://[user:password@]host:port[,host:port...]`: the addresses are any nodes
  of the cluster (seeds); the others are discovered.

`rediss+sentinel` and `rediss+cluster` speak TLS to every node (sentinels included), with
the `ssl_*` query parameters of `rediss://` (`ssl_ca_certs`, `ssl_certfile`, ...).
Parsing never puts a password in an error message.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from dataclasses import dataclass
from enum import Enum
from urllib.parse import parse_qsl, unquote

from guard_core._shared.redaction import redact_url

STANDALONE_SCHEMES = ("redis", "rediss", "unix")
SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
SCHEMES = STANDALONE_SCHEMES + SENTINEL_SCHEMES + CLUSTER_SCHEMES

DEFAULT_SENTINEL_PORT = 26379
DEFAULT_PORT = 6379

#: Query parameters of the topology schemes (the standalone ones go to redis-py as is).
TLS_OPTIONS = frozenset(
    {
        "ssl_ca_certs",
        "ssl_ca_path",
        "ssl_certfile",
        "ssl_keyfile",
        "ssl_cert_reqs",
        "ssl_check_hostname",
        "ssl_ciphers",
    }
)
SENTINEL_OPTIONS = frozenset({"sentinel_username", "sentinel_password"})
#: Query parameters a standalone URL may carry besides the TLS ones.
STANDALONE_OPTIONS = frozenset({"db", "username", "password", "client_name"})
#: Query parameters that would override a configured bound, and the field to use instead.
BOUND_OPTIONS = {
    "socket_timeout": "redis_socket_timeout",
    "socket_connect_timeout": "redis_connect_timeout",
    "retry_on_timeout": "timeouts are never retried",
    "retry_on_error": "redis_retries",
    "max_connections": "redis_max_connections",
    "timeout": "redis_pool_timeout",
    "health_check_interval": "the circuit breaker",
    "socket_keepalive": "redis_socket_timeout",
}
#: Databases of a Redis server with its default configuration (`databases 16`).
MAX_DATABASES = 16


class Topology(Enum):
    STANDALONE = "standalone"
    SENTINEL = "sentinel"
    CLUSTER = "cluster"


@dataclass(frozen=True, repr=False)
class RedisTarget:
    """A parsed `redis_url` (its repr shows no credentials)."""

    topology: Topology
    tls: bool
    #: Sentinels (Sentinel) or seed nodes (Cluster); empty for a standalone URL.
    nodes: tuple[tuple[str, int], ...] = ()
    service_name: str | None = None
    username: str | None = None
    password: str | None = None
    #: `ssl_*` and `sentinel_*` query parameters (topology schemes only).
    options: tuple[tuple[str, str], ...] = ()

    def option(self, name: str) -> str | None:
        return dict(self.options).get(name)

    def __repr__(self) -> str:
        nodes = ",".join(f"{host}:{port}" for host, port in self.nodes)
        return f"RedisTarget({self.topology.value}, tls={self.tls}, nodes={nodes!r})"


def topology_of(url: str | None) -> Topology:
    """The topology a (valid) URL names; `None` counts as standalone."""
    if url is None:
        return Topology.STANDALONE
    scheme = url.partition("://")[0].lower()
    if scheme in SENTINEL_SCHEMES:
        return Topology.SENTINEL
    if scheme in CLUSTER_SCHEMES:
        return Topology.CLUSTER
    return Topology.STANDALONE


def parse_redis_url(url: object) -> RedisTarget:
    """Check `url` and say what it names; ValueError (password masked) when it is not valid.

    The URL is split here, not by `urllib.parse.urlsplit`, whose checks of bracketed hosts
    differ between Python patch releases (and distributions' backports): the same URL is
    accepted, or refused with the same message, on every Python. A standalone URL accepted
    here is one that every `urlsplit` (redis-py's parser) reads the same way.
    """
    if not isinstance(url, str):
        raise ValueError(f"redis_url must be a str or None, not {type(url).__name__}")
    shown = repr(redact_url(url))
    parts = _split(url, shown)
    scheme = parts.scheme
    if scheme in STANDALONE_SCHEMES:
        _check_standalone(parts, shown)
        return RedisTarget(topology=Topology.STANDALONE, tls=scheme == "rediss")
    topology = Topology.SENTINEL if scheme in SENTINEL_SCHEMES else Topology.CLUSTER
    default_port = DEFAULT_SENTINEL_PORT if topology is Topology.SENTINEL else DEFAULT_PORT
    nodes = tuple(_node(text, default_port, shown) for text in parts.hosts.split(","))
    username, password = _credentials(parts.userinfo)
    service_name = _service_name(topology, parts.path, shown)
    if parts.fragment is not None:
        raise ValueError(f"redis_url must not have a fragment: {shown}")
    tls = scheme.startswith("rediss+")
    options = _options(topology, tls, parts.query)
    return RedisTarget(
        topology=topology,
        tls=tls,
        nodes=nodes,
        service_name=service_name,
        username=username,
        password=password,
        options=options,
    )


@dataclass(frozen=True)
class _Parts:
    """A URL split as RFC 3986 (and `urlsplit`) splits it, the netloc split once more."""

    scheme: str  # lower case
    userinfo: str  # before the netloc's last '@' ('' without one)
    hosts: str  # after it: one `host[:port]` or a comma-separated list of them
    path: str
    query: str
    fragment: str | None  # None without '#'


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
#: What ends the netloc, and what a character of it must not read as under NFKC (as IDNA
#: reads a host name): `urlsplit` refuses such a netloc, so redis-py would at first use.
_NETLOC_END = re.compile(r"[/?#]")
_NFKC_DELIMITERS = frozenset("/?#@:[]")


def _split(url: str, shown: str) -> _Parts:
    if any(unicodedata.category(ch) == "Cc" for ch in url):
        # urlsplit drops tabs and newlines silently, and leading control characters only
        # on some patch releases: refused here everywhere
        raise ValueError(f"redis_url contains a control character (tab, newline, ...): {shown}")
    if url != url.strip():
        raise ValueError(f"redis_url has leading or trailing whitespace: {shown}")
    match = _SCHEME.match(url)
    scheme = match.group()[:-1].lower() if match else ""
    if scheme not in SCHEMES:
        raise ValueError(f"redis_url scheme must be one of {', '.join(SCHEMES)} (got {scheme!r})")
    rest = url[len(scheme) + 1 :]
    netloc = ""
    if rest.startswith("//"):
        end = _NETLOC_END.search(rest, 2)
        netloc, rest = (
            (rest[2:], "") if end is None else (rest[2 : end.start()], rest[end.start() :])
        )
    if "@" in rest:
        raise ValueError(
            "redis_url: the user name or password contains '#', '/', '?' or '@' unencoded, "
            "so the URL would name another host; percent-encode them (# as %23, / as %2F, "
            "? as %3F, @ as %40), e.g. with urllib.parse.quote(password, safe='')"
        )
    if not netloc.isascii() and any(
        _NFKC_DELIMITERS & set(unicodedata.normalize("NFKC", ch))
        for ch in netloc
        if not ch.isascii()
    ):
        raise ValueError(
            "redis_url: the host, user name or password has a character that reads as '/', "
            "'?', '#', '@', ':', '[' or ']' once normalized (NFKC); percent-encode it in a "
            f"password, e.g. with urllib.parse.quote(password, safe=''): {shown}"
        )
    rest, hash_sign, fragment = rest.partition("#")
    path, _, query = rest.partition("?")
    userinfo, _, hosts = netloc.rpartition("@")
    if "[" in userinfo or "]" in userinfo:
        raise ValueError(
            "redis_url: the user name or password contains '[' or ']' unencoded; "
            "percent-encode them ([ as %5B, ] as %5D), e.g. with "
            "urllib.parse.quote(password, safe='')"
        )
    return _Parts(
        scheme=scheme,
        userinfo=userinfo,
        hosts=hosts,
        path=path,
        query=query,
        fragment=fragment if hash_sign else None,
    )


def _check_standalone(parts: _Parts, shown: str) -> None:
    """What redis-py would misread or apply silently: checked here, at construction."""
    if parts.fragment is not None:
        raise ValueError(f"redis_url must not have a fragment ('#...'): {shown}")
    if parts.scheme == "unix":
        if not parts.path or parts.path == "/":
            raise ValueError(
                "redis_url: a unix:// URL names its socket, e.g. unix:///run/redis.sock"
            )
    else:
        if not parts.hosts or parts.hosts.startswith(":"):
            raise ValueError("redis_url has no host")
        if "," in parts.hosts:
            raise ValueError(
                f"redis_url names several hosts: a {parts.scheme}:// URL names one server; "
                f"sentinels or cluster nodes take {parts.scheme}+sentinel:// or "
                f"{parts.scheme}+cluster://: {shown}"
            )
        _node(parts.hosts, DEFAULT_PORT, shown)
        database = parts.path[1:] if parts.path.startswith("/") else parts.path
        if database:
            _check_database(database, "path", shown)
    allowed = STANDALONE_OPTIONS | (TLS_OPTIONS if parts.scheme == "rediss" else frozenset())
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name in BOUND_OPTIONS:
            raise ValueError(
                f"redis_url must not set {name!r}: timeouts, retries and the pool size come "
                f"from SecurityConfig ({BOUND_OPTIONS[name]}), so that they stay bounded"
            )
        if name not in allowed:
            hint = " (TLS options need the rediss scheme)" if name in TLS_OPTIONS else ""
            raise ValueError(f"redis_url has an unknown query parameter {name!r}{hint}")
        if name == "db":
            _check_database(value, "db parameter", shown)
        elif name == "ssl_cert_reqs" and value.lower() not in ("none", "optional", "required"):
            raise ValueError("redis_url: ssl_cert_reqs must be none, optional or required")
        elif name == "ssl_check_hostname" and value.lower() not in ("true", "false", "1", "0"):
            raise ValueError("redis_url: ssl_check_hostname must be true or false")


def _check_database(text: str, where: str, shown: str) -> None:
    if not text.isdigit() or not 0 <= int(text) < MAX_DATABASES:
        raise ValueError(
            f"redis_url: the database ({where}) must be a number from 0 to "
            f"{MAX_DATABASES - 1}: {shown}"
        )


def _node(text: str, default_port: int, shown: str) -> tuple[str, int]:
    """One `host[:port]` or `[IPv6]:port` of a netloc (it holds no credentials: shown)."""
    if not text:
        raise ValueError(f"redis_url has an empty address in its host list: {shown}")
    if "[" in text or "]" in text:
        host, port_text = _bracketed(text)
    else:
        host, _, port_text = text.partition(":")
        if not host or ":" in port_text:
            raise ValueError(
                f"redis_url has a malformed address {text!r} "
                "(an IPv6 address goes in brackets, e.g. [::1]:6379)"
            )
        if any(ch in "/?#@" or ch.isspace() or not ch.isprintable() for ch in host):
            raise ValueError(f"redis_url has a malformed host in {text!r}")
    if not port_text:
        return host, default_port
    if not (port_text.isascii() and port_text.isdigit()) or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"redis_url has an invalid port {port_text} in {text!r} (1..65535)")
    return host, int(port_text)


def _bracketed(text: str) -> tuple[str, str]:
    """`[IPv6]` or `[IPv6]:port`: the address (checked) and the port text."""
    if not text.startswith("["):
        raise ValueError(
            f"redis_url has a malformed IPv6 address {text!r}: nothing may stand before "
            "its '[' (e.g. [::1]:6379)"
        )
    host, bracket, rest = text[1:].partition("]")
    if not bracket:
        raise ValueError(
            f"redis_url is not a valid URL: the IPv6 address in {text!r} has no closing ']'"
        )
    if "[" in host or "[" in rest or "]" in rest or (rest and not rest.startswith(":")):
        raise ValueError(
            f"redis_url has a malformed IPv6 address {text!r}: only ':port' may follow "
            "its ']' (e.g. [::1]:6379)"
        )
    try:
        ipaddress.IPv6Address(host)
    except ValueError:
        raise ValueError(
            f"redis_url has a malformed IPv6 address {text!r}: brackets hold an IPv6 "
            "address only (a host name or IPv4 address goes without them)"
        ) from None
    return host, rest[1:]


def _credentials(userinfo: str) -> tuple[str | None, str | None]:
    if not userinfo:
        return None, None
    user, colon, password = userinfo.partition(":")
    return (unquote(user) or None), (unquote(password) if colon else None)


def _service_name(topology: Topology, path: str, shown: str) -> str | None:
    name = path[1:] if path.startswith("/") else path
    if topology is Topology.CLUSTER:
        if name not in ("", "0"):
            raise ValueError(
                f"redis_url: a Cluster has only database 0, drop the path {path!r}: {shown}"
            )
        return None
    if not name:
        raise ValueError(
            "redis_url: a Sentinel URL names its service after the hosts, "
            f"e.g. redis+sentinel://host:26379/mymaster (got {shown})"
        )
    if "/" in name:
        raise ValueError(f"redis_url: the Sentinel service name must not contain '/': {shown}")
    return unquote(name)


def _options(topology: Topology, tls: bool, query: str) -> tuple[tuple[str, str], ...]:
    allowed = set(TLS_OPTIONS if tls else ())
    if topology is Topology.SENTINEL:
        allowed |= SENTINEL_OPTIONS
    found: list[tuple[str, str]] = []
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name not in allowed:
            hint = " (TLS options need the rediss+ scheme)" if name in TLS_OPTIONS else ""
            raise ValueError(f"redis_url has an unknown query parameter {name!r}{hint}")
        found.append((name, value))
    return tuple(found)
