"""Security response headers: defaults, validation, CSP serialisation and the stored JSON form.

Pure (no I/O): `SecurityHeadersManager` of both faces builds on it. Every header name and
value that can reach a response passes the validators here, so a control character (CR, LF,
NUL, DEL, ...) can never split or forge a header, whether it comes from a caller or from a
JSON document read back from Redis.

The rules for header names, values and CSP are in `header_values`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from guard_core._shared.keys import HEADERS_CONFIG, SECURITY_HEADERS
from guard_core._shared.validation import parse_json

from .header_values import (
    FRAME_OPTIONS,
    REFERRER_POLICIES,
    Directives,
    Pairs,
    check_choice,
    check_max_age,
    check_timestamp,
    normalize_csp,
    normalize_headers,
    normalize_path_overrides,
    require_bool,
    serialize_csp,
    validate_header_value,
)

#: Redis namespace and key of the shared configuration (`{prefix}security_headers:csp_config`).
NAMESPACE = SECURITY_HEADERS
CONFIG_KEY = HEADERS_CONFIG
#: Version of the stored JSON layout; a document with another version is ignored.
JSON_FORMAT = 1
#: Longest stored JSON document accepted from Redis, in characters.
MAX_JSON_LENGTH = 65_536
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
            "hsts_max_age": check_max_age(self.hsts_max_age),
            "hsts_include_subdomains": require_bool(
                "hsts_include_subdomains", self.hsts_include_subdomains
            ),
            "hsts_preload": require_bool("hsts_preload", self.hsts_preload),
            "frame_options": check_choice("frame_options", self.frame_options, FRAME_OPTIONS),
            "content_type_options": require_bool("content_type_options", self.content_type_options),
            "referrer_policy": check_choice(
                "referrer_policy", self.referrer_policy, REFERRER_POLICIES
            ),
            "permissions_policy": validate_header_value(
                "Permissions-Policy", self.permissions_policy
            ),
            "custom_headers": normalize_headers(self.custom_headers),
            "path_overrides": normalize_path_overrides(self.path_overrides),
            "updated_at": check_timestamp(self.updated_at),
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
