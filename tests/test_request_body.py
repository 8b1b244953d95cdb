"""What of a request body attack-pattern detection sees (`request_body`): each way a body
could be parsed by the application while the guard saw no attack."""

from __future__ import annotations

import gzip
import json
import zlib

import pytest

from guard_core._shared.policy.attack_patterns import scan
from guard_core._shared.policy.request_body import (
    MAX_JSON_STRINGS,
    body_texts,
    json_unescaped,
    parameters,
    wants_body,
)

FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data; boundary=b"
SCRIPT = "<script>alert(1)</script>"
ESCAPED = '{"q": "\\u003cscript\\u003ealert(1)\\u003c/script\\u003e"}'


MIDLINE_FILE = 'x--b\r\nContent-Disposition: form-data; name="f"; filename="a"\r\n\r\n' + SCRIPT


def caught(body: bytes, content_type: str | None, max_bytes: int = 64 * 1024) -> bool:
    return any(scan(text, (), 10_000) for text in body_texts(body, content_type, max_bytes))


def multipart(*parts: tuple[str, str], nl: str = "\r\n", boundary: str = "b") -> bytes:
    """A multipart body of (part headers, content) parts."""
    chunks = [f"--{boundary}{nl}{head}{nl}{nl}{content}{nl}" for head, content in parts]
    return ("".join(chunks) + f"--{boundary}--{nl}").encode()


def field(content: str = SCRIPT, extra: str = "") -> tuple[str, str]:
    return f'Content-Disposition: form-data; name="q"{extra}', content


def test_content_encoding_does_not_turn_scanning_off() -> None:
    # Starlette, werkzeug and Django never decompress: the app parses the bytes as sent
    for encoding in ("gzip", "br", "identity, gzip"):
        assert wants_body({"content-encoding": encoding, "content-type": FORM}, 1024)
    assert caught(f"comment={SCRIPT}".encode(), FORM)
    # a compressed body is also inflated (within the bound) and scanned as its type says
    assert caught(gzip.compress(f"comment={SCRIPT}".encode()), FORM)
    assert caught(zlib.compress(json.dumps({"q": SCRIPT}).encode()), "application/json")
    bomb = gzip.compress(b"a" * (10 << 20) + SCRIPT.encode())
    assert not caught(bomb, FORM, 4096)  # inflated no further than the bound
    assert not wants_body({"content-type": FORM}, 0)
    assert not wants_body({"content-type": FORM}, 1024, enabled=False)


def test_an_http1_request_without_length_or_transfer_coding_has_no_body_to_read() -> None:
    assert not wants_body({}, 1024, http1=True)  # a plain GET: nothing is read
    assert not wants_body({"content-length": "0"}, 1024, http1=True)
    assert wants_body({"content-length": "12"}, 1024, http1=True)
    assert wants_body({"transfer-encoding": "chunked"}, 1024, http1=True)
    # HTTP/2 and unknown protocols: a body needs neither header, so it is read
    assert wants_body({}, 1024)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (json.dumps({"q": SCRIPT}).encode(), "application/json; charset=utf-16"),
        (json.dumps({"q": SCRIPT}).encode(), "application/json; charset=utf-32"),
        (json.dumps({"q": SCRIPT}).encode("utf-16"), "application/json"),
        (json.dumps({"q": SCRIPT}).encode("utf-16-le"), "application/json"),
        (json.dumps({"q": SCRIPT}).encode("utf-32"), "application/json; charset=utf-8"),
        (b"\xef\xbb\xbf" + ESCAPED.encode(), "application/json"),
        (json.dumps({"q": SCRIPT}).encode("utf-16"), None),
        (json.dumps({"q": SCRIPT}).encode("utf-16"), "application/octet-stream"),
    ],
)
def test_json_is_read_as_json_loads_reads_bytes(body: bytes, content_type: str | None) -> None:
    assert json.loads(body)["q"] == SCRIPT  # what Starlette, Flask and Django hand the app
    assert caught(body, content_type)


def test_forms_are_read_as_utf8_and_as_the_declared_charset() -> None:
    body = f"q={SCRIPT}".encode()
    assert caught(body, f"{FORM}; charset=utf-16")  # werkzeug and Starlette: UTF-8
    utf16 = f"q={SCRIPT}".encode("utf-16-le")
    assert caught(utf16, f"{FORM}; charset=utf-16-le")  # Django: the declared charset
    percent = "q=%3C%00s%00c%00r%00i%00p%00t%00%3E%00"  # Django unquotes in the charset
    assert caught(percent.encode("utf-16-le"), f"{FORM}; charset=utf-16-le")


