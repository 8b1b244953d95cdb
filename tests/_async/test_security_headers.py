"""SecurityHeadersManager, written once for the async face and generated for the sync face."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
import unicodedata
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guard_core._shared.policy.security_headers import (
    DEFAULT_CONFIG,
    HeadersConfig,
    apply_changes,
    build_headers,
)
from guard_core.handlers.redis_handler import RedisManager
from guard_core.handlers.security_headers_handler import SecurityHeadersManager
from guard_core.models import SecurityConfig
from guard_core.testing import LocalRedisServer
from tests.support.backends import StateEnv
from tests.support.workers import ASYNC_WORKERS, run_async_workers

pytestmark = pytest.mark.anyio

KEY = "guard_core:security_headers:csp_config"
KEY_PARTS = ("security_headers", "csp_config")  # (namespace, key) of KEY
INTERVAL = 5.0
DEFAULT_HEADERS = build_headers(DEFAULT_CONFIG)
DEFAULT_NAMES = {
    "Strict-Transport-Security",
    "X-Content-Type-Options",
    "X-Frame-Options",
    "Referrer-Policy",
    "Permissions-Policy",
    "Content-Security-Policy",
}
BAD_CHARS = ["\r", "\n", "\r\n", "\x00", "\x7f", "\x1b", "\t", "\x0b", "\x0c", "\x85", "\u2028"]


class FakeClock:
    """Monotonic seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make(env: StateEnv, clock: FakeClock, redis: Any = None) -> SecurityHeadersManager:
    config = dataclasses.replace(env.config, redis_state_refresh_interval=INTERVAL)
    return SecurityHeadersManager(config, env.redis if redis is None else redis, clock=clock)


@pytest.fixture
async def other_redis(
    state_env: StateEnv, request: pytest.FixtureRequest
) -> AsyncIterator[RedisManager]:
    """A second RedisManager on the same server as `state_env` (another app instance)."""
    if state_env.mode == "disabled":
        manager = RedisManager(state_env.config)
    else:
        backend = request.getfixturevalue("backend_" + state_env.mode)
        manager = RedisManager(state_env.config, client_factory=backend.client_factory)
    yield manager
    await manager.close()


def stored(env: StateEnv) -> Any:
    return None if env.inspect is None else env.inspect.get(env.key(*KEY_PARTS))


# -- defaults and configure ----------------------------------------------------------------


async def test_defaults_present_and_sane(state_env: StateEnv, clock: FakeClock) -> None:
    manager = make(state_env, clock)
    headers = await manager.get_headers()
    assert set(headers) == DEFAULT_NAMES
    assert headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert headers["Permissions-Policy"] == "camera=(), geolocation=(), microphone=()"
    csp = headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "object-src 'none'" in csp
    assert await manager.get_headers("/any/path") == headers
    headers["X-Frame-Options"] = "changed by the caller"
    assert (await manager.get_headers())["X-Frame-Options"] == "DENY"  # a fresh dict each time
    assert manager.current == DEFAULT_CONFIG
    assert manager.pending_write is False
    assert manager.logger.name == "guard_core.security_headers"
    assert stored(state_env) is None  # reading never writes


async def test_configure_changes_headers_and_none_leaves_as_is(
    state_env: StateEnv, clock: FakeClock
) -> None:
    manager = make(state_env, clock)
    await manager.configure(
        csp={"img-src": ["'self'", "data:"], "default-src": ["'self'"]},
        hsts_max_age=600,
        hsts_include_subdomains=False,
        hsts_preload=True,
        frame_options="SAMEORIGIN",
        content_type_options=False,
        referrer_policy="no-referrer",
        permissions_policy="geolocation=(self)",
        custom_headers={"X-Custom": "1", "Cross-Origin-Opener-Policy": "same-origin"},
    )
    expected = {
        "Strict-Transport-Security": "max-age=600; preload",
        "X-Frame-Options": "SAMEORIGIN",
        "Referrer-Policy": "no-referrer",
        "Permissions-Policy": "geolocation=(self)",
        "Content-Security-Policy": "default-src 'self'; img-src 'self' data:",
        "Cross-Origin-Opener-Policy": "same-origin",
        "X-Custom": "1",
    }
    assert await manager.get_headers() == expected
    assert manager.pending_write is False

    await manager.configure(hsts_include_subdomains=True)  # only that field changes
    expected["Strict-Transport-Security"] = "max-age=600; includeSubDomains; preload"
    assert await manager.get_headers() == expected

    await manager.configure(csp={}, custom_headers={"x-frame-options": "DENY"})
    headers = await manager.get_headers()
    assert "Content-Security-Policy" not in headers
    assert "X-Custom" not in headers  # custom_headers is replaced as a whole
    assert headers["x-frame-options"] == "DENY"  # replaces the default, whatever the case
    assert "X-Frame-Options" not in headers

    await manager.reset()
    assert await manager.get_headers() == DEFAULT_HEADERS


