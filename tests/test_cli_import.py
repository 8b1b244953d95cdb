"""`guard-core bans import` and `bans export` as processes of their own (this worktree's code,
`python -m guard_core.cli`), against a real redis-server and a Redis Cluster: a big list with
bad lines, `--strict`, a lift made during an import, a running guard following an import,
the round trip, who made each ban, and the progress bar on a terminal only."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

import guard_core_sync
from guard_core._shared.keys import build_key
from guard_core.models import SecurityConfig
from guard_core.testing import LocalRedisServer
from tests.support.backends import ClusterInspect
from tests.support.topologies import LocalRedisCluster

ROOT = Path(__file__).resolve().parents[1]
LINES = 100_000
IMPORT_REASON = "imported with the guard-core command"
WAIT_LIMIT = 60.0  # seconds before a wait gives up (a failure, never a speed figure)


@dataclass
class Target:
    """A Redis (one server or a Cluster) and a prefix of this test's own."""

    url: str
    cluster: bool
    prefix: str
    client: Any  # a plain sync client (a Cluster client on a Cluster)

    @property
    def env(self) -> dict[str, str]:
        return {"GUARD_CORE_REDIS_URL": self.url, "GUARD_CORE_REDIS_PREFIX": self.prefix}

    def key(self, namespace: str, key: str) -> str:
        return build_key(self.prefix, namespace, key, cluster=self.cluster)

    def config(self, **fields: Any) -> SecurityConfig:
        return SecurityConfig(redis_url=self.url, redis_prefix=self.prefix, **fields)

    def banned_addresses(self) -> int:
        return int(self.client.zcard(self.key("ban_index", "addresses")))


@pytest.fixture(params=["standalone", "cluster"])
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    prefix = f"imp{uuid.uuid4().hex[:8]}:"
    client: Any
    if request.param == "standalone":
        server: LocalRedisServer = request.getfixturevalue("redis_server")
        url = server.url
        client = redis.Redis.from_url(url, decode_responses=True)
    else:
        cluster: LocalRedisCluster = request.getfixturevalue("redis_cluster")
        url = cluster.url
        client = ClusterInspect(host="127.0.0.1", port=cluster.nodes[0].port, decode_responses=True)
    found = Target(url=url, cluster=request.param == "cluster", prefix=prefix, client=client)
    yield found
    with guard_core_sync.Guard(found.config(), serving=False) as guard:
        guard.redis.delete_pattern("*")
    client.close()


def process_env(target: Target, **extra: str) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("GUARD_CORE_")}
    return environ | {"PYTHONPATH": str(ROOT), "COLUMNS": "250"} | target.env | extra


