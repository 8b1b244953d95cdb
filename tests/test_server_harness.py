"""The test harness's server binary: one setting, `GUARD_TEST_SERVER_BIN`, names it."""

from __future__ import annotations

import os
import shutil
import socket
import stat
from pathlib import Path

import pytest

from guard_core import testing
from guard_core.testing import (
    SERVER_BIN_ENV,
    ServerVersion,
    free_port,
    redis_cli_binary,
    redis_server_binary,
    server_version,
)


def fake_binary(path: Path, version_line: str) -> Path:
    path.write_text(f"#!/bin/sh\necho '{version_line}'\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_the_setting_names_the_server_its_cli_beside_it_and_its_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = fake_binary(tmp_path / "valkey-server", "Valkey server v=8.1.8 sha=0 bits=64")
    fake_binary(tmp_path / "valkey-cli", "valkey-cli 8.1.8")
    monkeypatch.setenv(SERVER_BIN_ENV, str(server))
    assert redis_server_binary() == str(server)
    assert redis_cli_binary() == str(tmp_path / "valkey-cli")
    assert server_version() == ServerVersion("valkey", (8, 1, 8))
    assert str(server_version()) == "Valkey 8.1.8"
    assert testing.own_bus_port()


def test_redis_6_2_has_no_cluster_port_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = fake_binary(tmp_path / "redis-server", "Redis server v=6.2.5 sha=00000000:0")
    monkeypatch.setenv(SERVER_BIN_ENV, str(server))
    assert server_version() == ServerVersion("redis", (6, 2, 5))
    assert not server_version().at_least(7)
    assert not testing.own_bus_port()
    with pytest.raises(RuntimeError, match="no redis-cli beside"):
        redis_cli_binary()


def test_a_setting_that_names_no_executable_is_refused_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SERVER_BIN_ENV, str(tmp_path / "missing-server"))
    with pytest.raises(RuntimeError, match=r"is not an executable file.*make servers"):
        redis_server_binary()
    odd = fake_binary(tmp_path / "odd-server", "not a server")
    monkeypatch.setenv(SERVER_BIN_ENV, str(odd))
    with pytest.raises(RuntimeError, match="does not name a server version"):
        server_version()


def test_without_the_setting_the_server_on_path_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SERVER_BIN_ENV, raising=False)
    if shutil.which("redis-server") is None:
        with pytest.raises(RuntimeError, match="make test"):
            redis_server_binary()
        return
    assert redis_server_binary() == shutil.which("redis-server")
    assert os.path.basename(redis_cli_binary()) == "redis-cli"


def test_a_port_with_its_bus_port_gives_both_free_and_never_again() -> None:
    for _ in range(20):
        port = free_port(bus_offset=10000)
        assert port >= 20000 and port + 10000 <= 32767  # below the ephemeral range
        for taken in (port, port + 10000):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind(("127.0.0.1", taken))
            assert taken in testing._ports_given
