"""Requests per second through real servers over loopback (wrk), ours against the bare app
and the peers of each framework, with what each request costs Redis.

    python benchmarks/bench_e2e.py [--quick] [--rounds N] [--seconds S] [--json PATH]

Rows: FastAPI under uvicorn (1 worker), Flask and Django under gunicorn gthread (1 worker x
4 threads); for each, the bare app, ours and the peers (slowapi and fastapi-guard; Flask-
Limiter; django-ratelimit), all on one local redis-server started here. The apps are
`benchmarks/e2e_apps/`, told their variant by environment variables. Ours and the bare apps
run on this interpreter (with this checkout first on the path); each peer runs in a
virtualenv of its own, `.venv-e2e-<peer>` (git-ignored), made here on first use with the
framework, server and parser versions of this interpreter, so that only the protection
differs. Every row allows every request: the limits (1,000,000 per minute) are never reached.

Each round runs every row once (in reverse order every other round): a fresh server, a
warm-up under load (during which MONITOR samples which commands run inside scripts), then
`wrk -t1 -c32 -dS`, then 2 s with one connection. The table gives the median req/s over the
rounds, the median over the rounds of the ratios to the bare app of the same framework and
to its peers, and per request: the microseconds Redis spent in the commands clients sent
(INFO commandstats after CONFIG RESETSTAT; a script's commands are counted once, in the
script's time) under load and with one connection (under load, other processes preempt
Redis mid-command on a small machine), and those commands.
Needs wrk and redis-server (`make bench` installs both).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

import redis

from guard_core.testing import LocalRedisServer, free_port

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
APPS = HERE / "e2e_apps"
PATH = "/items/42?q=shoes&page=2"
#: The POST rows' body: 1 KiB of JSON, as an API client sends (text fields to scan).
_FIELDS = {"name": "shoes", "tags": ["red", "leather", "size-42"], "note": ""}
BODY = json.dumps(
    {
        **_FIELDS,
        "note": ("leave it at the back door, ring twice. " * 30)[: 1024 - len(json.dumps(_FIELDS))],
    }
)
CONNECTIONS = 32
#: wrk's command; a request counts as an error after 10 s (not wrk's default 2 s: the
#: slowest peer takes seconds per request under this load)
WRK = ("wrk", "-t1", "--timeout", "10s")
#: Commands that run a script: the commands a script runs are counted in their usec too.
SCRIPT_RUNNERS = {"eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro"}
#: Packages pinned in a peer's virtualenv to the version this interpreter has (when it has
#: them), so that framework, server and parser are the same as in our rows.
STACK = ("fastapi", "starlette", "pydantic", "pydantic-core", "uvicorn", "h11", "uvloop",
         "httptools", "flask", "werkzeug", "django", "asgiref", "gunicorn", "hiredis")  # fmt: skip


@dataclass(frozen=True)
class Row:
    framework: str
    name: str
    variant: str  # E2E_VARIANT of the app
    peer: str | None = None  # the virtualenv .venv-e2e-<peer>, None: this interpreter
    requirements: tuple[str, ...] = ()
    post: bool = False  # POST of BODY (1 KiB of JSON) rather than GET of PATH

    @property
    def ours(self) -> bool:
        """A row of ours that GETs, compared with the bare app and the peers."""
        return self.variant in ("ours", "ours_nolease") and not self.post


#: The bare app sending the headers ours adds, and nothing else: what the headers alone cost
#: the server (ours against it is the cost of the rest of the guard)
HEADERS_ROW = "bare, sending ours' headers"
ROWS = (
    Row("FastAPI", "bare", "bare"),
    Row("FastAPI", HEADERS_ROW, "bare_headers"),
    Row("FastAPI", "ours", "ours"),
    Row("FastAPI", "ours, no leases", "ours_nolease"),
    Row("FastAPI", "ours, POST 1 KiB JSON", "ours", post=True),
    Row("FastAPI", "ours, POST, body not scanned", "ours_nobody", post=True),
    Row("FastAPI", "slowapi", "slowapi", "slowapi", ("fastapi", "uvicorn", "slowapi", "redis")),
    Row("FastAPI", "fastapi-guard", "fastapi_guard", "fastapi-guard",
        ("fastapi", "uvicorn", "fastapi-guard")),
    Row("Flask", "bare", "bare"),
    Row("Flask", "ours", "ours"),
    Row("Flask", "ours, no leases", "ours_nolease"),
    Row("Flask", "ours, POST 1 KiB JSON", "ours", post=True),
    Row("Flask", "ours, POST, body not scanned", "ours_nobody", post=True),
    Row("Flask", "Flask-Limiter", "flask_limiter", "flask-limiter",
        ("flask", "gunicorn", "flask-limiter[redis]")),
    Row("Django", "bare", "bare"),
    Row("Django", "ours", "ours"),
    Row("Django", "ours, no leases", "ours_nolease"),
    Row("Django", "ours, POST 1 KiB JSON", "ours", post=True),
    Row("Django", "ours, POST, body not scanned", "ours_nobody", post=True),
    Row("Django", "django-ratelimit", "django_ratelimit", "django-ratelimit",
        ("django", "gunicorn", "django-ratelimit", "redis")),
)  # fmt: skip
#: (framework, peer the target names, minimum ours / bare, minimum ours / peer)
#: Body scanning: the POST row of ours against the same POST with body scanning off, at least
BODY_ROWS, BODY_TARGET = ("ours, POST 1 KiB JSON", "ours, POST, body not scanned"), 0.9
TARGETS = {"FastAPI": ("slowapi", 0.85, 2.0), "Flask": ("Flask-Limiter", 0.75, 1.3),
           "Django": ("django-ratelimit", 0.75, 1.3)}  # fmt: skip


@dataclass
class Measure:
    rps: float
    requests: int
    errors: int  # non-2xx answers and socket errors
    redis_usec: float  # under load (commands preempted by other processes take longer)
    redis_usec_one: float  # with one connection
    redis_commands: float  # with one connection, as the two below
    redis_cpu_usec: float  # the server's main thread
    requests_one: int = 0
    #: command -> [calls, usec] with one connection (a script's commands counted in it too)
    commands: dict[str, list[int]] = field(default_factory=dict)


# -- virtualenvs -------------------------------------------------------------------------


def constraints() -> list[str]:
    """This interpreter's version of each package of STACK it has (pip constraints: they
    pin a package only where a peer's requirements bring it in)."""
    pins = []
    for package in STACK:
        try:
            pins.append(f"{package}=={importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return pins


def peer_python(row: Row) -> str:
    """This row's interpreter: ours, or its peer's virtualenv (made or updated first)."""
    if row.peer is None:
        return sys.executable
    venv = ROOT / f".venv-e2e-{row.peer}"
    wanted = "\n".join([*row.requirements, "# constraints", *constraints()])
    marker = venv / ".e2e-installed"
    if not (marker.exists() and marker.read_text() == wanted):
        print(f"installing {row.name} in {venv.name}", flush=True)
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        (venv / "constraints.txt").write_text("\n".join(constraints()) + "\n")
        pip = [str(venv / "bin/python"), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, "--upgrade", "pip"], check=True)
        subprocess.run([*pip, "-c", str(venv / "constraints.txt"), *row.requirements], check=True)
        marker.write_text(wanted)
    return str(venv / "bin/python")


