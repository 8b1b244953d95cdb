"""Request bodies as attack-pattern detection should see them.

Pure (no I/O); both faces' request checks use it, and the adapters ask `wants_body` before
they read anything. A body is scanned only up to `body_max_bytes` (the adapter reads no
further for the check: the rest streams on to the application unread and unscanned), and
only when its content type is text the application will decode:

- `application/x-www-form-urlencoded`: scanned as the query string is (raw, then percent-
  and plus-decoded, twice at most);
- `application/json` and `*/*+json`: every string (keys and values) of the document, one
  per line; a document cut at the bound or not valid JSON is scanned as raw text;
- `multipart/form-data`: the text fields (parts without a filename whose type, if given,
  is text); file parts are skipped;
- `text/*`, `application/xml` and `*/*+xml`: the raw text;
- no content type at all: the raw text (FastAPI and `get_json(force=True)` parse such a
  body as JSON).

Anything else (images, `application/octet-stream`, archives) is not read, nor is a body
with a `Content-Encoding` other than `identity` (compressed: not text as sent).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from guard_core._shared.policy.request_decoding import decoded_variants

#: Bytes of a body read and scanned by default (64 KiB); 0 turns body scanning off.
DEFAULT_BODY_MAX_BYTES = 64 * 1024
#: Most parts of a multipart body looked at, and strings of a JSON document kept.
MAX_PARTS = 1000
FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"


def media_type(content_type: str | None) -> str:
    """`"application/json; charset=utf-8"` -> `"application/json"` ("" when absent)."""
    return (content_type or "").partition(";")[0].strip().lower()


def _parameter(content_type: str, name: str) -> str | None:
    for part in content_type.split(";")[1:]:
        key, _, value = part.partition("=")
        if key.strip().lower() == name:
            return value.strip().strip('"') or None
    return None


def _is_json(kind: str) -> bool:
    return kind == "application/json" or (
        kind.startswith("application/") and kind.endswith("+json")
    )


def _is_raw_text(kind: str) -> bool:
    return (
        kind == ""
        or kind.startswith("text/")
        or kind == "application/xml"
        or (kind.startswith("application/") and kind.endswith("+xml"))
    )


def scanned_type(content_type: str | None) -> bool:
    """Whether a body of this content type is decoded and scanned."""
    kind = media_type(content_type)
    if kind == MULTIPART:
        return _parameter(content_type or "", "boundary") is not None
    return kind == FORM or _is_json(kind) or _is_raw_text(kind)


def wants_body(headers: Mapping[str, str], max_bytes: int, *, enabled: bool = True) -> bool:
    """Whether an adapter should read the body (lower-case `headers`): scanning is on and
    the content type is scanned, uncompressed."""
    if not enabled or max_bytes <= 0:
        return False
    encoding = headers.get("content-encoding", "").strip().lower()
    if encoding not in ("", "identity"):
        return False
    return scanned_type(headers.get("content-type"))


def _text(body: bytes, content_type: str) -> str:
    charset = _parameter(content_type, "charset") or "utf-8"
    try:
        return body.decode(charset, errors="replace")
    except LookupError:  # a charset Python does not know: the usual one
        return body.decode("utf-8", errors="replace")


def _json_strings(value: Any, found: list[str]) -> None:
    stack = [value]
    while stack and len(found) < MAX_PARTS * 10:
        item = stack.pop()
        if isinstance(item, str):
            found.append(item)
        elif isinstance(item, dict):
            for key, inner in item.items():
                found.append(str(key))
                stack.append(inner)
        elif isinstance(item, list):
            stack.extend(item)


def _json_texts(text: str) -> list[str]:
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        return [text]  # cut at the bound, or not JSON: the raw text
    found: list[str] = []
    _json_strings(document, found)
    return ["\n".join(found)] if found else []


def _multipart_parts(body: bytes, boundary: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(headers, content) of each part; a part cut at the bound ends at the bound."""
    delimiter = b"--" + boundary
    pieces = body.split(delimiter)
    for piece in pieces[1 : MAX_PARTS + 1]:
        if piece.startswith(b"--"):
            return  # the close delimiter
        piece = piece.removeprefix(b"\r\n")
        head, separator, content = piece.partition(b"\r\n\r\n")
        if not separator:
            continue
        yield head, content.removesuffix(b"\r\n")


def _multipart_texts(body: bytes, content_type: str) -> list[str]:
    boundary = _parameter(content_type, "boundary")
    if boundary is None:
        return []
    texts = []
    for head, content in _multipart_parts(body, boundary.encode("latin-1", errors="replace")):
        headers: dict[str, str] = {}
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        disposition = headers.get("content-disposition", "")
        if _parameter(disposition, "filename") is not None or "filename*" in disposition.lower():
            continue  # a file part: not scanned
        part_type = headers.get("content-type", "text/plain")
        if not (_is_raw_text(media_type(part_type)) or _is_json(media_type(part_type))):
            continue
        field = _parameter(disposition, "name")
        if field:
            texts.append(field)
        texts.append(_text(content, part_type))
    return texts


def body_texts(body: bytes, content_type: str | None, max_bytes: int) -> tuple[str, ...]:
    """The texts of a body to scan, each with its decodings (empty when the content type is
    not scanned). Only the first `max_bytes` bytes are looked at."""
    if not body or max_bytes <= 0 or not scanned_type(content_type):
        return ()
    body = body[:max_bytes]
    full_type = content_type or ""
    kind = media_type(full_type)
    if kind == FORM:
        texts = [_text(body, full_type)]
    elif kind == MULTIPART:
        texts = _multipart_texts(body, full_type)
    elif _is_json(kind) or kind == "":
        texts = _json_texts(_text(body, full_type))
    else:
        texts = [_text(body, full_type)]
    found: dict[str, None] = {}
    for text in texts:
        if text:
            for variant in decoded_variants(text):
                found[variant] = None
    return tuple(found)
