"""Request bodies as attack-pattern detection should see them.

Pure (no I/O); both faces' request checks use it, and the adapters ask `wants_body` before
they read anything. A body is scanned only up to `body_max_bytes` (the adapter reads no
further for the check: the rest streams on to the application unread and unscanned). The
decision follows what the frameworks parse, not what the headers claim:

- `application/x-www-form-urlencoded`: scanned as the query string is (raw, then percent-
  and plus-decoded, twice at most), decoded as UTF-8 and as each declared charset;
- `application/json` and `*/*+json`: every string (keys and values) of the document as
  `json.loads(bytes)` reads it (UTF-8, -16 or -32, a BOM or not, whatever the declared
  charset: so do Starlette, Flask and Django), one per line; a document cut at the bound,
  not valid JSON, or with more than `MAX_JSON_STRINGS` strings is scanned as raw text too;
- `multipart/form-data`: every part without a real (non-empty) filename, whatever its part
  type (all three frameworks give such a part as a text field), as Starlette, werkzeug and
  Django split the body (they differ: the union is scanned); file parts are skipped. A type
  with two `boundary` parameters, no boundary, or more than `MAX_PARTS` parts: raw text;
- `text/*`, XML, no content type, and any other type whose bytes are UTF-8 text without a
  NUL (`application/octet-stream` included: `get_json(force=True)` and
  `json.loads(request.body)` parse what they are given): the raw text, and the document's
  strings when it parses as JSON. A body of another type with NULs or invalid UTF-8 (an
  image, an archive) is binary: only its strings are scanned if it is JSON (UTF-16).

Raw text is scanned as sent and JSON-unescaped (`\\u003c` -> `<`). `Content-Encoding` does
not matter (no framework decompresses a request body): the bytes are scanned as sent, and a
gzip or zlib stream is also decompressed, within the bound, and scanned as its type says.
A charset Python does not know, or one that raises or is slow (`idna`, `punycode`,
`undefined`), is ignored: UTF-8 (errors replaced) is always scanned, so no client can make
the scan raise.
"""

from __future__ import annotations

import base64
import codecs
import contextlib
import json
import re
import zlib
from collections.abc import Mapping
from urllib.parse import unquote_plus

from guard_core._shared.policy.request_decoding import decoded_variants

#: Bytes of a body read and scanned by default (64 KiB); 0 turns body scanning off.
DEFAULT_BODY_MAX_BYTES = 64 * 1024
#: Most parts of a multipart body looked at (a form of more is scanned as raw text too).
MAX_PARTS = 1000
#: Most strings of a JSON document kept (a document of more is scanned as raw text too).
MAX_JSON_STRINGS = MAX_PARTS * 10
FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
#: Codecs never used for a declared charset: they raise on most input, or take quadratic time.
_UNSAFE_CODECS = frozenset({"idna", "punycode", "undefined"})
#: Most declared charsets tried for one text.
_MAX_CHARSETS = 4


def media_type(content_type: str | None) -> str:
    """`"application/json; charset=utf-8"` -> `"application/json"` ("" when absent)."""
    return (content_type or "").partition(";")[0].strip().lower()


def parameters(header: str) -> list[tuple[str, str]]:
    """The `; name=value` parameters after a header's main value, in order, repeated ones
    kept: names lower-case, quoted values unquoted (`\\"` escapes; a `;` inside quotes is
    part of the value)."""
    found: list[tuple[str, str]] = []
    i, end = header.find(";"), len(header)
    if i < 0:
        return found
    while i < end:
        j = i = i + 1
        while j < end and header[j] not in ";=":
            j += 1
        name, value = header[i:j].strip().lower(), ""
        if j < end and header[j] == "=":
            start = j = j + 1
            while j < end and header[j] in " \t":
                j += 1
            if j < end and header[j] == '"':
                chars, j = [], j + 1
                while j < end and header[j] != '"':
                    if header[j] == "\\" and j + 1 < end:
                        j += 1
                    chars.append(header[j])
                    j += 1
                value = "".join(chars)
                while j < end and header[j] != ";":
                    j += 1
            else:
                while j < end and header[j] != ";":
                    j += 1
                value = header[start:j].strip()
        if name:
            found.append((name, value))
        i = j
    return found


def _values(header: str, name: str) -> list[str]:
    return [value for key, value in parameters(header) if key == name]


def _is_json(kind: str) -> bool:
    return kind == "application/json" or (
        kind.startswith("application/") and kind.endswith("+json")
    )


def _is_text(kind: str) -> bool:
    return (
        kind == ""
        or kind.startswith("text/")
        or kind == "application/xml"
        or (kind.startswith("application/") and kind.endswith("+xml"))
    )


