"""A throwaway `redis-server` on a free 127.0.0.1 port, for tests, demos and benchmarks
(`LocalRedisServer`; the test suite's Cluster and Sentinel topologies, built on it, live in
`tests/support/topologies.py`).

It never listens beyond loopback, keeps no data on disk, and is stopped on exit. With
`tls=ServerTLS(...)` it speaks TLS only (no plain-text port).

The binary is `redis-server` on PATH, or the one named by the environment variable
`GUARD_TEST_SERVER_BIN` (a `redis-server` or `valkey-server`; its `redis-cli` or
`valkey-cli` beside it creates Clusters, and sentinels run as `--sentinel` of it).
`server_version()` tells which server and version that is (Redis 6.2 and later, Valkey).
"""

from __future__ import annotations

import functools
import os
import random
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from urllib.parse import urlencode

START_TIMEOUT = 10.0


#: Ports handed out by `free_port`: below Linux's ephemeral range (32768-60999), so that no
#: outgoing connection of a client takes one between the choice and the server's start.
_PORT_RANGE = (20000, 32767)
_ports_given: set[int] = set()


def free_port(bus_offset: int = 0) -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now, outside the ephemeral range and
    not handed out before by this process (the kernel's own choice if none is found).

    With `bus_offset`, `port + bus_offset` is free and in that range too, and handed out
    with it (a Redis 6.2 Cluster node's bus port is its port + 10000); no kernel choice
    then: RuntimeError when no such pair is found.
    """
    low, high = _PORT_RANGE
    for _ in range(200):
        port = random.randint(low, high - bus_offset)
        pair = {port, port + bus_offset}
        if pair & _ports_given or not all(_bindable(p) for p in pair):
            continue
        _ports_given.update(pair)
        return port
    if bus_offset:
        raise RuntimeError(f"no free pair of ports {bus_offset} apart on 127.0.0.1")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        chosen: int = sock.getsockname()[1]
        return chosen


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


#: The environment variable naming the server binary the harness runs.
SERVER_BIN_ENV = "GUARD_TEST_SERVER_BIN"


def redis_server_binary() -> str:
    """Path of the server binary: `$GUARD_TEST_SERVER_BIN` when set, else `redis-server` on
    PATH; a RuntimeError saying how to install it."""
    chosen = os.environ.get(SERVER_BIN_ENV)
    if chosen:
        if not (os.path.isfile(chosen) and os.access(chosen, os.X_OK)):
            raise RuntimeError(
                f"{SERVER_BIN_ENV}={chosen!r} is not an executable file "
                "(`make servers` installs Valkey 8 and Redis 6.2 under .servers/)"
            )
        return os.path.abspath(chosen)
    path = shutil.which("redis-server")
    if path is None:
        raise RuntimeError(
            "redis-server is not installed: `make test` installs it "
            "(apt-get install -y redis-server)"
        )
    return path


def server_available() -> bool:
    """Whether `redis_server_binary()` finds a server binary."""
    try:
        redis_server_binary()
    except RuntimeError:
        return False
    return True


def redis_cli_binary() -> str:
    """Path of the command-line client of `redis_server_binary()`: the `-cli` beside a
    `$GUARD_TEST_SERVER_BIN`, else `redis-cli` on PATH."""
    chosen = os.environ.get(SERVER_BIN_ENV)
    if chosen:
        server = redis_server_binary()
        name = os.path.basename(server)
        cli = os.path.join(os.path.dirname(server), name.replace("-server", "-cli"))
        if name == os.path.basename(cli) or not os.access(cli, os.X_OK):
            raise RuntimeError(f"no {name.replace('-server', '-cli')} beside {server}")
        return cli
    path = shutil.which("redis-cli")
    if path is None:
        raise RuntimeError("redis-cli is not installed (it comes with redis-server)")
    return path


@dataclass(frozen=True, order=True)
class ServerVersion:
    """Which server a binary is: `name` "redis" or "valkey", and its version."""

    name: str
    version: tuple[int, int, int]

    def at_least(self, major: int, minor: int = 0) -> bool:
        return self.version[:2] >= (major, minor)

    def __str__(self) -> str:
        return f"{self.name.capitalize()} {'.'.join(map(str, self.version))}"


_VERSION = re.compile(r"^(Redis|Valkey|KeyDB) server v=(\d+)\.(\d+)\.(\d+)", re.IGNORECASE)


@functools.cache
def _version_of(binary: str) -> ServerVersion:
    output = subprocess.run(
        [binary, "--version"], capture_output=True, text=True, timeout=30, check=False
    ).stdout
    found = _VERSION.match(output)
    if found is None:
        raise RuntimeError(f"{binary} --version does not name a server version: {output!r}")
    name, *numbers = found.groups()
    major, minor, patch = (int(n) for n in numbers)
    return ServerVersion(name.lower(), (major, minor, patch))


def server_version() -> ServerVersion:
    """The server and version of `redis_server_binary()` (read once per binary)."""
    return _version_of(redis_server_binary())


def own_bus_port() -> bool:
    """Whether a Cluster node takes its bus port as an option (`cluster-port`: Redis 7.0,
    every Valkey); before, the bus is always the node's port + 10000."""
    version = server_version()
    return version.name != "redis" or version.at_least(7)


@dataclass(frozen=True)
class ServerTLS:
    """PEM files of a TLS-only `LocalRedisServer`.

    With `client_cert_file` and `client_key_file` the server demands a client certificate
    signed by `ca_file` (mutual TLS); `url` and the readiness ping present that one.
    """

    ca_file: str
    cert_file: str
    key_file: str
    client_cert_file: str | None = None
    client_key_file: str | None = None


def _tls_args(tls: ServerTLS, port: int) -> list[str]:
    return [
        "--port", "0",  # no plain-text listener
        "--tls-port", str(port),
        "--tls-cert-file", tls.cert_file,
        "--tls-key-file", tls.key_file,
        "--tls-ca-cert-file", tls.ca_file,
        "--tls-auth-clients", "no" if tls.client_cert_file is None else "yes",
    ]  # fmt: skip


def _tls_ping_context(tls: ServerTLS) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=tls.ca_file)
    # readiness needs a trusted chain only: tests may serve a cert naming another host
    context.check_hostname = False
    if tls.client_cert_file is not None:
        context.load_cert_chain(tls.client_cert_file, tls.client_key_file)
    return context


def tls_url_query(tls: ServerTLS) -> str:
    params = {"ssl_ca_certs": tls.ca_file}
    if tls.client_cert_file is not None and tls.client_key_file is not None:
        params |= {"ssl_certfile": tls.client_cert_file, "ssl_keyfile": tls.client_key_file}
    return urlencode(params)


def _ping(port: int, timeout: float, context: ssl.SSLContext | None = None) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
            sock = raw if context is None else context.wrap_socket(raw, server_hostname="127.0.0.1")
            with sock:
                sock.sendall(b"PING\r\n")
                reply = sock.recv(64)
    except OSError:  # ssl.SSLError included
        return False
    # a server whose default user is off answers -NOAUTH: it is up all the same
    return reply.startswith((b"+PONG", b"-NOAUTH"))


class LocalRedisServer:
    """A `redis-server` child process bound to 127.0.0.1 (use as a context manager).

    `extra_args` are appended to the command line (any redis.conf directive works, e.g.
    `("--user", "app", "on", ">password", "~app:*", "+get")`); `tls` makes it TLS-only.
    """

    def __init__(
        self,
        port: int | None = None,
        extra_args: tuple[str, ...] = (),
        tls: ServerTLS | None = None,
    ) -> None:
        self.port = port if port is not None else free_port()
        self.extra_args = extra_args
        self.tls = tls
        self._process: subprocess.Popen[bytes] | None = None
        self._workdir = Path(tempfile.mkdtemp(prefix="guard-core-redis-"))

    @property
    def url(self) -> str:
        """`redis://...`, or with TLS `rediss://...?ssl_ca_certs=...` (and the client cert)."""
        if self.tls is None:
            return f"redis://127.0.0.1:{self.port}/0"
        return f"rediss://127.0.0.1:{self.port}/0?{tls_url_query(self.tls)}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> LocalRedisServer:
        """Start the server and wait until it answers PING."""
        if self.running:
            return self
        listen = ["--port", str(self.port)] if self.tls is None else _tls_args(self.tls, self.port)
        context = None if self.tls is None else _tls_ping_context(self.tls)
        args = [
            redis_server_binary(),
            *listen,
            "--bind", "127.0.0.1",
            "--protected-mode", "yes",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self._workdir),
            "--loglevel", "warning",
            *self.extra_args,
        ]  # fmt: skip
        log = (self._workdir / "redis.log").open("ab")
        self._process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            if _ping(self.port, timeout=0.5, context=context):
                return self
            time.sleep(0.02)
        self.stop()
        tail = (self._workdir / "redis.log").read_text(errors="replace")[-2000:]
        if self.tls is not None and ("TLS support" in tail or "'tls-port" in tail):
            tail += f"\n({server_version()} at {args[0]} was built without TLS)"
        raise RuntimeError(f"redis-server did not start on 127.0.0.1:{self.port}:\n{tail}")

    @property
    def pid(self) -> int:
        """The server process's id (while it runs)."""
        if self._process is None:
            raise RuntimeError("redis-server is not running")
        return self._process.pid

    def send_signal(self, sig: int) -> None:
        """Signal the server process (fault injection: SIGKILL, SIGSTOP, SIGCONT)."""
        if self._process is None:
            raise RuntimeError("redis-server is not running")
        self._process.send_signal(sig)

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and wait for it to exit."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGCONT)  # a paused server cannot act on SIGTERM
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def __enter__(self) -> LocalRedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        shutil.rmtree(self._workdir, ignore_errors=True)
