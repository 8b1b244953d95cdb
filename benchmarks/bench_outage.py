"""Latency while Redis refuses connections and while it hangs, ours against raw redis-py and
the peer (guard-core 4.4.0 from PyPI, in its own virtualenv), measured in one run.

Usage: python benchmarks/bench_outage.py [--peer-python .venv-peer/bin/python] [--ops N]

For each implementation and fault a fresh redis-server is started on loopback; the probe
(outage_probe.py) warms up, injects the fault (SIGKILL: refused; SIGSTOP: hung), and reports
the first call's cost, the time until calls fail fast, p50/p99 per call after that, and
the time from Redis answering again to the first call it serves.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from guard_core.testing import LocalRedisServer

HERE = Path(__file__).resolve().parent


def run_probe(python: str, impl: str, fault: str, ops: int, budget: float) -> dict[str, object]:
    with LocalRedisServer() as server:
        command = [
            os.path.abspath(python), str(HERE / "outage_probe.py"),
            "--impl", impl, "--fault", fault, "--url", server.url,
            "--pid", str(server.pid), "--ops", str(ops), "--budget", str(budget),
        ]  # fmt: skip
        probe = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd="/"
        )
        assert probe.stdin is not None and probe.stdout is not None
        for line in probe.stdout:
            if line.startswith("RESTART"):
                server.stop()
                server.start()
                probe.stdin.write("GO\n")
                probe.stdin.flush()
            elif line.startswith("RESULT "):
                probe.wait()
                result: dict[str, object] = json.loads(line[len("RESULT ") :])
                return result
        probe.wait()
        raise RuntimeError(f"{impl}/{fault}: the probe exited with {probe.returncode}")


def show(value: object, unit: str, scale: float = 1.0) -> str:
    if value is None:
        return "never"
    return f"{float(value) * scale:.3g} {unit}"  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--peer-python", default=str(HERE.parent / ".venv-peer/bin/python"))
    parser.add_argument("--ops", type=int, default=2000)
    parser.add_argument("--budget", type=float, default=20.0)
    args = parser.parse_args()
    impls = [("ours-async", sys.executable), ("ours-sync", sys.executable)]
    impls.append(("redis-py", sys.executable))
    if Path(args.peer_python).exists():
        impls.append(("peer", args.peer_python))
    else:
        print(f"(peer left out: {args.peer_python} does not exist; `make bench` creates it)")
    print("| implementation | fault | first call | fails fast after | p50 / call | p99 / call "
          "| calls timed | served again after |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for fault in ("refused", "hung"):
        for impl, python in impls:
            r = run_probe(python, impl, fault, args.ops, args.budget)
            print(
                f"| {impl} | {fault} | {show(r['first_call_s'], 's')} | {show(r['detect_s'], 's')} "
                f"| {show(r['p50_ms'], 'ms')} | {show(r['p99_ms'], 'ms')} | {r['ops']} "
                f"| {show(r['recover_s'], 's')} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