def wants_body(
    headers: Mapping[str, str], max_bytes: int, *, enabled: bool = True, http1: bool = False
) -> bool:
    """Whether an adapter should read the body (lower-case `headers`): scanning is on and a
    body may come (whatever its type or `Content-Encoding`: the bytes decide). Over HTTP/1.x
    (`http1`) a request with neither `Content-Length` nor `Transfer-Encoding` has no body
    (RFC 9112, 6.3), so a plain GET is not read; over HTTP/2 a body needs neither."""
    if not enabled or max_bytes <= 0:
        return False
    length = headers.get("content-length")
    if length is not None:
        return length.strip() != "0"
    return not http1 or "transfer-encoding" in headers


def _codec(charset: str) -> str | None:
    """The codec a declared charset names, None when unknown, not text or unsafe."""
    try:
        info = codecs.lookup(charset.strip())
    except (LookupError, ValueError, TypeError):
        return None
    if not getattr(info, "_is_text_encoding", True) or info.name in _UNSAFE_CODECS:
        return None
    return info.name


def _decoded(data: bytes, charsets: list[str]) -> list[str]:
    """`data` as UTF-8, then in each declared charset that reads it otherwise (errors replaced;
    a charset that still raises is skipped)."""
    texts = [data.decode("utf-8", errors="replace")]
    for charset in charsets[:_MAX_CHARSETS]:
        codec = _codec(charset)
        if codec is None or codec == "utf-8":
            continue
        try:
            text = data.decode(codec, errors="replace")
        except Exception:  # a codec that raises whatever the error handler
            continue
        if text not in texts:
            texts.append(text)
    return texts


_JSON_ESCAPE = re.compile(r"\\(?:u([0-9a-fA-F]{4})|([\"\\/bfnrt]))")
_SIMPLE_ESCAPES = {
    '"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"
}  # fmt: skip


def json_unescaped(text: str) -> str:
    """`text` with JSON's escapes decoded (`\\u003c` -> `<`, `\\"` -> `"`, surrogate pairs
    joined), as a parser would read a string of it; unpaired surrogates become U+FFFD."""
    if "\\" not in text:
        return text

    def one(match: re.Match[str]) -> str:
        if match[1]:
            return chr(int(match[1], 16))
        return _SIMPLE_ESCAPES[match[2]]

    unescaped = _JSON_ESCAPE.sub(one, text)
    return unescaped.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def _json_strings(data: bytes) -> tuple[list[str], bool] | None:
    """The strings of `data` read as `json.loads(bytes)` reads it, and whether there were more
    than `MAX_JSON_STRINGS`; None when it is not JSON (or cut at the bound)."""
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    found: list[str] = []
    stack = [document]
    while stack:
        if len(found) >= MAX_JSON_STRINGS:
            return found, True
        item = stack.pop()
        if isinstance(item, str):
            found.append(item)
        elif isinstance(item, dict):
            for key, inner in item.items():
                found.append(str(key))
                stack.append(inner)
        elif isinstance(item, list):
            stack.extend(item)
    return found, False


def _json_raw(data: bytes) -> list[str]:
    """Raw text of a JSON body: UTF-8, and the encoding JSON's own detection picks."""
    return _decoded(data, [json.detect_encoding(data)])


def _textual(data: bytes) -> bool:
    """UTF-8 text without a NUL (a multi-byte character cut at the bound is fine)."""
    if b"\x00" in data:
        return False
    try:
        codecs.getincrementaldecoder("utf-8")().decode(data, final=False)
    except UnicodeDecodeError:
        return False
    return True


# How each framework splits a multipart body: the delimiter, whether a close delimiter ends
# it, what of the delimiter line is dropped, what ends a part's headers and splits them.
_LINE = rb"(?:\r\n|\n|\r)"
_SPLITS = (
    # python-multipart (Starlette): CRLF only
    (rb"(?:\A|\r\n)%s(?=--|\r\n)", True, rb"\A", rb"\r\n\r\n", rb"\r\n"),
    # werkzeug: any line break, blanks after the boundary
    (rb"(?:\A|" + _LINE + rb")%s(?=--|[ \t]*" + _LINE + rb")", True,
     rb"\A[ \t]*", rb"\r\n\r\n|\r\r|\n\n", _LINE),
    # Django: the boundary anywhere, a line break before it dropped
    (rb"(?:\r?\n|\r)?%s", False, rb"\A", rb"\r\n\r\n", rb"\r\n"),
)  # fmt: skip


def _real_filename(disposition: str) -> bool:
    """Whether a part's Content-Disposition names a file: a `filename` (or RFC 2231
    `filename*`) parameter, none of them empty."""
    names = [(k, v) for k, v in parameters(disposition) if k in ("filename", "filename*")]
    for key, value in names:
        if key == "filename*":
            value = value.split("'", 2)[-1]
        if not value.strip():
            return False  # Django takes an empty filename as a text field
    return bool(names)


