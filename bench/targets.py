"""The issue's performance targets, checked against one run's results.

They are checked here and only here (never in unit tests): a benchmark figure depends on
the machine, so it is reported with its verdict rather than failing a build.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from summary import spread

Results = dict[str, Any]


@dataclass(frozen=True)
class Verdict:
    target: str
    limit: str
    value: float | None
    unit: str
    verdict: str  # pass | fail | not measured
    note: str = ""
    # The same figure for the bare pass-through, where it has one: a target the floor
    # itself misses cannot be met by anything built on the same server and client.
    floor: float | None = None


def _node(results: Results, scenario: str, server: str, *path: str) -> Any:
    node: Any = results.get("scenarios", {}).get(scenario, {}).get("servers", {}).get(server)
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def median(results: Results, scenario: str, server: str, *path: str) -> float | None:
    """Median over runs of scenarios[scenario].servers[server][path...], None if absent."""
    node = _node(results, scenario, server, *path)
    if isinstance(node, list):
        value = spread(node)["median"]
    elif isinstance(node, (int, float)):
        value = float(node)
    else:
        return None
    return None if math.isnan(value) else value


def paired(results: Results, scenario: str, server: str, reference: str, *path: str) -> float | None:
    """`server`'s figure over `reference`'s, run by run, and the median of those ratios.

    Two servers of one scenario are measured in turns (run 1 of each, then run 2 of each...),
    so a pair of runs shares whatever the machine was doing at that moment: a slow minute
    slows both, and their ratio keeps what the code costs. Without matching runs, the
    ratio of the medians."""
    ours, theirs = _node(results, scenario, server, *path), _node(results, scenario, reference, *path)
    if not isinstance(ours, list) or not isinstance(theirs, list) or len(ours) != len(theirs):
        return _ratio(median(results, scenario, server, *path), median(results, scenario, reference, *path))
    ratios = [a / b for a, b in zip(ours, theirs) if a is not None and b and not math.isnan(a) and not math.isnan(b)]
    value = spread(ratios)["median"]
    return None if math.isnan(value) else value


def added(results: Results, scenario: str, server: str, *path: str) -> float | None:
    """A server's figure minus direct-to-mock's in the same scenario: what the server adds."""
    return _diff(median(results, scenario, server, *path), median(results, scenario, "direct", *path))


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def _judge(name: str, limit: str, unit: str, value: float | None,
           ok: Callable[[float], bool], why_missing: str, floor: float | None = None) -> Verdict:
    if value is None:
        return Verdict(name, limit, None, unit, "not measured", why_missing, floor)
    return Verdict(name, limit, value, unit, "pass" if ok(value) else "fail", "", floor)


def _why(results: Results, scenario: str) -> str:
    entry = results.get("scenarios", {}).get(scenario, {})
    return entry.get("note", "") or f"scenario {scenario} did not run"


def check(results: Results) -> list[dict[str, Any]]:
    """Every performance target the issues set, with its value and verdict.

    Where two issues set one figure, the later (stricter or better-founded) limit is
    checked: #22 replaced issue 9's throughput, latency and worker-scaling limits."""
    m = lambda *a: median(results, *a)  # noqa: E731
    pass_why, anth_why, resp_why = _why(results, "pass"), _why(results, "anthropic"), _why(results, "responses")
    limits_why, ledger_why = _why(results, "limits"), _why(results, "ledger")
    peaks = [m(s, "gateway", "rss_peak_mib") for s in ("pass", "anthropic", "limits", "cache")]
    peaks = [p for p in peaks if p is not None]
    pass_added = lambda server, *path: added(results, "pass", server, *path)  # noqa: E731
    baseline_rps = m("pass", "baseline", "throughput_rps")
    workers_floor = _ratio(m("workers", "baseline-two", "throughput_rps"), m("workers", "baseline-one", "throughput_rps"))
    verdicts = [
        _judge("#22 throughput vs baseline (50 connections)", ">= 0.75x", "x",
               paired(results, "pass", "gateway", "baseline", "throughput_rps"),
               lambda v: v >= 0.75, pass_why, 1.0 if baseline_rps else None),
        _judge("#22 CPU per request vs baseline", "<= 1.33x", "x",
               paired(results, "pass", "gateway", "baseline", "cpu_ms_per_request"),
               lambda v: v <= 1.33, pass_why, 1.0 if baseline_rps else None),
        _judge("#22 added latency p50 at 200/s", "<= 1.0 ms", "ms", pass_added("gateway", "latency", "200", "p50_ms"),
               lambda v: v <= 1.0, pass_why, pass_added("baseline", "latency", "200", "p50_ms")),
        _judge("#22 added latency p99 at 200/s", "<= 2.0 ms", "ms", pass_added("gateway", "latency", "200", "p99_ms"),
               lambda v: v <= 2.0, pass_why, pass_added("baseline", "latency", "200", "p99_ms")),
        _judge("#9 streaming TTFB added (p50)", "<= 1.5 ms", "ms", pass_added("gateway", "stream", "ttfb_p50_ms"),
               lambda v: v <= 1.5, pass_why, pass_added("baseline", "stream", "ttfb_p50_ms")),
        _judge("#9 CPU per 20-chunk stream", "<= 6 ms", "ms",
               m("pass", "gateway", "stream", "cpu_ms_per_stream"), lambda v: v <= 6, pass_why,
               m("pass", "baseline", "stream", "cpu_ms_per_stream")),
        _judge("#22 Anthropic translation: throughput vs pass-through", ">= 0.8x", "x",
               paired(results, "anthropic", "gateway", "gateway-pass", "throughput_rps"),
               lambda v: v >= 0.8, anth_why),
        _judge("#18 Responses in, chat out: throughput vs chat pass-through", ">= 0.85x", "x",
               paired(results, "responses", "gateway", "gateway-pass", "throughput_rps"),
               lambda v: v >= 0.85, resp_why),
        _judge("#22 Redis-backed key limits: throughput vs without", ">= 0.85x", "x",
               _limits_ratio(results), lambda v: v >= 0.85, limits_why),
        _judge("#22 Redis-backed key limits: added p50 at 200/s vs without", "<= 0.3 ms", "ms",
               _limits_added(results), lambda v: v <= 0.3, limits_why),
        _judge("#19 ledger on (SQLite): CPU per request vs no database", "<= 1.05x", "x",
               paired(results, "ledger", "ledger-sqlite", "ledger-off", "cpu_ms_per_request"),
               lambda v: v <= 1.05, ledger_why),
        _judge("#19 ledger on (PostgreSQL): CPU per request vs no database", "<= 1.05x", "x",
               paired(results, "ledger", "ledger-postgresql", "ledger-off", "cpu_ms_per_request"),
               lambda v: v <= 1.05, ledger_why),
        _judge("#23 bearer JWT (cached key): added p50 at 200/s vs a static key", "<= 0.1 ms", "ms",
               _diff(added(results, "jwt", "jwt-rs256", "latency", "200", "p50_ms"),
                     added(results, "jwt", "static-key", "latency", "200", "p50_ms")),
               lambda v: v <= 0.1, _why(results, "jwt")),
        _judge("#26 semantic hit added over an exact hit, p50 at 200/s (embedding call excluded)", "<= 2 ms", "ms",
               _semantic_added(results), lambda v: v <= 2.0, _why(results, "semantic")),
        _judge("#9 peak RSS (largest gateway process, all scenarios)", "<= 80 MiB", "MiB",
               max(peaks) if peaks else None, lambda v: v <= 80, pass_why, m("pass", "baseline", "rss_peak_mib")),
        _judge("#22 two workers vs one (throughput)", ">= the baseline's", "x",
               _ratio(m("workers", "gateway-two", "throughput_rps"), m("workers", "gateway-one", "throughput_rps")),
               lambda v: workers_floor is not None and v >= workers_floor, _why(results, "workers"), workers_floor),
        *server_verdicts(results),
    ]
    return [asdict(v) for v in verdicts]