async def test_csp_serialisation_is_deterministic(state_env: StateEnv, clock: FakeClock) -> None:
    manager = make(state_env, clock)
    await manager.configure(
        csp={
            "upgrade-insecure-requests": [],
            "script-src": ["'self'", "https://cdn.example.com", "'nonce-abc123'"],
            "default-src": ["'none'"],
            "img-src": ("'self'", "data:"),
        }
    )
    assert (await manager.get_headers())["Content-Security-Policy"] == (
        "default-src 'none'; img-src 'self' data:; "
        "script-src 'self' https://cdn.example.com 'nonce-abc123'; upgrade-insecure-requests"
    )


async def test_path_overrides_use_the_longest_matching_prefix(
    state_env: StateEnv, clock: FakeClock
) -> None:
    manager = make(state_env, clock)
    docs_csp = "default-src 'self' https://cdn.example.com"
    await manager.configure(
        path_overrides={
            "/docs": {"Content-Security-Policy": docs_csp},
            "/docs/embed": {"X-Frame-Options": "SAMEORIGIN", "X-Robots-Tag": "noindex"},
        }
    )
    base = await manager.get_headers()
    assert base == DEFAULT_HEADERS
    assert await manager.get_headers("/") == base
    assert await manager.get_headers("/docsx") == base  # prefixes match whole segments
    for path in ("/docs", "/docs/", "/docs/page"):
        assert await manager.get_headers(path) == {**base, "Content-Security-Policy": docs_csp}
    embed = await manager.get_headers("/docs/embed/widget")
    assert embed == {**base, "X-Frame-Options": "SAMEORIGIN", "X-Robots-Tag": "noindex"}
    with pytest.raises(TypeError):
        await manager.get_headers(b"/docs")  # type: ignore[arg-type]


# -- bad input -----------------------------------------------------------------------------


def injection_calls() -> list[tuple[str, dict[str, Any]]]:
    cases: list[tuple[str, dict[str, Any]]] = []
    for bad in BAD_CHARS:
        tag = repr(bad)
        cases += [
            (f"value {tag}", {"custom_headers": {"X-A": f"ok{bad}Set-Cookie: a=1"}}),
            (f"value end {tag}", {"custom_headers": {"X-A": f"ok{bad}"}}),
            (f"name {tag}", {"custom_headers": {f"X-A{bad}Set-Cookie": "v"}}),
            (f"csp source {tag}", {"csp": {"default-src": [f"'self'{bad}"]}}),
            (f"csp directive {tag}", {"csp": {f"default-src{bad}": ["'self'"]}}),
            (f"permissions {tag}", {"permissions_policy": f"camera=(){bad}"}),
            (f"override value {tag}", {"path_overrides": {"/a": {"X-A": f"v{bad}"}}}),
            (f"override name {tag}", {"path_overrides": {"/a": {f"X{bad}": "v"}}}),
            (f"override prefix {tag}", {"path_overrides": {f"/a{bad}": {"X-A": "v"}}}),
            (f"frame options {tag}", {"frame_options": f"DENY{bad}"}),
            (f"referrer {tag}", {"referrer_policy": f"no-referrer{bad}"}),
        ]
    cases += [
        ("csp ;", {"csp": {"default-src": ["'self'; script-src *"]}}),
        ("csp ,", {"csp": {"default-src": ["'self',evil"]}}),
        ("csp space", {"csp": {"default-src": ["'self' https://evil"]}}),
        ("csp empty source", {"csp": {"default-src": [""]}}),
        ("csp uppercase", {"csp": {"Default-Src": ["'self'"]}}),
        ("name colon", {"custom_headers": {"X-A:": "v"}}),
        ("name space", {"custom_headers": {"X A": "v"}}),
        ("name empty", {"custom_headers": {"": "v"}}),
        ("name non-ascii", {"custom_headers": {"X-É": "v"}}),
        ("name framing", {"custom_headers": {"Content-Length": "0"}}),
        ("name hop-by-hop", {"custom_headers": {"transfer-encoding": "chunked"}}),
        ("name twice", {"custom_headers": {"X-A": "1", "x-a": "2"}}),
        ("value empty", {"custom_headers": {"X-A": ""}}),
        ("value edge space", {"custom_headers": {"X-A": " v"}}),
        ("value non-ascii", {"custom_headers": {"X-A": "caf\u00e9"}}),
        ("value too long", {"custom_headers": {"X-A": "v" * 8193}}),
        ("prefix relative", {"path_overrides": {"docs": {"X-A": "v"}}}),
        ("frame options", {"frame_options": "ALLOW-FROM https://x"}),
        ("referrer", {"referrer_policy": "bogus"}),
        ("max age negative", {"hsts_max_age": -1}),
    ]
    return cases


