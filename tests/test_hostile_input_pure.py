"""Hostile input to the pure modules: keys, validation, IP parsing, config, headers, patterns.

Each check either returns what the documentation promises or raises a `ValueError` /
`TypeError` whose message names the argument; no other exception type ever escapes.
"""

from __future__ import annotations

import json
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from typing import Any

import pytest
import re2
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from guard_core._shared.addresses import canonical_ip, is_loopback, parse_ip, parse_network
from guard_core._shared.keys import (
    build_key,
    build_pattern,
    escape_glob,
    key_in_namespace,
    validate_key,
    validate_namespace,
    validate_pattern,
    validate_ttl,
    validate_value,
)
from guard_core._shared.policy.attack_patterns import (
    BUILTIN_PATTERNS,
    compile_custom,
    decode_pattern_list,
    scan,
    validate_pattern_text,
)
from guard_core._shared.policy.header_values import validate_header_name, validate_header_value
from guard_core._shared.policy.security_headers import DEFAULT_CONFIG, HeadersConfig
from guard_core._shared.validation import MAX_COUNT, MAX_TTL, check_count, check_seconds, check_text
from guard_core.models import SecurityConfig
from tests.support.hostile import (
    GLOB_META,
    Level,
    ShoutingFloat,
    assert_names,
    canonical,
    canonical_network,
    count_error,
    counts,
    expected_errors,
    hostile_str_or_not,
    hostile_text,
    ip_like_text,
    ip_text_error,
    names,
    network_text_error,
    not_str,
    prefix_error,
    seconds,
    seconds_error,
    short_text,
    stored_bytes,
    text_error,
    textual_forms,
    ttls,
    values,
)

PURE = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- keys: namespaces, keys, patterns, TTLs, values -----------------------------------------


@PURE
@given(text=hostile_str_or_not)
def test_namespace_key_and_pattern_rules(text: Any) -> None:
    for name, check in (
        ("namespace", validate_namespace),
        ("key", validate_key),
        ("pattern", validate_pattern),
    ):
        expected = expected_errors(**{name: text})
        if expected:
            with pytest.raises((ValueError, TypeError)) as caught:
                check(text)
            assert_names(caught.value, expected)
        else:
            assert check(text) is text


@PURE
@given(namespace=names, key=names)
def test_build_key_is_the_documented_layout_and_splits_back(namespace: Any, key: Any) -> None:
    expected = expected_errors(namespace=namespace, key=key)
    if expected:
        with pytest.raises((ValueError, TypeError)) as caught:
            build_key("guard_core:", namespace, key)
        assert_names(caught.value, expected)
        return
    full_key = build_key("guard_core:", namespace, key)
    assert full_key == f"guard_core:{namespace}:{key}"
    assert key_in_namespace("guard_core:", namespace, full_key) == key


@PURE
@given(ttl=ttls)
def test_ttl_rules(ttl: Any) -> None:
    expected = expected_errors(ttl=ttl)
    if expected:
        with pytest.raises((ValueError, TypeError)) as caught:
            validate_ttl(ttl)
        assert_names(caught.value, expected)
        assert len(str(caught.value)) < 200
    else:
        assert validate_ttl(ttl) == ttl


@PURE
@given(value=values)
@example(value=b"\xff\xfe")  # not UTF-8: could be written but never read back
@example(value=10**4300)  # more digits than Python turns into text
@example(value=Level.HIGH)
@example(value=ShoutingFloat(2.5))
def test_value_rules_and_stored_text(value: Any) -> None:
    expected = expected_errors(value=value)
    if expected:
        with pytest.raises((ValueError, TypeError)) as caught:
            validate_value(value)
        assert_names(caught.value, expected)
        assert len(str(caught.value)) < 200
        return
    checked = validate_value(value)
    assert type(checked) in (str, bytes, int, float)  # subclasses become the plain type
    assert stored_bytes(checked) == stored_bytes(value)
    if isinstance(checked, int | float):
        assert repr(checked).encode() == stored_bytes(value)  # what redis-py sends


