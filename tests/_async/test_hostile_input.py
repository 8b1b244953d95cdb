"""Hostile input through the Redis-facing API, written once for both faces.

Every call either works on exactly the documented key (`{prefix}{namespace}:{key}`) or
raises a `ValueError`/`TypeError` naming the argument before anything is written; no
Redis error escapes a subsystem, and keys outside the prefix always survive.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import string
from collections.abc import Callable
from ipaddress import ip_address, ip_network
from typing import Any

import pytest
import re2
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from guard_core._shared.addresses import canonical_identifier, canonical_ip
from guard_core._shared.keys import encode_key_part
from guard_core._shared.policy.attack_patterns import BUILTIN_PATTERNS, scan_length
from guard_core._shared.policy.security_headers import DEFAULT_CONFIG, HeadersConfig, build_headers
from guard_core._shared.validation import MAX_TTL
from guard_core.exceptions import GuardRedisError
from guard_core.handlers.behavior_handler import BehaviorTracker
from guard_core.handlers.ipban_handler import IPBanManager
from guard_core.handlers.ratelimit_handler import RateLimitManager
from guard_core.handlers.redis_handler import RedisManager
from guard_core.handlers.security_headers_handler import SecurityHeadersManager
from guard_core.handlers.suspatterns_handler import SusPatternsManager
from guard_core.models import SecurityConfig
from tests.support.backends import Backend, StateEnv
from tests.support.hostile import (
    FIXED_CANARIES,
    GLOB_META,
    Level,
    all_keys,
    assert_canaries_survive,
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
    near_misses,
    network_text_error,
    not_str,
    optional,
    outside,
    prefix_error,
    raw_get,
    seconds,
    seconds_error,
    short_text,
    stored_bytes,
    text_error,
    textual_forms,
    ttls,
    utf8_error,
    values,
    write_canaries,
)

pytestmark = pytest.mark.anyio

HOSTILE = settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
)
PREFIX = "guard_core:"


def redis_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    """ERROR records of the manager: input that reached Redis and failed there."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("guard_core") and r.levelno >= logging.ERROR
    ]


def start_example(env_inspect: Any, caplog: pytest.LogCaptureFixture) -> dict[str, Any]:
    """A clean server holding only the canaries, and a clean log."""
    caplog.clear()
    if env_inspect is None:
        return {}
    env_inspect.flushdb()
    return write_canaries(env_inspect, FIXED_CANARIES)


