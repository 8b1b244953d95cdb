"""The test suite's topologies, on `guard_core.testing.LocalRedisServer`: a Redis Cluster
(`LocalRedisCluster`: primaries with replicas, failover, resharding) and a master with
replicas and sentinels (`LocalRedisSentinel`: failover, healing). Loopback only, no data on
disk, stopped on exit; the binary is the one `guard_core.testing` chooses
(`GUARD_TEST_SERVER_BIN`).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import redis

from guard_core.testing import (
    START_TIMEOUT,
    LocalRedisServer,
    ServerTLS,
    free_port,
    own_bus_port,
    redis_cli_binary,
    redis_server_binary,
    tls_url_query,
)


def _wait_for(what: str, check: Callable[[], bool], timeout: float) -> None:
    """Poll `check` until it holds; RuntimeError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (OSError, redis.RedisError):
            pass  # not ready yet
        time.sleep(0.05)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")


def _field(info: object, name: str) -> str | None:
    """A field of an INFO-style reply, parsed by redis-py (dict) or not (text)."""
    if isinstance(info, dict):
        return None if info.get(name) is None else str(info[name])
    for line in str(info).splitlines():
        if line.startswith(name + ":"):
            return line.partition(":")[2].strip()
    return None


def _client(port: int, tls: ServerTLS | None = None) -> redis.Redis:
    if tls is not None:
        return redis.Redis(
            host="127.0.0.1",
            port=port,
            decode_responses=True,
            socket_timeout=5,
            socket_connect_timeout=5,
            ssl=True,
            ssl_ca_certs=tls.ca_file,
            ssl_certfile=tls.client_cert_file,
            ssl_keyfile=tls.client_key_file,
        )
    return redis.Redis(
        host="127.0.0.1",
        port=port,
        decode_responses=True,
        socket_timeout=5,
        socket_connect_timeout=5,
    )


