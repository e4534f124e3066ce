"""Processes under test: spawn them pinned, wait until they answer, read their cost from /proc.

The figures the benchmark reports (CPU per request, RSS, start-up time) are read from the
kernel's own accounting rather than from the processes, so the gateway needs no hooks.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """Ask the kernel for an unused port on 127.0.0.1 (a short race we accept)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_list(cores: set[int]) -> str:
    """Render a core set the way taskset wants it."""
    return ",".join(str(c) for c in sorted(cores))


@dataclass
class Proc:
    """A process group the benchmark started and therefore may stop."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    spawned_at: float

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        """The end of the process's output, for error messages that explain a failure."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the whole group we started (workers included), politely first."""
        if not self.alive():
            return
        try:
            os.killpg(self.popen.pid, signal.SIGTERM)
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=timeout)
        except ProcessLookupError:
            pass


def spawn(
    name: str,
    argv: list[str],
    cores: set[int],
    log_dir: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Proc:
    """Start argv in its own process group, pinned with taskset, output to a log file.

    taskset is explicit even for "unpinned" runs because the benchmark itself is pinned
    to the load core and children would otherwise inherit that.
    """
    log_path = log_dir / f"{name}.log"
    log = log_path.open("wb")
    full_env = {**os.environ, **(env or {})}
    popen = subprocess.Popen(
        ["taskset", "-c", cpu_list(cores), *argv],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=full_env,
        cwd=cwd,
        # Its own process group (to stop it with its workers) but our session: a new
        # session would get a new scheduler autogroup and lose the priority run.py sets.
        process_group=0,
    )
    log.close()
    return Proc(name=name, popen=popen, log_path=log_path, spawned_at=time.perf_counter())


def wait_http_ok(proc: Proc, url: str, timeout: float = 30.0) -> float:
    """Poll url until it answers 200; return seconds since spawn (the start-up time)."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited early:\n{proc.log_tail()}")
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                if answer.status == 200:
                    return time.perf_counter() - proc.spawned_at
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        time.sleep(0.005)
    raise RuntimeError(f"{proc.name} did not answer {url} within {timeout}s:\n{proc.log_tail()}")


def tree_pids(root: int) -> list[int]:
    """The root and all its live descendants (uvicorn workers are children)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process (all its threads), in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # After the command name: state is field 3, utime 14 and stime 15 (1-based) overall.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def tree_cpu_seconds(root: int) -> float:
    """CPU of a server and its workers; the launcher wrapper (taskset) has exec'd away."""
    return sum(cpu_seconds(pid) for pid in tree_pids(root))


def memory_kib(pid: int, field: str) -> int:
    """A /proc/PID/status memory field (VmRSS, VmHWM) in KiB, 0 when unreadable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_max_memory_mib(root: int, field: str) -> float:
    """The largest per-process value in the tree: the budget is per server process."""
    return max((memory_kib(pid, field) for pid in tree_pids(root)), default=0) / 1024