def command(
    target: Target, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`guard-core ARGS` as a process of its own, on this worktree's code."""
    return subprocess.run(
        [sys.executable, "-m", "guard_core.cli", *args],
        env=process_env(target),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def address(number: int) -> str:
    return f"10.{number >> 16 & 255}.{number >> 8 & 255}.{number & 255}"


def write_list(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def reported_lines(stderr: str, name: str) -> dict[int, str]:
    """The bad lines `bans import` reported: line number -> why."""
    found: dict[int, str] = {}
    for line in stderr.splitlines():
        head = f"guard-core: {name}:"
        if line.startswith(head):
            number, _, why = line[len(head) :].partition(": ")
            found[int(number)] = why
    return found


def wait_until(condition: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT_LIMIT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting: {what}")
        time.sleep(0.01)


BAD_LINES = (
    ("not-an-ip", "not a valid IP address"),
    ("10.0.0.1/8", "host bits"),
    ("127.0.0.1", "loopback"),
    ("10.200.0.1 soon", "duration"),
    ('10.200.0.2 1h "unclosed', "JSON string"),
    ("10.200.0.3 0", "at least 1 second"),
)


def test_a_big_list_with_bad_lines_bans_every_good_one_and_a_running_guard_follows(
    target: Target, tmp_path: Path
) -> None:
    lines = ["# a FireHOL netset's header", "; and a Spamhaus DROP comment"]
    bad: dict[int, str] = {}
    good = 0
    while len(lines) < LINES - 2:
        if len(lines) % 9973 == 5:
            text, why = BAD_LINES[len(bad) % len(BAD_LINES)]
            lines.append(text)
            bad[len(lines)] = why
        else:
            lines.append(address(good))
            good += 1
    lines += ["1.10.16.0/20 ; SBL256894", "2001:db8::/32 7d documentation range  # v6"]
    assert len(lines) == LINES
    path = write_list(tmp_path / "list.netset", lines)
    config = target.config(redis_state_refresh_interval=3600)
    with guard_core_sync.Guard(config) as follower:
        wait_until(lambda: follower.store.mirror.addresses.loaded, "the follower's mirror")
        mirror = follower.store.mirror
        loads = mirror.loads
        assert follower.ip_bans.is_ip_banned(address(7)) is False  # held "not banned"

        result = command(target, "bans", "import", str(path))
        assert result.returncode == 1, result.stderr  # some lines were bad
        reported = reported_lines(result.stderr, str(path))
        assert set(reported) == set(bad)
        for number, why in bad.items():
            assert why in reported[number], (number, reported[number])
        assert f"imported {good + 2:,} bans" in result.stdout
        assert f"{len(bad):,} bad lines" in result.stdout
        assert "importing" not in result.stdout  # no progress bar off a terminal

        assert target.banned_addresses() == good
        stored = json.loads(target.client.get(target.key("banned_ips", address(good - 1))))
        assert (stored["by"], stored["reason"]) == ("cli", IMPORT_REASON)
        networks = target.client.hgetall(target.key("banned_networks", "index"))
        assert json.loads(networks["2001:db8::/32"])["reason"] == "documentation range"
        assert json.loads(networks["2001:db8::/32"])["expires_at"] - json.loads(
            networks["2001:db8::/32"]
        )["banned_at"] == pytest.approx(7 * 86400)
        assert "1.10.16.0/20" in networks

        # the running guard saw every ban, batch by batch, without reloading its mirror
        wait_until(lambda: len(mirror.addresses) >= good, "every ban in the follower's mirror")
        assert mirror.loads == loads
        assert mirror.batches >= 1
        assert follower.health().mirror["loads"] == loads
        assert follower.ip_bans.is_ip_banned(address(7)) is True
        assert follower.ip_bans.is_ip_banned(address(good - 1)) is True
        wait_until(lambda: len(follower.store.bans.networks.index) == 2, "the networks")
        assert follower.ip_bans.is_ip_banned("1.10.17.1") is True


def test_strict_writes_nothing_when_a_line_is_bad(target: Target, tmp_path: Path) -> None:
    lines = [address(n) for n in range(2000)]
    lines.insert(1500, "10.0.0.1/8 1h")  # line 1501: host bits set
    path = write_list(tmp_path / "strict.txt", lines)
    result = command(target, "bans", "import", "--strict", str(path))
    assert result.returncode == 1
    assert set(reported_lines(result.stderr, str(path))) == {1501}
    assert "nothing written (--strict)" in result.stderr
    assert result.stdout == ""
    assert target.banned_addresses() == 0
    assert target.client.get(target.key("banned_ips", address(0))) is None
    # without --strict the good lines go in
    assert command(target, "bans", "import", str(path)).returncode == 1
    assert target.banned_addresses() == 2000


def test_a_lift_made_during_the_import_wins(target: Target, tmp_path: Path) -> None:
    lifted = "203.0.113.99"
    lines = [lifted, *(address(n) for n in range(LINES - 2)), f"{lifted} 2h again"]
    path = write_list(tmp_path / "big.txt", lines)
    importing = subprocess.Popen(
        [sys.executable, "-m", "guard_core.cli", "bans", "import", "--json", str(path)],
        env=process_env(target),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with guard_core_sync.Guard(target.config(), serving=False) as operator:
            ban_key = target.key("banned_ips", lifted)
            wait_until(lambda: target.client.exists(ban_key), "the import's ban of the address")
            assert operator.ip_bans.unban_ip(lifted) is True  # later than the import's write
            assert importing.poll() is None, "the import ended before the lift"
            out, err = importing.communicate(timeout=600)
            assert importing.returncode == 0, err
            assert operator.ip_bans.is_ip_banned(lifted) is False
            assert target.client.get(ban_key) is None
            data = json.loads(out)
            assert data["imported"] == LINES - 1  # each address once: its last line says how
            assert data["superseded"] == 1  # the first line of the address lifted
            assert operator.ip_bans.is_ip_banned(address(LINES - 3)) is True
    finally:
        if importing.poll() is None:
            importing.kill()
            importing.wait()
    checked = command(target, "bans", "check", lifted)
    assert checked.returncode == 1, checked.stdout


def test_export_then_import_gives_the_same_bans(target: Target, tmp_path: Path) -> None:
    lines = [
        '203.0.113.1 2h "credential stuffing; from # the \\"login\\" form"',
        "203.0.113.2 30m plain words reason",
        "198.51.100.0/24 7d",
        '2001:db8::/48 - "caf\u00e9 \u2013 unicode"',
        '203.0.113.3 1h ""',
        "203.0.113.4",
    ]
    path = write_list(tmp_path / "first.txt", lines)
    assert command(target, "bans", "import", "-r", "default why", str(path)).returncode == 0
    exported = command(target, "bans", "export")
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout.startswith("# guard-core bans export of ")
    before = json.loads(command(target, "bans", "export", "--json").stdout)["bans"]
    assert len(before) == len(lines)

    with guard_core_sync.Guard(target.config(), serving=False) as guard:
        guard.redis.delete_pattern("*")
    again = command(target, "bans", "import", "-", stdin=exported.stdout)
    assert again.returncode == 0, again.stderr
    after = json.loads(command(target, "bans", "export", "--json").stdout)["bans"]

    def shape(rows: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
        return [(r["target"], r["kind"], r["reason"], r["by"]) for r in rows]

    assert shape(after) == shape(before)
    reasons = {r["target"]: r["reason"] for r in after}
    assert reasons["203.0.113.1"] == 'credential stuffing; from # the "login" form'
    assert reasons["2001:db8::/48"] == "caf\u00e9 \u2013 unicode"
    assert reasons["203.0.113.3"] == ""
    assert reasons["203.0.113.4"] == "default why"
    for old, new in zip(before, after, strict=True):
        assert abs(new["expires_at"] - old["expires_at"]) < 30
        assert new["duration"] <= old["duration"] + 1


def test_list_and_check_show_reason_banned_at_expiry_and_who(target: Target) -> None:
    with guard_core_sync.Guard(target.config(), serving=False) as app:
        before = time.time()
        app.ip_bans.ban_ip("198.51.100.0/24", 900, reason="scanner network")
        instance = app.store.instance_id
        added = command(target, "bans", "add", "203.0.113.40", "-d", "1h", "-r", "stuffing")
        assert added.returncode == 0, added.stderr
        rows = {
            r["target"]: r
            for r in json.loads(command(target, "bans", "list", "--json").stdout)["bans"]
        }
        assert rows["198.51.100.0/24"]["by"] == instance
        assert rows["203.0.113.40"]["by"] == "cli"
        for row in rows.values():
            assert before - 5 < row["banned_at"] <= time.time()
            assert row["expires_at"] > row["banned_at"]
        assert rows["203.0.113.40"]["reason"] == "stuffing"

        listed = command(target, "bans", "list").stdout
        for text in (
            "scanner network",
            "stuffing",
            instance,
            "cli",
            rows["203.0.113.40"]["expires"],
        ):
            assert text in listed, text
        assert "banned at" in listed and "expires" in listed and "by" in listed

        check = command(target, "bans", "check", "198.51.100.7")
        assert check.returncode == 0
        assert "BANNED by 198.51.100.0/24 (scanner network; banned " in check.stdout
        assert f"by {instance}; until {rows['198.51.100.0/24']['expires']}" in check.stdout
        data = json.loads(command(target, "bans", "check", "203.0.113.40", "--json").stdout)
        [match] = data["by"]
        assert (match["by"], match["reason"]) == ("cli", "stuffing")
        assert match["banned_at"] and match["expires_at"]


def test_progress_bar_on_a_terminal_only(target: Target, tmp_path: Path) -> None:
    path = write_list(tmp_path / "bar.txt", [address(n) for n in range(20_000)])
    shown = on_terminal(target, "bans", "import", str(path))
    assert "importing" in shown
    assert "imported 20,000 bans" in shown
    quiet = on_terminal(target, "bans", "import", "--json", str(path))
    assert "importing" not in quiet
    assert json.loads(quiet)["bans"] == 20_000


def on_terminal(target: Target, *args: str) -> str:
    """What `guard-core ARGS` writes on stdout when stdout is a terminal."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "guard_core.cli", *args],
        env=process_env(target, TERM="xterm"),
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=subprocess.PIPE,
    )
    os.close(follower)
    chunks: list[bytes] = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal's other end closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    process.wait(timeout=600)
    assert process.stderr is not None
    assert process.returncode == 0, process.stderr.read()
    process.stderr.close()
    return b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")