def literal_tokens(glob: str) -> list[str] | None:
    """The characters `glob` matches one by one, or None if it holds a live metacharacter."""
    tokens: list[str] = []
    index = 0
    while index < len(glob):
        ch = glob[index]
        if ch == "\\":
            if index + 1 == len(glob):
                return None
            tokens.append(glob[index + 1])
            index += 2
            continue
        if ch in "*?[":
            return None
        tokens.append(ch)  # ']', '^' and '-' are literal outside a bracket
        index += 1
    return tokens


@PURE
@given(prefix=hostile_text, pattern=hostile_str_or_not)
def test_escaped_prefix_is_all_literal_and_heads_every_pattern(prefix: str, pattern: Any) -> None:
    assert literal_tokens(escape_glob(prefix)) == list(prefix)
    expected = expected_errors(pattern=pattern)
    if expected:
        with pytest.raises((ValueError, TypeError)) as caught:
            build_pattern(prefix, pattern)
        assert_names(caught.value, expected)
        return
    full = build_pattern(prefix, pattern)
    head = escape_glob(prefix)
    assert full == head + pattern
    # the literal head ends on a token boundary, so the pattern cannot borrow a backslash
    assert literal_tokens(full[: len(head)]) == list(prefix)


# -- SecurityConfig.redis_prefix -----------------------------------------------------------

prefixes = st.one_of(
    hostile_str_or_not,
    st.text(st.sampled_from(GLOB_META + "ab:é\U0001f600"), min_size=1, max_size=12),
    st.sampled_from(["guard_core:", "guard core:", "guard_core:\n", "\u200b", "a\u2028b", "\x00"]),
)


@PURE
@given(prefix=prefixes)
def test_redis_prefix_is_validated(prefix: Any) -> None:
    if prefix_error(prefix) is not None:
        with pytest.raises(ValueError, match=r"^redis_prefix "):
            SecurityConfig(redis_prefix=prefix)
        return
    config = SecurityConfig(redis_prefix=prefix)
    assert config.redis_prefix == prefix
    assert literal_tokens(build_pattern(prefix, "")) == list(prefix)


NUMBER_FIELDS = [
    "redis_connect_timeout",
    "redis_socket_timeout",
    "redis_pool_timeout",
    "redis_state_refresh_interval",
    "rate_limit_window",
    "rate_limit",
    "redis_max_connections",
    "ip_ban_default_duration",
]


@pytest.mark.parametrize("field", NUMBER_FIELDS)
def test_a_huge_number_in_config_raises_a_clear_value_error(field: str) -> None:
    """Not OverflowError (float fields), nor a message about int-to-text conversion."""
    with pytest.raises(ValueError, match=rf"^{field} "):
        fields: dict[str, Any] = {field: 10**5000}
        SecurityConfig(**fields)


def test_config_refuses_a_rate_limit_window_no_rate_limit_check_accepts() -> None:
    """Windows longer than MAX_TTL cannot expire in Redis, so `check()` refuses them."""
    with pytest.raises(ValueError, match=r"^window "):
        check_seconds("window", MAX_TTL + 1)
    with pytest.raises(ValueError, match=r"^rate_limit_window "):
        SecurityConfig(rate_limit_window=MAX_TTL + 1)


# -- validation: counts, seconds, text -------------------------------------------------------


@PURE
@given(value=counts)
@example(value=MAX_COUNT + 1)
@example(value=-(10**5000))
def test_count_rule(value: Any) -> None:
    error = count_error(value)
    if error is None:
        assert check_count("limit", value) == value
        assert type(check_count("limit", value)) is int
        return
    with pytest.raises(error, match=r"^limit ") as caught:
        check_count("limit", value)
    assert len(str(caught.value)) < 200


@PURE
@given(value=seconds)
@example(value=10**400)  # math.isfinite would overflow on it
@example(value=MAX_TTL + 0.5)
def test_seconds_rule(value: Any) -> None:
    error = seconds_error(value)
    if error is None:
        assert check_seconds("window", value) == float(value)
        return
    with pytest.raises(error, match=r"^window ") as caught:
        check_seconds("window", value)
    assert len(str(caught.value)) < 200


