"""What `GuardMiddleware` itself costs per request, with no framework and no server: the
middleware around an ASGI app that answers at once, against that app alone, in-process on
one event loop, against one local redis-server; then the same with each step turned off.

    python benchmarks/middleware_cost.py [--requests N]

Each line is the best of 5 batches of N requests (µs per request, wall time). The
difference between the full row and a row with a step off is what that step costs.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from guard_core import SecurityConfig
from guard_core.adapters.asgi import GuardMiddleware
from guard_core.testing import LocalRedisServer

Message = MutableMapping[str, Any]
App = Callable[[Message, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
               Awaitable[None]]  # fmt: skip
SCOPE: dict[str, Any] = {
    "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
    "scheme": "http", "path": "/items/42", "raw_path": b"/items/42",
    "query_string": b"q=shoes&page=2", "root_path": "", "client": ("127.0.0.1", 50000),
    "server": ("127.0.0.1", 8000),
    "headers": [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"wrk"), (b"accept", b"*/*")],
}  # fmt: skip
#: (label, CheckSettings fields): the defaults with a limit never reached, then a step off
ROWS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("defaults (ban check, patterns, limit, headers)", {}),
    ("patterns off", {"detect_patterns": False}),
    ("security headers off", {"security_headers": False}),
    ("rate-limit headers off", {"ratelimit_headers": False, "x_ratelimit_headers": False}),
    ("all of these off, limit kept", {"detect_patterns": False, "security_headers": False,
                                      "ratelimit_headers": False,
                                      "x_ratelimit_headers": False}),
)  # fmt: skip


async def answer(scope: Message, receive: Any, send: Callable[[Message], Awaitable[None]]) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})  # fmt: skip
    await send({"type": "http.response.body", "body": b"{}"})


async def receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def send(message: Message) -> None:
    return None


def per_request(loop: asyncio.AbstractEventLoop, app: App, requests: int) -> float:
    async def batch() -> None:
        for _ in range(requests):
            await app({**SCOPE, "state": {}}, receive, send)

    loop.run_until_complete(batch())  # warm-up: the guard starts, caches fill
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        loop.run_until_complete(batch())
        best = min(best, (time.perf_counter() - started) / requests)
    return best * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=5000)
    args = parser.parse_args()
    loop = asyncio.new_event_loop()
    with LocalRedisServer() as server:
        alone = per_request(loop, answer, args.requests)
        print(f"the app alone: {alone:.1f} µs per request")
        print("| middleware settings | µs per request | the middleware adds |")
        print("| --- | --- | --- |")
        for label, fields in ROWS:
            middleware = GuardMiddleware(
                answer,
                config=SecurityConfig(redis_url=server.url, rate_limit_lease=0.01),
                default_limits="1000000/minute",
                **fields,
            )
            cost = per_request(loop, middleware, args.requests)
            print(f"| {label} | {cost:.1f} | +{cost - alone:.1f} |")
            loop.run_until_complete(middleware.guard.close())
    loop.close()


if __name__ == "__main__":
    main()