def test_json_over_the_bound_is_scanned_unescaped() -> None:
    body = ESCAPED.encode() + b" " * 100 + b', "pad": "' + b"x" * 5000 + b'"}'
    assert caught(body, "application/json", 200)  # cut: not JSON, the raw text unescaped
    assert caught(ESCAPED.encode()[:-1], "application/vnd.api+json")
    assert json_unescaped('\\"\\\\u003c\\ud83d\\ude00\\u003c\\ud800') == '"\\u003c\U0001f600<\ufffd'


def test_a_json_document_past_the_string_cap_is_scanned_raw() -> None:
    padding = ",".join(['"x"'] * (MAX_JSON_STRINGS + 10))
    body = f'{{"q": "\\u003cscript\\u003e", "pad": [{padding}]}}'.encode()
    assert caught(body, "application/json", 1 << 20)


@pytest.mark.parametrize(
    "body",
    [
        multipart(field(extra="\r\nContent-Type: application/octet-stream")),
        multipart(field(extra="\r\nContent-Type: image/png")),
        multipart(field(extra='; x="filename*"')),
        multipart(field(extra='; x="a; filename=b.txt"')),
        multipart(field(extra='; filename=""')),  # Django: a text field
        multipart(field(extra="; filename*=UTF-8''")),
        multipart(field(), nl="\n"),  # werkzeug reads LF-only parts
        # a delimiter in the middle of a line splits nothing for Starlette and werkzeug
        multipart(field(MIDLINE_FILE)),
        # ... but does for Django: its field is inside a file part for the others
        multipart(
            (
                'Content-Disposition: form-data; name="f"; filename="a.txt"',
                'x--b\r\nContent-Disposition: form-data; name="q"\r\n\r\n' + SCRIPT,
            )
        ),
        multipart(
            (
                'Content-Disposition: form-data; name="q"\r\n'
                "Content-Transfer-Encoding: base64",  # Django decodes it
                "PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
            )
        ),
    ],
)
def test_multipart_text_fields_are_found_as_the_frameworks_split(body: bytes) -> None:
    assert caught(body, MULTIPART)


def test_multipart_file_parts_and_ambiguous_boundaries() -> None:
    upload = multipart(field(extra='; filename="page.html"\r\nContent-Type: text/html'))
    assert not caught(upload, MULTIPART)  # a real file part is not scanned
    assert not caught(upload, 'multipart/form-data; boundary="b"')
    # two boundary parameters (werkzeug and Django take the last): refused, all of it raw
    assert caught(upload, "multipart/form-data; boundary=c; boundary=b")
    assert caught(upload, "multipart/form-data")  # no boundary at all: raw
    many = multipart(*[field("x")] * 1001, field(extra='; filename="a"'))
    assert caught(many[:-10] + SCRIPT.encode(), MULTIPART)  # over MAX_PARTS: raw too


@pytest.mark.parametrize("charset", ["idna", "undefined", "punycode", "base64", "no-such", "a\0"])
def test_a_declared_charset_never_makes_the_scan_raise(charset: str) -> None:
    body = f"q={SCRIPT}".encode()
    for kind in (FORM, "text/plain", "application/json", "application/xml"):
        assert caught(body, f"{kind}; charset={charset}")
    part = multipart(field(extra=f"\r\nContent-Type: text/plain; charset={charset}"))
    assert caught(part, MULTIPART)


@pytest.mark.parametrize(
    "content_type",
    ["application/octet-stream", "image/png", "application/x-custom", "foo"],
)
def test_types_the_guard_does_not_know_are_scanned_when_text(content_type: str) -> None:
    assert caught(SCRIPT.encode(), content_type)  # get_json(force=True), json.loads(body)
    assert caught(ESCAPED.encode(), content_type)
    assert caught(SCRIPT.encode() + "é".encode()[:1], content_type)  # cut mid-character
    assert not caught(b"\x89PNG\r\n\x1a\n\x00\x00" + SCRIPT.encode(), content_type)
    assert not caught(b"\xff\xfe\xfd" + SCRIPT.encode(), content_type)  # not UTF-8


def test_text_types_and_duplicates_joined_by_a_server() -> None:
    assert caught(SCRIPT.encode(), "text/plain")
    assert caught(ESCAPED.encode(), "text/plain")  # unescaped too
    assert caught(f"q={SCRIPT}".encode(), f"{FORM}, text/x")
    assert caught(("<x>" + SCRIPT).encode("utf-16-le"), "text/xml; charset=utf-16-le")
    assert not caught(b"comment=hello&id=42", FORM)
    assert not caught(b'{"name": "O\'Brien", "n": 3}', "application/json")
    assert body_texts(b"", FORM, 1024) == ()


def test_parameters() -> None:
    assert parameters('form-data; name="a;filename=x"; FileName=""; x="\\"y"; flag') == [
        ("name", "a;filename=x"),
        ("filename", ""),
        ("x", '"y'),
        ("flag", ""),
    ]
    assert parameters("text/plain") == []
    assert parameters("a; boundary=b; boundary = c ") == [("boundary", "b"), ("boundary", "c")]