class LocalRedisCluster:
    """A Redis Cluster of `primaries` primaries with `replicas` replicas each, every node a
    `LocalRedisServer` on a free 127.0.0.1 port, slots spread by `redis-cli --cluster
    create` (use as a context manager). A replica takes over a primary that stays silent
    for `node_timeout_ms`."""

    def __init__(
        self,
        primaries: int = 3,
        replicas: int = 0,
        node_timeout_ms: int = 2000,
        tls: ServerTLS | None = None,
    ) -> None:
        if primaries < 3:
            raise ValueError("a Redis Cluster needs at least 3 primaries")
        self.replicas = replicas
        self.tls = tls
        # with TLS the nodes speak it to clients, to each other and to their replicas; on
        # the cluster bus they always verify each other, with the client certificate
        tls_args: tuple[str, ...] = ()
        if tls is not None:
            if tls.client_cert_file is None or tls.client_key_file is None:
                raise ValueError("a TLS cluster needs client_cert_file and client_key_file")
            tls_args = (
                "--tls-cluster", "yes",
                "--tls-replication", "yes",
                "--tls-client-cert-file", tls.client_cert_file,
                "--tls-client-key-file", tls.client_key_file,
            )  # fmt: skip
        cluster_args = (
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(node_timeout_ms),
        )  # fmt: skip
        own_bus = own_bus_port()
        self.nodes = [
            # the bus port on a free port too: chosen (Redis 7.0+, Valkey), or port + 10000
            # (Redis 6.2, which has no cluster-port), both free then
            LocalRedisServer(
                tls=tls, extra_args=(*tls_args, *cluster_args, "--cluster-port", str(free_port()))
            )
            if own_bus
            else LocalRedisServer(
                port=free_port(bus_offset=10000), tls=tls, extra_args=(*tls_args, *cluster_args)
            )
            for _ in range(primaries * (1 + replicas))
        ]

    @property
    def url(self) -> str:
        """`redis+cluster://127.0.0.1:p1,127.0.0.1:p2,...` (`rediss+cluster://...?ssl_...`
        with TLS)."""
        hosts = ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)
        if self.tls is None:
            return f"redis+cluster://{hosts}"
        return f"rediss+cluster://{hosts}?{tls_url_query(self.tls)}"

    def _client(self, port: int) -> redis.Redis:
        return _client(port, self.tls)

    def start(self) -> LocalRedisCluster:
        """Start the nodes, join them into one cluster and wait until every node says ok."""
        try:
            for node in self.nodes:
                node.start()
            cli = redis_cli_binary()
            addresses = [f"127.0.0.1:{n.port}" for n in self.nodes]
            tls_cli: list[str] = []
            if self.tls is not None:
                tls_cli = ["--tls", "--cacert", self.tls.ca_file]
                if self.tls.client_cert_file and self.tls.client_key_file:
                    tls_cli += ["--cert", self.tls.client_cert_file]
                    tls_cli += ["--key", self.tls.client_key_file]
            created = subprocess.run(
                [
                    cli,
                    *tls_cli,
                    "--cluster",
                    "create",
                    *addresses,
                    "--cluster-replicas",
                    str(self.replicas),
                    "--cluster-yes",
                ],
                check=False,
                capture_output=True,
                timeout=60,
            )
            if created.returncode != 0:
                output = (created.stdout + created.stderr).decode(errors="replace")[-2000:]
                raise RuntimeError(f"{cli} --cluster create failed:\n{output}")
            _wait_for("cluster_state:ok on every node", self._all_ok, START_TIMEOUT * 3)
        except BaseException:
            self.stop()
            raise
        return self

    def _running(self) -> list[LocalRedisServer]:
        return [node for node in self.nodes if node.running]

    def _all_ok(self) -> bool:
        """Every running node says ok and knows every node; every replica is in sync."""
        for node in self._running():
            with self._client(node.port) as client:
                info = client.execute_command("CLUSTER", "INFO")
                known = str(client.execute_command("CLUSTER", "NODES")).splitlines()
                if _field(info, "cluster_state") != "ok" or len(known) != len(self.nodes):
                    return False
                replication = client.info("replication")
                if (
                    replication["role"] != "master"
                    and replication.get("master_link_status") != "up"
                ):
                    return False
        return True

    def _slots(self) -> list[Any]:
        """CLUSTER SLOTS as the first running node answers it."""
        for node in self._running():
            try:
                with self._client(node.port) as client:
                    return list(client.execute_command("CLUSTER", "SLOTS"))
            except redis.RedisError:
                continue
        raise RuntimeError("no cluster node answers")

    def primary_ports(self) -> list[int]:
        """Ports of the primaries serving slots now."""
        return sorted({int(primary[1]) for _, _, primary, *_ in self._slots()})

    def node_id(self, port: int) -> str:
        with self._client(port) as client:
            return str(client.execute_command("CLUSTER", "MYID"))

    def port_of_slot(self, slot: int) -> int:
        """The port of the primary serving `slot` now."""
        for start, end, primary, *_ in self._slots():
            if int(start) <= slot <= int(end):
                return int(primary[1])
        raise RuntimeError(f"slot {slot} is not served")

    def kill_primary_of(self, slot: int) -> int:
        """SIGKILL the primary serving `slot`; returns its port."""
        port = self.port_of_slot(slot)
        next(node for node in self.nodes if node.port == port).send_signal(signal.SIGKILL)
        return port

    def wait_for_failover(self, slot: int, old_port: int, timeout: float = 30.0) -> int:
        """Wait until a replica serves `slot` in place of `old_port` and the cluster is ok;
        returns the new primary's port."""

        def promoted() -> bool:
            return self.port_of_slot(slot) != old_port and self._all_ok()

        _wait_for(f"a replica to take over slot {slot}", promoted, timeout)
        return self.port_of_slot(slot)

    def begin_migration(self, slot: int, target_port: int) -> int:
        """Mark `slot` as migrating to the node on `target_port`; returns the source port."""
        source_port = self.port_of_slot(slot)
        if source_port == target_port:
            raise ValueError(f"slot {slot} is served by {target_port} already")
        with self._client(target_port) as target, self._client(source_port) as source:
            target.execute_command(
                "CLUSTER", "SETSLOT", slot, "IMPORTING", self.node_id(source_port)
            )
            source.execute_command(
                "CLUSTER", "SETSLOT", slot, "MIGRATING", self.node_id(target_port)
            )
        return source_port

    def migrate_keys(self, slot: int, source_port: int, target_port: int, limit: int) -> int:
        """MIGRATE at most `limit` keys of `slot` from source to target; how many moved."""
        with self._client(source_port) as source:
            keys = source.execute_command("CLUSTER", "GETKEYSINSLOT", slot, limit)
            if keys:
                source.execute_command(
                    "MIGRATE", "127.0.0.1", target_port, "", 0, 5000, "KEYS", *keys
                )
        return len(keys)

    def finish_migration(self, slot: int, source_port: int, target_port: int) -> None:
        """Move the remaining keys and hand `slot` to the target on every node."""
        while self.migrate_keys(slot, source_port, target_port, 100):
            pass
        target_id = self.node_id(target_port)
        ordered = [target_port, source_port] + [
            n.port for n in self.nodes if n.port not in (target_port, source_port)
        ]
        for port in ordered:
            with self._client(port) as client:
                client.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
        _wait_for(
            f"slot {slot} served by 127.0.0.1:{target_port} everywhere",
            lambda: all(self._serves(n.port, slot, target_port) for n in self.nodes),
            START_TIMEOUT,
        )

    def reshard(self, slot: int, target_port: int) -> None:
        """Move one slot, with its keys, to the node on `target_port` (as a reshard does)."""
        source_port = self.begin_migration(slot, target_port)
        self.finish_migration(slot, source_port, target_port)

    def _serves(self, port: int, slot: int, target_port: int) -> bool:
        with self._client(port) as client:
            for start, end, primary, *_ in client.execute_command("CLUSTER", "SLOTS"):
                if int(start) <= slot <= int(end):
                    return int(primary[1]) == target_port
        return False

    def flush(self) -> None:
        """Empty every primary (the replicas follow)."""
        for port in self.primary_ports():
            with self._client(port) as client:
                client.flushall()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> LocalRedisCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for node in self.nodes:
            node.__exit__(exc_type, exc, tb)


