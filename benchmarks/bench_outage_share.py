"""What N instances admit together during a Redis outage, per rate-limit outage policy.

Usage: python benchmarks/bench_outage_share.py [--faces async,sync] [--limits 100,3]

For each face, policy ("share", "local", "deny") and N in 2, 3, 6: a fresh redis-server on
loopback and N instances, each a separate process holding one `Guard`
(`tests/support/instances.py`). A client sends 40 % of the limit before the outage, spread
over the instances; then Redis is killed and every instance gets twice the limit from that
client, and from a client never seen before. Printed: the hits admitted in that one window
(before + during the outage) as a ratio to the limit. Target for "share": at most 1.2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from guard_core.testing import LocalRedisServer  # noqa: E402
from tests.support.faults import kill  # noqa: E402
from tests.support.instances import instances  # noqa: E402

WINDOW = 600.0
POLICIES = ("share", "local", "deny")
COUNTS = (2, 3, 6)
GUARD_MODULES = {"async": "guard_core.guard", "sync": "guard_core_sync.guard"}


def measure(face: str, policy: str, count: int, limit: int) -> tuple[float, float]:
    """(seen client, never-seen client): admitted in the window / limit."""
    with LocalRedisServer() as server:
        config = {
            "redis_url": server.url,
            "redis_connect_timeout": 0.3,
            "redis_socket_timeout": 0.3,
            "redis_breaker_base_delay": 1.0,
            "redis_breaker_max_delay": 1.0,
            "redis_journal_flush_interval": 0.1,
            "rate_limit_member_timeout": 1.0,
            "rate_limit_outage_policy": policy,
        }
        with instances(GUARD_MODULES[face], config, count) as group:
            group.wait_for_members(count)
            before = 0
            for turn in range(limit * 4 // 10):
                reply = group.running[turn % count].ask(
                    {"op": "hit", "key": "client", "limit": limit, "window": WINDOW, "times": 1}
                )
                before += reply["admitted"]
            kill(server)
            during = sum(group.hit_all("client", limit, WINDOW, 2 * limit))
            stranger = sum(group.hit_all("stranger", limit, WINDOW, 2 * limit))
        return (before + during) / limit, stranger / limit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--faces", default="async,sync")
    parser.add_argument("--limits", default="100,3")
    args = parser.parse_args()
    print("40 % of the limit (rounded down) used before Redis is killed")
    print("| face | limit | policy | instances | seen client: admitted / limit "
          "| never-seen client: admitted / limit |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- |")
    for limit in (int(text) for text in args.limits.split(",")):
        for face in args.faces.split(","):
            for policy in POLICIES:
                for count in COUNTS:
                    seen, unseen = measure(face, policy, count, limit)
                    print(
                        f"| {face} | {limit} | {policy} | {count} | {seen:.2f} | {unseen:.2f} |",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