INJECTION = injection_calls()


@pytest.mark.parametrize("changes", [c for _, c in INJECTION], ids=[i for i, _ in INJECTION])
async def test_bad_values_raise_value_error_and_keep_previous_config(
    state_env: StateEnv, clock: FakeClock, changes: dict[str, Any]
) -> None:
    manager = make(state_env, clock)
    await manager.configure(custom_headers={"X-Before": "1"}, frame_options="SAMEORIGIN")
    before_config, before_headers = manager.current, await manager.get_headers("/a")
    before_stored = stored(state_env)
    with pytest.raises(ValueError):
        await manager.configure(**changes)
    assert manager.current is before_config
    assert await manager.get_headers("/a") == before_headers
    assert stored(state_env) == before_stored


@pytest.mark.parametrize(
    "changes",
    [
        {"custom_headers": {1: "v"}},
        {"custom_headers": {"X-A": 1}},
        {"custom_headers": {"X-A": b"v"}},
        {"custom_headers": {"X-A": None}},
        {"custom_headers": "X-A: v"},
        {"csp": {"default-src": "'self'"}},
        {"csp": {"default-src": [b"'self'"]}},
        {"csp": {b"default-src": ["'self'"]}},
        {"csp": ["default-src 'self'"]},
        {"hsts_max_age": "600"},
        {"hsts_max_age": True},
        {"hsts_max_age": 1.5},
        {"hsts_preload": "yes"},
        {"hsts_include_subdomains": 1},
        {"content_type_options": "nosniff"},
        {"frame_options": b"DENY"},
        {"referrer_policy": 3},
        {"permissions_policy": b"camera=()"},
        {"path_overrides": {b"/a": {"X-A": "v"}}},
        {"path_overrides": {"/a": "X-A: v"}},
    ],
    ids=lambda changes: repr(changes)[:40],
)
async def test_wrong_types_raise_type_error_and_keep_previous_config(
    state_env: StateEnv, clock: FakeClock, changes: dict[str, Any]
) -> None:
    manager = make(state_env, clock)
    await manager.configure(custom_headers={"X-Before": "1"})
    before_config, before_stored = manager.current, stored(state_env)
    with pytest.raises(TypeError):
        await manager.configure(**changes)
    assert manager.current is before_config
    assert stored(state_env) == before_stored


@settings(max_examples=200, deadline=None)
@given(
    value=st.text(max_size=40)
    | st.text(alphabet=st.sampled_from("aZ0 ;:=,'\"\r\n\t\x00\x7f\x1b\x85\u2028é"), max_size=12)
)
async def test_any_text_value_is_accepted_verbatim_or_rejected(value: str) -> None:
    manager = SecurityHeadersManager(SecurityConfig(enable_redis=False))
    try:
        await manager.configure(custom_headers={"X-Probe": value})
    except ValueError:
        assert await manager.get_headers() == DEFAULT_HEADERS
        return
    assert (await manager.get_headers())["X-Probe"] == value
    assert not any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in value)


