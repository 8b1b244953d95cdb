"""The installed `guard-core` console script as a separate process, and the demo's story."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from guard_core.testing import LocalRedisServer

SCRIPT = Path(sys.executable).parent / "guard-core"


def guard_core(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("GUARD_CORE_")}
    return subprocess.run(
        [str(SCRIPT), *args],
        env=environ | (env or {}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_console_script_bans_add_then_list(redis_server: LocalRedisServer) -> None:
    env = {"GUARD_CORE_REDIS_URL": redis_server.url, "GUARD_CORE_REDIS_PREFIX": "cliproc:"}
    try:
        added = guard_core("bans", "add", "203.0.113.77", "--duration", "15m", env=env)
        assert added.returncode == 0, added.stderr
        assert added.stdout.startswith("banned 203.0.113.77 for 15 min")
        listed = guard_core("bans", "list", "--json", env=env)
        assert listed.returncode == 0, listed.stderr
        assert [ban["target"] for ban in json.loads(listed.stdout)["bans"]] == ["203.0.113.77"]
        assert "203.0.113.77" in guard_core("bans", "list", env=env).stdout
    finally:
        guard_core("bans", "remove", "203.0.113.77", env=env)


def test_console_script_fails_in_one_line_without_a_traceback() -> None:
    result = guard_core("bans", "add", "not-an-ip")
    assert result.returncode == 1
    assert result.stderr.strip() == "guard-core: error: not a valid IP address: 'not-an-ip'"


def test_version_is_the_package_version() -> None:
    from guard_core import __version__

    assert guard_core("--version").stdout.strip() == f"guard-core, version {__version__}"


def test_without_the_cli_extra_the_command_says_what_to_install() -> None:
    code = "import sys; sys.modules['click'] = None; from guard_core.cli import main; main()"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 1
    assert "needs the [cli] extra" in result.stderr
    assert "guard-core-redis[cli]" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def demo() -> str:
    result = guard_core("demo")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout


def test_demo_shares_a_rate_limit_between_the_async_and_the_sync_instance(demo: str) -> None:
    assert "instance A runs on the async face (guard_core.Guard)" in demo
    assert "instance B runs on the sync face (guard_core_sync.Guard)" in demo
    logins = [line.strip() for line in demo.splitlines() if "login from 198.51.100.20" in line]
    assert logins[:5] == [
        "A  login from 198.51.100.20: admitted, 1 of 5 used",
        "A  login from 198.51.100.20: admitted, 2 of 5 used",
        "A  login from 198.51.100.20: admitted, 3 of 5 used",
        "B  login from 198.51.100.20: admitted, 4 of 5 used",
        "B  login from 198.51.100.20: admitted, 5 of 5 used",
    ]
    rejected = re.fullmatch(
        r"B  login from 198\.51\.100\.20: REJECTED \(429\): all 5 used; retry in (\d+) s",
        logins[5],
    )
    assert rejected is not None, logins[5]
    assert 0 < int(rejected[1]) <= 60
    # no line contradicts another: a count is never shown as both admitted and rejected
    assert not any("admitted" in line and "REJECTED" in line for line in demo.splitlines())


def _section(demo: str, number: int) -> str:
    start = demo.index(f"\n{number}. ")
    end = demo.find(f"\n{number + 1}. ", start)
    return demo[start : end if end != -1 else len(demo)]


def test_demo_ban_on_one_instance_is_refused_by_the_other(demo: str) -> None:
    shared = _section(demo, 3)
    assert "B  request from 203.0.113.7: REFUSED (403), B read A's ban from Redis" in shared
    assert "A  request from 192.0.2.10: REFUSED (403), inside B's banned network" in shared


def test_demo_outage_degrades_and_both_instances_keep_protecting(demo: str) -> None:
    outage = _section(demo, 4)
    assert "redis-server stopped" in outage
    assert 'A  health "degraded", circuit breaker open' in outage
    assert 'B  health "degraded", circuit breaker open' in outage
    assert "A  request from 203.0.113.7: REFUSED (403)" in outage
    assert "B  request from 192.0.2.10: REFUSED (403)" in outage
    # its share of what was left (it last saw 3 of 5 used; 2 instances): one login, not five
    assert "A  login from 198.51.100.20: admitted, 5 of 5 used\n" in outage
    assert "A  login from 198.51.100.20: REJECTED (429): all 5 used" in outage
    assert "A admits only its share of what was left when Redis went away" in outage
    assert "attack detected (xss)" in outage
    during = _section(demo, 5)
    assert "A  bans 198.51.100.66 for 1 h (credential stuffing)\n" in during
    assert "kept in A's memory, 1 write waiting for Redis" in during
    assert "A  request from 198.51.100.66: REFUSED (403)" in during


def test_demo_recovers_with_the_outage_time_ban_replayed(demo: str) -> None:
    recovery = _section(demo, 6)
    assert "it holds 0 keys" in recovery
    assert 'A and B report "redis" again' in recovery
    assert "A  noticed the restart and wrote its bans again: 0 writes waiting" in recovery
    assert (
        "B  request from 198.51.100.66: REFUSED (403), the ban made during the outage" in recovery
    )
    assert "B  request from 203.0.113.7: REFUSED (403)" in recovery
    assert "A  request from 192.0.2.10: REFUSED (403), B wrote its network ban again" in recovery
    held = recovery.split("Redis holds these bans again:\n", 1)[1].split("\n\n", 1)[0].split()
    assert held == ["192.0.2.0/24", "198.51.100.66", "203.0.113.7"]
    assert demo.rstrip().endswith(
        "Done: the throwaway redis-server is stopped and its data is gone."
    )


def test_demo_lines_fit_a_terminal(demo: str) -> None:
    assert max(len(line) for line in demo.splitlines()) <= 100
    assert "Traceback" not in demo


def test_demo_without_redis_server_runs_in_memory_and_says_so() -> None:
    result = guard_core("demo", env={"PATH": str(SCRIPT.parent)})  # no redis-server on PATH
    assert result.returncode == 0, result.stderr
    assert "redis-server is not installed, so this run keeps each instance's state" in result.stdout
    assert "1. Start (in memory)" in result.stdout
    assert "B  request from 203.0.113.7: admitted, B never heard of A's ban" in result.stdout