def _part_texts(head: bytes, content: bytes, line: bytes, texts: list[str]) -> None:
    headers: list[tuple[str, str]] = []
    for raw_line in re.split(line, head):
        name, colon, value = raw_line.decode("latin-1").partition(":")
        if colon:
            headers.append((name.strip().lower(), value.strip()))
    dispositions = [value for name, value in headers if name == "content-disposition"]
    if len(dispositions) == 1 and _real_filename(dispositions[0]):
        return  # a file part: not scanned
    part_types = [value for name, value in headers if name == "content-type"]
    charsets = [c for t in part_types for c in _values(t, "charset")]
    texts.extend(n for d in dispositions for n in _values(d, "name"))
    texts.extend(_decoded(content, charsets))
    encodings = {value.lower() for name, value in headers if name == "content-transfer-encoding"}
    if "base64" in encodings:  # Django decodes it
        with contextlib.suppress(ValueError):
            texts.extend(_decoded(base64.b64decode(content), charsets))


def _multipart_texts(body: bytes, content_type: str) -> list[str]:
    boundaries = _values(content_type, "boundary")
    if len(boundaries) != 1 or not boundaries[0]:
        return _decoded(body, [])  # no boundary, or two (ambiguous): the raw text
    mark = re.escape(b"--" + boundaries[0].encode("latin-1", errors="replace"))
    texts: list[str] = []
    for delimiter, closes, rest, blank, line in _SPLITS:
        pieces = re.split(delimiter.replace(b"%s", mark), body)[1:]
        if len(pieces) > MAX_PARTS:
            texts.extend(_decoded(body, []))
        for piece in pieces[:MAX_PARTS]:
            if closes and piece.startswith(b"--"):
                break  # the close delimiter
            piece = re.sub(rest, b"", piece, count=1)
            ends = re.search(blank, piece)
            if ends is None:
                texts.extend(_decoded(piece, []))  # no end of headers: all of it
                continue
            _part_texts(piece[: ends.start()], piece[ends.end() :], line, texts)
    return texts


def _form_texts(body: bytes, charsets: list[str]) -> list[str]:
    texts = _decoded(body, charsets)
    for charset in charsets[:_MAX_CHARSETS]:  # Django percent-decodes in the charset too
        codec = _codec(charset)
        if codec is None or codec == "utf-8":
            continue
        try:
            texts.append(unquote_plus(body.decode(codec, errors="replace"), codec, "replace"))
        except Exception:  # a codec that raises whatever the error handler
            continue
    return texts


def _collect(data: bytes, content_type: str, raw: list[str], parsed: list[str]) -> None:
    """Add the texts of one payload: `raw` ones are scanned JSON-unescaped too."""
    kinds = [k.strip() for k in media_type(content_type).split(",")]  # joined duplicates
    charsets = _values(content_type, "charset")
    for kind in dict.fromkeys(kinds):
        if kind == FORM:
            raw.extend(_form_texts(data, charsets))
            continue
        if kind == MULTIPART:
            raw.extend(_multipart_texts(data, content_type))
            continue
        strings = _json_strings(data)
        if strings is not None:
            parsed.extend(strings[0])
        if _is_json(kind):
            if strings is None or strings[1]:
                raw.extend(_json_raw(data))
        elif _is_text(kind):
            raw.extend(_decoded(data, charsets))
        elif (strings is None or strings[1]) and _textual(data):
            raw.extend(_decoded(data, []))


def _decompressed(body: bytes, max_bytes: int) -> bytes | None:
    """A gzip or zlib stream's content, its first `max_bytes` bytes (None when `body` is
    not one)."""
    if body[:2] == b"\x1f\x8b":
        wbits = 16 + zlib.MAX_WBITS
    elif len(body) > 1 and body[0] & 0x0F == 8 and (body[0] * 256 + body[1]) % 31 == 0:
        wbits = zlib.MAX_WBITS
    else:
        return None
    try:
        return zlib.decompressobj(wbits).decompress(body, max_bytes) or None
    except zlib.error:
        return None


def body_texts(body: bytes, content_type: str | None, max_bytes: int) -> tuple[str, ...]:
    """The texts of a body to scan, each with its decodings (empty when nothing of it is
    text). Only the first `max_bytes` bytes are looked at (and decompressed to)."""
    if not body or max_bytes <= 0:
        return ()
    body = body[:max_bytes]
    raw: list[str] = []
    strings: list[str] = []
    _collect(body, content_type or "", raw, strings)
    inflated = _decompressed(body, max_bytes)
    if inflated is not None:
        _collect(inflated, content_type or "", raw, strings)
    parsed = ["\n".join(strings)] if strings else []
    found: dict[str, None] = {}
    for text in parsed + raw:
        for variant in decoded_variants(text):
            found[variant] = None
    for text in raw:
        unescaped = json_unescaped(text)
        if unescaped != text:
            for variant in decoded_variants(unescaped):
                found[variant] = None
    found.pop("", None)
    return tuple(found)