# -- shared through Redis ------------------------------------------------------------------


async def test_stored_json_is_on_the_server(state_env: StateEnv, clock: FakeClock) -> None:
    manager = make(state_env, clock)
    await manager.configure(csp={"default-src": ["'self'"]}, custom_headers={"X-A": "b"})
    raw = stored(state_env)
    if not state_env.shared:
        assert raw is None
        assert manager.pending_write is False  # nothing to write to
        return
    document = json.loads(raw)
    assert document["format"] == 1
    assert document["csp"] == {"default-src": ["'self'"]}
    assert document["custom_headers"] == {"X-A": "b"}
    assert document["updated_at"] > 0
    assert HeadersConfig.from_json(raw) == manager.current
    assert state_env.inspect is not None
    assert state_env.inspect.ttl(state_env.key(*KEY_PARTS)) == -1


async def test_two_instances_share_configuration_after_the_refresh_interval(
    state_env: StateEnv, other_redis: RedisManager, clock: FakeClock
) -> None:
    first = make(state_env, clock)
    second = make(state_env, clock, redis=other_redis)
    assert await second.get_headers() == DEFAULT_HEADERS
    await first.configure(frame_options="SAMEORIGIN")
    assert (await first.get_headers())["X-Frame-Options"] == "SAMEORIGIN"  # at once locally
    clock.advance(INTERVAL / 2)
    assert (await second.get_headers())["X-Frame-Options"] == "DENY"  # still its local copy
    clock.advance(INTERVAL / 2)
    seen = "SAMEORIGIN" if state_env.shared else "DENY"
    assert (await second.get_headers())["X-Frame-Options"] == seen

    # configure() builds on the latest stored document, so both changes survive.
    await second.configure(hsts_max_age=60)
    clock.advance(INTERVAL)
    headers = await first.get_headers()
    assert headers["Strict-Transport-Security"] == (
        "max-age=60; includeSubDomains"
        if state_env.shared
        else DEFAULT_HEADERS["Strict-Transport-Security"]
    )
    assert headers["X-Frame-Options"] == "SAMEORIGIN"
    if state_env.shared:
        assert first.current == second.current

    # A brand-new instance reads the shared document on its first call.
    third = make(state_env, clock, redis=other_redis)
    assert (await third.get_headers())["X-Frame-Options"] == seen


