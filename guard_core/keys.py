"""Key layout `{redis_prefix}{namespace}:{key}`, glob escaping and input validation.

Every Redis key guard-core touches is built here, so the layout lives in one place.
"""

from __future__ import annotations

import math

from guard_core.validation import MAX_TTL, check_text, shown_number

_GLOB_SPECIAL = frozenset("*?[]\\")


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


def build_key(prefix: str, namespace: str, key: str) -> str:
    """The full Redis key: `{prefix}{namespace}:{key}`."""
    return f"{prefix}{validate_namespace(namespace)}:{validate_key(key)}"


def build_pattern(prefix: str, pattern: str) -> str:
    """A SCAN pattern confined to `prefix`: the prefix is escaped, `pattern` is a glob."""
    return escape_glob(prefix) + validate_pattern(pattern)


def key_in_namespace(prefix: str, namespace: str, full_key: str) -> str:
    """The `key` part of a full key `{prefix}{namespace}:{key}` (ValueError if it is not one)."""
    head = f"{prefix}{namespace}:"
    if not full_key.startswith(head):
        raise ValueError(f"{full_key!r} is not in namespace {namespace!r}")
    return full_key[len(head) :]


def encode_key_part(text: str) -> str:
    """`text` with '%' and ':' percent-encoded, so that it ends at the next ':' of a key:
    `rate:{identifier}:{endpoint}` stays unambiguous when the identifier is an IPv6 address.
    """
    return text.replace("%", "%25").replace(":", "%3A")
