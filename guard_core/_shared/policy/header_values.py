"""What a security header may hold: names, values and CSP directives, validated.

Every header name and value that can reach a response passes these validators, so a
control character (CR, LF, NUL, DEL, ...) can never split or forge a header, whether it
comes from a caller or from a JSON document read back from Redis.

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

import math
import re
import string
from collections.abc import Mapping

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


def require_bool(what: str, value: object) -> bool:
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


def check_choice(what: str, value: object, choices: tuple[str, ...]) -> str:
    text = _require_str(what, value)
    if text not in choices:
        raise ValueError(f"{what} must be one of {', '.join(choices)} (got {text!r})")
    return text


def check_max_age(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"hsts_max_age must be an int, not {type(value).__name__}")
    if not 0 <= value <= MAX_HSTS_MAX_AGE:
        shown = value if value.bit_length() <= 64 else f"an int of {value.bit_length()} bits"
        raise ValueError(f"hsts_max_age must be between 0 and {MAX_HSTS_MAX_AGE} (got {shown})")
    return value


def check_timestamp(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"updated_at must be a number, not {type(value).__name__}")
    try:
        seconds = float(value)
    except OverflowError:  # an int beyond the float range
        raise ValueError("updated_at is too large") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"updated_at must be finite and >= 0 (got {seconds!r})")
    return seconds
