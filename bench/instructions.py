"""Instructions per request, counted by valgrind: a figure that does not drift.

`make bench` compares the gateway with the floor run by run, which cancels most of the
machine's drift, but a change worth a few percent is still lost in it: a 2-core VM's
speed moves by a third within minutes. Callgrind counts the instructions the process
executes instead, and that count is the same on every run, so a change to the request
path can be judged before and after on its own.

Each app (the gateway with a scenario's config, or the bare floor of `baseline.py`) is
driven in-process, as ASGI calls without an HTTP server, against the nginx mock of the
benchmark: once with `--requests` A and once with B requests after the same warm-up. The
difference of the two totals over B - A is the cost of one request; start-up, warm-up and
shutdown cancel out. The server (uvicorn) and the kernel are not in the figure, so it is
the Python-side cost of one pass-through only.

Work that runs on a timer (the metric flush, the key directory's poll, the log's
gathering, the ledger's interval, the collector's recheck) would be charged to requests
about fifty times over under valgrind's slowdown, so those timers are pushed past the
run: the ledger is then written in full batches (512 rows), as it is under load, and the
log once per 512 lines.

Run: python bench/instructions.py [--app gateway|floor|both] [--scenario plain] [--key bench|free] [--model pass]
The `limits` scenario (keys with rpm limits and a budget, their state in a Redis of its own)
needs redis-server; `--key bench` sends the key that has them, `--key free` the one without,
so the difference of the two counts is what limits and budgets cost a request.
Needs valgrind (`apt-get install valgrind`); about eight minutes on two cores. With both
apps, the reading is kept in `bench/results/instructions.json` (with the commit it was
taken at), and docs/benchmarks.md shows the latest one beside the timed figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))

def _body(model: str) -> bytes:
    return json.dumps({
        "model": model,
        "messages": [{"role": "system", "content": "You are terse."},
                     {"role": "user", "content": "Say one short sentence about foxes."}],
        "max_tokens": 64,
    }).encode()


BODY = _body("pass")
# Request counts are multiples of 512, so the ledger and the log write whole batches in
# both runs and none is split between them; 32 requests in flight divide them all.
CONCURRENCY = 32
WARM_UP = 1024
NEVER = 1e9  # seconds: a timer that does not fire within the run
RESULT = HERE / "results" / "instructions.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app", choices=("gateway", "floor", "both"), default="both")
    parser.add_argument("--scenario", default="plain", help="a scenario of bench/gateway_config.py")
    parser.add_argument("--requests", default="512,1536", help="the two request counts, A,B")
    parser.add_argument("--model", default="pass",
                        help="the route the requests name (`claude` in the anthropic scenario: the translation)")
    parser.add_argument("--key", choices=("bench", "free"), default=None,
                        help="send this bench key (gateway_config's BENCH_KEY or FREE_KEY)")
    parser.add_argument("--inner", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner:
        global BODY
        BODY = _body(args.model)
        _drive(args.app, args.scenario, args.inner, args.key)
        return
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (apt-get install valgrind)")
    low, high = (int(n) for n in args.requests.split(","))
    apps = ("floor", "gateway") if args.app == "both" else (args.app,)
    runs = [(app, n) for app in apps for n in (low, high)]
    # Each run is one process and the count is the same whatever else runs: use every core.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        totals = dict(zip(runs, pool.map(lambda run: _count(run[0], args.scenario, run[1], args.key, args.model), runs)))
    counts = {app: (totals[(app, high)] - totals[(app, low)]) / (high - low) for app in apps}
    for app, count in counts.items():
        print(f"{app:8s} {count / 1000:8.1f}k instructions a request")
    if len(counts) == 2:
        print(f"gateway / floor {counts['gateway'] / counts['floor']:.3f}x")
        if args.key is None and args.model == "pass":  # the page shows the keyless pass-through only
            _save(args.scenario, (low, high), counts)


def _save(scenario: str, requests: tuple[int, int], counts: dict[str, float]) -> None:
    """The reading, for the report (`report.instructions_section`)."""
    import machine

    reading = {"taken": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "commit": machine.git_commit(REPO).split(" ")[0], "scenario": scenario, "requests": list(requests),
               "floor": round(counts["floor"]), "gateway": round(counts["gateway"])}
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(reading, indent=2) + "\n")


def _count(app: str, scenario: str, requests: int, key: str | None = None, model: str = "pass") -> int:
    """Instructions of one whole run of `requests` requests, as callgrind collected them."""
    argv = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__,
            "--app", app, "--scenario", scenario, "--inner", str(requests),
            "--model", model] + (["--key", key] if key else [])
    env = {**os.environ, "PYTHONHASHSEED": "0"}  # the same dict and set layouts in every run
    done = subprocess.run(argv, capture_output=True, text=True, errors="replace", timeout=1800, env=env)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or found is None:
        sys.exit(f"{app} with {requests} requests failed:\n" + "\n".join(done.stderr.splitlines()[-15:]))
    return int(found.group(1))


def _drive(app_name: str, scenario: str, requests: int, key: str | None = None) -> None:
    """The inner run (under valgrind): the mock, the app, warm-up, then `requests` requests."""
    import gateway_config
    import mockserver

    with tempfile.TemporaryDirectory(prefix="gateway-instructions-") as work:
        workdir = Path(work)
        mock, url = mockserver.start(workdir, {max((os.cpu_count() or 1) - 1, 0)})  # the last core, as in the bench
        redis = _redis(workdir) if scenario == "limits" else None
        try:
            config = gateway_config.write(scenario, url, workdir / "config")
            os.environ.update(config.env)
            os.environ.update({"GATEWAY_DATA_DIR": str(workdir / "data"), "GATEWAY_WATCH": "0",
                               "BENCH_BASELINE_UPSTREAM": url})
            if redis is not None:
                os.environ["REDIS_URL"] = redis[1]
            if key is not None:
                secret = gateway_config.BENCH_KEY if key == "bench" else gateway_config.FREE_KEY
                AUTHORIZATION.append((b"authorization", f"Bearer {secret}".encode()))
            app = _floor() if app_name == "floor" else _gateway(config)
            import uvloop

            uvloop.run(_serve(app, requests))
        finally:
            mock.stop()
            if redis is not None:
                redis[0].terminate()
                redis[0].wait()


AUTHORIZATION: list[tuple[bytes, bytes]] = []  # the key header every request carries, if any


def _redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A Redis of the run's own (a free port, nothing written to disk), for the limits scenario."""
    import procs

    port = procs.free_port()
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no", "--dir", str(workdir)], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True).stdout.strip() != "PONG":
        if time.monotonic() > deadline or server.poll() is not None:
            server.kill()
            sys.exit("redis-server did not start")
        time.sleep(0.05)
    return server, f"redis://127.0.0.1:{port}/0"