def finish_example(
    env_inspect: Any, canaries: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    if env_inspect is not None:
        assert_canaries_survive(env_inspect, canaries)
    assert redis_errors(caplog) == []


# -- RedisManager: namespaces, keys, values, TTLs ---------------------------------------------

namespaces = st.one_of(
    st.text(st.characters(codec="utf-8", exclude_characters=":"), min_size=1, max_size=12),
    hostile_str_or_not,
)


@HOSTILE
@given(namespace=namespaces, key=names, value=values, ttl=ttls)
async def test_set_key_writes_exactly_the_documented_key_or_rejects(
    manager: RedisManager,
    backend: Backend,
    caplog: pytest.LogCaptureFixture,
    namespace: Any,
    key: Any,
    value: Any,
    ttl: Any,
) -> None:
    inspect = backend.inspect
    canaries = start_example(inspect, caplog)
    expected = expected_errors(namespace=namespace, key=key, value=value, ttl=ttl)
    try:
        result = await manager.set_key(namespace, key, value, ttl=ttl)
    except Exception as exc:
        assert expected, f"a valid call raised {exc!r}"
        assert_names(exc, expected)
        assert all_keys(inspect) == set(canaries)
    else:
        assert not expected, f"invalid {sorted(expected)} accepted"
        assert result is True
        full_key = backend.key(namespace, key)
        remaining = inspect.pttl(full_key)
        if ttl is None:
            assert remaining == -1
        else:
            assert 0 < remaining <= ttl * 1000
        assert all_keys(inspect) == set(canaries) | {full_key}
        assert raw_get(inspect, full_key) == stored_bytes(value)
        assert await manager.get_key(namespace, key) == stored_bytes(value).decode("utf-8")
    assert manager.available
    finish_example(inspect, canaries, caplog)


def ttl_is_invalid(ttl: object) -> bool:
    return bool(expected_errors(ttl=ttl))


@HOSTILE
@given(namespace=namespaces, key=names, ttl=ttls)
async def test_key_operations_touch_exactly_the_documented_key_or_reject(
    manager: RedisManager,
    backend: Backend,
    caplog: pytest.LogCaptureFixture,
    namespace: Any,
    key: Any,
    ttl: Any,
) -> None:
    inspect = backend.inspect
    canaries = start_example(inspect, caplog)
    expected = expected_errors(namespace=namespace, key=key)
    calls: list[tuple[Callable[[], Any], dict[str, type[Exception]]]] = [
        (lambda: manager.get_key(namespace, key), expected),
        (lambda: manager.exists(namespace, key), expected),
        (lambda: manager.get_many(namespace, [key]), expected),
        (lambda: manager.incr(namespace, key, ttl=ttl), {**expected_errors(ttl=ttl), **expected}),
        (lambda: manager.delete(namespace, key), expected),
    ]
    if expected or ttl_is_invalid(ttl):
        for call, errors in calls:
            if not errors:
                continue
            with pytest.raises((ValueError, TypeError)) as caught:
                await call()
            assert_names(caught.value, errors)
        assert all_keys(inspect) == set(canaries)
    if not expected:
        full_key = backend.key(namespace, key)
        inspect.set(full_key, "41")
        assert await manager.get_key(namespace, key) == "41"
        assert await manager.exists(namespace, key) is True
        assert await manager.get_many(namespace, [key]) == ["41"]
        if not ttl_is_invalid(ttl):
            assert await manager.incr(namespace, key, ttl=ttl) == 42
            assert inspect.get(full_key) == "42"
            remaining = inspect.pttl(full_key)
            assert remaining == -1 if ttl is None else 0 < remaining <= ttl * 1000
        assert all_keys(inspect) == set(canaries) | {full_key}
        assert await manager.delete(namespace, key) == 1
        assert await manager.exists(namespace, key) is False
        assert all_keys(inspect) == set(canaries)
    finish_example(inspect, canaries, caplog)


async def test_bytes_that_are_not_utf8_are_refused_and_foreign_ones_fail_cleanly(
    manager: RedisManager, backend: Backend
) -> None:
    """Replies are decoded as UTF-8: such bytes are refused on write, and when another
    writer stored them, reading fails as a GuardRedisError (not UnicodeDecodeError)."""
    inspect = backend.inspect
    canaries = write_canaries(inspect, FIXED_CANARIES)
    with pytest.raises(ValueError, match=r"^value bytes are not valid UTF-8"):
        await manager.set_key("ns", "k", b"\xff\xfe")
    assert await manager.exists("ns", "k") is False
    inspect.set(backend.key("ns", "k"), b"\xff\xfe")
    with pytest.raises(GuardRedisError):
        await manager.get_key("ns", "k")
    inspect.set(b"guard_core:ns:\xff", b"x")  # a key name that is not UTF-8
    for call in (manager.keys, manager.delete_pattern):
        with pytest.raises(GuardRedisError):
            await call("ns:*")
    assert manager.available  # a bad value is not an outage
    assert await manager.delete("ns", "k") == 1
    inspect.delete(b"guard_core:ns:\xff")
    assert await manager.keys("*") == []
    assert_canaries_survive(inspect, canaries)


@HOSTILE
@given(namespace=namespaces, key=names, value=values, ttl=ttls, pattern=hostile_str_or_not)
async def test_disabled_manager_rejects_the_same_input_and_answers_none(
    namespace: Any, key: Any, value: Any, ttl: Any, pattern: Any
) -> None:
    manager = RedisManager(SecurityConfig(enable_redis=False))
    calls: list[tuple[Callable[[], Any], dict[str, Any]]] = [
        (lambda: manager.set_key(namespace, key, value, ttl=ttl), dict(value=value, ttl=ttl)),
        (lambda: manager.incr(namespace, key, ttl=ttl), dict(ttl=ttl)),
        (lambda: manager.get_key(namespace, key), {}),
        (lambda: manager.exists(namespace, key), {}),
        (lambda: manager.delete(namespace, key), {}),
    ]
    for call, extra in calls:
        expected = expected_errors(namespace=namespace, key=key, **extra)
        if expected:
            with pytest.raises((ValueError, TypeError)) as caught:
                await call()
            assert_names(caught.value, expected)
        else:
            assert await call() is None
    for pattern_call in (manager.keys, manager.delete_pattern):
        expected = expected_errors(pattern=pattern)
        if expected:
            with pytest.raises((ValueError, TypeError)) as caught:
                await pattern_call(pattern)
            assert_names(caught.value, expected)
        else:
            assert await pattern_call(pattern) is None


# -- keys() and delete_pattern(): confined to the prefix ------------------------------------

prefixes = st.one_of(
    st.sampled_from(
        [
            "guard_core:",
            "guard_core",
            "a*b:",
            "[ab]:",
            "[^x]-:",
            "\\",
            "a\\*:",
            "?",
            "*",
            "]",
            "é:",
            "\U0001f600*:",
            "guard_core:banned_ips:",
        ]
    ),
    st.text(st.sampled_from(GLOB_META + "ab:é\U0001f600_"), min_size=1, max_size=12),
    short_text,
).filter(lambda prefix: prefix_error(prefix) is None)

globs = st.one_of(
    st.text(st.sampled_from(GLOB_META + "abk:é\U0001f600"), max_size=12),
    st.sampled_from(["*", "", "ns:*", "ns:k", "*:*", "[", "\\", "[^a]*", "[a-", "?*", "**"]),
    hostile_str_or_not,
)


@HOSTILE
@given(
    prefix=prefixes,
    pattern=globs,
    suffixes=st.lists(st.one_of(short_text, st.sampled_from(["ns:k", "", "*", "\\"])), max_size=5),
    strangers=st.lists(hostile_text, max_size=5),
)
async def test_keys_and_delete_pattern_never_leave_the_prefix(
    make_manager: Callable[..., RedisManager],
    backend: Backend,
    prefix: str,
    pattern: Any,
    suffixes: list[str],
    strangers: list[str],
) -> None:
    inspect = backend.inspect
    inspect.flushdb()
    inside = {prefix + suffix for suffix in [*suffixes, "ns:k"] if utf8_error(suffix) is None}
    canaries = write_canaries(
        inspect, outside(prefix, [*FIXED_CANARIES, *near_misses(prefix), *strangers])
    )
    inspect.mset(dict.fromkeys(inside, "inside"))
    if backend.cluster and ("{" in prefix or "}" in prefix):
        with pytest.raises(ValueError, match="hash tag"):  # braces would pick the slot
            make_manager(redis_prefix=prefix)
        return
    manager = make_manager(redis_prefix=prefix)
    try:
        assert set(await manager.keys("*") or []) == inside
        expected = expected_errors(pattern=pattern)
        if expected:
            for call in (manager.keys, manager.delete_pattern):
                with pytest.raises((ValueError, TypeError)) as caught:
                    await call(pattern)
                assert_names(caught.value, expected)
            assert all_keys(inspect) == inside | set(canaries)
            return
        found = await manager.keys(pattern)
        assert found is not None
        assert len(found) == len(set(found))
        assert set(found) <= inside, f"outside the prefix: {set(found) - inside}"
        assert await manager.delete_pattern(pattern) == len(found)
        assert all_keys(inspect) == (inside | set(canaries)) - set(found)
        assert await manager.keys(pattern) == []
        assert_canaries_survive(inspect, canaries)
    finally:
        await manager.close()


# -- IP addresses --------------------------------------------------------------------------


# Everything is drawn before the test body runs: a draw inside an async test (st.data())
# that runs out of data raises hypothesis' StopTest inside anyio's runner and breaks it.
address_forms = st.ip_addresses().flatmap(
    lambda address: st.tuples(
        st.just(address),
        st.sampled_from(textual_forms(address)),
        st.sampled_from(textual_forms(address)),
    )
)


@HOSTILE
@given(drawn=address_forms)
async def test_every_form_of_an_address_bans_and_unbans_its_canonical_key(
    state_env: StateEnv, caplog: pytest.LogCaptureFixture, drawn: tuple[Any, str, str]
) -> None:
    inspect = state_env.inspect
    canaries = start_example(inspect, caplog)
    address, ban_form, check_form = drawn
    forms = textual_forms(address)
    target = canonical(address)
    assert {canonical_ip(form) for form in forms} == {target}
    full_key = state_env.key("banned_ips", f"{target}")
    bans = IPBanManager(state_env.config, state_env.redis)
    if ip_address(target).is_loopback:
        assert await bans.ban_ip(ban_form, 600) is False
        assert await bans.is_ip_banned(check_form) is False
        if inspect is not None:
            assert all_keys(inspect) == set(canaries)
        finish_example(inspect, canaries, caplog)
        return
    assert await bans.ban_ip(ban_form, 600) is True
    assert await bans.is_ip_banned(check_form) is True
    assert [record.target for record in await bans.list_bans()] == [target]
    if inspect is not None:
        assert all_keys(inspect) == set(canaries) | ban_keys(
            state_env, "banned_ips", target, lifted=False
        )
        assert 0 < inspect.ttl(full_key) <= 600
        other = IPBanManager(state_env.config, state_env.redis)
        assert await other.is_ip_banned(check_form) is True
    assert await bans.unban_ip(check_form) is True
    assert await bans.is_ip_banned(ban_form) is False
    assert await bans.list_bans() == []
    if inspect is not None:
        assert all_keys(inspect) == set(canaries) | ban_keys(
            state_env, "banned_ips", target, lifted=True
        )
    finish_example(inspect, canaries, caplog)


def ban_keys(env: StateEnv, namespace: str, target: str, *, lifted: bool) -> set[str]:
    """The keys a ban (or, once `lifted`, its lift) of `target` leaves in Redis: an address
    ban and its listing index, or the lift record, with the index's change counter; a
    network's record in the index."""
    if namespace == "banned_networks":
        return {env.key("banned_networks", "index"), env.key("banned_networks_expiry", "index")}
    version = env.key("ban_index", "version")
    if lifted:
        return {env.key("ban_lifts", target), version}
    return {env.key("banned_ips", target), env.key("ban_index", "addresses"), version}


def ban_target(text: object) -> tuple[str, str] | type[Exception]:
    """(namespace, canonical target) a ban of `text` must use, or the error it must raise."""
    if isinstance(text, str) and "/" in text:
        error = network_text_error(text)
        return error if error is not None else ("banned_networks", canonical_network(text))
    error = ip_text_error(text)
    return error if error is not None else ("banned_ips", canonical_ip(text))


def names_the_address(message: str) -> bool:
    return any(word in message for word in ("IP address", "IP network", "network"))


@HOSTILE
@given(text=st.one_of(ip_like_text, not_str))
async def test_hostile_address_text_bans_the_canonical_key_or_raises(
    state_env: StateEnv, caplog: pytest.LogCaptureFixture, text: Any
) -> None:
    inspect = state_env.inspect
    canaries = start_example(inspect, caplog)
    bans = IPBanManager(state_env.config, state_env.redis)
    expected = ban_target(text)
    if isinstance(expected, type):
        for call in (bans.ban_ip, bans.unban_ip):
            with pytest.raises(expected) as caught:
                await call(text)
            assert names_the_address(str(caught.value)), caught.value
        if inspect is not None:
            assert all_keys(inspect) == set(canaries)
    else:
        namespace, target = expected
        covers_loopback = is_loopback_target(namespace, target)
        assert await bans.ban_ip(text, 60) is not covers_loopback
        if inspect is not None:
            written = (
                set() if covers_loopback else ban_keys(state_env, namespace, target, lifted=False)
            )
            assert all_keys(inspect) == set(canaries) | written
        if namespace == "banned_ips":
            assert await bans.is_ip_banned(text) is not covers_loopback
        assert await bans.unban_ip(text) is not covers_loopback
        if inspect is not None:
            # a lift is recorded even where nothing was banned: a ban of `target` made
            # earlier on another instance and written back later must not undo it
            lifted = ban_keys(state_env, namespace, target, lifted=True)
            assert all_keys(inspect) == set(canaries) | lifted
    if ip_text_error(text) is not None:
        with pytest.raises((ValueError, TypeError)):
            await bans.is_ip_banned(text)
    finish_example(inspect, canaries, caplog)


def is_loopback_target(namespace: str, target: str) -> bool:
    if namespace == "banned_ips":
        return ip_address(target).is_loopback
    network = ip_network(target)
    loopback = ip_network("127.0.0.0/8" if network.version == 4 else "::1/128")
    return network.overlaps(loopback)


@HOSTILE
@given(duration=ttls, reason=st.one_of(hostile_text, not_str))
async def test_ban_duration_and_reason_are_validated(
    state_env: StateEnv, caplog: pytest.LogCaptureFixture, duration: Any, reason: Any
) -> None:
    inspect = state_env.inspect
    canaries = start_example(inspect, caplog)
    bans = IPBanManager(state_env.config, state_env.redis)
    expected = {}
    duration_error = optional(lambda v: expected_errors(ttl=v).get("ttl"))(duration)
    if duration_error is not None:
        expected["duration"] = duration_error
    if not isinstance(reason, str):
        expected["reason"] = TypeError
    if expected:
        with pytest.raises((ValueError, TypeError)) as caught:
            await bans.ban_ip("198.51.100.9", duration, reason=reason)
        assert_names(caught.value, expected)
        assert await bans.is_ip_banned("198.51.100.9") is False
        if inspect is not None:
            assert all_keys(inspect) == set(canaries)
    else:
        assert await bans.ban_ip("198.51.100.9", duration, reason=reason) is True
        [record] = await bans.list_bans()
        assert record.reason == reason
        seconds_asked = state_env.config.ip_ban_default_duration if duration is None else duration
        if inspect is not None:
            assert (
                0
                < inspect.pttl(state_env.key("banned_ips", "198.51.100.9"))
                <= seconds_asked * 1000
            )
        assert await bans.unban_ip("198.51.100.9") is True
    finish_example(inspect, canaries, caplog)


# -- rate limits and behaviour tracking ----------------------------------------------------


def window_key_checked(window: float) -> bool:
    """Windows long enough that the key cannot expire before it is inspected."""
    return window >= 5


@HOSTILE
@given(identifier=names, endpoint=st.one_of(st.just(""), names), limit=counts, window=seconds)
@example(identifier="\ud800", endpoint="", limit=None, window=None)  # not UTF-8: no key
@example(identifier="a", endpoint="", limit=Level.HIGH, window=1e300)  # beyond Redis expiry
@example(identifier="a", endpoint="/x", limit=10**5000, window=MAX_TTL)
async def test_rate_limit_counts_on_the_documented_key_or_rejects(
    state_env: StateEnv,
    caplog: pytest.LogCaptureFixture,
    identifier: Any,
    endpoint: Any,
    limit: Any,
    window: Any,
) -> None:
    inspect = state_env.inspect
    canaries = start_example(inspect, caplog)
    expected = {
        name: error
        for name, error in (
            ("identifier", text_error(identifier)),
            ("endpoint", text_error(endpoint, allow_empty=True)),
            ("limit", optional(count_error)(limit)),
            ("window", optional(seconds_error)(window)),
        )
        if error is not None
    }
    for handler in (state_env.redis, None):
        limiter = RateLimitManager(state_env.config, handler)
        try:
            result = await limiter.check(identifier, endpoint=endpoint, limit=limit, window=window)
        except Exception as exc:
            assert expected, f"a valid call raised {exc!r} ({state_env.mode})"
            assert_names(exc, expected)
            if inspect is not None:
                assert all_keys(inspect) == set(canaries)
            continue
        assert not expected, f"invalid {sorted(expected)} accepted"
        asked_limit = state_env.config.rate_limit if limit is None else int(limit)
        asked_window = state_env.config.rate_limit_window if window is None else float(window)
        assert (result.allowed, result.count, result.limit) == (True, 1, asked_limit)
        assert result.remaining == asked_limit - 1
        # Redis counts the window in whole milliseconds
        assert 0 <= result.reset_after <= asked_window + 0.0005
        window_id = encode_key_part(canonical_identifier(identifier))
        full_key = state_env.key(
            "rate_limit", f"rate:{window_id}" + (f":{endpoint}" if endpoint else "")
        )
        if handler is not None and inspect is not None:
            if window_key_checked(asked_window):
                assert all_keys(inspect) == set(canaries) | {full_key}
                assert inspect.zcard(full_key) == 1
                assert 0 < inspect.pttl(full_key) <= round(asked_window * 1000)
            await limiter.reset(identifier, endpoint=endpoint)
            assert all_keys(inspect) == set(canaries)
        else:
            await limiter.reset(identifier, endpoint=endpoint)
        again = await limiter.check(identifier, endpoint=endpoint, limit=limit, window=window)
        assert again.count == 1
        await limiter.reset(identifier, endpoint=endpoint)
    finish_example(inspect, canaries, caplog)


@HOSTILE
@given(
    endpoint_id=names,
    client_ip=st.one_of(st.ip_addresses().map(str), ip_like_text, not_str),
    threshold=counts.filter(lambda value: value is not None),
    window=seconds.filter(lambda value: value is not None),
)
async def test_behavior_tracking_counts_on_the_documented_key_or_rejects(
    state_env: StateEnv,
    caplog: pytest.LogCaptureFixture,
    endpoint_id: Any,
    client_ip: Any,
    threshold: Any,
    window: Any,
) -> None:
    inspect = state_env.inspect
    canaries = start_example(inspect, caplog)
    ip_error = ip_text_error(client_ip)
    expected = {
        name: error
        for name, error in (
            ("endpoint_id", text_error(endpoint_id)),
            ("client_ip", ip_error),
            ("threshold", count_error(threshold)),
            ("window", seconds_error(window)),
        )
        if error is not None
    }
    for handler in (state_env.redis, None):
        tracker = BehaviorTracker(state_env.config, handler)
        try:
            exceeded = await tracker.track_usage(
                endpoint_id, client_ip, threshold=threshold, window=window
            )
        except Exception as exc:
            assert expected, f"a valid call raised {exc!r} ({state_env.mode})"
            assert type(exc) in (ValueError, TypeError), repr(exc)
            named = [n for n in expected if str(exc).startswith(n + " ")]
            if "client_ip" in expected and not named:
                assert names_the_address(str(exc)), exc
            else:
                assert_names(exc, expected)
            if inspect is not None:
                assert all_keys(inspect) == set(canaries)
            continue
        assert not expected, f"invalid {sorted(expected)} accepted"
        assert exceeded is False  # one use never exceeds a threshold >= 1
        full_key = state_env.key(
            "behavior_usage", f"{encode_key_part(endpoint_id)}:{canonical_ip(client_ip)}"
        )
        if handler is not None and inspect is not None and window_key_checked(float(window)):
            assert all_keys(inspect) == set(canaries) | {full_key}
            assert inspect.zcard(full_key) == 1
            inspect.delete(full_key)
    finish_example(inspect, canaries, caplog)


async def test_distinct_identifier_and_endpoint_pairs_have_distinct_windows(
    state_env: StateEnv,
) -> None:
    """`("10.0.0.1:/login", "")` and `("10.0.0.1", "/login")` are different clients."""
    limiter = RateLimitManager(state_env.config, state_env.redis)
    first = await limiter.check("10.0.0.1:/login", limit=1, window=60)
    second = await limiter.check("10.0.0.1", endpoint="/login", limit=1, window=60)
    assert (first.allowed, second.allowed) == (True, True)


async def test_distinct_endpoint_and_client_pairs_have_distinct_counts(
    state_env: StateEnv,
) -> None:
    """Endpoint `e` used by `2001:db8::1` is not endpoint `e:2001` used by `db8::1`."""
    tracker = BehaviorTracker(state_env.config, state_env.redis)
    assert await tracker.track_usage("e", "2001:db8::1", threshold=1, window=60) is False
    assert await tracker.track_usage("e:2001", "db8::1", threshold=1, window=60) is False


# -- custom attack patterns ----------------------------------------------------------------


def custom_pattern_error(pattern: object) -> type[Exception] | None:
    if not isinstance(pattern, str):
        return TypeError
    if not pattern.strip() or utf8_error(pattern) is not None:
        return ValueError
    quiet = re2.Options()
    quiet.log_errors, quiet.case_sensitive = False, False  # as patterns are compiled
    try:
        re2.compile(pattern, quiet)
    except re2.error:  # not a regex the matcher (RE2) takes
        return ValueError
    return None


regex_like = st.one_of(
    st.text(st.sampled_from("()[]{}*+?|\\^$.-:/a1 é\U0001f600\x00\n"), min_size=1, max_size=16),
    st.sampled_from(["(?-i:Evil)", "a{2,}", "\\d+", "[", "(", "\\", "(?P<x>a)(?P=x)", "\u2028"]),
    hostile_str_or_not,
)


@pytest.mark.filterwarnings("ignore:Possible nested set:FutureWarning")
@HOSTILE
@given(pattern=regex_like)
@example(pattern="(" * 1000 + ")" * 1000)  # RecursionError in re's parser
@example(pattern="a{4294967296}")  # OverflowError: repetition number too large
async def test_custom_pattern_is_stored_shared_and_removed_or_rejected(
    state_env: StateEnv, caplog: pytest.LogCaptureFixture, pattern: Any
) -> None:
    inspect = state_env.inspect
    canaries = start_example(inspect, caplog)
    config = dataclasses.replace(state_env.config, redis_state_refresh_interval=0.001)
    patterns = SusPatternsManager(config, state_env.redis)
    error = custom_pattern_error(pattern)
    if error is not None:
        with pytest.raises(error) as caught:
            await patterns.add_pattern(pattern)
        assert any(word in str(caught.value) for word in ("pattern", "regular expression"))
        if not isinstance(pattern, str) or not pattern.strip() or utf8_error(pattern):
            with pytest.raises(error):
                await patterns.remove_pattern(pattern)
        assert (await patterns.get_patterns()).custom == ()
        if inspect is not None:
            assert all_keys(inspect) == set(canaries)
        finish_example(inspect, canaries, caplog)
        return
    await patterns.add_pattern(pattern)
    assert (await patterns.get_patterns()).custom == (pattern,)
    assert patterns.pending_changes == ({} if state_env.shared else {pattern: True})
    if inspect is not None:
        stored = inspect.get(state_env.key("patterns", "custom"))
        assert stored is not None
        assert json.loads(stored) == [pattern]
        other = SusPatternsManager(config, state_env.redis)
        assert (await other.get_patterns()).custom == (pattern,)
    assert await patterns.remove_pattern(pattern) is True
    assert (await patterns.get_patterns()).custom == ()
    if inspect is not None:
        assert json.loads(inspect.get(state_env.key("patterns", "custom")) or "null") in ([], {})
    finish_example(inspect, canaries, caplog)


#: Regexes the matcher refuses: too deep, too many repetitions, a backreference, look-around.
UNUSABLE_REGEXES = ["(" * 1000 + ")" * 1000, "a{4294967296}", r"(a)\1", "(?=a)"]


@pytest.mark.filterwarnings("ignore:Possible nested set:FutureWarning")
@HOSTILE
@given(
    stored=st.lists(
        st.one_of(
            regex_like.filter(lambda item: isinstance(item, str)),
            st.sampled_from(UNUSABLE_REGEXES),
            st.sampled_from([None, 1, ["x"]]),
        ),
        max_size=3,
    )
)
@example(stored=UNUSABLE_REGEXES)
async def test_custom_patterns_stored_by_someone_else_never_break_detect(
    shared_env: StateEnv, stored: list[Any]
) -> None:
    """A list in Redis is hostile input too: a list that is not all strings is ignored,
    entries that are no usable regex are skipped; nothing is raised."""
    inspect = shared_env.inspect
    assert inspect is not None
    inspect.set(shared_env.key("patterns", "custom"), json.dumps(stored))
    patterns = SusPatternsManager(shared_env.config, shared_env.redis)
    found = await patterns.detect("<script>alert(1)</script>")
    assert "xss" in {match.category for match in found}
    usable = set()
    if all(isinstance(item, str) for item in stored):
        usable = {item for item in stored if custom_pattern_error(item) is None}
    assert set((await patterns.get_patterns()).custom) == usable


@HOSTILE
@given(content=st.one_of(hostile_text, not_str))
async def test_detect_scans_any_text_and_rejects_anything_else(
    state_env: StateEnv, content: Any
) -> None:
    patterns = SusPatternsManager(state_env.config, state_env.redis)
    if not isinstance(content, str):
        with pytest.raises(TypeError, match="content"):
            await patterns.detect(content)
        return
    found = await patterns.detect(content)
    limit = scan_length(state_env.config.pattern_max_content_length)
    expected = [p.pattern for p in BUILTIN_PATTERNS if p.matches(content[:limit])]
    assert [match.pattern for match in found] == expected


# -- security headers ------------------------------------------------------------------------

TCHAR = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"
header_names = st.one_of(
    st.text(st.sampled_from(TCHAR), min_size=1, max_size=12),
    st.sampled_from(["Content-Length", "transfer-encoding", "X-A\r\nX-B", "X A", "", "X:Y"]),
    short_text,
)
header_values = st.one_of(
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=20),
    st.sampled_from(["ok\r\nSet-Cookie: a=b", " lead", "trail ", "x" * 8193, "nul\x00", "é"]),
    hostile_str_or_not,
)
hashable_junk = st.one_of(st.none(), st.integers(), st.binary(max_size=4), st.booleans())
header_maps = st.one_of(
    st.dictionaries(st.one_of(header_names, hashable_junk), header_values, max_size=3),
    st.lists(st.tuples(header_names, header_values), max_size=3),
    not_str,
)
csp_sources = st.one_of(
    st.lists(st.one_of(st.sampled_from(["'self'", "data:", "https:"]), hostile_str_or_not)),
    not_str,
    short_text,
)
HEADER_FIELDS: dict[str, tuple[Any, tuple[str, ...]]] = {
    "csp": (
        st.one_of(
            st.dictionaries(
                st.one_of(st.sampled_from(["img-src", "default-src", "a--b"]), short_text),
                csp_sources,
                max_size=3,
            ),
            not_str,
        ),
        ("CSP", "csp", "Content-Security-Policy"),
    ),
    "hsts_max_age": (st.one_of(counts, seconds), ("hsts_max_age",)),
    "hsts_include_subdomains": (st.one_of(st.booleans(), not_str), ("hsts_include_subdomains",)),
    "hsts_preload": (st.one_of(st.booleans(), not_str), ("hsts_preload",)),
    "content_type_options": (st.one_of(st.booleans(), not_str), ("content_type_options",)),
    "frame_options": (
        st.one_of(st.sampled_from(["DENY", "SAMEORIGIN", "deny"]), hostile_str_or_not),
        ("frame_options",),
    ),
    "referrer_policy": (
        st.one_of(st.sampled_from(["no-referrer", "origin "]), hostile_str_or_not),
        ("referrer_policy",),
    ),
    "permissions_policy": (header_values, ("Permissions-Policy",)),
    "custom_headers": (header_maps, ("header", "custom_headers")),
    "path_overrides": (
        st.one_of(
            st.dictionaries(
                st.one_of(st.sampled_from(["/", "/api", "/a b", "api"]), hostile_str_or_not).filter(
                    lambda key: not isinstance(key, list | dict | bytearray)
                ),
                header_maps,
                max_size=2,
            ),
            not_str,
        ),
        ("path", "header"),
    ),
}


