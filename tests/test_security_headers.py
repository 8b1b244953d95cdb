"""Security header defaults, validation, CSP serialisation and the stored JSON (pure module)."""

from __future__ import annotations

import json
import string
import unicodedata
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from guard_core._shared.policy.header_values import (
    FORBIDDEN_HEADER_NAMES,
    MAX_VALUE_LENGTH,
    normalize_csp,
    normalize_headers,
    serialize_csp,
    validate_header_name,
    validate_header_value,
)
from guard_core._shared.policy.security_headers import (
    DEFAULT_CONFIG,
    MAX_JSON_LENGTH,
    CompiledHeaders,
    HeadersConfig,
    apply_changes,
    build_headers,
    path_matches,
)

TCHAR = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"


def test_default_headers() -> None:
    assert build_headers(DEFAULT_CONFIG) == {
        "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "strict-origin-when-cross-origin",
        "Permissions-Policy": "camera=(), geolocation=(), microphone=()",
        "Content-Security-Policy": (
            "base-uri 'self'; default-src 'self'; form-action 'self'; "
            "frame-ancestors 'none'; object-src 'none'"
        ),
    }
    assert HeadersConfig() == DEFAULT_CONFIG
    assert DEFAULT_CONFIG.updated_at == 0.0


def test_csp_is_sorted_by_directive_and_keeps_source_order() -> None:
    directives = normalize_csp(
        {"img-src": ["'self'", "data:"], "default-src": ["'self'"], "sandbox": []}
    )
    assert directives == (
        ("default-src", ("'self'",)),
        ("img-src", ("'self'", "data:")),
        ("sandbox", ()),
    )
    assert serialize_csp(directives) == "default-src 'self'; img-src 'self' data:; sandbox"
    assert normalize_csp([("b-src", ("z", "a")), ["a-src", ["x"]]]) == (
        ("a-src", ("x",)),
        ("b-src", ("z", "a")),
    )
    assert normalize_csp({}) == ()


