"""One table of operations per second: both faces against raw redis-py, `limits` and the peer.

Usage: python benchmarks/bench_speed.py [--peer-python .venv-peer/bin/python] [--budget S]
       [--chart benchmarks/speed.png]

Rows: `get_key`, `is_ip_banned` (banned, not banned), the rate-limit check on Redis and in
memory, and `detect()`; the Redis rows twice, with redis-py parsing through hiredis and
without it. Columns: our sync face, our async face, our async face with 50 concurrent tasks,
raw redis-py doing the same work (GET for `get_key` and `is_ip_banned`, EVALSHA of the same
sliding-window script for the rate-limit check), `limits` (moving window), and the published
guard-core 4.4.0 (in its own virtualenv; async, without hiredis). The last column gives each
target of the speed issue as a ratio, measured in this run. Each implementation runs
`speed_probe.py` in a process of its own; without redis-server only the memory rows run.
The chart (needs matplotlib, the `bench` extra) shows the same figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REDIS_OPS = [
    "get_key",
    "is_ip_banned, banned",
    "is_ip_banned, not banned",
    "rate-limit check, Redis",
]
MEMORY_OPS = ["rate-limit check, memory", "detect (1.5 KB JSON)"]
COLUMNS = [
    ("sync", "ours sync"),
    ("async", "ours async"),
    ("async_x50", "ours async x50"),
    ("raw_sync", "redis-py"),
    ("raw_async", "redis.asyncio"),
    ("raw_async_x50", "redis.asyncio x50"),
    ("limits", "limits"),
    ("peer", "guard-core 4.4.0"),
]
# (operation prefix, our column, their column, at least, what)
TARGETS: list[tuple[str, str, str, float, str]] = [
    ("get_key", "sync", "raw_sync", 0.95, "sync/redis-py"),
    ("get_key", "async", "raw_async", 0.90, "async/redis.asyncio"),
    ("get_key", "async_x50", "raw_async_x50", 4.0, "x50/redis.asyncio x50"),
    ("is_ip_banned", "sync", "raw_sync", 20.0, "sync/GET"),
    ("is_ip_banned", "async", "raw_async", 20.0, "async/GET"),
    ("rate-limit check, Redis", "sync", "limits", 1.0, "sync/limits"),
    ("rate-limit check, Redis", "async_x50", "raw_async_x50", 3.0, "x50/EVALSHA x50"),
    ("rate-limit check, memory", "sync", "peer", 1.5, "sync/4.4.0"),
    ("rate-limit check, memory", "async", "peer", 1.5, "async/4.4.0"),
    ("detect", "async", "peer", 0.0, "async/4.4.0"),
]

Rows = dict[str, dict[str, float | None]]


def run_probe(python: str, impl: str, url: str | None, budget: float, *extra: str) -> Any:
    command = [os.path.abspath(python), str(HERE / "speed_probe.py"), "--impl", impl]
    command += ["--budget", str(budget), *extra]
    if url is not None:
        command += ["--url", url]
    # ours import from this checkout; the peer from its own site-packages
    cwd = HERE.parent if impl != "peer" else Path("/")
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)} if impl != "peer" else None
    done = subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=env, check=False)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise RuntimeError(f"{impl}: the probe exited with {done.returncode}: {done.stderr[-2000:]}")


def merge(into: Rows, rows: Rows, suffix: str = "") -> None:
    for name, figures in rows.items():
        into.setdefault(name + suffix, {}).update(figures)


def targets(name: str, row: dict[str, float | None]) -> str:
    found = []
    for prefix, ours, theirs, least, what in TARGETS:
        if not name.startswith(prefix):
            continue
        a, b = row.get(ours), row.get(theirs)
        if not a or not b:
            continue
        ratio = a / b
        verdict = "" if least == 0 else (" ✓" if ratio >= least else f" ✗ (≥{least:g})")
        found.append(f"{what} {ratio:.2f}x{verdict}")
    return "; ".join(found)


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1000:,.1f}k" if value < 1e6 else f"{value / 1e6:,.2f}M"


def table(rows: Rows) -> str:
    lines = [
        "| operation | " + " | ".join(label for _, label in COLUMNS) + " | targets (ratio) |",
        "| --- " * (len(COLUMNS) + 2) + "|",
    ]
    for name, row in rows.items():
        cells = " | ".join(fmt(row.get(key)) for key, _ in COLUMNS)
        lines.append(f"| {name} | {cells} | {targets(name, row)} |")
    return "\n".join(lines)


def propagation_table(found: dict[str, dict[str, list[float]]]) -> str:
    """Milliseconds from the start of a change on one instance until the other's next call
    shows it (target: within 100 ms)."""
    lines = [
        "Changes seen by another instance (ms from the start of the change; target <= 100):\n",
        "| change | sync p50 | sync max | async p50 | async max | within 100 ms |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for kind in found["sync"]:
        s, a = sorted(found["sync"][kind]), sorted(found["async"][kind])
        worst = max(s[-1], a[-1])
        lines.append(
            f"| {kind} | {s[len(s) // 2]:.2f} | {s[-1]:.2f} | {a[len(a) // 2]:.2f} "
            f"| {a[-1]:.2f} | {'✓' if worst <= 100 else '✗'} ({len(s)} + {len(a)} changes) |"
        )
    return "\n".join(lines)


def chart(rows: Rows, path: Path) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "no chart: matplotlib is missing (pip install -e '.[bench]')"
    names = list(rows)
    series = [("sync", "ours sync"), ("async", "ours async"), ("async_x50", "ours async x50")]
    series += [("raw_sync", "redis-py"), ("raw_async_x50", "redis.asyncio x50")]
    series += [("limits", "limits"), ("peer", "guard-core 4.4.0")]
    width = 0.8 / len(series)
    figure, axes = plt.subplots(figsize=(14, 6))
    for index, (key, label) in enumerate(series):
        values = [rows[name].get(key) or 0.0 for name in names]
        positions = [i + (index - len(series) / 2) * width + width / 2 for i in range(len(names))]
        axes.bar(positions, values, width, label=label)
    axes.set_yscale("log")
    axes.set_ylabel("operations per second (log scale)")
    axes.set_xticks(range(len(names)))
    axes.set_xticklabels(names, rotation=20, ha="right", fontsize=8)
    axes.set_title("guard-core: sync and async faces by operation, against peers (one run)", pad=34)
    axes.legend(fontsize=8, ncols=7, loc="lower center", bbox_to_anchor=(0.5, 1.06))
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return f"chart written to {path}"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.partition(":")[2].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--peer-python", default=str(HERE.parent / ".venv-peer/bin/python"))
    parser.add_argument("--budget", type=float, default=1.0, help="seconds per figure")
    parser.add_argument("--chart", default=str(HERE / "speed.png"))
    args = parser.parse_args()

    from guard_core.testing import LocalRedisServer, server_available

    print(f"Machine: {machine()}")
    rows: Rows = {}
    peer = args.peer_python if Path(args.peer_python).exists() else None
    if peer is None:
        print(
            f"(guard-core 4.4.0 left out: {args.peer_python} does not exist; `make bench` makes it)"
        )
    if not server_available():
        print(
            "Skipping the Redis rows: redis-server is not installed "
            "(`make redis-server` installs it); in-memory rows only."
        )
        merge(rows, run_probe(sys.executable, "ours", None, args.budget)["rows"])
        if peer is not None:
            merge(rows, run_probe(peer, "peer", None, args.budget)["rows"])
    else:
        with LocalRedisServer() as server:
            print(f"redis-server on 127.0.0.1:{server.port}; {args.budget} s per figure\n")
            with_hiredis = run_probe(
                sys.executable, "ours", server.url, args.budget, "--propagation", "20"
            )
            without = run_probe(sys.executable, "ours", server.url, args.budget, "--no-hiredis")
            theirs = run_probe(peer, "peer", server.url, args.budget)["rows"] if peer else {}
        for name in REDIS_OPS:
            if with_hiredis["hiredis"]:
                rows[name + " [hiredis]"] = dict(with_hiredis["rows"][name])
                rows[name + " [hiredis]"].update(theirs.get(name, {}))
            rows[name + " [no hiredis]"] = dict(without["rows"][name])
            rows[name + " [no hiredis]"].update(theirs.get(name, {}))
        if not with_hiredis["hiredis"]:
            print("(hiredis is not installed: pip install -e '.[hiredis]' for those rows)")
        for name in MEMORY_OPS:
            rows[name] = dict(with_hiredis["rows"][name])
            rows[name].update(theirs.get(name, {}))
    print("ops/s (k = thousand, M = million); raw = GET for get_key and is_ip_banned,")
    print("EVALSHA of the same script for the rate-limit check; 4.4.0 runs without hiredis.\n")
    print(table(rows))
    print()
    if server_available():
        print(propagation_table(with_hiredis["propagation"]))
        print()
    print(chart(rows, Path(args.chart)))


if __name__ == "__main__":
    main()