def printable_ascii(text: str) -> bool:
    return bool(text) and all(0x20 <= ord(ch) <= 0x7E for ch in text)


header_changes = st.sampled_from(sorted(HEADER_FIELDS)).flatmap(
    lambda field: st.tuples(st.just(field), HEADER_FIELDS[field][0])
)


@HOSTILE
@given(change=header_changes, path=st.one_of(st.none(), hostile_str_or_not))
@example(change=("hsts_max_age", 10**5000), path=None)  # an int too long to print
@example(change=("custom_headers", {"X-A": "b\r\nSet-Cookie: s=1"}), path="/")
async def test_header_configuration_is_applied_and_shared_or_rejected(
    state_env: StateEnv, caplog: pytest.LogCaptureFixture, change: tuple[str, Any], path: Any
) -> None:
    inspect = state_env.inspect
    canaries = start_example(inspect, caplog)
    field, value = change
    words = HEADER_FIELDS[field][1]
    headers = SecurityHeadersManager(state_env.config, state_env.redis)
    before = headers.current
    try:
        await headers.configure(**{field: value})
    except Exception as exc:
        assert type(exc) in (ValueError, TypeError), repr(exc)
        message = str(exc)
        assert any(word in message for word in (*words, "configuration")), message
        assert headers.current == before
        assert headers.pending_write is False
        if inspect is not None:
            assert all_keys(inspect) == set(canaries)
    else:
        assert headers.pending_write is False
        if inspect is not None:
            stored = inspect.get(state_env.key("security_headers", "csp_config"))
            assert stored is not None
            assert HeadersConfig.from_json(stored) == headers.current
            other = SecurityHeadersManager(state_env.config, state_env.redis)
            assert await other.get_headers() == await headers.get_headers()
        if field == "custom_headers" and value is not None:
            sent = await headers.get_headers()
            pairs = value.items() if isinstance(value, dict) else value
            for name, text in pairs:
                assert sent[name] == text
    if path is not None and not isinstance(path, str):
        with pytest.raises(TypeError, match="path"):
            await headers.get_headers(path)
    else:
        for name, text in (await headers.get_headers(path)).items():
            assert printable_ascii(name) and printable_ascii(text), (name, text)
            assert text == text.strip(" ")
    finish_example(inspect, canaries, caplog)