SHIPPED = "uvicorn"  # the server `gateway serve` runs; bench/scenarios.py SHIPPED_SERVER


def shipped_and_other(results: Results) -> tuple[str, str]:
    """(the server `gateway serve` runs, the one it is measured against) in the `server` scenario."""
    shipped = results.get("scenarios", {}).get("server", {}).get("shipped", SHIPPED)
    return shipped, ("granian" if shipped == "uvicorn" else "uvicorn")


def server_ratio(results: Results, app: str, figure: str) -> float | None:
    """`app` (gateway or baseline) under the shipped server over the same app under the other,
    the median of run-by-run ratios (the four servers of the scenario take turns)."""
    shipped, other = shipped_and_other(results)
    return paired(results, "server", f"{app}-{shipped}", f"{app}-{other}", figure)


def server_verdicts(results: Results) -> list[Verdict]:
    """The shipped server must be the one that serves users faster: more requests/s and a lower
    median latency for the gateway than the other server gives it, on the same core, same run.
    The floor column is the same ratio for the bare pass-through."""
    shipped, other = shipped_and_other(results)
    why = _why(results, "server")
    return [
        _judge(f"server: shipped ({shipped}) vs {other}, gateway throughput", ">= 1.0x", "x",
               server_ratio(results, "gateway", "throughput_rps"), lambda v: v >= 1.0, why,
               server_ratio(results, "baseline", "throughput_rps")),
        _judge(f"server: shipped ({shipped}) vs {other}, gateway wrk p50", "<= 1.0x", "x",
               server_ratio(results, "gateway", "wrk_p50_ms"), lambda v: v <= 1.0, why,
               server_ratio(results, "baseline", "wrk_p50_ms")),
    ]


def _limits_ratio(results: Results) -> float | None:
    """Limits on against the same gateway's key without limits, in the same run (older
    results, which had no such key, against the pass-through scenario's gateway)."""
    if median(results, "limits", "gateway-nolimits", "throughput_rps") is not None:
        return paired(results, "limits", "gateway", "gateway-nolimits", "throughput_rps")
    return _ratio(median(results, "limits", "gateway", "throughput_rps"), median(results, "pass", "gateway", "throughput_rps"))


def _limits_added(results: Results) -> float | None:
    path = ("latency", "200", "p50_ms")
    without = added(results, "limits", "gateway-nolimits", *path)
    if without is None:
        without = added(results, "pass", "gateway", *path)
    return _diff(added(results, "limits", "gateway", *path), without)


def _semantic_added(results: Results) -> float | None:
    """A semantic hit's p50 less an exact hit's and less the embedding call's (measured on its own)."""
    path = ("latency", "200", "p50_ms")
    hit, exact, embedding = (median(results, "semantic", server, *path)
                             for server in ("semantic-hit", "exact-hit", "embedding"))
    if hit is None or exact is None or embedding is None:
        return None
    return hit - exact - embedding