@pytest.mark.parametrize(
    ("csp", "error"),
    [
        ({"default-src": "'self'"}, TypeError),
        ({"default-src": [None]}, TypeError),
        ({1: ["'self'"]}, TypeError),
        ("default-src 'self'", TypeError),
        ([("a-src",)], TypeError),
        ({"Default-src": ["x"]}, ValueError),
        ({"default--src": ["x"]}, ValueError),
        ({"-src": ["x"]}, ValueError),
        ({"": ["x"]}, ValueError),
        ({"img_src": ["x"]}, ValueError),
        ({"a-src": ["x;y"]}, ValueError),
        ({"a-src": ["x,y"]}, ValueError),
        ({"a-src": ["x y"]}, ValueError),
        ({"a-src": [""]}, ValueError),
        ({"a-src": ["caf\u00e9.example"]}, ValueError),
        ([("a-src", ["x"]), ("a-src", ["y"])], ValueError),
        ({"a-src": ["x" * MAX_VALUE_LENGTH]}, ValueError),  # serialised value too long
    ],
)
def test_bad_csp(csp: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        normalize_csp(csp)


@pytest.mark.parametrize("name", ["X-A", "x-a", TCHAR, "A" * 256, "Content-Security-Policy"])
def test_valid_header_names(name: str) -> None:
    assert validate_header_name(name) == name


BAD_NAMES = ["", "X A", "X:A", "X(A)", 'X"A', "X/A", "X\rA", "X\nA", "X\x00", "X\x7f", "\u00c9"]
FORBIDDEN = ["Content-Length", "transfer-encoding", "CONNECTION", "Upgrade", "TE", "Trailer"]


@pytest.mark.parametrize("name", [*BAD_NAMES, "A" * 257, *FORBIDDEN])
def test_invalid_header_names(name: str) -> None:
    with pytest.raises(ValueError):
        validate_header_name(name)


@pytest.mark.parametrize("name", [None, b"X-A", 1, ["X-A"]])
def test_header_name_type(name: object) -> None:
    with pytest.raises(TypeError, match="header name must be a str"):
        validate_header_name(name)


def test_header_value_rules() -> None:
    assert validate_header_value("X", 'a b;c="d", ~') == 'a b;c="d", ~'
    assert validate_header_value("X", "v" * MAX_VALUE_LENGTH) == "v" * MAX_VALUE_LENGTH
    with pytest.raises(ValueError, match="longer than"):
        validate_header_value("X", "v" * (MAX_VALUE_LENGTH + 1))
    with pytest.raises(ValueError, match=r"'X-A' contains a control character U\+000D"):
        validate_header_value("X-A", "a\rb")
    with pytest.raises(ValueError, match=r"control character U\+007F"):
        validate_header_value("X-A", "a\x7f")
    with pytest.raises(ValueError, match=r"non-ASCII character U\+2028"):
        validate_header_value("X-A", "a\u2028b")
    for value in ("", " a", "a ", " "):
        with pytest.raises(ValueError):
            validate_header_value("X", value)
    with pytest.raises(TypeError, match="value of header 'X'"):
        validate_header_value("X", b"v")


def test_custom_headers_sorted_and_unique_case_insensitively() -> None:
    assert normalize_headers({"X-b": "1", "x-A": "2"}) == (("x-A", "2"), ("X-b", "1"))
    with pytest.raises(ValueError, match="appears twice"):
        normalize_headers({"X-A": "1", "x-a": "2"})


def test_construction_validates_and_normalises() -> None:
    config = HeadersConfig(
        csp={"b-src": ["x"], "a-src": []},  # type: ignore[arg-type]
        custom_headers={"X-A": "1"},  # type: ignore[arg-type]
        updated_at=5,
    )
    assert config.csp == (("a-src", ()), ("b-src", ("x",)))
    assert config.custom_headers == (("X-A", "1"),)
    assert config.updated_at == 5.0 and isinstance(config.updated_at, float)
    for bad in (
        {"hsts_max_age": -1},
        {"hsts_max_age": 2**31},
        {"frame_options": "deny"},
        {"referrer_policy": "no-referrer, origin"},
        {"permissions_policy": ""},
        {"updated_at": float("inf")},
        {"updated_at": -1.0},
    ):
        with pytest.raises(ValueError):
            HeadersConfig(**bad)
    too_big = {f"X-{index}": "v" * 8000 for index in range(9)}
    with pytest.raises(ValueError, match="larger than"):
        HeadersConfig(custom_headers=too_big)  # type: ignore[arg-type]
    for bad in ({"hsts_preload": 1}, {"hsts_max_age": 3.0}, {"updated_at": "1"}):
        with pytest.raises(TypeError):
            HeadersConfig(**bad)


def test_apply_changes_none_leaves_and_mappings_replace() -> None:
    base = apply_changes(DEFAULT_CONFIG, updated_at=1.0, custom_headers={"X-A": "1"})
    changed = apply_changes(base, updated_at=2.0, frame_options="SAMEORIGIN")
    assert changed.custom_headers == (("X-A", "1"),)
    assert changed.frame_options == "SAMEORIGIN"
    assert changed.csp == DEFAULT_CONFIG.csp
    assert changed.updated_at == 2.0
    cleared = apply_changes(changed, updated_at=3.0, custom_headers={}, csp={})
    assert cleared.custom_headers == () and cleared.csp == ()
    assert "Content-Security-Policy" not in build_headers(cleared)
    no_nosniff = apply_changes(DEFAULT_CONFIG, updated_at=1.0, content_type_options=False)
    assert "X-Content-Type-Options" not in build_headers(no_nosniff)


def test_hsts_serialisation() -> None:
    def hsts(**changes: Any) -> str:
        config = apply_changes(DEFAULT_CONFIG, updated_at=0.0, **changes)
        return build_headers(config)["Strict-Transport-Security"]

    assert hsts(hsts_max_age=0, hsts_include_subdomains=False) == "max-age=0"
    assert hsts(hsts_preload=True) == "max-age=31536000; includeSubDomains; preload"


@pytest.mark.parametrize(
    ("prefix", "path", "matches"),
    [
        ("/api", "/api", True),
        ("/api", "/api/", True),
        ("/api", "/api/v1", True),
        ("/api", "/apix", False),
        ("/api", "/ap", False),
        ("/api/", "/api/v1", True),
        ("/api/", "/api", False),
        ("/", "/anything", True),
        ("/", "/", True),
    ],
)
def test_path_matches(prefix: str, path: str, matches: bool) -> None:
    assert path_matches(prefix, path) is matches


def test_overrides_longest_prefix_wins_and_replace_case_insensitively() -> None:
    config = apply_changes(
        DEFAULT_CONFIG,
        updated_at=0.0,
        custom_headers={"X-Custom": "base"},
        path_overrides={
            "/": {"x-custom": "root"},
            "/a": {"X-Frame-Options": "SAMEORIGIN"},
        },
    )
    compiled = CompiledHeaders.from_config(config)
    base = compiled.for_path()
    assert base["X-Custom"] == "base"
    root = compiled.for_path("/b")
    assert root["x-custom"] == "root" and "X-Custom" not in root
    deeper = compiled.for_path("/a/b")
    assert deeper["X-Frame-Options"] == "SAMEORIGIN"
    assert deeper["X-Custom"] == "base"  # only the longest matching prefix applies
    assert compiled.for_path("/a") is not compiled.for_path("/a")  # fresh dicts


# -- stored JSON ---------------------------------------------------------------------------


def test_json_round_trip_and_layout() -> None:
    config = apply_changes(
        DEFAULT_CONFIG,
        updated_at=1700000000.5,
        csp={"default-src": ["'self'"], "upgrade-insecure-requests": []},
        custom_headers={"X-A": "1"},
        path_overrides={"/docs": {"X-B": "2"}},
    )
    raw = config.to_json()
    assert HeadersConfig.from_json(raw) == config
    assert HeadersConfig.from_json(raw.encode()) == config
    assert raw == config.to_json()  # deterministic
    document = json.loads(raw)
    assert document["format"] == 1
    assert document["csp"] == {"default-src": ["'self'"], "upgrade-insecure-requests": []}
    assert document["path_overrides"] == {"/docs": {"X-B": "2"}}
    assert HeadersConfig.from_json(DEFAULT_CONFIG.to_json()) == DEFAULT_CONFIG


def _document(**changes: Any) -> str:
    return json.dumps({**json.loads(DEFAULT_CONFIG.to_json()), **changes})


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "null",
        "not json",
        "[]",
        '"text"',
        _document(format=2),
        _document(format="1"),
        _document(extra=1),
        json.dumps({k: v for k, v in json.loads(DEFAULT_CONFIG.to_json()).items() if k != "csp"}),
        _document(custom_headers={"X-A": "1\r\nSet-Cookie: a=1"}),
        _document(custom_headers={"X-A\n": "1"}),
        _document(custom_headers=[["X-A", "1"]]),
        _document(csp={"default-src": "'self'"}),
        _document(csp={"default-src": ["'self'\x00"]}),
        _document(hsts_max_age=True),
        _document(hsts_max_age=1e400),
        _document(hsts_include_subdomains="true"),
        _document(updated_at=None),
        _document(updated_at=float("nan")),
        _document(path_overrides={"/a": {"Transfer-Encoding": "chunked"}}),
        _document(permissions_policy="x" * (MAX_VALUE_LENGTH + 1)),
        "[" * 100_000 + "]" * 100_000,
        " " * (MAX_JSON_LENGTH + 1),
    ],
)
def test_from_json_rejects_bad_documents_with_value_error(raw: str) -> None:
    with pytest.raises(ValueError):
        HeadersConfig.from_json(raw)


