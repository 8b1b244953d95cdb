"""SecurityConfig validation and the event model (shared by both faces)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

import guard_core
import guard_core_sync
from guard_core.exceptions import GuardCoreError, GuardRedisError
from guard_core.models import SecurityConfig, SecurityEvent


def test_defaults_match_the_seed() -> None:
    config = SecurityConfig()
    assert config.enable_redis is True
    assert config.redis_url == "redis://localhost:6379"
    assert config.redis_prefix == "guard_core:"
    assert 0 < config.redis_connect_timeout <= 5
    assert 0 < config.redis_socket_timeout <= 5
    assert config.redis_max_connections >= 1


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"enable_redis": "yes"}, "enable_redis"),
        ({"enable_redis": 1}, "enable_redis"),
        ({"redis_url": 6379}, "redis_url"),
        ({"redis_url": "http://localhost:6379"}, "redis_url"),
        ({"redis_url": "redis://"}, "redis_url"),
        ({"redis_url": "redis://host:notaport"}, "redis_url"),
        ({"redis_prefix": ""}, "redis_prefix"),
        ({"redis_prefix": 5}, "redis_prefix"),
        ({"redis_prefix": "app one:"}, "redis_prefix"),
        ({"redis_prefix": "app\n"}, "redis_prefix"),
        ({"redis_connect_timeout": -1}, "redis_connect_timeout"),
        ({"redis_connect_timeout": 0}, "redis_connect_timeout"),
        ({"redis_socket_timeout": float("nan")}, "redis_socket_timeout"),
        ({"redis_socket_timeout": "1"}, "redis_socket_timeout"),
        ({"redis_pool_timeout": float("inf")}, "redis_pool_timeout"),
        ({"redis_max_connections": 0}, "redis_max_connections"),
        ({"redis_max_connections": 2.5}, "redis_max_connections"),
        ({"redis_retries": -1}, "redis_retries"),
        ({"redis_retries": True}, "redis_retries"),
        ({"redis_retry_backoff_base": -0.1}, "redis_retry_backoff_base"),
        (
            {"redis_retry_backoff_base": 1.0, "redis_retry_backoff_cap": 0.5},
            "redis_retry_backoff_cap",
        ),
    ],
)
def test_invalid_fields_raise_value_error_naming_the_field(
    fields: dict[str, Any], named: str
) -> None:
    with pytest.raises(ValueError, match=named):
        SecurityConfig(**fields)


def test_accepted_urls_and_frozen() -> None:
    for url in ("redis://h:1/2", "rediss://user:pw@h:6380/0", "unix:///tmp/redis.sock", None):
        assert SecurityConfig(redis_url=url).redis_url == url
    config = SecurityConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.redis_prefix = "other:"  # type: ignore[misc]
    assert dataclasses.replace(config, redis_prefix="other:").redis_prefix == "other:"


def test_repr_masks_credentials() -> None:
    text = repr(SecurityConfig(redis_url="redis://admin:hunter22@h:6379/0"))
    assert "hunter22" not in text
    assert "redis://***@h:6379/0" in text
    with pytest.raises(ValueError) as raised:
        SecurityConfig(redis_url="redis://admin:hunter22@h:badport/0")
    assert "hunter22" not in str(raised.value)


def test_guard_redis_error_matches_the_seed_and_is_one_class_for_both_faces() -> None:
    error = GuardRedisError(503, "Redis connection failed")
    assert isinstance(error, GuardCoreError)
    assert (error.status_code, error.detail) == (503, "Redis connection failed")
    assert "503" in str(error)
    assert guard_core.GuardRedisError is guard_core_sync.GuardRedisError
    assert guard_core.SecurityConfig is guard_core_sync.SecurityConfig
    async_manager: object = guard_core.RedisManager
    assert async_manager is not guard_core_sync.RedisManager


def test_event_defaults() -> None:
    event = SecurityEvent(event_type="redis_error", action_taken="x", reason="y")
    assert event.ip_address == "system"
    assert event.metadata == {}
    assert event.timestamp.tzinfo is not None
