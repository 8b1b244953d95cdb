"""Keeping credentials out of logs, events and exception messages.

Redaction never relies on the URL being well formed: a password holding an unencoded `#`,
`/`, `?` or `@` makes `urllib.parse` see a different host, path or fragment, and the
password would then slip through a parser-based mask. Instead, two kinds of span are
masked in the raw text and the spans are merged:

- the user-info: from after the first `://` (or the start, when the string has no scheme)
  to the LAST `@` of the string. An `@` may sit in a password unencoded, never in a host,
  so nothing of the credentials is left; an `@` in a query value masks more than needed,
  never less.
- the value of every query parameter whose (percent-decoded) name looks secret (`password`,
  `token`, `secret`, `key`, `auth`, `cred`...), up to the next `&` or `;` (a `#`, `/`, `?`
  or `@` in it does not end it).

`Redactor.scrub` masks the same spans in every URL found in a piece of text, and the URL's
password (raw and percent-decoded) wherever it appears: everywhere when it is at least
`MIN_SECRET_LENGTH` characters long, as a whole word otherwise (so that a one-letter password
does not turn "Connection refused" into "Connection ref***sed"). A user name is masked in the
user-info position only: it is an identity, not a secret.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

MASK = "***"
#: Shorter passwords are masked in free text only where they stand as a whole word.
MIN_SECRET_LENGTH = 4
_SECRET_QUERY_WORDS = ("pass", "pwd", "secret", "token", "key", "auth", "cred")
# name=value pairs after a `?`, `&` or `;`; the value runs to the next `&` or `;`
_QUERY_PAIR = re.compile(r"[?&;]([^=&;?]*)=([^&;]*)")
# a URL inside free text: scheme://, then anything up to white space or a quote
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>]*")


def _is_secret_param(name: str) -> bool:
    lowered = unquote(name).lower()
    return any(word in lowered for word in _SECRET_QUERY_WORDS)


def _secret_spans(url: str) -> list[tuple[int, int]]:
    """The (start, end) spans of `url` holding credentials, merged, in order."""
    spans: list[tuple[int, int]] = []
    at = url.rfind("@")
    if at >= 0:
        scheme_end = url.find("://")
        start = scheme_end + 3 if scheme_end >= 0 and scheme_end + 3 <= at else 0
        spans.append((start, at))
    for match in _QUERY_PAIR.finditer(url):
        if _is_secret_param(match.group(1)):
            spans.append(match.span(2))
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _mask(url: str) -> str:
    pieces: list[str] = []
    last = 0
    for start, end in _secret_spans(url):
        pieces.append(url[last:start])
        pieces.append(MASK)
        last = end
    pieces.append(url[last:])
    return "".join(pieces)


def redact_url(url: str | None) -> str | None:
    """`url` with its user-info and secret-looking query values masked, whether or not it
    parses as a URL (see the module's docstring)."""
    if url is None:
        return None
    return _mask(url)


def _userinfo(url: str) -> str | None:
    at = url.rfind("@")
    if at < 0:
        return None
    scheme_end = url.find("://")
    start = scheme_end + 3 if scheme_end >= 0 and scheme_end + 3 <= at else 0
    return url[start:at]


def url_secrets(url: str | None) -> tuple[str, ...]:
    """The passwords carried by `url` (user-info password, secret query values), raw and
    percent-decoded, longest first. A user-info without `:` is a user name: not listed."""
    if not url:
        return ()
    found: set[str] = set()
    userinfo = _userinfo(url)
    if userinfo is not None and ":" in userinfo:
        found.add(userinfo.split(":", 1)[1])
    for match in _QUERY_PAIR.finditer(url):
        if _is_secret_param(match.group(1)):
            found.add(match.group(2))
    found |= {unquote(secret) for secret in found}
    return tuple(sorted((s for s in found if s), key=len, reverse=True))


class Redactor:
    """Masks the credentials of URLs in a piece of text, and a fixed set of passwords."""

    def __init__(self, secrets: tuple[str, ...]) -> None:
        self._secrets = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))
        short = [re.escape(s) for s in self._secrets if len(s) < MIN_SECRET_LENGTH]
        # a short secret counts where no letter or digit touches it
        self._short = (
            re.compile(r"(?<![^\W_])(?:" + "|".join(short) + r")(?![^\W_])") if short else None
        )

    @classmethod
    def for_url(cls, url: str | None) -> Redactor:
        return cls(url_secrets(url))

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            if len(secret) >= MIN_SECRET_LENGTH:
                text = text.replace(secret, MASK)
        if self._short is not None:
            text = self._short.sub(MASK, text)
        return _URL_IN_TEXT.sub(lambda match: _mask(match.group(0)), text)


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
