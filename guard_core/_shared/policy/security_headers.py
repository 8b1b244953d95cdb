"""Security response headers: defaults, validation, CSP serialisation and the stored JSON form.

Pure (no I/O): `SecurityHeadersManager` of both faces builds on it. Every header name and
value that can reach a response passes the validators here, so a control character (CR, LF,
NUL, DEL, ...) can never split or forge a header, whether it comes from a caller or from a
JSON document read back from Redis.

Rules:

- Header names are HTTP tokens (RFC 9110 `tchar`), at most 256 characters, and not one of
  the framing or hop-by-hop headers in `FORBIDDEN_HEADER_NAMES`.
- Header values are 1 to 8192 characters of printable ASCII (space to `~`), not starting or
  ending with a space: no control character, no non-ASCII text.
- CSP directive names are lowercase letters joined by single '-'; a source is 1 or more
  printable ASCII characters other than space, ';' and ','. Directives are serialised
  sorted by name, sources in the order given: `default-src 'self'; img-src 'self' data:`.
- A wrong type raises `TypeError`, a wrong value `ValueError`.
"""

from __future__ import annotations

import json
import math
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from guard_core._shared.keys import HEADERS_CONFIG, SECURITY_HEADERS
from guard_core._shared.validation import parse_json

#: Redis namespace and key of the shared configuration (`{prefix}security_headers:csp_config`).
NAMESPACE = SECURITY_HEADERS
CONFIG_KEY = HEADERS_CONFIG
#: Version of the stored JSON layout; a document with another version is ignored.
JSON_FORMAT = 1
#: Longest stored JSON document accepted from Redis, in characters.
MAX_JSON_LENGTH = 65_536
MAX_NAME_LENGTH = 256
MAX_VALUE_LENGTH = 8192
#: Longest HSTS max-age accepted, in seconds (the largest TTL Redis accepts, as elsewhere).
MAX_HSTS_MAX_AGE = 2**31 - 1

