"""Faults injected into a LocalRedisServer by the fault-injection suite."""

from __future__ import annotations

import signal

from guard_core.testing import LocalRedisServer


def kill(server: LocalRedisServer) -> None:
    """SIGKILL: the process dies at once, without closing connections cleanly."""
    server.send_signal(signal.SIGKILL)
    server.stop()  # reaps the process


def pause(server: LocalRedisServer) -> None:
    """SIGSTOP: the process hangs; connections stay open and nothing answers."""
    server.send_signal(signal.SIGSTOP)


def resume(server: LocalRedisServer) -> None:
    server.send_signal(signal.SIGCONT)