#: JSON values no field of the stored header document accepts.
INVALID_EVERYWHERE = [
    "1" * 400,  # an int too large for a float
    "-" + "1" * 200,
    "1" * 5000,  # more digits than json.loads turns into an int
    "1e999",
    "NaN",
    "[]",
    "null",
    '{"X-A": "b\\r\\nc"}',
    '{"img-src": ["a;b"]}',
]


@HOSTILE
@given(
    field=st.sampled_from(sorted(json.loads(DEFAULT_CONFIG.to_json()))),
    junk=st.sampled_from(INVALID_EVERYWHERE),
)
@example(field="updated_at", junk="1" * 400)  # an int too large for a float
async def test_a_tampered_stored_configuration_never_breaks_get_headers(
    shared_env: StateEnv, field: str, junk: str
) -> None:
    """A document in Redis is hostile input too: refused (defaults stay), never raised."""
    inspect = shared_env.inspect
    assert inspect is not None
    headers = SecurityHeadersManager(shared_env.config, shared_env.redis)
    await headers.configure(frame_options="SAMEORIGIN")
    document = json.loads(headers.current.to_json())
    document[field] = "__JUNK__"
    raw = json.dumps(document).replace('"__JUNK__"', junk)
    inspect.set(shared_env.key("security_headers", "csp_config"), raw)
    reader = SecurityHeadersManager(shared_env.config, shared_env.redis)
    assert await reader.get_headers() == build_headers(DEFAULT_CONFIG)
