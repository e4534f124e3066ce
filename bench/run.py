"""Entry point of `make bench`: run every scenario, keep the raw JSON, rewrite the report.

Usage: python bench/run.py [--quick] [--runs N] [--only pass,cache] [--no-profile]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import deps
import machine
import mockserver
import quiet
import report
import scenarios
import servers
import targets
from measure import Settings

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
DOC = REPO / "docs" / "benchmarks.md"

SCENARIOS: dict[str, Callable[[scenarios.Bench], dict[str, Any]]] = {
    "pass": scenarios.pass_through,
    "anthropic": scenarios.anthropic,
    "responses": scenarios.responses,
    "limits": scenarios.limits,
    "cache": scenarios.cache_hit,
    "semantic": scenarios.semantic,
    "ledger": scenarios.ledger,
    "keys": scenarios.keys,
    "jwt": scenarios.jwt_auth,
    "workers": scenarios.workers,
    "startup": scenarios.startup,
    "server": scenarios.server_choice,
}

# Python packages only the bench uses, per scenario (import names; bench/deps.py installs them).
PYTHON_NEEDS: dict[str, list[str]] = {"server": ["granian"]}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="one short run of everything, to check the bench itself")
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--only", default="", help="comma-separated scenario names")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--quiet-wait", type=float, default=60.0,
                        help="seconds to wait for other work on the machine to stop")
    parser.add_argument("--no-doc", action="store_true", help="keep docs/benchmarks.md as is")
    parser.add_argument("--render", metavar="RESULTS_JSON", default="",
                        help="measure nothing: rewrite docs/benchmarks.md from a saved run's raw figures")
    return parser.parse_args()


def placement() -> tuple[frozenset[int], frozenset[int]]:
    """Server on the first core, load on the second; one core means sharing, said in the report."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return frozenset(cores), frozenset(cores)
    return frozenset({cores[0]}), frozenset({cores[1]})


def settings_from(args: argparse.Namespace) -> Settings:
    server, load = placement()
    settings = Settings(server_cores=server, load_cores=load)
    if args.quick:
        settings = replace(settings, runs=1, paired_runs=1, wrk_seconds=2, latency_seconds=2,
                           stream_seconds=2, warmup_seconds=0.5)
    if args.runs:
        settings = replace(settings, runs=args.runs, paired_runs=max(args.runs, settings.paired_runs))
    return settings


def commands(settings: Settings) -> list[str]:
    """The commands behind the figures, with ports and temporary paths left symbolic."""
    return [
        "make bench    # = $(PY) bench/run.py",
        "taskset -c {server} python -m gateway serve --host 127.0.0.1 --port PORT "
        "--routes ROUTES --providers PROVIDERS --workers 1".format(
            server=",".join(map(str, sorted(settings.server_cores)))),
        "taskset -c {server} python bench/baseline.py --port PORT --upstream MOCK".format(
            server=",".join(map(str, sorted(settings.server_cores)))),
        "taskset -c {server} python -m granian {options} --host 127.0.0.1 --port PORT "
        "--factory gateway.server.app:served_app    # GATEWAY_ROUTES, GATEWAY_PROVIDERS set".format(
            server=",".join(map(str, sorted(settings.server_cores))),
            options=" ".join(servers.GRANIAN_OPTIONS)),
        "taskset -c {server} python -m granian {options} --host 127.0.0.1 --port PORT "
        "baseline:app    # PYTHONPATH=bench BENCH_BASELINE_UPSTREAM=MOCK".format(
            server=",".join(map(str, sorted(settings.server_cores))),
            options=" ".join(servers.GRANIAN_OPTIONS)),
        "taskset -c {load} nginx -p TMP -c TMP/nginx.conf    # bench/mock/nginx.conf.in".format(
            load=",".join(map(str, sorted(settings.load_cores)))),
        f"taskset -c LOAD wrk -t1 -c{settings.connections} -d{settings.wrk_seconds:g}s "
        "--latency -s SCRIPT.lua URL",
        "open loop (bench/open_loop.py, asyncio + aiohttp on the load core): "
        + ", ".join(f"{r:g}/s for {settings.latency_seconds:g} s" for r in settings.rates)
        + f"; streams {settings.stream_rate:g}/s for {settings.stream_seconds:g} s",
    ]


NOISY_PERCENT = 15.0
TIME_BUDGET_S = 540.0  # `make bench` must finish within 10 minutes
WAIT_BUDGET_S = 45.0  # all waits for a quiet machine together


# Typical seconds per scenario at the default settings (3 runs of 5 s), for the budget.
TYPICAL_S = {"pass": 190, "anthropic": 110, "responses": 65, "limits": 90, "cache": 50, "semantic": 40, "ledger": 100, "keys": 75, "jwt": 45,
             "workers": 80, "startup": 10, "server": 125, "profile": 55}


def expected_seconds(names: list[str], settings: Settings) -> float:
    """A rough forecast of how long the given scenarios take, scaled to the settings."""
    scale = settings.runs * settings.wrk_seconds / 15
    return sum(TYPICAL_S.get(name, 60) for name in names) * scale


