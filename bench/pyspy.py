"""Where the gateway's time goes: a py-spy sample of the pinned gateway under wrk load.

Optional: py-spy is not a project dependency, so the benchmark profiles only when it is
installed (`pip install py-spy`), and says so in the report otherwise.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import closed_loop
from calls import Call

FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>.*?)(?::(?P<line>\d+))?\)$")


def executable() -> str | None:
    """py-spy next to this Python first (the project venv), then on PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def _short(frame: str) -> str:
    """'func (pkg/mod.py:12)' -> 'pkg/mod.py:func'; absolute paths cut to the package."""
    match = FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    path = match.group("file")
    if path.startswith("/"):
        for marker in ("site-packages/", "/lib/python3.", "/gateway/"):
            if marker in path:
                tail = path.split(marker, 1)[1]
                path = ("gateway/" + tail) if marker == "/gateway/" else tail
                break
    return f"{path}:{match.group('func')}"


def _package(frame: str) -> str:
    """The top-level package a frame belongs to, to say which library the time goes to."""
    path = frame.split(":", 1)[0]
    if "/" in path:
        return path.split("/", 1)[0]
    return path.removesuffix(".py")  # a single-file module: uuid, json, baseline, ...


LAUNCH_FRAMES = ("gateway/cli.py:", "gateway/__main__.py:")


def summarize(collapsed: Path, top: int = 15) -> dict[str, Any]:
    """Self and inclusive sample shares from py-spy's collapsed-stack output.

    Under uvloop most stacks start at the coroutine that a C callback resumed, so
    "inclusive" here means "inside this function's frames", which is what a reader wants.
    """
    self_counts: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack.strip() or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short(f) for f in stack.split(";") if f.strip()]
        if not frames:
            continue
        total += count
        self_counts[frames[-1]] += count
        packages[_package(frames[-1])] += count
        for frame in set(frames):
            inclusive[frame] += count
    share = lambda c: round(100 * c / total, 1) if total else 0.0  # noqa: E731
    gateway_frames = [(f, c) for f, c in inclusive.most_common()
                      if f.startswith("gateway/") and not f.startswith(LAUNCH_FRAMES)]
    return {
        "samples": total,
        "self_by_package": [{"frame": p, "percent": share(c)} for p, c in packages.most_common(10)],
        "self_top": [{"frame": f, "percent": share(c)} for f, c in self_counts.most_common(top)],
        "gateway_inclusive_top": [{"frame": f, "percent": share(c)}
                                  for f, c in gateway_frames[:top]],
    }


def record(pid: int, call: Call, workdir: Path, out_dir: Path, stamp: str, seconds: float,
           connections: int, load_cores: set[int], label: str = "gateway") -> dict[str, Any]:
    """Sample pid with py-spy while wrk keeps it busy; keep the raw stacks beside the JSON."""
    spy = executable()
    if spy is None:
        return {"status": "skipped", "note": "py-spy is not installed"}
    collapsed = out_dir / f"{stamp}-{label}.collapsed.txt"
    script = closed_loop.write_script(call, workdir / f"profile-{label}.lua")
    load = threading.Thread(target=closed_loop.run_wrk,
                            args=(call, script, connections, seconds + 2, load_cores))
    load.start()
    argv = [spy, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "200",
            "--nonblocking", "--format", "raw", "--output", str(collapsed)]
    done = subprocess.run(argv, capture_output=True, text=True)
    load.join()
    if done.returncode != 0 or not collapsed.exists():
        return {"status": "failed", "note": (done.stderr or done.stdout)[-500:]}
    shown = f"py-spy record --pid PID --duration {int(seconds)} --rate 200 --nonblocking"
    return {"status": "measured", "command": shown,
            "raw": collapsed.name, **summarize(collapsed)}
