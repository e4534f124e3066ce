"""Is the machine quiet enough to measure? Other work on the same cores ruins every figure.

The benchmark cannot stop other processes (a test suite, a build), so before each scenario
it waits a while for the machine to calm down and records how busy it was, and the report
prints that next to the figures instead of passing noise off as a result.
"""

from __future__ import annotations

import time
from pathlib import Path


def _cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies over all cores from the first line of /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])
    return total - idle, total


def busy_fraction(seconds: float = 0.5) -> float:
    """Share of all cores' time spent on anything over a short window."""
    busy_a, total_a = _cpu_times()
    time.sleep(seconds)
    busy_b, total_b = _cpu_times()
    return (busy_b - busy_a) / max(1, total_b - total_a)


def wait_until_quiet(threshold: float = 0.10, max_wait: float = 60.0) -> dict[str, float]:
    """Wait (up to max_wait) until the machine is at most threshold busy; say how it went."""
    began = time.perf_counter()
    busy = busy_fraction()
    while busy > threshold and time.perf_counter() - began < max_wait:
        busy = busy_fraction(1.0)
    return {"busy_percent": round(100 * busy, 1),
            "waited_s": round(time.perf_counter() - began, 1)}


def _own_cpu_seconds(extra_pids: tuple[int, ...]) -> float:
    """CPU of this process, its finished children (servers, wrk), and still-running extras."""
    import os

    import procs

    times = os.times()
    own = times.user + times.system + times.children_user + times.children_system
    return own + sum(procs.cpu_seconds(pid) for pid in extra_pids)


class ForeignLoad:
    """How much CPU went to processes that are not the benchmark's during a stretch of time.

    Machine-wide busy time minus the benchmark's own (itself, the servers and wrk once they
    have been waited for, and long-lived helpers like the mock passed in by pid).
    """

    def __init__(self, extra_pids: tuple[int, ...] = ()) -> None:
        self._extra = extra_pids
        self._busy, self._total = _cpu_times()
        self._own = _own_cpu_seconds(extra_pids)

    def percent(self) -> float:
        """Foreign CPU as a share of all cores' time since construction."""
        import os

        busy, total = _cpu_times()
        ticks = os.sysconf("SC_CLK_TCK")
        foreign = (busy - self._busy) / ticks - (_own_cpu_seconds(self._extra) - self._own)
        return round(max(0.0, 100 * foreign * ticks / max(1, total - self._total)), 1)