_SENTINEL_CONFIG = """\
bind 127.0.0.1
dir {dir}
logfile {dir}/sentinel.log
sentinel resolve-hostnames no
sentinel monitor {service} 127.0.0.1 {primary_port} {quorum}
sentinel down-after-milliseconds {service} {down_after_ms}
sentinel failover-timeout {service} {failover_timeout_ms}
sentinel parallel-syncs {service} 1
port {port}
"""


class LocalRedisSentinel:
    """A primary, `replicas` replicas and `sentinels` sentinels (`redis-server --sentinel`),
    all on free 127.0.0.1 ports, without persistence (use as a context manager).

    The sentinels declare the primary down after `down_after_ms` of silence and fail over
    to a replica; `kill_master()` provokes that.
    """

    def __init__(
        self,
        service: str = "guard-primary",
        replicas: int = 1,
        sentinels: int = 3,
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 3000,
        tls: ServerTLS | None = None,
    ) -> None:
        self.tls = tls
        # with TLS, servers and sentinels speak only TLS, to clients and to each other
        tls_args: tuple[str, ...] = ()
        if tls is not None:
            if tls.client_cert_file is None or tls.client_key_file is None:
                raise ValueError("a TLS Sentinel topology needs client_cert_file and key")
            tls_args = (
                "--tls-replication", "yes",
                "--tls-client-cert-file", tls.client_cert_file,
                "--tls-client-key-file", tls.client_key_file,
            )  # fmt: skip
        self._tls_args = tls_args
        self.service = service
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.primary = LocalRedisServer(tls=tls, extra_args=tls_args)
        self.servers = [self.primary] + [
            LocalRedisServer(
                tls=tls,
                extra_args=(*tls_args, "--replicaof", "127.0.0.1", str(self.primary.port)),
            )
            for _ in range(replicas)
        ]
        self.sentinel_ports = [free_port() for _ in range(sentinels)]
        self._sentinels: list[subprocess.Popen[bytes]] = []
        self._workdir = Path(tempfile.mkdtemp(prefix="guard-core-sentinel-"))

    @property
    def url(self) -> str:
        """`redis+sentinel://127.0.0.1:s1,.../service` (`rediss+sentinel://...?ssl_...` with
        TLS)."""
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        if self.tls is None:
            return f"redis+sentinel://{hosts}/{self.service}"
        return f"rediss+sentinel://{hosts}/{self.service}?{tls_url_query(self.tls)}"

    def _client(self, port: int) -> redis.Redis:
        return _client(port, self.tls)

    def _sentinel_tls_config(self) -> str:
        if self.tls is None:
            return ""
        lines = [
            "port 0",
            "tls-port {port}",
            f"tls-cert-file {self.tls.cert_file}",
            f"tls-key-file {self.tls.key_file}",
            f"tls-ca-cert-file {self.tls.ca_file}",
            f"tls-client-cert-file {self.tls.client_cert_file}",
            f"tls-client-key-file {self.tls.client_key_file}",
            "tls-auth-clients yes",
            "tls-replication yes",
        ]
        return "\n".join(lines) + "\n"

    def start(self) -> LocalRedisSentinel:
        """Start the servers, wait for replication, then the sentinels, and wait until every
        sentinel knows the replicas and the other sentinels."""
        try:
            for server in self.servers:
                server.start()
            _wait_for("replicas in sync", self._replicas_linked, START_TIMEOUT)
            quorum = len(self.sentinel_ports) // 2 + 1
            for index, port in enumerate(self.sentinel_ports):
                directory = self._workdir / f"sentinel-{index}"
                directory.mkdir()
                config = directory / "sentinel.conf"
                config.write_text(
                    (_SENTINEL_CONFIG + self._sentinel_tls_config()).format(
                        port=port,
                        dir=directory,
                        service=self.service,
                        primary_port=self.primary.port,
                        quorum=quorum,
                        down_after_ms=self.down_after_ms,
                        failover_timeout_ms=self.failover_timeout_ms,
                    )
                )
                self._sentinels.append(
                    subprocess.Popen(
                        [redis_server_binary(), str(config), "--sentinel"],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                )
            _wait_for("sentinels to see each other", self._sentinels_ready, START_TIMEOUT * 3)
        except BaseException:
            self.stop()
            raise
        return self

    def _replicas_linked(self) -> bool:
        for server in self.servers:
            if not server.running:
                continue
            with self._client(server.port) as client:
                info = client.info("replication")
                if info["role"] != "master" and info.get("master_link_status") != "up":
                    return False
        return True

    def _sentinels_ready(self) -> bool:
        replicas = len(self.servers) - 1
        for port in self.sentinel_ports:
            with self._client(port) as client:
                master = client.execute_command("SENTINEL", "MASTER", self.service)
                fields = (
                    master
                    if isinstance(master, dict)
                    else dict(zip(master[::2], master[1::2], strict=True))
                )
                if int(fields["num-slaves"]) < replicas:
                    return False
                if int(fields["num-other-sentinels"]) < len(self.sentinel_ports) - 1:
                    return False
        return True

    def master_port(self) -> int:
        """The port of the master, as the first sentinel that answers sees it."""
        for port in self.sentinel_ports:
            try:
                with self._client(port) as client:
                    address = client.execute_command(
                        "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service
                    )
            except redis.RedisError:
                continue
            if address:
                return int(address[1])
        raise RuntimeError("no sentinel names a master")

    def server_on(self, port: int) -> LocalRedisServer:
        for server in self.servers:
            if server.port == port:
                return server
        raise RuntimeError(f"no server of this topology on port {port}")

    def kill_master(self) -> int:
        """SIGKILL the master's process; returns its port."""
        port = self.master_port()
        self.server_on(port).send_signal(signal.SIGKILL)
        return port

    def wait_for_new_master(self, old_port: int, timeout: float = 30.0) -> int:
        """Wait until every sentinel names a master other than `old_port`; returns its port."""

        def moved() -> bool:
            for port in self.sentinel_ports:
                with self._client(port) as client:
                    address = client.execute_command(
                        "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service
                    )
                    if int(address[1]) == old_port:
                        return False
            return True

        _wait_for("a failover", moved, timeout)
        return self.master_port()

    def failover(self, timeout: float = 30.0) -> int:
        """A graceful failover (SENTINEL FAILOVER): the master, still running, is demoted to
        a replica of the promoted one. Returns the new master's port."""
        old_port = self.master_port()

        def accepted() -> bool:
            with self._client(self.sentinel_ports[0]) as client:
                try:
                    client.execute_command("SENTINEL", "FAILOVER", self.service)
                except redis.ResponseError:  # e.g. INPROG, or too soon after the last one
                    return False
            return True

        _wait_for("a sentinel to accept a failover", accepted, timeout)
        new_port = self.wait_for_new_master(old_port, timeout)
        _wait_for(
            f"127.0.0.1:{old_port} to be a replica",
            lambda: self._role(old_port) == "slave",
            timeout,
        )
        return new_port

    def _role(self, port: int) -> str:
        with self._client(port) as client:
            return str(client.info("replication")["role"])

    def heal(self, timeout: float = 60.0) -> None:
        """Start again any server that was stopped or killed (it comes back empty and the
        sentinels make it a replica), and wait until every replica is in sync."""
        for server in self.servers:
            if not server.running:
                server.start()
        master = self.master_port()

        def settled() -> bool:
            for server in self.servers:
                if server.port != master and self._role(server.port) != "slave":
                    return False
            return self._replicas_linked()

        _wait_for("the replicas to follow the master", settled, timeout)

    def flush(self) -> None:
        """Empty the master (the replicas follow)."""
        with self._client(self.master_port()) as client:
            client.flushall()

    def stop(self) -> None:
        for process in self._sentinels:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)
        self._sentinels = []
        for server in self.servers:
            server.stop()

    def __enter__(self) -> LocalRedisSentinel:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        for server in self.servers:
            server.__exit__(exc_type, exc, tb)
        shutil.rmtree(self._workdir, ignore_errors=True)