@PURE
@given(value=hostile_str_or_not, allow_empty=st.booleans())
def test_text_rule(value: Any, allow_empty: bool) -> None:
    error = text_error(value, allow_empty=allow_empty)
    if error is None:
        assert check_text("identifier", value, allow_empty=allow_empty) is value
        return
    with pytest.raises(error, match=r"^identifier "):
        check_text("identifier", value, allow_empty=allow_empty)


# -- IP addresses and networks ---------------------------------------------------------------


@PURE
@given(address=st.ip_addresses())
# IPv4-mapped IPv6, which Python 3.13 writes dotted and 3.11/3.12 in hex
@example(address=IPv6Address("::ffff:0:0"))
@example(address=IPv6Address("::ffff:c000:201"))
def test_every_textual_form_of_an_address_has_one_canonical_text(address: Any) -> None:
    expected = canonical(address)
    for form in textual_forms(address):
        assert canonical_ip(form) == expected, form
        assert str(parse_ip(form)) == expected
    assert canonical_ip(address) == expected  # an address object is accepted as it is
    assert canonical_ip(expected) == expected
    assert is_loopback(expected) is ip_address(expected).is_loopback


@pytest.mark.parametrize(
    "form",
    [
        "::ffff:192.0.2.1",
        "::ffff:c000:201",
        "0000:0000:0000:0000:0000:ffff:192.0.2.1",  # 3.13's exploded text
        "0000:0000:0000:0000:0000:ffff:c000:0201",  # 3.11's and 3.12's
        "0:0:0:0:0:FFFF:C000:201",
    ],
)
def test_an_ipv4_mapped_address_is_its_ipv4_address_on_every_python(form: str) -> None:
    # the canonical text is the IPv4 one, never the Python's own IPv6 text of the address
    # (3.13 writes `::ffff:192.0.2.1`, 3.11 and 3.12 `::ffff:c000:201`)
    assert canonical_ip(form) == "192.0.2.1"
    assert canonical_ip(IPv6Address(form)) == "192.0.2.1"
    assert str(parse_network(form + "/128")) == "192.0.2.1/32"
    assert str(parse_network("::ffff:0:0/96")) == "0.0.0.0/0"


@PURE
@given(text=st.one_of(ip_like_text, not_str))
def test_hostile_address_text_parses_to_its_canonical_form_or_raises(text: Any) -> None:
    error = ip_text_error(text)
    if error is not None:
        with pytest.raises(error) as caught:
            parse_ip(text)
        assert "IP address" in str(caught.value)
        with pytest.raises(error):
            is_loopback(text)
        return
    address = parse_ip(text)
    assert isinstance(address, IPv4Address | IPv6Address)
    assert canonical_ip(text) == canonical(ip_address(str(text)))
    assert canonical_ip(canonical_ip(text)) == canonical_ip(text)


cidrs = st.one_of(
    st.builds(lambda net: str(net), st.ip_addresses(v=4).map(lambda a: IPv4Network(a))),
    st.builds(
        lambda address, length: str(IPv4Network((address, length), strict=False)),
        st.ip_addresses(v=4),
        st.integers(0, 32),
    ),
    st.builds(
        lambda address, length: str(IPv6Network((address, length), strict=False)),
        st.ip_addresses(v=6),
        st.integers(0, 128),
    ),
    st.builds(lambda a, n: f"{a}/{n}", st.ip_addresses(), st.integers(-1, 140)),
    st.builds(lambda a, n: f"::ffff:{a}/{n}", st.ip_addresses(v=4), st.integers(90, 130)),
    ip_like_text,
)


@PURE
@given(text=st.one_of(cidrs, not_str))
def test_hostile_network_text_parses_to_its_canonical_form_or_raises(text: Any) -> None:
    if not isinstance(text, str):
        expected_error: type[Exception] | None = (
            None if isinstance(text, IPv4Network | IPv6Network) else TypeError
        )
    else:
        expected_error = network_text_error(text)
    if expected_error is not None:
        with pytest.raises(expected_error) as caught:
            parse_network(text)
        assert "network" in str(caught.value)
        return
    network = parse_network(text)
    assert str(network) == canonical_network(text)
    assert parse_network(str(network)) == network


