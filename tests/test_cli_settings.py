"""The command's settings: every SecurityConfig field from GUARD_CORE_<FIELD> or --set."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import pytest

from guard_core.cli.settings import SettingError, build_config, env_name, parse_assignment
from guard_core.models import SecurityConfig


def _as_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(value)
    if isinstance(value, Mapping):
        return ",".join(f"{k}={v}" for k, v in value.items())
    return str(value)


@pytest.mark.parametrize("field", dataclasses.fields(SecurityConfig), ids=lambda f: f.name)
def test_every_field_can_be_set_from_its_variable(field: dataclasses.Field[object]) -> None:
    default = SecurityConfig()
    value = getattr(default, field.name)
    config = build_config({env_name(field.name): _as_text(value)})
    assert getattr(config, field.name) == value


def test_values_are_converted_by_type() -> None:
    config = build_config(
        {
            "GUARD_CORE_ENABLE_REDIS": "Off",
            "GUARD_CORE_REDIS_URL": "",
            "GUARD_CORE_REDIS_SOCKET_TIMEOUT": "0.25",
            "GUARD_CORE_RATE_LIMIT": "10_000",
            "GUARD_CORE_CLOUD_PROVIDERS": " AWS , GCP ,",
            "GUARD_CORE_CLOUD_IP_URLS": "AWS=http://127.0.0.1:9/a.json, GCP=http://127.0.0.1:9/g",
            "PATH": "/usr/bin",  # not ours: ignored
        }
    )
    assert config.enable_redis is False
    assert config.redis_url is None
    assert config.redis_socket_timeout == 0.25
    assert config.rate_limit == 10_000
    assert config.cloud_providers == ("AWS", "GCP")
    assert dict(config.cloud_ip_urls) == {
        "AWS": "http://127.0.0.1:9/a.json",
        "GCP": "http://127.0.0.1:9/g",
    }


def test_overrides_win_over_the_environment() -> None:
    config = build_config(
        {"GUARD_CORE_REDIS_PREFIX": "env:"}, {"redis_prefix": "flag:", "rate_limit": "7"}
    )
    assert config.redis_prefix == "flag:"
    assert config.rate_limit == 7


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"GUARD_CORE_NOPE": "1"}, "GUARD_CORE_NOPE is not a setting"),
        ({"GUARD_CORE_RATE_LIMIT": "1.5"}, "must be a whole number (got '1.5')"),
        ({"GUARD_CORE_REDIS_SOCKET_TIMEOUT": "fast"}, "must be a number (got 'fast')"),
        ({"GUARD_CORE_ENABLE_REDIS": "2"}, "must be true or false (got '2')"),
        ({"GUARD_CORE_CLOUD_IP_URLS": "AWS"}, "NAME=VALUE pairs"),
        ({"GUARD_CORE_RATE_LIMIT": "0"}, "rate_limit must be between 1 and"),
    ],
)
def test_bad_values_name_the_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingError) as caught:
        build_config(environ)
    assert message in str(caught.value)


def test_a_secret_value_is_never_echoed() -> None:
    secret = "hunter2-Xy"
    with pytest.raises(SettingError) as caught:
        build_config({"GUARD_CORE_REDIS_URL": f"ftp://admin:{secret}@127.0.0.1"})
    assert secret not in str(caught.value)
    with pytest.raises(SettingError) as caught:
        build_config({}, {"redis_url": f"redis://admin:{secret}@127.0.0.1:99999"})
    assert secret not in str(caught.value)
    with pytest.raises(SettingError) as caught:
        parse_assignment(f"redis_url:redis://admin:{secret}@h")
    assert secret not in str(caught.value)


def test_assignments_name_a_field() -> None:
    assert parse_assignment("Redis-Prefix=a=b:") == ("redis_prefix", "a=b:")
    with pytest.raises(SettingError, match="FIELD=VALUE"):
        parse_assignment("=x")
    with pytest.raises(SettingError, match="no such SecurityConfig field"):
        build_config({}, {"colour": "blue"})
