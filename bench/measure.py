"""Measuring a set of servers side by side: throughput, open-loop latency, streams.

Runs are interleaved (run 1 of every server, then run 2 of every server, ...) so slow drift
on the machine spreads over all servers instead of biasing whichever ran last. Every figure
keeps its per-run values; the report takes the median and prints the spread.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import closed_loop
import procs
from calls import Call
from open_loop import run_open_loop


@dataclass(frozen=True)
class Settings:
    """Durations and placement; the defaults keep the whole `make bench` under 10 minutes."""

    runs: int = 3
    # Scenarios whose target compares two servers measured in turns take more runs: the
    # verdict is the median of their run-by-run ratios (bench/targets.py `paired`).
    paired_runs: int = 5
    connections: int = 50
    wrk_seconds: float = 5.0
    warmup_seconds: float = 1.0
    rates: tuple[float, ...] = (20.0, 200.0)
    latency_seconds: float = 5.0
    stream_rate: float = 50.0
    stream_seconds: float = 4.0
    server_cores: frozenset[int] = frozenset({0})
    load_cores: frozenset[int] = frozenset({1})


@dataclass
class Subject:
    """One server as the load generator sees it: where to send, and which process pays."""

    name: str
    chat: Call
    stream: Call | None = None
    proc: procs.Proc | None = None
    record: dict[str, Any] = field(default_factory=dict)

    def cpu(self) -> float | None:
        """CPU seconds of the server's process tree; None for the mock (not under test)."""
        return procs.tree_cpu_seconds(self.proc.pid) if self.proc else None

    def append(self, key: str, value: object) -> None:
        self.record.setdefault(key, []).append(value)


def _cpu_ms_per(before: float | None, after: float | None, count: int) -> float | None:
    if before is None or after is None or count == 0:
        return None
    return (after - before) * 1e3 / count


def throughput(subjects: list[Subject], settings: Settings, workdir: Path, runs: int | None = None) -> None:
    """wrk at a fixed connection count; also CPU per request from the server's /proc.
    The servers take turns, run by run, so each run of one has a neighbour of the other."""
    scripts = {s.name: closed_loop.write_script(s.chat, workdir / f"{s.name}.lua")
               for s in subjects}
    for subject in subjects:
        closed_loop.run_wrk(subject.chat, scripts[subject.name], settings.connections,
                            settings.warmup_seconds, set(settings.load_cores))
    for _ in range(runs or settings.runs):
        for subject in subjects:
            before = subject.cpu()
            result = closed_loop.run_wrk(subject.chat, scripts[subject.name],
                                         settings.connections, settings.wrk_seconds,
                                         set(settings.load_cores))
            subject.append("throughput_rps", result.rps)
            subject.append("cpu_ms_per_request",
                           _cpu_ms_per(before, subject.cpu(), result.requests))
            subject.append("wrk_p50_ms", result.p50_ms)
            subject.append("wrk_p99_ms", result.p99_ms)
            subject.append("errors", result.non_2xx + result.socket_errors)
            subject.record["wrk_command"] = result.command


def latency(subjects: list[Subject], settings: Settings, rates: tuple[float, ...]) -> None:
    """Open-loop percentiles at each fixed rate, every server at the same rates."""
    for _ in range(settings.runs):
        for rate in rates:
            for subject in subjects:
                result = run_open_loop(subject.chat, rate, settings.latency_seconds)
                runs = subject.record.setdefault("latency", {}).setdefault(str(int(rate)), {})
                for key in ("p50_ms", "p90_ms", "p99_ms", "lag_p99_ms"):
                    runs.setdefault(key, []).append(getattr(result, key))
                runs.setdefault("failed", []).append(result.failed)


def streams(subjects: list[Subject], settings: Settings) -> None:
    """Paced 20-chunk streams: time to first byte and the server's CPU per stream."""
    for _ in range(settings.runs):
        for subject in subjects:
            if subject.stream is None:
                continue
            before = subject.cpu()
            result = run_open_loop(subject.stream, settings.stream_rate,
                                   settings.stream_seconds, warmup=3)
            runs = subject.record.setdefault("stream", {})
            for key in ("ttfb_p50_ms", "ttfb_p90_ms", "ttfb_p99_ms", "p50_ms"):
                runs.setdefault(key, []).append(getattr(result, key))
            runs.setdefault("cpu_ms_per_stream", []).append(
                _cpu_ms_per(before, subject.cpu(), result.sent + 3))
            runs.setdefault("failed", []).append(result.failed)


def memory(subject: Subject, field_name: str, key: str) -> None:
    """Record VmRSS (now) or VmHWM (peak so far) of the server's largest process."""
    if subject.proc:
        subject.record[key] = procs.tree_max_memory_mib(subject.proc.pid, field_name)


def settle(seconds: float = 1.0) -> None:
    """Let a freshly started server finish its lazy start-up work before idle RSS is read."""
    time.sleep(seconds)
