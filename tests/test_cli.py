"""The `guard-core` command, through click's runner, against the session's real redis-server."""

from __future__ import annotations

import json
import signal
import time
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from click.testing import CliRunner, Result

import guard_core_sync
from guard_core.cli.app import cli
from guard_core.cli.state import server_fields
from guard_core.models import SecurityConfig
from guard_core.testing import LocalRedisServer, free_port, server_version

SECRET = "pw-s3cr3t-Zq9"


@pytest.fixture
def prefix() -> str:
    """A prefix of its own per test: the session's server is shared."""
    return f"cli{uuid.uuid4().hex[:8]}:"


@pytest.fixture
def env(redis_server: LocalRedisServer, prefix: str) -> dict[str, str]:
    return {"GUARD_CORE_REDIS_URL": redis_server.url, "GUARD_CORE_REDIS_PREFIX": prefix}


@pytest.fixture
def app(redis_server: LocalRedisServer, prefix: str) -> Iterator[guard_core_sync.Guard]:
    """An application instance on the same Redis and prefix as the command."""
    config = SecurityConfig(redis_url=redis_server.url, redis_prefix=prefix)
    with guard_core_sync.Guard(config) as guard:
        yield guard
        guard.redis.delete_pattern("*")


def run(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def ok(env: dict[str, str], *args: str) -> Result:
    result = run(env, *args)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result


def as_json(env: dict[str, str], *args: str) -> object:
    return json.loads(ok(env, *args, "--json").stdout)


def one_line_failure(result: Result) -> str:
    """An expected failure: exit 1, one line on stderr, no traceback, nothing on stdout."""
    assert result.exit_code == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("guard-core: error: ")
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    return lines[0]


# -- status --------------------------------------------------------------------------------


def test_status_reports_mode_server_latency_breaker_and_keys(
    env: dict[str, str], app: guard_core_sync.Guard
) -> None:
    app.ip_bans.ban_ip("203.0.113.7", 600)
    app.ip_bans.ban_ip("198.51.100.0/24", 600)
    app.rate_limiter.check("203.0.113.8")
    data = as_json(env, "status")
    assert isinstance(data, dict)
    assert data["mode"] == "redis"
    assert data["redis"]["prefix"] == env["GUARD_CORE_REDIS_PREFIX"]
    assert data["redis"]["topology"].startswith("standalone")
    assert data["server"]["redis_version"].count(".") == 2
    # the server's own name and version: Valkey's redis_version is the Redis one it answers as
    running = server_version()
    assert data["server"]["server_name"] == running.name
    assert data["server"]["server_version"] == ".".join(map(str, running.version))
    assert data["server"]["redis_mode"] == "standalone"
    assert data["breaker"]["state"] == "closed"
    assert 0 < data["latency_ms"]["min"] <= data["latency_ms"]["max"]
    assert data["keys"]["banned_ips"] == 1
    assert data["keys"]["banned_networks"] == 1
    assert data["keys"]["rate_limit"] == 1
    assert data["keys"]["patterns"] == 0
    assert set(data["pending_writes"]) >= {"ip_bans", "patterns", "headers"}

    table = ok(env, "status").stdout
    assert "redis (state shared through Redis)" in table
    assert "standalone" in table
    assert f"{running}, up" in table  # "Valkey 8.1.8, up ..." / "Redis 7.0.15, up ..."
    assert "banned_ips" in table and "closed" in table


def test_status_names_valkey_by_its_own_version_and_mode() -> None:
    # Valkey 8's INFO: redis_version is the Redis version it answers as; no redis_mode
    valkey = {"redis_version": "7.2.4", "server_name": "valkey", "valkey_version": "8.1.8"}
    assert server_fields({**valkey, "server_mode": "cluster", "role": "master"}) == {
        "redis_version": "7.2.4",
        "redis_mode": "cluster",
        "role": "master",
        "server_name": "valkey",
        "server_version": "8.1.8",
    }
    assert server_fields({"redis_version": "6.2.5", "redis_mode": "standalone"}) == {
        "redis_version": "6.2.5",
        "redis_mode": "standalone",
        "server_name": "redis",
        "server_version": "6.2.5",
    }
    assert server_fields({}) == {}  # INFO not permitted


def test_status_lists_cached_cloud_ranges(env: dict[str, str], app: guard_core_sync.Guard) -> None:
    document = json.dumps({"fetched_at": 1.0, "cidrs": ["192.0.2.0/24", "198.51.100.0/24"]})
    app.redis.set_key("cloud_ranges", "AWS", document, ttl=300)
    (row,) = as_json(env, "status")["cloud_cache"]  # type: ignore[index]
    assert row["provider"] == "AWS"
    assert row["ranges"] == 2
    assert 0 < row["ttl"] <= 300


# -- bans ----------------------------------------------------------------------------------


def test_bans_add_then_list_shows_the_ban_in_a_table_and_in_json(
    env: dict[str, str], app: guard_core_sync.Guard
) -> None:
    added = ok(env, "bans", "add", "203.0.113.7", "--duration", "2h")
    assert "banned 203.0.113.7 for 2 h" in added.stdout
    listed = ok(env, "bans", "list").stdout
    assert "1 bans under" in listed
    assert "203.0.113.7" in listed and "address" in listed
    data = as_json(env, "bans", "list")
    (ban,) = data["bans"]  # type: ignore[index]
    assert ban["target"] == "203.0.113.7"
    assert ban["kind"] == "address"
    assert 7100 < ban["remaining"] <= 7200
    # an application instance on the same Redis refuses it
    assert app.ip_bans.is_ip_banned("203.0.113.7")


def test_bans_made_by_an_application_are_listed_checked_and_lifted(
    env: dict[str, str], app: guard_core_sync.Guard
) -> None:
    app.ip_bans.ban_ip("198.51.100.0/24", 900)
    check = as_json(env, "bans", "check", "198.51.100.23")
    assert check["banned"] is True  # type: ignore[index]
    assert [m["target"] for m in check["by"]] == ["198.51.100.0/24"]  # type: ignore[index]
    assert (
        "198.51.100.23 is BANNED by 198.51.100.0/24"
        in ok(env, "bans", "check", "198.51.100.23").stdout
    )
    # the status answers, as grep's: 0 banned, 1 not banned, 2 an error
    not_banned = run(env, "bans", "check", "192.0.2.1")
    assert not_banned.exit_code == 1
    assert "is not banned" in not_banned.stdout
    refused = run(env, "bans", "check", "example.com")
    assert refused.exit_code == 2
    assert refused.stderr.strip() == "guard-core: error: not a valid IP address: 'example.com'"

    removed = as_json(env, "bans", "remove", "198.51.100.0/24")
    assert removed == {"target": "198.51.100.0/24", "removed": True}
    assert as_json(env, "bans", "list") == {"bans": []}
    assert "was not banned" in ok(env, "bans", "remove", "198.51.100.0/24").stdout


def test_allow_list_add_check_list_remove_and_the_application_follows(
    env: dict[str, str], app: guard_core_sync.Guard
) -> None:
    added = as_json(env, "allow", "add", "10.1.0.0/16", "--reason", "office")
    assert added == {"allowed": "10.1.0.0/16", "duration": None, "reason": "office",
                     "expires": "never"}  # fmt: skip
    ok(env, "allow", "add", "203.0.113.7", "--duration", "1h")
    # the running application learns both through the pushed invalidation
    deadline = time.monotonic() + 10
    while not (app.allow_list.is_allowed("10.1.2.3") and app.allow_list.is_allowed("203.0.113.7")):
        assert time.monotonic() < deadline, "the application did not follow"
        time.sleep(0.02)
    listed = as_json(env, "allow", "list")["allowed"]  # type: ignore[index]
    assert [(r["target"], r["kind"], r["by"]) for r in listed] == [
        ("10.1.0.0/16", "network", "cli"), ("203.0.113.7", "address", "cli"),
    ]  # fmt: skip
    assert listed[0]["expires_at"] is None and 3500 < listed[1]["remaining"] <= 3600
    # exit status as grep's: 0 on the list, 1 not, 2 an error
    assert "10.1.2.3 is ALLOWED by 10.1.0.0/16" in ok(env, "allow", "check", "10.1.2.3").stdout
    assert run(env, "allow", "check", "10.2.0.1").exit_code == 1
    assert run(env, "allow", "check", "example.com").exit_code == 2
    assert "not a valid IP network" in one_line_failure(run(env, "allow", "add", "10.1.0.0/33"))
    assert as_json(env, "allow", "remove", "10.1.0.0/16") == {
        "target": "10.1.0.0/16", "removed": True,
    }  # fmt: skip
    assert "was not on the allow list" in ok(env, "allow", "remove", "10.1.0.0/16").stdout
    deadline = time.monotonic() + 10
    while app.allow_list.is_allowed("10.1.2.3"):
        assert time.monotonic() < deadline, "the application did not follow the removal"
        time.sleep(0.02)


def test_a_question_redis_fails_to_answer_exits_2_not_1() -> None:
    # a user that may PING but not read: the check's reads fail with error replies, and the
    # library answers from memory, where this process knows nothing: that is no "no"
    pinger: tuple[str, ...] = ("--user", "default", "off", "--user", "pinger", "on", ">pw")
    pinger += ("~*", "&*")
    pinger += ("+ping", "+info", "+hello", "+client", "+subscribe")
    with LocalRedisServer(extra_args=pinger) as server:
        env = {"GUARD_CORE_REDIS_URL": f"redis://pinger:pw@127.0.0.1:{server.port}/0"}
        for args in (("bans", "check", "192.0.2.1"), ("patterns", "test", "hello")):
            result = run(env, *args)
            assert result.exit_code == 2, result.output
            assert "failed while answering" in result.stderr
            assert result.stdout == ""


def test_ban_reasons_are_stored_listed_and_checked(
    env: dict[str, str], app: guard_core_sync.Guard
) -> None:
    added = as_json(
        env, "bans", "add", "203.0.113.40", "-d", "1h", "--reason", "credential stuffing"
    )
    assert added["reason"] == "credential stuffing"  # type: ignore[index]
    app.ip_bans.ban_ip("198.51.100.0/24", 900, reason="scanner network")
    before = time.time()
    rows = {r["target"]: r for r in as_json(env, "bans", "list")["bans"]}  # type: ignore[index]
    assert rows["203.0.113.40"]["reason"] == "credential stuffing"
    assert rows["198.51.100.0/24"]["reason"] == "scanner network"
    assert before - 60 < rows["203.0.113.40"]["banned_at"] <= before
    assert "credential stuffing" in ok(env, "bans", "list").stdout
    check = ok(env, "bans", "check", "198.51.100.7").stdout
    assert "BANNED by 198.51.100.0/24 (scanner network;" in check
    default = as_json(env, "bans", "add", "203.0.113.41")
    assert default["reason"] == "banned with the guard-core command"  # type: ignore[index]


def test_ban_addresses_are_canonical(env: dict[str, str]) -> None:
    data = as_json(env, "bans", "add", "::ffff:192.0.2.9", "-d", "60")
    assert data["banned"] == "192.0.2.9"  # type: ignore[index]
    assert data["duration"] == 60  # type: ignore[index]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("bans", "add", "1.2.3"), "not a valid IP address"),
        (("bans", "add", "192.0.2.1/24"), "host bits"),
        (("bans", "add", "127.0.0.1"), "loopback"),
        (("bans", "add", "192.0.2.1", "-d", "soon"), "duration"),
        (("bans", "add", "192.0.2.1", "-d", "0"), "at least 1 second"),
    ],
)
def test_bad_ban_input_fails_in_one_line(
    env: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    line = one_line_failure(run(env, *args))
    assert message in line


# -- rate limits ---------------------------------------------------------------------------


def test_ratelimit_show_reads_the_window_the_rate_limiter_writes(
    env: dict[str, str], app: guard_core_sync.Guard
) -> None:
    for _ in range(3):
        app.rate_limiter.check("2001:db8::1", endpoint="/login", limit=3, window=60)
    data = as_json(env, "ratelimit", "show", "2001:db8::1", "--endpoint", "/login", "--limit", "3")
    assert data["hits"] == 3  # type: ignore[index]
    assert data["remaining"] == 0  # type: ignore[index]
    assert 0 < data["reset_after"] <= 60  # type: ignore[index]
    table = ok(env, "ratelimit", "show", "2001:db8::1", "-e", "/login", "--limit", "3").stdout
    assert "3 of 3 hits used" in table and "REJECTED" in table
    # another endpoint, and the bare identifier, are other windows
    assert as_json(env, "ratelimit", "show", "2001:db8::1")["hits"] == 0  # type: ignore[index]

    reset = as_json(env, "ratelimit", "reset", "2001:db8::1", "-e", "/login")
    assert reset["cleared"] == 3  # type: ignore[index]
    assert app.rate_limiter.check("2001:db8::1", endpoint="/login", limit=3).count == 1


# -- patterns ------------------------------------------------------------------------------


def test_patterns_add_list_test_and_remove(env: dict[str, str], app: guard_core_sync.Guard) -> None:
    assert "added pattern: evil-token-\\d+" in ok(env, "patterns", "add", r"evil-token-\d+").stdout
    data = as_json(env, "patterns", "list")
    assert data["custom"] == [r"evil-token-\d+"]  # type: ignore[index]
    assert data["builtin_count"] > 10  # type: ignore[index]
    assert app.patterns.refresh()
    assert any(m.category == "custom" for m in app.patterns.detect("x=evil-token-7"))

    found = as_json(env, "patterns", "test", "q=evil-token-42 <script>alert(1)</script>")
    categories = {m["category"] for m in found["matches"]}  # type: ignore[index]
    assert {"custom", "xss"} <= categories
    none = run(env, "patterns", "test", "hello world")  # 0 a match, 1 none
    assert none.exit_code == 1
    assert "no pattern matches" in none.stdout
    assert json.loads(run(env, "patterns", "test", "hello world", "--json").stdout) == {
        "text": "hello world",
        "matches": [],
    }

    assert as_json(env, "patterns", "remove", r"evil-token-\d+")["removed"] is True  # type: ignore[index]
    assert as_json(env, "patterns", "list")["custom"] == []  # type: ignore[index]


def test_an_invalid_pattern_fails_in_one_line(env: dict[str, str]) -> None:
    line = one_line_failure(run(env, "patterns", "add", "(unclosed"))
    assert "invalid regular expression" in line


# -- headers and keys ----------------------------------------------------------------------


def test_headers_show_the_shared_configuration_with_path_overrides(
    env: dict[str, str], app: guard_core_sync.Guard
) -> None:
    default = as_json(env, "headers", "show")
    assert default["configured_at"] is None  # type: ignore[index]
    assert default["headers"]["X-Frame-Options"] == "DENY"  # type: ignore[index]
    app.headers.configure(
        custom_headers={"X-Team": "blue"}, path_overrides={"/api": {"Cache-Control": "no-store"}}
    )
    api = as_json(env, "headers", "show", "/api/users")
    assert api["headers"]["X-Team"] == "blue"  # type: ignore[index]
    assert api["headers"]["Cache-Control"] == "no-store"  # type: ignore[index]
    assert api["configured_at"] is not None  # type: ignore[index]
    assert "Cache-Control" not in as_json(env, "headers", "show", "/home")["headers"]  # type: ignore[index]
    assert "X-Team" in ok(env, "headers", "show", "/api").stdout


def test_keys_lists_names_types_and_expiry(env: dict[str, str], app: guard_core_sync.Guard) -> None:
    prefix = env["GUARD_CORE_REDIS_PREFIX"]
    app.ip_bans.ban_ip("203.0.113.7", 600)
    app.patterns.add_pattern("forbidden-word")
    data = as_json(env, "keys")
    rows = {row["key"]: row for row in data["keys"]}  # type: ignore[index]
    assert set(rows) == {
        f"{prefix}banned_ips:203.0.113.7",
        f"{prefix}ban_index:addresses",  # bans are listed from this index, never by SCAN
        f"{prefix}ban_index:version",  # counts its changes (the instances' mirrors catch up)
        f"{prefix}patterns:custom",
        f"{prefix}pattern_changes:custom",  # when each pattern last changed (later wins)
        f"{prefix}members:instances",  # the app joined the live instances at start
    }
    assert rows[f"{prefix}patterns:custom"]["ttl"] is None
    assert 0 < rows[f"{prefix}banned_ips:203.0.113.7"]["ttl"] <= 600
    only = as_json(env, "keys", "banned_*")
    assert only["total"] == 1  # type: ignore[index]
    assert "never" in ok(env, "keys", "patterns:*").stdout


# -- watch, bench --------------------------------------------------------------------------


def test_watch_is_bounded_and_reports_state_and_changes(
    env: dict[str, str], app: guard_core_sync.Guard
) -> None:
    app.ip_bans.ban_ip("203.0.113.7", 600)
    for _ in range(4):
        app.rate_limiter.check("203.0.113.8", endpoint="/login")
    lines = ok(
        env, "watch", "--interval", "0.1", "--duration", "0.25", "--json"
    ).stdout.splitlines()
    snapshots = [json.loads(line) for line in lines]
    assert 1 <= len(snapshots) <= 3
    first = snapshots[0]
    assert first["reachable"] is True
    assert list(first["bans"]) == ["203.0.113.7"]
    assert first["busiest"] == [["rate:203.0.113.8:/login", 4]]
    # the ban, its listing index and its change counter, the rate-limit window, and the
    # live instances the app joined at start
    assert first["changes"] == ["watching: 1 bans, 5 keys"]

    table = ok(env, "watch", "--interval", "0.1", "--duration", "0").stdout
    assert "answers" in table and "203.0.113.7" in table and "rate:203.0.113.8:/login" in table


def test_watch_reports_an_unreachable_redis_instead_of_failing() -> None:
    env = {"GUARD_CORE_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    result = ok(env, "watch", "--duration", "0", "--json")
    (snapshot,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert snapshot["reachable"] is False
    assert snapshot["changes"][0].startswith("Redis unreachable")


def test_watch_sees_a_ban_appear() -> None:
    from guard_core.cli.watch import Snapshot, changes

    before = Snapshot(0.0, reachable=True, bans={"192.0.2.1": 100.0, "192.0.2.2": 0.5})
    after = Snapshot(1.0, reachable=True, bans={"203.0.113.7": 60.0})
    assert changes(before, after, interval=1.0) == [
        "ban added: 203.0.113.7 (1 min)",
        "ban lifted: 192.0.2.1",
        "ban expired: 192.0.2.2",
    ]
    lost = Snapshot(2.0, reachable=False, error="refused")
    assert changes(after, lost, interval=1.0) == ["Redis LOST: refused"]
    assert changes(lost, after, interval=1.0)[0].startswith("Redis BACK")


def test_bench_measures_with_redis_and_degraded() -> None:
    data = as_json({}, "bench", "--ops", "10")
    rows = data["results"]  # type: ignore[index]
    assert {(r["operation"], r["mode"]) for r in rows} >= {
        ("is_ip_banned", "redis"),
        ("is_ip_banned", "degraded"),
        ("rate_limiter.check", "degraded"),
    }
    assert all(r["per_second"] > 0 and r["p99_us"] >= r["median_us"] > 0 for r in rows)


# -- failures and secrets ------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [("bans", "list"), ("bans", "add", "192.0.2.1"), ("patterns", "list"), ("keys",)],
)
def test_unreachable_redis_is_one_line_without_the_password(args: tuple[str, ...]) -> None:
    url = f"redis://operator:{SECRET}@127.0.0.1:{free_port()}/0"
    result = run({"GUARD_CORE_REDIS_URL": url}, *args)
    line = one_line_failure(result)
    assert "unreachable" in line and "Connection refused" in line
    assert SECRET not in result.output and "operator" not in result.output


def test_status_reports_an_unreachable_redis_and_exits_1_without_the_password() -> None:
    secret = "s3cr#t:@/%"  # every character a URL treats apart
    url = f"redis://operator:{quote(secret, safe='')}@127.0.0.1:{free_port()}/0"
    env = {"GUARD_CORE_REDIS_URL": url}
    result = run(env, "--json", "status")
    assert result.exit_code == 1
    report = json.loads(result.stdout)  # one JSON object for a probe to read
    assert report["reachable"] is False
    assert report["mode"] == "degraded"
    assert set(report["subsystems"].values()) == {"memory"}
    assert "unreachable" in report["error"] and "Connection refused" in report["error"]
    assert report["breaker"]["state"] == "open"
    text = run(env, "status")
    assert text.exit_code == 1
    assert "degraded" in text.stdout and "Connection refused" in text.stdout
    for output in (result.output, text.output):
        assert secret not in output and quote(secret, safe="") not in output
        assert "operator" not in output
    disabled = run({"GUARD_CORE_ENABLE_REDIS": "false"}, "--json", "status")
    assert disabled.exit_code == 1
    assert json.loads(disabled.stdout)["mode"] == "disabled"


def test_credentials_are_never_printed_when_redis_answers() -> None:
    user: tuple[str, ...] = ("--user", "default", "off")
    user += ("--user", "ops", "on", f">{SECRET}", "~*", "&*", "+@all")
    user += ("--user", "noinfo", "on", f">{SECRET}", "~*", "&*", "+@all", "-info")
    with LocalRedisServer(extra_args=user) as server:
        url = f"redis://ops:{SECRET}@127.0.0.1:{server.port}/0"
        env = {"GUARD_CORE_REDIS_URL": url, "GUARD_CORE_REDIS_PREFIX": "acl:"}
        commands = [
            ("status",),
            ("status", "--json"),
            ("bans", "add", "192.0.2.5"),
            ("bans", "list"),
            ("keys", "--json"),
            ("watch", "--duration", "0"),
        ]
        for args in commands:
            result = ok(env, *args)
            assert SECRET not in result.output
        assert "redis://***@127.0.0.1" in ok(env, "status").stdout
        wrong_env = {**env, "GUARD_CORE_REDIS_URL": url.replace(SECRET, SECRET + "x")}
        assert SECRET not in one_line_failure(run(wrong_env, "bans", "list"))
        wrong = run(wrong_env, "status")  # a partial report, the reason in it
        assert wrong.exit_code == 1
        assert "AuthenticationError" in wrong.stdout and SECRET not in wrong.output
        # a user without INFO still gets a status, without the server's details
        no_info = {**env, "GUARD_CORE_REDIS_URL": url.replace("ops:", "noinfo:")}
        data = as_json(no_info, "status")
        assert data["server"] == {}  # type: ignore[index]
        assert data["redis"]["topology"] == "unknown (INFO not permitted)"  # type: ignore[index]
        assert "unknown (INFO not permitted)" in ok(no_info, "status").stdout


def test_redis_disabled_is_a_clear_failure() -> None:
    line = one_line_failure(run({"GUARD_CORE_ENABLE_REDIS": "false"}, "bans", "list"))
    assert "Redis is disabled" in line


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"GUARD_CORE_REDIS_ULR": "redis://127.0.0.1"}, "GUARD_CORE_REDIS_ULR is not a setting"),
        ({"GUARD_CORE_RATE_LIMIT": "many"}, "GUARD_CORE_RATE_LIMIT must be a whole number"),
        ({"GUARD_CORE_ENABLE_REDIS": "maybe"}, "GUARD_CORE_ENABLE_REDIS must be true or false"),
        ({"GUARD_CORE_REDIS_URL": f"http://u:{SECRET}@h"}, "redis_url scheme must be one of"),
        ({"GUARD_CORE_REDIS_PREFIX": ""}, "redis_prefix must not be empty"),
    ],
)
def test_bad_settings_fail_in_one_line(env: dict[str, str], message: str) -> None:
    result = run(env, "status")
    assert message in one_line_failure(result)
    assert SECRET not in result.output


