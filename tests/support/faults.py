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


def start_outage(server: LocalRedisServer, fault: str) -> None:
    """`fault` "killed" (SIGKILL: data gone) or "hung" (SIGSTOP: nothing answers)."""
    if fault == "killed":
        kill(server)
    else:
        pause(server)


def end_outage(server: LocalRedisServer, fault: str) -> None:
    """Redis answers again: restarted empty after a kill, with its data after a hang."""
    if fault == "killed":
        server.start()
    else:
        resume(server)
