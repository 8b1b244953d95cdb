"""Keeping credentials out of logs, events and exception messages."""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

MASK = "***"
_SECRET_QUERY_WORDS = ("pass", "secret", "token", "key")


def _is_secret_param(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_QUERY_WORDS)


def redact_url(url: str | None) -> str | None:
    """Return `url` with its userinfo and any secret-looking query values masked."""
    if url is None:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    netloc = parts.netloc
    if "@" in netloc:
        netloc = MASK + "@" + netloc.rsplit("@", 1)[1]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, MASK if _is_secret_param(k) else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def url_secrets(url: str | None) -> tuple[str, ...]:
    """The secret strings carried by `url` (raw and percent-decoded), longest first."""
    if not url:
        return ()
    try:
        parts = urlsplit(url)
    except ValueError:
        return (url,)
    found: set[str] = set()
    if "@" in parts.netloc:
        userinfo = parts.netloc.rsplit("@", 1)[0]
        found.add(userinfo)
        found.update(userinfo.split(":", 1))
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if _is_secret_param(name):
            found.add(value)
    found |= {unquote(secret) for secret in found}
    return tuple(sorted((s for s in found if s), key=len, reverse=True))


class Redactor:
    """Masks a fixed set of secrets wherever they appear in a piece of text."""

    def __init__(self, secrets: tuple[str, ...]) -> None:
        self._secrets = secrets

    @classmethod
    def for_url(cls, url: str | None) -> Redactor:
        return cls(url_secrets(url))

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text


# -- control characters ---------------------------------------------------------------------


def escape_control(text: str) -> str:
    """`text` with every character that is not printable shown as an escape (`\\r`, `\\n`,
    `\\t`, `\\x1b`, `\\u2028`...), so that a value written into a log line or an event (a ban
    reason, an identifier, a pattern, an error message) cannot start a forged line or hide
    text. Printable text, backslashes included, is returned as it is."""
    if text.isprintable():
        return text
    return "".join(
        ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text
    )
