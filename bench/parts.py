"""What the floor's own CPU per request is made of: its server and its upstream client, apart.

`make bench` reports the gateway as a ratio to the bare pass-through (`baseline.py`), so a
target such as "CPU per request at most 1.33x the floor" leaves the gateway a budget of a
third of whatever the floor spends. This script measures the two halves of the floor on
their own, each pinned to the server core with the load on the other, as `make bench` runs:

- the floor: `baseline.py` whole, as `make bench` measures it;
- server: uvicorn (uvloop, httptools) answering a constant JSON body to wrk's POSTs, with
  uvicorn's own protocol and with the gateway's (`gateway.server.connections`);
- client: the floor's upstream calls (one pooled `aiohttp.ClientSession`, POST, read,
  release, 50 at a time) against the benchmark's nginx mock; the gateway's own plain call
  (`Upstream.fetch`: its head written straight onto aiohttp's pooled connections); and, as
  a lower bound for any client, the same exchange written on a bare asyncio protocol with
  httptools' response parser (no pooling policy, timeouts, TLS or errors: a measuring
  stick, not a client).

CPU is the process's user + system time over the measured requests. Nothing here is part
of the gateway. The medians are kept in `bench/results/parts.json` (with the commit they
were taken at), and docs/benchmarks.md shows the latest beside the timed figures.
Run: python bench/parts.py [--seconds 8] [--requests 40000] [--rounds 3]; about 2 minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

BODY = (b'{"model":"pass","messages":[{"role":"system","content":"You are terse."},'
        b'{"role":"user","content":"Say one short sentence about foxes."}],"max_tokens":64}')
ANSWER = (b'{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini",'
          b'"choices":[{"index":0,"message":{"role":"assistant","content":"The quick brown fox."},'
          b'"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":10,"total_tokens":22}}')
CONCURRENCY = 50
RESULT = HERE / "results" / "parts.json"
# The parts, in the order measured and shown: (key in parts.json, what it is).
PARTS = (
    ("floor", "the floor, whole (`baseline.py`)"),
    ("server_uvicorn", "server: uvicorn's protocol, a constant answer"),
    ("server_gateway", "server: the gateway's protocol, a constant answer"),
    ("client_aiohttp", "client: aiohttp, as the floor calls upstream"),
    ("client_gateway", "client: the gateway's plain call (`Upstream.fetch`)"),
    ("client_bare", "client: a bare protocol with httptools' parser (lower bound)"),
)


# --- the server half -------------------------------------------------------------------------

async def constant_app(scope: dict, receive, send) -> None:  # type: ignore[no-untyped-def]
    """An ASGI app that reads the body and answers the same JSON: the server's work alone."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await receive()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(ANSWER)).encode())]})
    await send({"type": "http.response.body", "body": ANSWER})


def _serve(port: int, protocol: str) -> None:
    import uvicorn

    http: object = "httptools"
    if protocol == "gateway":
        sys.path.insert(0, str(REPO))
        from gateway.server.connections import BoundedHttpProtocol

        http = BoundedHttpProtocol
    uvicorn.run(constant_app, host="127.0.0.1", port=port, loop="uvloop", http=http, ws="none",  # type: ignore[arg-type]
                access_log=False, log_level="warning", proxy_headers=False, server_header=False)


def _server_cost(protocol: str, seconds: int, server_cores: set[int], load_cores: set[int], work: Path,
                 upstream: str = "") -> float:
    """CPU microseconds per request of a server under wrk's load: uvicorn serving
    `constant_app` with `protocol`, or (protocol "floor") the whole floor, `baseline.py`."""
    import procs

    port = procs.free_port()
    argv = [sys.executable, __file__, "--serve", str(port), "--protocol", protocol]
    if protocol == "floor":
        argv = [sys.executable, str(HERE / "baseline.py"), "--port", str(port), "--upstream", upstream]
    server = procs.spawn(f"parts-{protocol}", argv, server_cores, work)
    try:
        procs.wait_http_ok(server, f"http://127.0.0.1:{port}/health")
        script = work / "post.lua"
        script.write_text(f"wrk.method = 'POST'\nwrk.body = '{BODY.decode()}'\n"
                          "wrk.headers['Content-Type'] = 'application/json'\n")
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        load = ["taskset", "-c", procs.cpu_list(load_cores), "wrk", "-t1", f"-c{CONCURRENCY}", "-s", str(script)]
        subprocess.run([*load, "-d2s", url], capture_output=True, check=True)  # warm-up
        before = procs.cpu_seconds(server.pid)
        done = subprocess.run([*load, f"-d{seconds}s", url], capture_output=True, text=True, check=True)
        spent = procs.cpu_seconds(server.pid) - before
        requests = int(next(line.split()[0] for line in done.stdout.splitlines() if "requests in" in line))
        return spent / requests * 1e6
    finally:
        server.stop()


# --- the client half -------------------------------------------------------------------------

async def _aiohttp_calls(url: str, count: int) -> None:
    """The floor's upstream call, as `baseline.py` makes it."""
    import aiohttp

    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=None))
    headers = {"content-type": "application/json"}

    async def one_after_another(share: int) -> None:
        for _ in range(share):
            upstream = await session.post(url, data=BODY, headers=headers)
            await upstream.read()
            upstream.release()

    try:
        await _measured(one_after_another, count)
    finally:
        await session.close()


