"""`detect()` throughput on clean content, on attacks and on 1 MiB, ours (RE2, both faces)
against the peer (the published guard-core 4.4.0, in its own virtualenv), measured in one run.

Usage: python benchmarks/bench_patterns.py [--peer-python .venv-peer/bin/python] [--budget S]

Each implementation runs patterns_probe.py in a process of its own (the peer's import name is
ours too), with Redis disabled: this measures matching, not the network; every call is made from one
running event loop (the sync face's through a coroutine that calls it). Ours
scans at least 1 MiB of each content; the peer runs with its default configuration.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run_probe(python: str, impl: str, budget: float) -> dict[str, dict[str, object]]:
    command = [os.path.abspath(python), str(HERE / "patterns_probe.py"), "--impl", impl]
    command += ["--budget", str(budget)]
    # our faces import from this checkout; the peer from its own site-packages
    cwd = HERE.parent if impl != "peer" else Path("/")
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)} if impl != "peer" else None
    done = subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=env, check=False)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            result: dict[str, dict[str, object]] = json.loads(line[len("RESULT ") :])
            return result
    raise RuntimeError(f"{impl}: the probe exited with {done.returncode}: {done.stderr[-2000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--peer-python", default=str(HERE.parent / ".venv-peer/bin/python"))
    parser.add_argument("--budget", type=float, default=1.0, help="seconds per input")
    args = parser.parse_args()
    impls = [("ours-async", sys.executable), ("ours-sync", sys.executable)]
    if Path(args.peer_python).exists():
        impls.append(("peer", args.peer_python))
    else:
        print(f"(peer left out: {args.peer_python} does not exist; `make bench` creates it)")
    print("| implementation | input | ms / call | MB/s | calls timed | attack found |")
    print("| --- | --- | --- | --- | --- | --- |")
    for impl, python in impls:
        for name, r in run_probe(python, impl, args.budget).items():
            print(
                f"| {impl} | {name} | {float(r['ms_per_call']):.3g} "  # type: ignore[arg-type]
                f"| {float(r['mb_per_s']):.3g} | {r['calls']} | {r['found']} |",  # type: ignore[arg-type]
                flush=True,
            )


if __name__ == "__main__":
    main()
