"""Where the microseconds of one protected request go, per framework: the apps of
bench_e2e.py (`benchmarks/e2e_apps/`) called in-process, one request at a time, against one
local redis-server, with no HTTP server in between.

    python benchmarks/profile_e2e.py [--requests N] [--only fastapi,flask,django] [--post]

With `--post`, each request POSTs bench_e2e.py's 1 KiB JSON body, and the baseline is ours
with body scanning off (`ours_nobody`) rather than the bare app: the difference is what
scanning the body costs.

For each framework: the wall and CPU time per request of the bare app and of ours (median of
5 batches, the better of two runs each), then a cProfile of ours: the steps of a request by
cumulative time (adapter, request check, ban check, patterns, rate-limit round trip, header
building), own time grouped by what it is for (the time of a builtin goes to the group of
whoever called it), and the top entries by own and by cumulative time. cProfile's own cost
inflates every figure (about 2x): read its figures as shares, the wall and CPU times as the
cost.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, MutableMapping
from pathlib import Path
from typing import Any

from guard_core.testing import LocalRedisServer

HERE = Path(__file__).resolve().parent
APPS = HERE / "e2e_apps"
FRAMEWORKS = ("fastapi", "flask", "django")

#: (group, substrings of a file path or function name), first match wins.
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("header building", ("security_headers", "header_presets", "ratelimit_headers",
                         "retry_after", "_encoded", "send_with_headers", "_after_request")),
    ("adapter", ("/adapters/",)),
    ("ban check", ("ipban_handler", "ban_", "network_index", "/storage/bans",
                   "/storage/network_bans", "/storage/mirror")),
    ("patterns", ("suspatterns_handler", "attack_patterns", "request_decoding",
                  "/storage/patterns", "re2")),
    ("rate-limit round trip", ("ratelimit_handler", "sliding_window", "/storage/window",
                               "outage_", "auto_pipeline", "/connection/", "circuit_breaker",
                               "journal", "write_back", "/redis/", "socket", "select",
                               "asyncio", "selectors")),
    ("request check", ("request_check", "request_model", "client_address", "check_settings",
                       "rate_limit_rules", "keys.py", "ip_utils", "redaction", "ipaddress")),
    ("guard_core, other", ("guard_core",)),
    ("framework", ("starlette", "fastapi", "flask", "werkzeug", "django", "pydantic",
                   "anyio", "json", "typing", "contextlib", "functools", "urllib")),
)  # fmt: skip
DRIVER = "profile_e2e.py"
#: Steps of one request by cumulative time: (label, (file suffix, function) ...), summed.
STEPS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("adapter, with all below it", (("adapters/asgi.py", "__call__"),
        ("adapters/flask.py", "_before_request"), ("adapters/flask.py", "_after_request"),
        ("adapters/django.py", "__call__"))),
    ("  request info (scope/environ to RequestInfo)", (("adapters/asgi.py", "request_info"),
        ("adapters/_process.py", "environ_request"))),
    ("  request check (RequestCheck.check)", (("request_check.py", "check"),)),
    ("    ban check (is_ip_banned)", (("ipban_handler.py", "is_ip_banned"),)),
    ("    patterns (scan_texts, detect)", (("request_decoding.py", "scan_texts"),
        ("suspatterns_handler.py", "detect"))),
    ("    rate-limit round trip (rate_limiter.check)", (("ratelimit_handler.py", "check"),)),
    ("    security headers (get_headers)", (("request_check.py", "_security_headers"),)),
    ("    rate-limit headers (ratelimit_headers)", (("rate_limit_rules.py", "ratelimit_headers"),)),
    ("  headers added to the response", (("adapters/asgi.py", "send_with_headers"),
        ("adapters/flask.py", "_after_request"))),
)  # fmt: skip


# -- the child: one app in this process ----------------------------------------------------


def _post_body() -> bytes:
    sys.path.insert(0, str(HERE))
    from bench_e2e import BODY

    return BODY.encode()


def asgi_driver(post: bool) -> Callable[[], None]:
    from e2e_fastapi import app

    body = _post_body() if post else b""
    extra = [(b"content-type", b"application/json"),
             (b"content-length", str(len(body)).encode())] if post else []  # fmt: skip
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
        "method": "POST" if post else "GET",
        "scheme": "http", "path": "/items/42", "raw_path": b"/items/42",
        "query_string": b"q=shoes&page=2", "root_path": "", "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "headers": [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"wrk"), (b"accept", b"*/*"),
                    *extra],
    }  # fmt: skip
    loop = asyncio.new_event_loop()

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def one() -> None:
        sent: list[MutableMapping[str, Any]] = []

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(message)

        await app({**scope, "state": {}}, receive, send)
        assert sent[0]["status"] == 200, sent

    return lambda: loop.run_until_complete(one())


def wsgi_driver(framework: str, post: bool) -> Callable[[], None]:
    if framework == "flask":
        from e2e_flask import app
    else:
        from e2e_django import application as app
    base = {
        "REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": "/items/42",
        "QUERY_STRING": "q=shoes&page=2", "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_USER_AGENT": "wrk", "HTTP_ACCEPT": "*/*", "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr, "wsgi.multithread": True,
        "wsgi.multiprocess": False, "wsgi.run_once": False,
    }  # fmt: skip
    data = _post_body() if post else b""
    if post:
        base.update(REQUEST_METHOD="POST", CONTENT_TYPE="application/json",
                    CONTENT_LENGTH=str(len(data)))  # fmt: skip

    def start_response(status: str, headers: list[tuple[str, str]], *_: Any) -> Any:
        assert status.startswith("200"), status

    def one() -> None:
        body = app({**base, "wsgi.input": io.BytesIO(data)}, start_response)
        b"".join(body)
        getattr(body, "close", lambda: None)()

    return one


def child(framework: str, requests: int, profile: bool, post: bool) -> None:
    sys.path.insert(0, str(APPS))
    one = asgi_driver(post) if framework == "fastapi" else wsgi_driver(framework, post)
    for _ in range(200):  # warm-up: the guard starts, caches fill
        one()
    if not profile:
        walls, cpus = [], []
        for _ in range(5):
            started, cpu = time.perf_counter(), time.process_time()
            for _ in range(requests // 5):
                one()
            walls.append((time.perf_counter() - started) / (requests // 5))
            cpus.append((time.process_time() - cpu) / (requests // 5))
        print(f"RESULT {statistics.median(walls) * 1e6:.1f} {statistics.median(cpus) * 1e6:.1f}")
        return
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(requests):
        one()
    profiler.disable()
    report(pstats.Stats(profiler), requests)


# -- grouping --------------------------------------------------------------------------------

Key = tuple[str, int, str]


def group_of(key: Key) -> str:
    file, _, name = key
    text = f"{file}:{name}"
    if DRIVER in file:
        return "driver (this script)"
    for group, marks in GROUPS:
        if any(mark in text for mark in marks):
            return group
    return "other"


def own_times(stats: dict[Key, Any]) -> dict[str, float]:
    """Own time per group; a builtin's own time goes to its callers' groups."""
    groups: dict[str, float] = defaultdict(float)

    def place(key: Key, seconds: float, depth: int = 0) -> None:
        if key[0] != "~" or depth > 3:
            groups[group_of(key)] += seconds
            return
        for caller, (*_, caller_own, _) in stats[key][4].items():
            share = caller_own / stats[key][2] if stats[key][2] else 0.0
            place(caller, seconds * share, depth + 1)

    for key, (_, _, own, _, callers) in stats.items():
        if key[0] == "~" and name_only(key) and callers:
            place(key, own)
        else:
            groups[group_of(key)] += own
    return groups


def name_only(key: Key) -> bool:
    # builtins that tell their purpose by name keep their own group
    return not any(mark in key[2] for mark in ("socket", "select", "epoll", "re2", "poll"))


def shown(key: Key) -> str:
    file, line, name = key
    if file == "~":
        return name
    for root in ("site-packages/", str(HERE.parent) + "/"):
        if root in file:
            file = file.split(root, 1)[1]
    return f"{file}:{line}({name})"


def report(stats: pstats.Stats, requests: int) -> None:
    raw: dict[Key, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in raw.values())
    per = 1e6 / requests
    print(f"profiled: {total * per:.1f} µs of own time per request ({requests} requests)")
    print("| group | µs / request | share |")
    print("| --- | --- | --- |")
    for group, seconds in sorted(own_times(raw).items(), key=lambda item: -item[1]):
        print(f"| {group} | {seconds * per:.1f} | {seconds / total:.0%} |")
    print("\nsteps by cumulative time (µs / request):")
    for label, functions in STEPS:
        seconds = sum(entry[3] for key, entry in raw.items() if (key[0], key[2]) in matching(
            key, functions))  # fmt: skip
        if seconds:
            print(f"  {seconds * per:6.1f}  {label}")
    print("\ntop by own time (µs / request, calls / request):")
    for key, entry in top(raw, 2, 15):
        print(f"  {entry[2] * per:6.1f}  {entry[1] / requests:5.1f}  {shown(key)}")
    print("\ntop guard_core entries by cumulative time (µs / request, calls / request):")
    ours = {k: v for k, v in raw.items() if "guard_core" in k[0] and "/adapters/_" not in k[0]}
    for key, entry in top(ours, 3, 20):
        print(f"  {entry[3] * per:6.1f}  {entry[1] / requests:5.1f}  {shown(key)}")


def matching(key: Key, functions: tuple[tuple[str, str], ...]) -> set[tuple[str, str]]:
    return {(key[0], key[2])} if any(
        key[0].endswith(suffix) and key[2] == name for suffix, name in functions
    ) else set()  # fmt: skip


def top(stats: dict[Key, Any], column: int, count: int) -> Iterator[tuple[Key, Any]]:
    yield from sorted(stats.items(), key=lambda item: -item[1][column])[:count]


# -- the parent ------------------------------------------------------------------------------


def run_child(
    framework: str, variant: str, url: str, requests: int, profile: bool, post: bool
) -> str:
    env = {**os.environ, "E2E_VARIANT": variant, "E2E_REDIS_URL": url,
           "PYTHONPATH": str(HERE.parent)}  # fmt: skip
    command = [sys.executable, __file__, "--child", framework, "--requests", str(requests)]
    done = subprocess.run(
        [*command, *(["--profile"] if profile else []), *(["--post"] if post else [])],
        env=env, capture_output=True, text=True, check=True, cwd=APPS,
    )  # fmt: skip
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--only", default=",".join(FRAMEWORKS))
    parser.add_argument(
        "--variant",
        default="ours",
        choices=("ours", "ours_nolease"),
        help="ours as in the bench row of that variant (ours_nolease: leases off)",
    )
    parser.add_argument("--child", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    parser.add_argument("--profile", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--post", action="store_true", help="POST 1 KiB of JSON; baseline: body scanning off"
    )
    args = parser.parse_args()
    if args.child:
        child(args.child, args.requests, args.profile, args.post)
        return
    baseline = "ours_nobody" if args.post else "bare"
    with LocalRedisServer() as server:
        for framework in args.only.split(","):
            best: dict[str, tuple[float, float]] = {}
            for variant in ("bare", "ours", "bare", "ours"):  # alternating, the best kept
                which = args.variant if variant == "ours" else baseline
                output = run_child(framework, which, server.url, args.requests, False, args.post)
                wall, cpu = (float(x) for x in output.split("RESULT ")[1].split())
                best[variant] = min((wall, cpu), best.get(variant, (wall, cpu)))
            (bare, bare_cpu), (ours, ours_cpu) = best["bare"], best["ours"]
            print(f"\n## {framework}: per request, {baseline} {bare:.1f} µs "
                  f"({bare_cpu:.1f} µs CPU), ours {ours:.1f} µs ({ours_cpu:.1f} µs CPU): "
                  f"+{ours - bare:.1f} µs (+{ours_cpu - bare_cpu:.1f} µs CPU)")  # fmt: skip
            print(run_child(framework, args.variant, server.url, args.requests, True, args.post))


if __name__ == "__main__":
    main()
