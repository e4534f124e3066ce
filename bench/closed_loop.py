"""Closed-loop throughput with wrk: a fixed number of connections, each sending as soon as
its previous answer is in. This finds the ceiling; latency under it is open_loop's job."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from calls import Call
from procs import cpu_list

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


@dataclass(frozen=True)
class WrkResult:
    """What one wrk run measured; non_2xx and errors make a broken server visible."""

    rps: float
    requests: int
    non_2xx: int
    socket_errors: int
    p50_ms: float
    p99_ms: float
    command: str


def _lua_string(text: str) -> str:
    """A Lua long-bracket literal: no escaping needed for JSON bodies."""
    return f"[==[{text}]==]"


def write_script(call: Call, path: Path) -> Path:
    """A wrk Lua script sending call's method, headers and body on every request."""
    lines = ['wrk.method = "POST"', f"wrk.body = {_lua_string(call.body.decode())}"]
    for name, value in call.all_headers().items():
        lines.append(f"wrk.headers[ {_lua_string(name)} ] = {_lua_string(value)}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _latency_ms(text: str, label: str) -> float:
    match = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", text, re.MULTILINE)
    return float(match.group(1)) * _UNITS[match.group(2)] if match else float("nan")


def parse(text: str, command: str) -> WrkResult:
    """Read wrk's report; raise when it does not look like one (wrk failed)."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    total = re.search(r"(\d+) requests in", text)
    if not rps or not total:
        raise RuntimeError(f"wrk output not understood:\n{text}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    return WrkResult(
        rps=float(rps.group(1)),
        requests=int(total.group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(g) for g in errors.groups()) if errors else 0,
        p50_ms=_latency_ms(text, "50%"),
        p99_ms=_latency_ms(text, "99%"),
        command=command,
    )


def run_wrk(call: Call, script: Path, connections: int, seconds: float,
            cores: set[int]) -> WrkResult:
    """One wrk run with a single thread (the load core is one core) and --latency."""
    seconds = max(1, round(seconds))  # wrk takes whole seconds
    argv = ["taskset", "-c", cpu_list(cores), "wrk", "-t1", f"-c{connections}",
            f"-d{seconds}s", "--latency", "-s", str(script), call.url]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30)
    shown = " ".join(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency",
                      "-s", script.name, "URL"])
    return parse(done.stdout + done.stderr, shown)