async def test_shared_document_is_read_at_most_once_per_interval(
    state_env: StateEnv, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[str] = []
    original = state_env.redis.get_key

    def counting(namespace: str, key: str) -> Any:
        reads.append(f"{namespace}:{key}")
        return original(namespace, key)

    monkeypatch.setattr(state_env.redis, "get_key", counting)
    manager = make(state_env, clock)
    for _ in range(50):
        await manager.get_headers("/x")
    first_reads = len(reads)
    clock.advance(INTERVAL)
    for _ in range(50):
        await manager.get_headers()
    if state_env.shared:
        assert reads == ["security_headers:csp_config"] * 2
        assert first_reads == 1
    else:
        assert reads == []


async def test_real_clock_and_short_interval(
    state_env: StateEnv, other_redis: RedisManager
) -> None:
    config = dataclasses.replace(state_env.config, redis_state_refresh_interval=0.01)
    first = SecurityHeadersManager(config, state_env.redis)
    second = SecurityHeadersManager(config, other_redis)
    assert await second.get_headers() == DEFAULT_HEADERS
    await first.configure(referrer_policy="same-origin")
    # A blocking pause: the generator has no async_sleep -> sleep rule, and nothing runs
    # concurrently here.
    time.sleep(0.05)
    seen = "same-origin" if state_env.shared else DEFAULT_HEADERS["Referrer-Policy"]
    assert (await second.get_headers())["Referrer-Policy"] == seen


def malicious_documents() -> list[tuple[str, str]]:
    good = json.loads(HeadersConfig(updated_at=time.time() + 3600).to_json())

    def with_field(**changes: Any) -> str:
        return json.dumps({**good, **changes})

    extra = dict(good, injected="x")
    missing = {k: v for k, v in good.items() if k != "csp"}
    return [
        ("crlf value", with_field(custom_headers={"X-A": "a\r\nSet-Cookie: sid=1"})),
        ("lf name", with_field(custom_headers={"X-A\nSet-Cookie": "sid=1"})),
        ("nul value", with_field(permissions_policy="camera=()\x00")),
        ("csp source", with_field(csp={"default-src": ["'self'; script-src *"]})),
        ("csp directive", with_field(csp={"default-src\r\nX-Evil: 1": ["'self'"]})),
        ("hsts string", with_field(hsts_max_age="1\r\nX-Evil: 1")),
        ("frame options", with_field(frame_options="ALLOW-FROM evil")),
        ("framing header", with_field(custom_headers={"Content-Length": "0"})),
        ("override value", with_field(path_overrides={"/": {"X-A": "a\rb"}})),
        ("csp as list", with_field(csp=[["default-src", ["*"]]])),
        ("nan time", with_field(updated_at=float("nan"))),
        ("format 2", with_field(format=2)),
        ("extra field", json.dumps(extra)),
        ("missing field", json.dumps(missing)),
        ("json array", "[1, 2, 3]"),
        ("not json", "X-Evil: 1\r\n\r\n"),
        ("too long", with_field(custom_headers={f"X-{i}": "v" * 100 for i in range(700)})),
    ]


MALICIOUS = malicious_documents()


@pytest.mark.parametrize("document", [d for _, d in MALICIOUS], ids=[i for i, _ in MALICIOUS])
async def test_malicious_stored_document_is_ignored_with_one_warning(
    shared_env: StateEnv, clock: FakeClock, caplog: pytest.LogCaptureFixture, document: str
) -> None:
    state_env = shared_env
    assert state_env.inspect is not None
    manager = make(state_env, clock)
    await manager.configure(frame_options="SAMEORIGIN", custom_headers={"X-Mine": "1"})
    before_config, before_headers = manager.current, await manager.get_headers("/")
    state_env.inspect.set(state_env.key(*KEY_PARTS), document)
    caplog.set_level(logging.WARNING, logger="guard_core.security_headers")
    for _ in range(3):
        clock.advance(INTERVAL)
        assert await manager.get_headers("/") == before_headers
    assert manager.current is before_config
    warnings = [r for r in caplog.records if r.name == "guard_core.security_headers"]
    assert len(warnings) == 1
    assert "Ignoring the security headers configuration" in warnings[0].getMessage()
    assert "\r" not in warnings[0].getMessage() and "\n" not in warnings[0].getMessage()

    # A valid document written later is adopted again.
    fixed = HeadersConfig(frame_options="DENY", updated_at=time.time())
    state_env.inspect.set(state_env.key(*KEY_PARTS), fixed.to_json())
    clock.advance(INTERVAL)
    assert (await manager.get_headers())["X-Frame-Options"] == "DENY"
    assert manager.current == fixed


# -- without Redis -------------------------------------------------------------------------


async def test_disabled_mode_never_builds_a_client(clock: FakeClock) -> None:
    def factory(config: SecurityConfig) -> Any:
        raise AssertionError("disabled mode must not connect")

    config = SecurityConfig(enable_redis=False, redis_state_refresh_interval=0.01)
    redis = RedisManager(config, client_factory=factory)
    manager = SecurityHeadersManager(config, redis, clock=clock)
    await manager.configure(frame_options="SAMEORIGIN")
    clock.advance(1)
    assert (await manager.get_headers())["X-Frame-Options"] == "SAMEORIGIN"
    assert manager.pending_write is False
    await redis.close()


async def test_without_redis_handler_each_instance_is_on_its_own(clock: FakeClock) -> None:
    config = SecurityConfig(redis_state_refresh_interval=0.01)
    first = SecurityHeadersManager(config, None, clock=clock)
    second = SecurityHeadersManager(config, clock=clock)
    await first.configure(custom_headers={"X-Only-First": "1"})
    clock.advance(1)
    assert (await first.get_headers())["X-Only-First"] == "1"
    assert await second.get_headers() == DEFAULT_HEADERS
    assert first.pending_write is False
    await first.reset()
    assert await first.get_headers() == DEFAULT_HEADERS


async def test_redis_stopped_mid_run_keeps_working_then_shares_again(
    private_server: LocalRedisServer, private_env: StateEnv, clock: FakeClock
) -> None:
    assert private_env.inspect is not None
    other = RedisManager(private_env.config)
    first = make(private_env, clock)
    second = make(private_env, clock, redis=other)
    await first.configure(frame_options="SAMEORIGIN")
    clock.advance(INTERVAL)
    assert (await second.get_headers())["X-Frame-Options"] == "SAMEORIGIN"

    private_server.stop()
    clock.advance(INTERVAL)
    assert (await first.get_headers())["X-Frame-Options"] == "SAMEORIGIN"
    await first.configure(referrer_policy="no-referrer")  # kept locally
    assert first.pending_write is True
    assert (await first.get_headers())["Referrer-Policy"] == "no-referrer"
    clock.advance(INTERVAL)
    assert (await first.get_headers("/x"))["Referrer-Policy"] == "no-referrer"
    assert (await second.get_headers())["X-Frame-Options"] == "SAMEORIGIN"  # from memory
    with pytest.raises(ValueError):  # validation still comes first
        await first.configure(custom_headers={"X-A": "a\r\nb"})

    private_server.start()  # same port, empty data
    clock.advance(INTERVAL)
    assert (await first.get_headers())["Referrer-Policy"] == "no-referrer"  # Redis answers
    assert (await first.get_headers())["Referrer-Policy"] == "no-referrer"  # and is written
    assert first.pending_write is False
    assert "no-referrer" in private_env.inspect.get(KEY)
    clock.advance(INTERVAL)
    assert (await second.get_headers())["Referrer-Policy"] == "no-referrer"
    await second.configure(hsts_max_age=60)  # builds on the replayed configuration
    clock.advance(INTERVAL)
    headers = await first.get_headers()
    assert headers["Strict-Transport-Security"] == "max-age=60; includeSubDomains"
    assert headers["Referrer-Policy"] == "no-referrer"

    await first.configure(csp={"default-src": ["'none'"]})
    assert first.pending_write is False
    clock.advance(INTERVAL)
    assert (await second.get_headers())["Content-Security-Policy"] == "default-src 'none'"
    assert first.current == second.current
    await other.close()


async def test_configure_during_outage_then_configure_after_recovery_writes_everything(
    private_server: LocalRedisServer, private_env: StateEnv, clock: FakeClock
) -> None:
    assert private_env.inspect is not None
    manager = make(private_env, clock)
    private_server.stop()
    await manager.configure(custom_headers={"X-During-Outage": "1"})
    assert manager.pending_write is True
    private_server.start()
    await manager.configure(frame_options="SAMEORIGIN")
    assert manager.pending_write is False
    document = HeadersConfig.from_json(private_env.inspect.get(KEY))
    assert document == manager.current
    assert document.custom_headers == (("X-During-Outage", "1"),)


# -- concurrency ---------------------------------------------------------------------------


async def test_concurrent_configures_and_reads_lose_no_change(
    state_env: StateEnv, clock: FakeClock
) -> None:
    manager = make(state_env, clock)
    changes: list[dict[str, Any]] = [
        {"hsts_max_age": 60},
        {"hsts_include_subdomains": False},
        {"hsts_preload": True},
        {"frame_options": "SAMEORIGIN"},
        {"content_type_options": False},
        {"referrer_policy": "no-referrer"},
        {"permissions_policy": "camera=(self)"},
        {"custom_headers": {"X-A": "1"}},
        {"csp": {"default-src": ["'none'"]}},
        {"path_overrides": {"/a": {"X-B": "2"}}},
    ]

    async def work(index: int) -> None:
        if index < len(changes):
            await manager.configure(**changes[index])
        else:
            headers = await manager.get_headers("/a")
            assert headers["Referrer-Policy"] in ("strict-origin-when-cross-origin", "no-referrer")

    await run_async_workers(ASYNC_WORKERS, work)
    expected = DEFAULT_CONFIG
    for change in changes:
        expected = apply_changes(expected, updated_at=0.0, **change)
    assert dataclasses.replace(manager.current, updated_at=0.0) == expected
    if state_env.shared:
        assert HeadersConfig.from_json(stored(state_env)) == manager.current
