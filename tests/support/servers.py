"""Real application servers (uvicorn, gunicorn) on free 127.0.0.1 ports, for tests."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import httpx

from guard_core.testing import free_port

ROOT = Path(__file__).resolve().parent.parent.parent
#: Bound on a server's start-up (a loaded machine imports slowly), in seconds.
START_TIMEOUT = 30.0


def uvicorn_args(app: str, port: int) -> list[str]:
    return [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port),
            "--log-level", "warning"]  # fmt: skip


def gunicorn_args(app: str, port: int) -> list[str]:
    return [sys.executable, "-m", "gunicorn", "--preload", "-w", "2", "--threads", "4",
            "-k", "gthread", "-b", f"127.0.0.1:{port}", "--graceful-timeout", "2",
            "--log-level", "warning", app]  # fmt: skip


@contextmanager
def running_server(
    make_args: Callable[[str, int], list[str]], app: str, env: dict[str, str]
) -> Iterator[str]:
    """Start a server for `app` on a free port; yield its base URL; stop it afterwards."""
    port = free_port()
    args = make_args(app, port)
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            args, cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            yield _wait_until_up(process, log, f"http://127.0.0.1:{port}", f"{args[2]} {app}")
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


def _wait_until_up(process: subprocess.Popen[bytes], log: IO[bytes], url: str, what: str) -> str:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if process.poll() is not None or time.monotonic() > deadline:
            log.seek(0)
            output = log.read().decode(errors="replace")[-3000:]
            raise RuntimeError(f"{what} did not start:\n{output}")
        try:
            httpx.get(url + "/", timeout=1.0)
            return url
        except httpx.TransportError:
            time.sleep(0.05)