async def _gateway_calls(url: str, count: int) -> None:
    """The gateway's plain upstream call, as its dispatcher makes it (no tracing)."""
    sys.path.insert(0, str(REPO))
    from gateway.providers.packs.wire import UpstreamRequest
    from gateway.providers.upstream import Upstream

    upstream = Upstream()
    await upstream.start()
    call = UpstreamRequest("POST", url, {"content-type": "application/json", "authorization": "Bearer sk-bench"}, BODY)

    async def one_after_another(share: int) -> None:
        for _ in range(share):
            reply = await upstream.fetch(call, 10.0, None)
            if reply.status != 200:
                raise RuntimeError(f"the mock answered {reply.status}")

    try:
        await _measured(one_after_another, count)
    finally:
        await upstream.close()


class _Exchange(asyncio.Protocol):
    """One kept-alive connection: write a request, parse the answer with httptools."""

    def __init__(self, idle: list[_Exchange]) -> None:
        import httptools

        self.idle = idle
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.chunks: list[bytes] = []
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        waiter, self.waiter = self.waiter, None
        body, self.chunks = b"".join(self.chunks), []
        self.idle.append(self)
        if waiter is not None:
            waiter.set_result((self.parser.get_status_code(), body))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("closed"))


async def _bare_calls(url: str, count: int) -> None:
    """The same exchange on a bare protocol: the least any client could spend."""
    host, _, rest = url.removeprefix("http://").partition(":")
    port, _, path = rest.partition("/")
    head = (f"POST /{path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(BODY)}\r\n\r\n").encode()
    loop = asyncio.get_running_loop()
    idle: list[_Exchange] = []

    async def one_after_another(share: int) -> None:
        for _ in range(share):
            if idle:
                connection = idle.pop()
            else:
                _, connection = await loop.create_connection(lambda: _Exchange(idle), host, int(port))
            connection.waiter = loop.create_future()
            assert connection.transport is not None
            connection.transport.writelines((head, BODY))
            status, _body = await connection.waiter
            if status != 200:
                raise RuntimeError(f"the mock answered {status}")

    await _measured(one_after_another, count)


async def _measured(one_after_another, count: int) -> None:  # type: ignore[no-untyped-def]
    await asyncio.gather(*(one_after_another(200) for _ in range(CONCURRENCY)))  # warm-up
    before = resource.getrusage(resource.RUSAGE_SELF)
    await asyncio.gather(*(one_after_another(count // CONCURRENCY) for _ in range(CONCURRENCY)))
    after = resource.getrusage(resource.RUSAGE_SELF)
    spent = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    print(f"{spent / count * 1e6:.2f}")


def _client_cost(kind: str, url: str, count: int, server_cores: set[int]) -> float:
    done = subprocess.run([sys.executable, __file__, "--client", kind, "--url", url, "--requests", str(count)],
                          capture_output=True, text=True, check=True,
                          preexec_fn=lambda: os.sched_setaffinity(0, server_cores))
    return float(done.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=8, help="each server measurement's length")
    parser.add_argument("--requests", type=int, default=40_000, help="each client measurement's requests")
    parser.add_argument("--rounds", type=int, default=3, help="measurements of each part (the median is shown)")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--protocol", default="uvicorn", help=argparse.SUPPRESS)
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    import uvloop

    if args.serve:
        _serve(args.serve, args.protocol)
        return
    if args.client:
        clients = {"aiohttp": _aiohttp_calls, "gateway": _gateway_calls, "bare": _bare_calls}
        uvloop.run(clients[args.client](args.url, args.requests))
        return

    import mockserver

    cores = sorted(os.sched_getaffinity(0))
    server_cores, load_cores = {cores[0]}, {cores[-1]}
    with tempfile.TemporaryDirectory(prefix="gateway-parts-") as folder:
        work = Path(folder)
        mock, mock_url = mockserver.start(work, load_cores)
        url = f"{mock_url}/v1/chat/completions"
        try:
            measures = {
                "floor": lambda: _server_cost("floor", args.seconds, server_cores, load_cores, work, mock_url),
                "server_uvicorn": lambda: _server_cost("uvicorn", args.seconds, server_cores, load_cores, work),
                "server_gateway": lambda: _server_cost("gateway", args.seconds, server_cores, load_cores, work),
                "client_aiohttp": lambda: _client_cost("aiohttp", url, args.requests, server_cores),
                "client_gateway": lambda: _client_cost("gateway", url, args.requests, server_cores),
                "client_bare": lambda: _client_cost("bare", url, args.requests, server_cores),
            }
            readings: dict[str, list[float]] = {key: [] for key in measures}
            for _ in range(args.rounds):  # interleaved, so drift spreads over every part alike
                for key, measure in measures.items():
                    readings[key].append(measure())
        finally:
            mock.stop()
    medians = {key: round(sorted(values)[len(values) // 2], 2) for key, values in readings.items()}
    for key, name in PARTS:
        print(f"{name:62s} {medians[key]:8.1f} us CPU a request  ({', '.join(f'{v:.1f}' for v in readings[key])})")
    _save(medians, args.rounds)


def _save(medians: dict[str, float], rounds: int) -> None:
    """The reading, for the report (`report.parts_section`)."""
    import machine

    reading = {"taken": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "commit": machine.git_commit(REPO).split(" ")[0], "rounds": rounds, "cpu_us": medians}
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(reading, indent=2) + "\n")

if __name__ == "__main__":
    main()