def test_flags_override_the_environment(redis_server: LocalRedisServer, prefix: str) -> None:
    env = {"GUARD_CORE_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    data = as_json(env, "--redis-url", redis_server.url, "--prefix", prefix, "status")
    assert data["redis"]["prefix"] == prefix  # type: ignore[index]
    data = as_json(
        env, "--redis-url", redis_server.url, "--set", f"redis_prefix={prefix}x", "status"
    )
    assert data["redis"]["prefix"] == f"{prefix}x"  # type: ignore[index]
    assert "FIELD=VALUE" in one_line_failure(run(env, "--set", "nonsense", "status"))
    assert "no such SecurityConfig field" in one_line_failure(run(env, "--set", "x=1", "status"))


def test_json_flag_is_accepted_before_the_command(env: dict[str, str]) -> None:
    assert json.loads(ok(env, "--json", "bans", "list").stdout) == {"bans": []}


def test_usage_errors_exit_2(env: dict[str, str]) -> None:
    assert run(env, "bans", "add").exit_code == 2
    assert run(env, "frobnicate").exit_code == 2


def test_verbose_shows_the_library_log_on_stderr() -> None:
    env = {"GUARD_CORE_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    result = run(env, "-v", "status")
    assert result.exit_code == 1
    assert "guard-core: log: WARNING guard_core.redis: Redis unavailable" in result.stderr
    quiet = run(env, "status")
    assert "log:" not in quiet.stderr


def test_in_memory_demo_says_so() -> None:
    out = ok({}, "demo", "--in-memory").stdout
    assert 'A reports "disabled", B reports "disabled"' in out
    assert "B  request from 203.0.113.7: admitted, B never heard of A's ban" in out


def test_a_hung_redis_is_one_line_after_one_timeout() -> None:
    with LocalRedisServer() as server:
        env = {"GUARD_CORE_REDIS_URL": server.url, "GUARD_CORE_REDIS_SOCKET_TIMEOUT": "0.2"}
        assert as_json(env, "bans", "list") == {"bans": []}
        server.send_signal(signal.SIGSTOP)
        try:
            line = one_line_failure(run(env, "bans", "list"))
        finally:
            server.send_signal(signal.SIGCONT)
    assert "unreachable" in line and "Timeout" in line


def test_a_change_redis_refuses_is_a_failure_not_a_silent_local_change() -> None:
    reader = ("--user", "reader", "on", f">{SECRET}", "~*", "&*", "+@read", "+ping", "+info")
    with LocalRedisServer(extra_args=reader) as server:
        url = f"redis://reader:{SECRET}@127.0.0.1:{server.port}/0"
        env = {"GUARD_CORE_REDIS_URL": url}
        assert as_json(env, "bans", "list") == {"bans": []}
        line = one_line_failure(run(env, "bans", "add", "192.0.2.44"))
        assert (
            line
            == "guard-core: error: Redis did not take the ban of 192.0.2.44; nothing was changed"
        )
        line = one_line_failure(run(env, "patterns", "add", "forbidden"))
        assert "Redis did not take the pattern" in line
        assert as_json(env, "bans", "list") == {"bans": []}