FRAME_OPTIONS = ("DENY", "SAMEORIGIN")
REFERRER_POLICIES = (
    "no-referrer",
    "no-referrer-when-downgrade",
    "origin",
    "origin-when-cross-origin",
    "same-origin",
    "strict-origin",
    "strict-origin-when-cross-origin",
    "unsafe-url",
)
#: Headers that describe the message framing or the connection: setting them from here would
#: corrupt responses (request smuggling, broken keep-alive), so they are refused.
FORBIDDEN_HEADER_NAMES = frozenset(
    {"connection", "content-length", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade"}
)

_TCHAR = frozenset(string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~")
_VISIBLE = frozenset(chr(code) for code in range(0x21, 0x7F))
_VALUE_CHARS = _VISIBLE | {" "}
_SOURCE_CHARS = _VISIBLE - {";", ","}
_DIRECTIVE = re.compile(r"[a-z]+(?:-[a-z]+)*")

Pairs = tuple[tuple[str, str], ...]
Directives = tuple[tuple[str, tuple[str, ...]], ...]


def _describe(ch: str) -> str:
    code = ord(ch)
    if code < 0x20 or 0x7F <= code <= 0x9F:
        kind = "control"
    elif code > 0x7F:
        kind = "non-ASCII"
    else:
        kind = "forbidden"
    return f"{kind} character U+{code:04X}"


def _require_str(what: str, value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    return value


def _require_bool(what: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{what} must be a bool, not {type(value).__name__}")
    return value


def validate_header_name(name: object) -> str:
    """`name` if it is an HTTP token of at most 256 characters and not a forbidden header."""
    text = _require_str("header name", name)
    if not text:
        raise ValueError("header name must not be empty")
    if len(text) > MAX_NAME_LENGTH:
        raise ValueError(f"header name is longer than {MAX_NAME_LENGTH} characters")
    bad = next((ch for ch in text if ch not in _TCHAR), None)
    if bad is not None:
        raise ValueError(f"header name {text!r} is not an HTTP token: {_describe(bad)}")
    if text.lower() in FORBIDDEN_HEADER_NAMES:
        raise ValueError(f"header {text!r} cannot be set as a security header")
    return text


def validate_header_value(name: str, value: object) -> str:
    """`value` if it is 1..8192 printable ASCII characters without edge spaces."""
    text = _require_str(f"value of header {name!r}", value)
    if not text:
        raise ValueError(f"value of header {name!r} must not be empty")
    if len(text) > MAX_VALUE_LENGTH:
        raise ValueError(f"value of header {name!r} is longer than {MAX_VALUE_LENGTH} characters")
    bad = next((ch for ch in text if ch not in _VALUE_CHARS), None)
    if bad is not None:
        raise ValueError(f"value of header {name!r} contains a {_describe(bad)}")
    if text[0] == " " or text[-1] == " ":
        raise ValueError(f"value of header {name!r} must not start or end with a space")
    return text


def _pairs(what: str, value: object) -> list[tuple[object, object]]:
    """The (key, value) pairs of a mapping, or of a tuple/list of 2-item pairs."""
    if isinstance(value, Mapping):
        return list(value.items())
    if not isinstance(value, tuple | list):
        raise TypeError(f"{what} must be a mapping, not {type(value).__name__}")
    pairs: list[tuple[object, object]] = []
    for item in value:
        if not isinstance(item, tuple | list) or len(item) != 2:
            raise TypeError(f"{what} must be a mapping or a sequence of (key, value) pairs")
        pairs.append((item[0], item[1]))
    return pairs


def normalize_csp(csp: object) -> Directives:
    """CSP directives (`{"img-src": ["'self'", "data:"]}`) validated and sorted by name.

    A directive with no sources (`upgrade-insecure-requests`) is serialised alone; an empty
    mapping means no Content-Security-Policy header.
    """
    directives: list[tuple[str, tuple[str, ...]]] = []
    for name, sources in _pairs("csp", csp):
        directive = _require_str("CSP directive name", name)
        if not _DIRECTIVE.fullmatch(directive):
            raise ValueError(
                f"CSP directive name {directive!r} must be lowercase letters joined by '-'"
            )
        if not isinstance(sources, tuple | list):
            raise TypeError(
                f"sources of CSP directive {directive!r} must be a list of str, "
                f"not {type(sources).__name__}"
            )
        for source in sources:
            text = _require_str(f"source of CSP directive {directive!r}", source)
            if not text:
                raise ValueError(f"source of CSP directive {directive!r} must not be empty")
            bad = next((ch for ch in text if ch not in _SOURCE_CHARS), None)
            if bad is not None:
                raise ValueError(
                    f"source {text!r} of CSP directive {directive!r} contains a {_describe(bad)}"
                )
        directives.append((directive, tuple(sources)))
    names = [name for name, _ in directives]
    if len(set(names)) != len(names):
        raise ValueError("CSP directives must not repeat")
    result = tuple(sorted(directives))
    if result:
        validate_header_value("Content-Security-Policy", serialize_csp(result))
    return result


def serialize_csp(directives: Directives) -> str:
    """`default-src 'self'; img-src 'self' data:` from already validated directives."""
    return "; ".join(" ".join((name, *sources)) for name, sources in directives)


def normalize_headers(headers: object, what: str = "custom_headers") -> Pairs:
    """Validated (name, value) pairs sorted by lowercase name; names must not repeat
    case-insensitively."""
    result: dict[str, tuple[str, str]] = {}
    for name, value in _pairs(what, headers):
        text = validate_header_name(name)
        if text.lower() in result:
            raise ValueError(f"header {text!r} appears twice in {what}")
        result[text.lower()] = (text, validate_header_value(text, value))
    return tuple(result[lower] for lower in sorted(result))


def normalize_path_overrides(overrides: object) -> tuple[tuple[str, Pairs], ...]:
    """Path prefix -> headers replacing or adding to the defaults there, sorted by prefix.

    A prefix starts with '/' and holds visible ASCII only. `/api` matches `/api` and
    `/api/...` but not `/apix`; a prefix ending in '/' matches what starts with it.
    """
    result: dict[str, Pairs] = {}
    for prefix, headers in _pairs("path_overrides", overrides):
        text = _require_str("path prefix", prefix)
        if not text.startswith("/"):
            raise ValueError(f"path prefix {text!r} must start with '/'")
        if len(text) > MAX_VALUE_LENGTH:
            raise ValueError(f"path prefix is longer than {MAX_VALUE_LENGTH} characters")
        bad = next((ch for ch in text if ch not in _VISIBLE), None)
        if bad is not None:
            raise ValueError(f"path prefix {text!r} contains a {_describe(bad)}")
        if text in result:
            raise ValueError(f"path prefix {text!r} appears twice")
        result[text] = normalize_headers(headers, f"path_overrides[{text!r}]")
    return tuple(sorted(result.items()))


def _check_choice(what: str, value: object, choices: tuple[str, ...]) -> str:
    text = _require_str(what, value)
    if text not in choices:
        raise ValueError(f"{what} must be one of {', '.join(choices)} (got {text!r})")
    return text


def _check_max_age(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"hsts_max_age must be an int, not {type(value).__name__}")
    if not 0 <= value <= MAX_HSTS_MAX_AGE:
        shown = value if value.bit_length() <= 64 else f"an int of {value.bit_length()} bits"
        raise ValueError(f"hsts_max_age must be between 0 and {MAX_HSTS_MAX_AGE} (got {shown})")
    return value


def _check_timestamp(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"updated_at must be a number, not {type(value).__name__}")
    try:
        seconds = float(value)
    except OverflowError:  # an int beyond the float range
        raise ValueError("updated_at is too large") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"updated_at must be finite and >= 0 (got {seconds!r})")
    return seconds


DEFAULT_CSP: Directives = (
    ("base-uri", ("'self'",)),
    ("default-src", ("'self'",)),
    ("form-action", ("'self'",)),
    ("frame-ancestors", ("'none'",)),
    ("object-src", ("'none'",)),
)


@dataclass(frozen=True, kw_only=True)
class HeadersConfig:
    """The whole security header configuration, validated and normalised at construction.

    The defaults send Strict-Transport-Security, X-Content-Type-Options, X-Frame-Options,
    Referrer-Policy, Permissions-Policy and Content-Security-Policy. `custom_headers` are
    applied after them and replace a header of the same name (case-insensitive);
    `path_overrides` apply last, for the longest matching path prefix only. `updated_at`
    (seconds since the epoch, 0 for the defaults) is when `configure()` made this version.
    """

    csp: Directives = DEFAULT_CSP
    hsts_max_age: int = 31_536_000
    hsts_include_subdomains: bool = True
    hsts_preload: bool = False
    frame_options: str = "DENY"
    content_type_options: bool = True
    referrer_policy: str = "strict-origin-when-cross-origin"
    permissions_policy: str = "camera=(), geolocation=(), microphone=()"
    custom_headers: Pairs = ()
    path_overrides: tuple[tuple[str, Pairs], ...] = ()
    updated_at: float = 0.0

    def __post_init__(self) -> None:
        normalized: dict[str, Any] = {
            "csp": normalize_csp(self.csp),
            "hsts_max_age": _check_max_age(self.hsts_max_age),
            "hsts_include_subdomains": _require_bool(
                "hsts_include_subdomains", self.hsts_include_subdomains
            ),
            "hsts_preload": _require_bool("hsts_preload", self.hsts_preload),
            "frame_options": _check_choice("frame_options", self.frame_options, FRAME_OPTIONS),
            "content_type_options": _require_bool(
                "content_type_options", self.content_type_options
            ),
            "referrer_policy": _check_choice(
                "referrer_policy", self.referrer_policy, REFERRER_POLICIES
            ),
            "permissions_policy": validate_header_value(
                "Permissions-Policy", self.permissions_policy
            ),
            "custom_headers": normalize_headers(self.custom_headers),
            "path_overrides": normalize_path_overrides(self.path_overrides),
            "updated_at": _check_timestamp(self.updated_at),
        }
        for name, value in normalized.items():
            object.__setattr__(self, name, value)
        if len(self.to_json()) > MAX_JSON_LENGTH:
            raise ValueError(f"configuration is larger than {MAX_JSON_LENGTH} characters as JSON")

    def to_json(self) -> str:
        """The stored form: one JSON object with every field and `format`."""
        return json.dumps(
            {
                "format": JSON_FORMAT,
                "updated_at": self.updated_at,
                "csp": {name: list(sources) for name, sources in self.csp},
                "hsts_max_age": self.hsts_max_age,
                "hsts_include_subdomains": self.hsts_include_subdomains,
                "hsts_preload": self.hsts_preload,
                "frame_options": self.frame_options,
                "content_type_options": self.content_type_options,
                "referrer_policy": self.referrer_policy,
                "permissions_policy": self.permissions_policy,
                "custom_headers": dict(self.custom_headers),
                "path_overrides": {
                    prefix: dict(headers) for prefix, headers in self.path_overrides
                },
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, raw: str | bytes) -> HeadersConfig:
        """Parse and re-validate a stored document; anything wrong raises `ValueError`.

        The document must have exactly the fields `to_json()` writes and `format` 1, so a
        foreign or tampered value is refused as a whole rather than partly applied.
        """
        if not isinstance(raw, str | bytes):
            raise ValueError(f"stored document is a {type(raw).__name__}, not text")
        if len(raw) > MAX_JSON_LENGTH:
            raise ValueError(f"stored document is longer than {MAX_JSON_LENGTH} characters")
        data = parse_json(raw, "stored document")
        if not isinstance(data, dict):
            raise ValueError("stored document is not a JSON object")
        if data.get("format") != JSON_FORMAT:
            raise ValueError(f"stored document format is not {JSON_FORMAT}")
        expected = set(_JSON_FIELDS) | {"format"}
        if set(data) != expected:
            raise ValueError(
                f"stored document fields differ (missing {sorted(expected - set(data))}, "
                f"unknown {sorted(set(data) - expected)[:5]})"
            )
        # The JSON types are what the stored form uses: objects and arrays (of str).
        for name in ("csp", "custom_headers", "path_overrides"):
            if not isinstance(data[name], dict):
                raise ValueError(f"stored {name} is not a JSON object")
        try:
            return cls(**{name: data[name] for name in _JSON_FIELDS})
        except (TypeError, ValueError) as exc:
            raise ValueError(f"stored document is invalid: {exc}") from None


_JSON_FIELDS = (
    "csp",
    "hsts_max_age",
    "hsts_include_subdomains",
    "hsts_preload",
    "frame_options",
    "content_type_options",
    "referrer_policy",
    "permissions_policy",
    "custom_headers",
    "path_overrides",
    "updated_at",
)

DEFAULT_CONFIG = HeadersConfig()


def apply_changes(
    base: HeadersConfig,
    *,
    updated_at: float,
    csp: Mapping[str, Any] | None = None,
    hsts_max_age: int | None = None,
    hsts_include_subdomains: bool | None = None,
    hsts_preload: bool | None = None,
    frame_options: str | None = None,
    content_type_options: bool | None = None,
    referrer_policy: str | None = None,
    permissions_policy: str | None = None,
    custom_headers: Mapping[str, str] | None = None,
    path_overrides: Mapping[str, Mapping[str, str]] | None = None,
) -> HeadersConfig:
    """A new validated configuration: `base` with every non-`None` argument replacing its field.

    `csp`, `custom_headers` and `path_overrides` replace the whole field (`{}` clears it).
    """

    def pick(value: Any, current: Any) -> Any:
        return current if value is None else value

    return HeadersConfig(
        csp=pick(csp, base.csp),
        hsts_max_age=pick(hsts_max_age, base.hsts_max_age),
        hsts_include_subdomains=pick(hsts_include_subdomains, base.hsts_include_subdomains),
        hsts_preload=pick(hsts_preload, base.hsts_preload),
        frame_options=pick(frame_options, base.frame_options),
        content_type_options=pick(content_type_options, base.content_type_options),
        referrer_policy=pick(referrer_policy, base.referrer_policy),
        permissions_policy=pick(permissions_policy, base.permissions_policy),
        custom_headers=pick(custom_headers, base.custom_headers),
        path_overrides=pick(path_overrides, base.path_overrides),
        updated_at=updated_at,
    )


def _merge(headers: dict[str, str], extra: Pairs) -> dict[str, str]:
    """`headers` with `extra` added, each replacing a header of the same name in any case."""
    merged = dict(headers)
    for name, value in extra:
        for existing in [key for key in merged if key.lower() == name.lower()]:
            del merged[existing]
        merged[name] = value
    return merged


@dataclass(frozen=True)
class CompiledHeaders:
    """The header dicts of one configuration, built once so a request only copies one."""

    base: Mapping[str, str]
    #: (prefix, headers) with the longest prefix first.
    overrides: tuple[tuple[str, Mapping[str, str]], ...]

    @classmethod
    def from_config(cls, config: HeadersConfig) -> CompiledHeaders:
        hsts = f"max-age={config.hsts_max_age}"
        if config.hsts_include_subdomains:
            hsts += "; includeSubDomains"
        if config.hsts_preload:
            hsts += "; preload"
        base = {"Strict-Transport-Security": hsts}
        if config.content_type_options:
            base["X-Content-Type-Options"] = "nosniff"
        base["X-Frame-Options"] = config.frame_options
        base["Referrer-Policy"] = config.referrer_policy
        base["Permissions-Policy"] = config.permissions_policy
        if config.csp:
            base["Content-Security-Policy"] = serialize_csp(config.csp)
        base = _merge(base, config.custom_headers)
        overrides = tuple(
            (prefix, _merge(base, headers))
            for prefix, headers in sorted(config.path_overrides, key=lambda p: -len(p[0]))
        )
        return cls(base=base, overrides=overrides)

    def for_path(self, path: str | None = None) -> dict[str, str]:
        """A fresh dict of the headers for `path` (a URL path without query; `None`: base)."""
        if path is not None:
            for prefix, headers in self.overrides:
                if path_matches(prefix, path):
                    return dict(headers)
        return dict(self.base)


def path_matches(prefix: str, path: str) -> bool:
    """Whether `prefix` covers `path` (`/api` covers `/api` and `/api/x`, not `/apix`)."""
    if prefix.endswith("/"):
        return path.startswith(prefix)
    return path == prefix or path.startswith(prefix + "/")


def build_headers(config: HeadersConfig, path: str | None = None) -> dict[str, str]:
    """The headers `config` sends for `path` (a fresh dict)."""
    return CompiledHeaders.from_config(config).for_path(path)