def _floor() -> Any:
    import baseline

    return baseline.app


def _gateway(config: Any) -> Any:
    """The gateway's app, its timers pushed past the run (see the module's docstring)."""
    from gateway.observe import log, metrics
    from gateway.pipeline import directory
    from gateway.server import collector
    from gateway.server.app import create_app
    from gateway.store import database

    metrics.keep_flushing.__defaults__ = (NEVER,)
    collector.keep_frozen.__defaults__ = (NEVER,)
    directory.POLL_SECONDS = NEVER
    log.GATHER_SECONDS = NEVER
    opened = database.open_database

    def open_database(url: str | None, settings: Any) -> Any:
        found = opened(url, settings)
        found.flush_interval = NEVER
        return found

    database.open_database = open_database  # the runtime looks it up when the app starts
    app = create_app(str(config.routes), str(config.providers))
    collector.settle()
    return app


async def _serve(app: Any, requests: int) -> None:
    state: dict[str, Any] = {}
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    up, down = asyncio.Event(), asyncio.Event()

    async def send_lifespan(message: dict[str, Any]) -> None:
        if message["type"].startswith("lifespan.startup"):
            up.set()
        if message["type"].startswith("lifespan.shutdown"):
            down.set()

    await inbox.put({"type": "lifespan.startup"})
    lifespan = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": state},
                                       inbox.get, send_lifespan))
    await up.wait()
    await _requests(app, state, WARM_UP)
    await _requests(app, state, requests)
    await inbox.put({"type": "lifespan.shutdown"})
    await down.wait()
    await lifespan


async def _requests(app: Any, state: dict[str, Any], count: int) -> None:
    async def one_after_another(share: int) -> None:
        for _ in range(share):
            await _request(app, state)

    await asyncio.gather(*(one_after_another(count // CONCURRENCY) for _ in range(CONCURRENCY)))


async def _request(app: Any, state: dict[str, Any]) -> None:
    headers = [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
               (b"content-length", str(len(BODY)).encode()), *AUTHORIZATION]
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions",
             "query_string": b"", "root_path": "", "headers": headers, "client": ("127.0.0.1", 50000),
             "server": ("127.0.0.1", 8080), "state": dict(state),
             "gateway.server_watches": True}  # as the gateway's own server sets it
    sent = False
    finished = asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": BODY, "more_body": False}
        await finished.wait()
        return {"type": "http.disconnect"}

    status: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    await app(scope, receive, send)
    finished.set()
    if status != [200]:
        raise RuntimeError(f"the request was answered {status}")


if __name__ == "__main__":
    main()
