"""App instances as real separate processes, each holding one `Guard`, for outage tests.

`python -m tests.support.instances GUARD_MODULE CONFIG_JSON` runs one instance: it builds a
`Guard` of that face (`guard_core.guard` or `guard_core_sync.guard`) from the JSON fields,
starts it (background flusher included), then answers one JSON line per JSON line read:
- `{"op": "hit", "key": k, "limit": n, "window": s, "times": t}` -> `{"admitted": a}`
  (`t` rate-limit checks one after another, `a` of them admitted);
- `{"op": "track", "key": k, "threshold": n, "window": s, "times": t}` -> `{"exceeded": e}`;
- `{"op": "members"}` -> `{"count": live instances last seen, "rank": r}`;
- `{"op": "quit"}`: closes the guard and exits.
`Instances` starts and drives several of them from a test (either face: the test is sync).
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent.parent
#: Bound on one reply (start-up imports included, on a loaded machine), in seconds.
REPLY_TIMEOUT = 60.0


class Instance:
    """One instance process, spoken to by JSON lines."""

    def __init__(self, guard_module: str, config: dict[str, Any]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.instances", guard_module, json.dumps(config)],
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()

    def receive(self) -> dict[str, Any]:
        stdout = self.process.stdout
        assert stdout is not None
        ready, _, _ = select.select([stdout], [], [], REPLY_TIMEOUT)
        line = stdout.readline() if ready else ""
        if not line:
            raise RuntimeError(f"instance {self.process.pid} gave no reply")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def ask(self, message: dict[str, Any]) -> dict[str, Any]:
        self.send(message)
        return self.receive()

    def quit(self) -> None:
        if self.process.poll() is None:
            try:
                self.send({"op": "quit"})
                self.process.wait(timeout=15)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait(timeout=5)


class Instances:
    """Several instances of one face on one Redis."""

    def __init__(self, guard_module: str, config: dict[str, Any]) -> None:
        self.guard_module = guard_module
        self.config = config
        self.running: list[Instance] = []

    def add(self, count: int = 1) -> list[Instance]:
        started = [Instance(self.guard_module, self.config) for _ in range(count)]
        for instance in started:
            assert instance.receive() == {"ready": True}
        self.running.extend(started)
        return started

    def remove(self, instance: Instance, *, crash: bool = False) -> None:
        """Stop `instance`: its guard closes (it leaves the live instances at once), or with
        `crash` it is killed (it stops sending heartbeats, nothing more)."""
        self.running.remove(instance)
        if crash:
            instance.process.kill()
            instance.process.wait(timeout=15)
        else:
            instance.quit()

    def ask_all(
        self, message: dict[str, Any], among: Sequence[Instance] | None = None
    ) -> list[dict[str, Any]]:
        """Send `message` to every instance at once, then collect the replies in order."""
        chosen = self.running if among is None else among
        for instance in chosen:
            instance.send(message)
        return [instance.receive() for instance in chosen]

    def hit_all(self, key: str, limit: int, window: float, times: int) -> list[int]:
        message = {"op": "hit", "key": key, "limit": limit, "window": window, "times": times}
        return [reply["admitted"] for reply in self.ask_all(message)]

    def wait_for_members(self, count: int, timeout: float = 30.0) -> None:
        """Until every running instance has seen `count` live instances (fails after
        `timeout` seconds)."""
        deadline = time.monotonic() + timeout
        while True:
            seen = [reply["count"] for reply in self.ask_all({"op": "members"})]
            if seen == [count] * len(self.running):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"instances saw {seen} live instances, not {count}")
            time.sleep(0.05)

    def close(self) -> None:
        for instance in self.running:
            instance.quit()
        self.running.clear()


@contextmanager
def instances(guard_module: str, config: dict[str, Any], count: int) -> Iterator[Instances]:
    """`count` running instances; all stopped afterwards."""
    group = Instances(guard_module, config)
    try:
        group.add(count)
        yield group
    finally:
        group.close()


# -- the instance process -------------------------------------------------------------------


def _reply(out: IO[str], message: dict[str, Any]) -> None:
    out.write(json.dumps(message) + "\n")
    out.flush()


async def _serve_async(guard: Any, read: Callable[[], Any]) -> None:
    async with guard:
        _reply(sys.stdout, {"ready": True})
        while True:
            line = await read()
            message = json.loads(line) if line else {"op": "quit"}
            if message["op"] == "quit":
                return
            _reply(sys.stdout, await _run_async(guard, message))


async def _run_async(guard: Any, message: dict[str, Any]) -> dict[str, Any]:
    op = message["op"]
    if op == "hit":
        admitted = 0
        for _ in range(message["times"]):
            verdict = await guard.rate_limiter.check(
                message["key"], limit=message["limit"], window=message["window"]
            )
            admitted += verdict.allowed
        return {"admitted": admitted}
    if op == "track":
        exceeded = 0
        for _ in range(message["times"]):
            exceeded += await guard.behavior.track_usage(
                "/outage", message["key"], threshold=message["threshold"], window=message["window"]
            )
        return {"exceeded": exceeded}
    return _members(guard)


def _serve_sync(guard: Any) -> None:
    with guard:
        _reply(sys.stdout, {"ready": True})
        for line in sys.stdin:
            message = json.loads(line)
            if message["op"] == "quit":
                return
            _reply(sys.stdout, _run_sync(guard, message))


def _run_sync(guard: Any, message: dict[str, Any]) -> dict[str, Any]:
    op = message["op"]
    if op == "hit":
        admitted = 0
        for _ in range(message["times"]):
            verdict = guard.rate_limiter.check(
                message["key"], limit=message["limit"], window=message["window"]
            )
            admitted += verdict.allowed
        return {"admitted": admitted}
    if op == "track":
        exceeded = 0
        for _ in range(message["times"]):
            exceeded += guard.behavior.track_usage(
                "/outage", message["key"], threshold=message["threshold"], window=message["window"]
            )
        return {"exceeded": exceeded}
    return _members(guard)


def _members(guard: Any) -> dict[str, Any]:
    members = guard.store.outage.membership.members
    return {"count": members.count, "rank": members.rank}


def main(argv: Sequence[str]) -> None:
    guard_module, config_json = argv
    module = importlib.import_module(guard_module)
    models = importlib.import_module("guard_core.models")
    guard = module.Guard(models.SecurityConfig(**json.loads(config_json)))
    if inspect.iscoroutinefunction(guard.start):
        import anyio
        import anyio.to_thread

        anyio.run(_serve_async, guard, lambda: anyio.to_thread.run_sync(sys.stdin.readline))
    else:
        _serve_sync(guard)


if __name__ == "__main__":
    main(sys.argv[1:])
    os._exit(0)  # no lingering threads at exit