def test_from_json_rejects_deeply_nested_input_within_the_length_limit() -> None:
    with pytest.raises(ValueError):
        HeadersConfig.from_json("[" * 30_000 + "]" * 30_000)


@pytest.mark.parametrize("raw", [None, 1, ["{}"]])
def test_from_json_rejects_non_text(raw: Any) -> None:
    with pytest.raises(ValueError, match="not text"):
        HeadersConfig.from_json(raw)


# -- properties ----------------------------------------------------------------------------

_TEXT = st.text(max_size=30) | st.text(
    alphabet=st.sampled_from(TCHAR[-15:] + "aZ09 ;:,'\"()\r\n\t\x00\x7f\x1b\x85\u2028\u00e9"),
    max_size=12,
)


@given(_TEXT)
def test_header_name_accepted_exactly_when_it_is_a_token(name: str) -> None:
    is_token = bool(name) and all(ch in TCHAR for ch in name)
    allowed = is_token and name.lower() not in FORBIDDEN_HEADER_NAMES
    try:
        assert validate_header_name(name) == name
    except ValueError:
        assert not allowed
    else:
        assert allowed


@given(_TEXT)
def test_header_value_accepted_verbatim_or_value_error(value: str) -> None:
    try:
        config = apply_changes(DEFAULT_CONFIG, updated_at=0.0, custom_headers={"X-Probe": value})
    except ValueError:
        return
    assert build_headers(config)["X-Probe"] == value
    assert all(unicodedata.category(ch) not in ("Cc", "Zl", "Zp") for ch in value)
    assert HeadersConfig.from_json(config.to_json()) == config


_SOURCE = st.text(alphabet=st.sampled_from(string.ascii_letters + "'*:/.-"), min_size=1)
_DIRECTIVE = st.from_regex(r"[a-z]{1,6}(-[a-z]{1,6}){0,2}", fullmatch=True)


@given(
    csp=st.dictionaries(_DIRECTIVE, st.lists(_SOURCE, max_size=4), max_size=6),
    headers=st.dictionaries(
        st.text(alphabet=st.sampled_from("XYZxyz-"), min_size=1, max_size=8),
        st.text(alphabet=st.sampled_from("abc=;, ()"), min_size=1, max_size=10).map(
            lambda v: v.strip() or "v"
        ),
        max_size=4,
    ).filter(lambda h: len({n.lower() for n in h}) == len(h)),
)
def test_valid_configs_survive_the_json_round_trip(
    csp: dict[str, list[str]], headers: dict[str, str]
) -> None:
    config = apply_changes(DEFAULT_CONFIG, updated_at=12.5, csp=csp, custom_headers=headers)
    assert HeadersConfig.from_json(config.to_json()) == config
    value = build_headers(config).get("Content-Security-Policy")
    if csp and not any(name.lower() == "content-security-policy" for name in headers):
        assert value == serialize_csp(config.csp)
        assert value is not None and value.split("; ")[0].split(" ")[0] == min(csp)
