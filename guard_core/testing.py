"""A throwaway `redis-server` on a free 127.0.0.1 port, for tests and demos.

It never listens beyond loopback, keeps no data on disk, and is stopped on exit. With
`tls=ServerTLS(...)` it speaks TLS only (no plain-text port).
"""

from __future__ import annotations

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

_START_TIMEOUT = 10.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listened on a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def redis_server_binary() -> str:
    """Path of `redis-server`, or a RuntimeError saying how to install it."""
    path = shutil.which("redis-server")
    if path is None:
        raise RuntimeError(
            "redis-server is not installed: `make test` installs it "
            "(apt-get install -y redis-server)"
        )
    return path


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


def _tls_url_query(tls: ServerTLS) -> str:
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
        return f"rediss://127.0.0.1:{self.port}/0?{_tls_url_query(self.tls)}"

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
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            if _ping(self.port, timeout=0.5, context=context):
                return self
            time.sleep(0.02)
        self.stop()
        tail = (self._workdir / "redis.log").read_text(errors="replace")[-2000:]
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