def versions(python: str, packages: tuple[str, ...]) -> str:
    names = [re.split(r"[\[=<>]", p)[0] for p in packages]
    code = (
        "import importlib.metadata as m, sys\n"
        "print(' '.join(f'{n} {m.version(n)}' for n in sys.argv[1:]))"
    )
    done = subprocess.run([python, "-c", code, *names], capture_output=True, text=True)
    return done.stdout.strip()


# -- one measurement ---------------------------------------------------------------------


def server_command(row: Row, python: str, port: int) -> list[str]:
    if row.framework == "FastAPI":
        return [python, "-m", "uvicorn", "e2e_fastapi:app", "--host", "127.0.0.1",
                "--port", str(port), "--workers", "1", "--log-level", "warning",
                "--no-access-log"]  # fmt: skip
    module = "e2e_flask:app" if row.framework == "Flask" else "e2e_django:application"
    return [python, "-m", "gunicorn", "-k", "gthread", "-w", "1", "--threads", "4",
            "-b", f"127.0.0.1:{port}", "--log-level", "warning", module]  # fmt: skip


def start_server(
    row: Row, python: str, redis_url: str, log: Path
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    if row.peer is None:  # this checkout's guard_core, whatever the interpreter has installed
        env["PYTHONPATH"] = str(ROOT)
    env.update(E2E_VARIANT=row.variant, E2E_REDIS_URL=redis_url)
    with log.open("ab") as out:
        process = subprocess.Popen(
            server_command(row, python, port), cwd=APPS, env=env, stdout=out, stderr=out
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(url + PATH, timeout=2) as answer:
                if answer.status == 200:
                    return process, url
        except OSError:
            time.sleep(0.1)
    stop_server(process)
    raise RuntimeError(f"{row.framework} {row.name} did not start: {log.read_text()[-2000:]}")


def answered(url: str, timeout: float = 60) -> None:
    with urllib.request.urlopen(url + PATH, timeout=timeout) as answer:
        answer.read()


def stop_server(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def post_script() -> Path:
    """A wrk script that POSTs BODY as JSON (written once, next to wrk's log)."""
    script = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench_e2e_post.{os.getpid()}.lua"
    if not script.exists():
        script.write_text(
            'wrk.method = "POST"\n'
            f"wrk.body = {json.dumps(BODY)}\n"
            'wrk.headers["Content-Type"] = "application/json"\n'
        )
    return script


def load(row: Row) -> list[str]:
    """wrk's arguments for what a row sends (after the connections and duration)."""
    return ["-s", str(post_script())] if row.post else []


def wrk(
    url: str, seconds: float, connections: int = CONNECTIONS, extra: list[str] | None = None
) -> tuple[float, int, int]:
    """(req/s, requests, non-2xx answers plus socket errors) of one wrk run."""
    out = subprocess.run(
        [*WRK, f"-c{connections}", f"-d{max(1, round(seconds))}s", *(extra or []), url + PATH],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    return rps, requests, errors


def script_shares(client: redis.Redis, seconds: float) -> dict[str, float]:
    """Per command, the share of its calls that a script made (a MONITOR sample)."""
    inside: Counter[str] = Counter()
    total: Counter[str] = Counter()
    deadline = time.monotonic() + seconds
    with client.monitor() as monitor:  # type: ignore[no-untyped-call]
        while time.monotonic() < deadline:
            try:
                seen = monitor.next_command()
            except (redis.TimeoutError, TimeoutError):
                break
            name = str(seen["command"]).split(" ", 1)[0].strip('"').lower()
            total[name] += 1
            inside[name] += seen.get("client_type") == "lua"
    return {name: inside[name] / total[name] for name in total}


def measure(row: Row, python: str, server: LocalRedisServer, seconds: float, log: Path) -> Measure:
    client = redis.Redis.from_url(server.url, decode_responses=True, socket_timeout=2)
    client.flushall()
    process, url = start_server(row, python, server.url, log)
    try:
        warm = subprocess.Popen(
            [
                *WRK,
                f"-c{CONNECTIONS}",
                f"-d{max(1, round(seconds / 3))}s",
                *load(row),
                url + PATH,
            ],
            stdout=subprocess.DEVNULL,
        )
        time.sleep(0.3)
        shares = script_shares(client, 0.3)
        warm.wait()
        client.config_resetstat()
        rps, requests, errors = wrk(url, seconds, extra=load(row))
        usec = redis_cost(client, shares, requests)[0]
        answered(url)  # what the load left queued is served before the next pass
        # the same with one request at a time: Redis is then seldom preempted mid-command
        client.config_resetstat()
        cpu_before = main_thread_cpu(client)
        one = wrk(url, min(seconds, 2.0), connections=1, extra=load(row))
        usec_one, calls_one, commands = redis_cost(client, shares, one[1])
        cpu = (main_thread_cpu(client) - cpu_before) * 1e6 / max(one[1], 1)
    finally:
        stop_server(process)
        client.close()
    return Measure(rps, requests, errors + one[2], usec, usec_one, calls_one, cpu, one[1], commands)


def redis_cost(
    client: redis.Redis, shares: dict[str, float], requests: int
) -> tuple[float, float, dict[str, list[int]]]:
    """(µs, commands) per request since CONFIG RESETSTAT, counting the commands clients sent
    (a script's commands are in its own time), and the calls of each command."""
    usec = calls = 0.0
    commands: dict[str, list[int]] = {}
    for key, value in client.info("commandstats").items():
        name = key.removeprefix("cmdstat_").lower()
        if name.startswith(("info", "config")):
            continue  # this script's own
        own = 1.0 - (0.0 if name in SCRIPT_RUNNERS else shares.get(name, 0.0))
        usec += float(value["usec"]) * own
        calls += float(value["calls"]) * own
        commands[name] = [int(value["calls"]), int(value["usec"])]
    served = max(requests, 1)
    return usec / served, calls / served, commands


def main_thread_cpu(client: redis.Redis) -> float:
    cpu = client.info("cpu")
    return float(cpu["used_cpu_user_main_thread"]) + float(cpu["used_cpu_sys_main_thread"])


# -- the table ---------------------------------------------------------------------------


def median_of(measures: list[Measure], name: str) -> float:
    return float(statistics.median(getattr(m, name) for m in measures))


def ratio(results: dict[Row, list[Measure]], row: Row, name: str) -> float | None:
    """Median over the rounds of row's req/s over those of the row `name` of its framework
    in the same round (None when that row was not run)."""
    other = next((r for r in results if r.framework == row.framework and r.name == name), None)
    if other is None:
        return None
    pairs = zip(results[row], results[other], strict=True)
    return float(statistics.median(m.rps / o.rps if o.rps else float("inf") for m, o in pairs))


def table(results: dict[Row, list[Measure]]) -> list[str]:
    lines = [
        "| framework | row | req/s | vs bare | vs peers | Redis µs/req, load / 1 conn "
        "| Redis cmds/req | errors | targets |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row, measures in results.items():
        bare = ratio(results, row, "bare") if row.name != "bare" else None
        vs_bare = "-" if bare is None else f"{bare:.2f}x" if bare >= 0.1 else f"{bare:.3f}x"
        vs_peers = targets = "-"
        if row.ours:
            peers = [(r.name, ratio(results, row, r.name)) for r in results
                     if r.framework == row.framework
                     and (r.peer or r.name == HEADERS_ROW)]  # fmt: skip
            vs_peers = "; ".join(
                f"{name} {value:.2f}x" if value != float("inf") else f"{name} (served none)"
                for name, value in peers
                if value is not None
            )
            peer, low_bare, low_peer = TARGETS[row.framework]
            marks = [] if bare is None else [check("bare", bare, low_bare)]
            against = ratio(results, row, peer)
            if against is not None:
                marks.append(check(peer, against, low_peer))
            targets = "; ".join(marks)
        elif row.post and row.name == BODY_ROWS[0]:
            unscanned = ratio(results, row, BODY_ROWS[1])
            if unscanned is not None:
                vs_peers = f"not scanned {unscanned:.2f}x"
                targets = check("not scanned", unscanned, BODY_TARGET)
        lines.append(
            f"| {row.framework} | {row.name} | {median_of(measures, 'rps'):,.0f} | {vs_bare} "
            f"| {vs_peers} | {median_of(measures, 'redis_usec'):.1f} / "
            f"{median_of(measures, 'redis_usec_one'):.1f} "
            f"| {median_of(measures, 'redis_commands'):.2f} "
            f"| {sum(m.errors for m in measures)} | {targets} |"
        )
    return lines


def check(name: str, value: float, low: float) -> str:
    return f"{name} {value:.2f}x {'✓' if value >= low else '✗'} (≥{low:g})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 round of 1 s: a sanity run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0, help="of wrk per row and round")
    parser.add_argument("--only", default="", help="frameworks to run, e.g. Flask,Django")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    rounds, seconds = (1, 1.0) if args.quick else (args.rounds, args.seconds)
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install wrk; `make bench` does)")
    chosen = {name.strip().lower() for name in args.only.split(",") if name.strip()}
    rows = [row for row in ROWS if not chosen or row.framework.lower() in chosen]

    pythons: dict[Row, str] = {}
    for row in rows:
        try:
            pythons[row] = peer_python(row)
        except (subprocess.CalledProcessError, OSError) as exc:
            print(f"skipping {row.framework} {row.name}: its virtualenv failed ({exc})")
    rows = [row for row in rows if row in pythons]
    print(f"wrk -t1 -c{CONNECTIONS} -d{seconds:g}s {PATH}, {rounds} rounds, {date.today()}, "
          f"{platform.python_implementation()} {platform.python_version()}, "
          f"{os.cpu_count()} cores")  # fmt: skip
    for row in rows:
        if row.peer is not None:
            print(f"  {row.name}: {versions(pythons[row], row.requirements)}")
    ours = versions(sys.executable, ("fastapi", "uvicorn", "flask", "django", "gunicorn", "redis"))
    parser_name = "hiredis" if importlib.util.find_spec("hiredis") else "no hiredis"
    print(f"  ours and bare: {ours}, {parser_name}")

    results: dict[Row, list[Measure]] = {row: [] for row in rows}
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench_e2e.{os.getpid()}.log"
    with LocalRedisServer() as server:
        for number in range(rounds):
            order = rows if number % 2 == 0 else rows[::-1]
            for row in order:
                result = measure(row, pythons[row], server, seconds, log)
                results[row].append(result)
                print(
                    f"  round {number + 1} {row.framework} {row.name}: {result.rps:,.0f} req/s, "
                    f"Redis {result.redis_usec:.1f} µs ({result.redis_usec_one:.1f} µs with one "
                    f"connection) and {result.redis_commands:.2f} commands per request",
                    flush=True,
                )
    print("\n".join(table(results)))
    if args.json:
        figures = [{"framework": row.framework, "row": row.name,
                    "rounds": [asdict(m) for m in ms]} for row, ms in results.items()]  # fmt: skip
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
