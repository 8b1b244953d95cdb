"""One implementation's `detect()` throughput on fixed inputs, as a JSON line on stdout.

Run by bench_patterns.py, with our interpreter (`--impl ours-async`/`ours-sync`) or the
peer's (`--impl peer`: guard-core 4.4.0, whose `detect` takes the content and a client IP).
The inputs are made here from a fixed seed, so every implementation sees the same bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

MIB = 1 << 20
WORDS = ["lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit"]
ATTACKS = [
    "<script>alert(document.cookie)</script>",
    "' OR 1=1 --",
    "1 UNION SELECT username, password FROM users",
    "../../../../etc/passwd",
    "; cat /etc/passwd",
    "{{7*7}}",
    "http://169.254.169.254/latest/meta-data",
    "php://filter/convert.base64-encode/resource=index.php",
]


def inputs() -> dict[str, str]:
    rng = random.Random(20261126)
    clean = json.dumps(
        {"user": "alice", "items": [{"id": i, "note": " ".join(rng.choices(WORDS, k=8))}
                                    for i in range(20)]}
    )  # fmt: skip
    mib = " ".join(rng.choices(WORDS, k=MIB // 5))[:MIB]
    return {
        "clean": clean,
        "attack": clean[:200] + " ".join(ATTACKS),
        "1MiB clean": mib,
        "1MiB, attack at end": mib[: MIB - 40] + "<script>alert(1)</script>",
    }


def detector(impl: str) -> Callable[[str], Awaitable[Any]]:
    if impl == "peer":
        # the peer's modules have our import names: typed as Any, not as ours
        handler: Any = importlib.import_module("guard_core.handlers.suspatterns_handler")
        models: Any = importlib.import_module("guard_core.models")
        handler.SusPatternsManager._instance = None  # its module made an unconfigured one
        peer = handler.SusPatternsManager(models.SecurityConfig())
        return lambda text: peer.detect(text, "203.0.113.9")
    from guard_core.models import SecurityConfig

    config = SecurityConfig(enable_redis=False)
    if impl == "ours-sync":
        from guard_core_sync.handlers.suspatterns_handler import SusPatternsManager as Sync

        manager = Sync(config)

        async def sync_detect(text: str) -> Any:
            return manager.detect(text)

        return sync_detect
    from guard_core.handlers.suspatterns_handler import SusPatternsManager as Async

    return Async(config).detect


def found_something(result: Any) -> bool:
    return bool(result["is_threat"]) if isinstance(result, dict) else bool(result)


async def measure(
    detect: Callable[[str], Awaitable[Any]], text: str, budget: float
) -> dict[str, object]:
    found = found_something(await detect(text))  # warm-up, and the verdict
    calls, started = 0, time.perf_counter()
    while calls < 3 or (time.perf_counter() - started < budget and calls < 10_000):
        await detect(text)
        calls += 1
    per_call = (time.perf_counter() - started) / calls
    return {"calls": calls, "ms_per_call": per_call * 1000, "found": found,
            "mb_per_s": len(text.encode("utf-8", "replace")) / per_call / 1e6}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--impl", choices=["ours-async", "ours-sync", "peer"], required=True)
    parser.add_argument("--budget", type=float, default=1.0, help="seconds per input")
    args = parser.parse_args()
    detect = detector(args.impl)

    async def measure_all() -> dict[str, dict[str, object]]:
        return {name: await measure(detect, text, args.budget) for name, text in inputs().items()}

    results = asyncio.run(measure_all())
    print("RESULT " + json.dumps(results), flush=True)


if __name__ == "__main__":
    main()