def run_one(bench: scenarios.Bench, name: str, max_wait: float) -> dict[str, Any]:
    """One scenario, after waiting for quiet; records how busy other work kept the machine."""
    calm = quiet.wait_until_quiet(max_wait=max_wait)
    foreign = quiet.ForeignLoad((bench.mock_pid,))
    try:
        entry = SCENARIOS[name](bench)
    except Exception as error:  # noqa: BLE001 - a report with the error beats no report
        entry = {"status": "error", "note": str(error).splitlines()[0][:300],
                 "detail": traceback.format_exc()[-2000:]}
    entry["machine_before"] = calm
    entry["foreign_cpu_percent"] = foreign.percent()
    return entry


def run_scenarios(bench: scenarios.Bench, names: list[str], began: float) -> dict[str, Any]:
    """Run each scenario; one that breaks is recorded with its error and the rest go on.

    A scenario during which other processes took much of the machine is run once more when
    the time budget allows; the report says how busy the machine was either way.
    """
    out: dict[str, Any] = {}
    waited = 0.0
    for name in names:
        for attempt in (1, 2):
            started = time.perf_counter()
            print(f"bench: {name} ...", file=sys.stderr, flush=True)
            entry = run_one(bench, name, max(0.0, min(bench.quiet_wait,
                                                      WAIT_BUDGET_S - waited)))
            waited += entry["machine_before"]["waited_s"]
            took = time.perf_counter() - started
            print(f"bench: {name}: {entry.get('status')} in {took:.0f} s; other work "
                  f"{entry['machine_before']['busy_percent']}% before, "
                  f"{entry['foreign_cpu_percent']}% during. {entry.get('note', '')}".rstrip(),
                  file=sys.stderr, flush=True)
            noisy = (entry["foreign_cpu_percent"] > NOISY_PERCENT
                     and entry.get("status") == "measured")
            rest = names[names.index(name) + 1:] + ["profile"]
            affordable = (time.perf_counter() - began + took
                          + expected_seconds(rest, bench.settings) < TIME_BUDGET_S)
            if not (noisy and affordable and attempt == 1):
                break
            print(f"bench: {name} was disturbed by other work; once more", file=sys.stderr)
        entry["attempts"] = attempt
        out[name] = entry
    return out


HIGH_PRIORITY = -15
AUTOGROUP = Path("/proc/self/autogroup")


def raise_priority() -> int:
    """Run everything (inherited by the servers, mock and wrk) ahead of other work.

    On a shared machine a test suite on the same cores would otherwise take turns with the
    server under test; a high priority keeps most of that noise out. Needs root; without it
    the run goes on at normal priority and the report says so.
    """
    try:
        os.setpriority(os.PRIO_PROCESS, 0, HIGH_PRIORITY)
        # With scheduler autogroups, nice only ranks processes within one session; the
        # session's own weight against other sessions is its autogroup's nice.
        AUTOGROUP.write_text(str(HIGH_PRIORITY))
    except (PermissionError, OSError):
        pass
    return os.getpriority(os.PRIO_PROCESS, 0)


def render_only(path: str) -> int:
    """The page again from a run's raw figures (after a change to the report itself)."""
    results = json.loads(Path(path).read_text())
    results["targets"] = targets.check(results)
    DOC.write_text(report.render(results))
    print(f"bench: rewrote {DOC.relative_to(REPO)} from {path}")
    return 0


def main() -> int:
    args = parse_args()
    if args.render:
        return render_only(args.render)
    settings = settings_from(args)
    os.sched_setaffinity(0, settings.load_cores)  # the generator lives on the load core
    priority = raise_priority()
    deps.ensure_tools()
    names = [n for n in (args.only.split(",") if args.only else SCENARIOS) if n]
    for package, why in deps.ensure_python_packages(
            sorted({p for n in names for p in PYTHON_NEEDS.get(n, [])})).items():
        print(f"bench: {package} missing ({why}); the scenarios that need it are skipped",
              file=sys.stderr)
    started = datetime.now(timezone.utc)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    RESULTS_DIR.mkdir(exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    began = time.perf_counter()
    mock, mock_url = mockserver.start(workdir, set(settings.load_cores))
    try:
        bench = scenarios.Bench(mock_url, workdir, REPO, settings, args.quiet_wait, mock.pid)
        results: dict[str, Any] = {
            "stamp": stamp, "started": started.strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine.describe(REPO),
            "settings": {**settings.__dict__, "server_cores": sorted(settings.server_cores),
                         "load_cores": sorted(settings.load_cores), "nice": priority},
            "commands": commands(settings),
            "scenarios": run_scenarios(bench, names, began),
        }
        if not args.no_profile:
            print("bench: profile ...", file=sys.stderr, flush=True)
            results["profile"] = scenarios.profile(bench, RESULTS_DIR, stamp)
    finally:
        mock.stop()
    results["elapsed_s"] = time.perf_counter() - began
    results["targets"] = targets.check(results)
    out = RESULTS_DIR / f"{stamp}.json"
    out.write_text(json.dumps(results, indent=1, default=str) + "\n")
    if not args.no_doc:
        DOC.parent.mkdir(exist_ok=True)
        DOC.write_text(report.render(results))
    shutil.rmtree(workdir, ignore_errors=True)
    for t in results["targets"]:
        value = "–" if t["value"] is None else f"{t['value']:.2f} {t['unit']}"
        print(f"{t['verdict']:>12}  {t['target']}: {value} (target {t['limit']})")
    print(f"bench: wrote {out.relative_to(REPO)}"
          + ("" if args.no_doc else f" and {DOC.relative_to(REPO)}")
          + f" in {results['elapsed_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