# -- security headers and attack patterns ---------------------------------------------------


def printable_ascii(text: str) -> bool:
    return bool(text) and all(0x20 <= ord(ch) <= 0x7E for ch in text)


@PURE
@given(name=hostile_str_or_not, value=hostile_str_or_not)
@example(name="X-Test", value="ok\r\nSet-Cookie: session=stolen")
@example(name="X-Test\r\nSet-Cookie", value="x")
def test_header_names_and_values_never_carry_control_or_non_ascii_text(
    name: Any, value: Any
) -> None:
    try:
        checked_name = validate_header_name(name)
    except (ValueError, TypeError) as exc:
        assert "header" in str(exc)
    else:
        assert printable_ascii(checked_name) and " " not in checked_name
    try:
        checked_value = validate_header_value("X-Test", value)
    except (ValueError, TypeError) as exc:
        assert "X-Test" in str(exc)
    else:
        assert printable_ascii(checked_value) and checked_value == checked_value.strip(" ")


JUNK_JSON = st.one_of(
    st.sampled_from(
        ["1" * 400, "-" + "9" * 400, "1" * 5000, "1e999", "NaN", "-Infinity", "null", "[]"]
    ),
    st.sampled_from(["{}", '"x"', "true", "0.5", '{"a":1}', '["\\u0000"]', '"\\ud800"']),
    hostile_text.map(json.dumps),
)


@PURE
@given(
    field=st.sampled_from([*json.loads(DEFAULT_CONFIG.to_json())]),
    junk=JUNK_JSON,
)
@example(field="updated_at", junk="1" * 400)  # an int too large for a float
def test_a_tampered_stored_header_document_is_parsed_or_refused_with_value_error(
    field: str, junk: str
) -> None:
    document = json.loads(DEFAULT_CONFIG.to_json())
    document[field] = "__JUNK__"
    raw = json.dumps(document).replace('"__JUNK__"', junk)
    assert raw != json.dumps(document)
    try:
        parsed = HeadersConfig.from_json(raw)
    except ValueError:
        return
    assert isinstance(parsed, HeadersConfig)


@pytest.mark.filterwarnings("ignore:Possible nested set:FutureWarning")
@PURE
@given(pattern=st.one_of(hostile_str_or_not, short_text.map(lambda s: s + "(")))
@example(pattern="(" * 1000 + ")" * 1000)  # nested too deep
@example(pattern="a{4294967296}")  # repetition count too large
@example(pattern=r"(a)\1")  # a backreference
def test_custom_pattern_text_compiles_or_raises(pattern: Any) -> None:
    if not isinstance(pattern, str):
        with pytest.raises(TypeError, match=r"^pattern "):
            compile_custom(pattern)
        return
    try:
        regex = compile_custom(pattern)
    except ValueError as exc:
        assert "pattern" in str(exc) or "regular expression" in str(exc)
        try:
            validate_pattern_text(pattern)
        except ValueError:
            return
        quiet = re2.Options()
        quiet.log_errors, quiet.case_sensitive = False, False  # as patterns are compiled
        with pytest.raises(re2.error):  # the matcher itself refuses it
            re2.compile(pattern, quiet)
        return
    assert regex.pattern == pattern


@PURE
@given(raw=st.one_of(hostile_text, st.binary(max_size=30), JUNK_JSON, not_str))
def test_stored_pattern_lists_decode_or_are_refused_never_raise(raw: Any) -> None:
    decoded = decode_pattern_list(raw)
    assert decoded is None or all(isinstance(item, str) for item in decoded)


@PURE
@given(content=hostile_text)
def test_scanning_hostile_content_finds_only_builtin_matches(content: str) -> None:
    found = scan(content, (), 10_000)
    assert {match.pattern for match in found} <= {p.pattern for p in BUILTIN_PATTERNS}
