"""docs/benchmarks.md, regenerated from one run's raw results.

The page is written for an operator deciding whether the gateway's overhead is acceptable:
targets first, then every figure as median (min-max over runs) with its ratio to the bare
baseline, then the machine and the exact commands so anyone can reproduce it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from summary import spread
from targets import added, median, paired, server_ratio, shipped_and_other

Results = dict[str, Any]


def _num(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def _runs(values: list[float] | None, digits: int = 2) -> str:
    """'median (min–max)' so the spread over runs is always printed next to the figure."""
    if not values:
        return "–"
    s = spread(values)
    if s["n"] == 0:
        return "–"
    if s["n"] == 1:
        return _num(s["median"], digits)
    return f"{_num(s['median'], digits)} ({_num(s['min'], digits)}–{_num(s['max'], digits)})"


def _get(record: dict[str, Any], *path: str) -> Any:
    node: Any = record
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def _ratio(a: float | None, b: float | None) -> str:
    return "–" if a is None or not b else f"{a / b:.2f}x"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines + [""]


def targets_section(results: Results) -> list[str]:
    rows = []
    for t in results.get("targets", []):
        mark = {"pass": "**pass**", "fail": "**FAIL**"}.get(t["verdict"], t["verdict"])
        value = "–" if t["value"] is None else f"{_figure(t['value'], t['limit'])} {t['unit']}"
        floor = t.get("floor")
        floor_text = "–" if floor is None else f"{floor:.2f} {t['unit']}"
        rows.append([t["target"], t["limit"], value, floor_text,
                     mark + (f" ({t['note']})" if t["note"] and t["value"] is None else "")])
    return (["## Targets", ""]
            + _table(["target", "limit", "gateway", "bare baseline", "verdict"], rows)
            + ["\"Bare baseline\" is the same figure for `bench/baseline.py`, the pass-through "
               "that does nothing but forward: the floor that Starlette, uvicorn and aiohttp set "
               "on this machine for anything built on them.", ""]
            + reading_section(results))


def reading_section(results: Results) -> list[str]:
    """Why each failing target fails, from this run's own figures."""
    lines: list[str] = []
    for t in results.get("targets", []):
        if t["verdict"] != "fail":
            continue
        name, floor = t["target"], t.get("floor")
        if "throughput vs baseline" in name:
            lines.append(_throughput_budget(results))
        elif name.startswith("server:"):
            lines.append(_server_failed(results, t))
        elif "Anthropic" in name:
            lines.append(_translation_cost(results))
        elif floor is not None and _bound(t["limit"]) is None:
            lines.append(f"- **{name}**: the gateway {t['value']:.2f}{t['unit']}, the bare baseline "
                         f"{floor:.2f}{t['unit']} in the same run.")
        elif floor is not None and not _within(floor, t["limit"]) and t["limit"].startswith(">="):
            lines.append(f"- **{name}**: the bare baseline reaches only {floor:.2f}{t['unit']} on this machine "
                         f"(the gateway {t['value']:.2f}{t['unit']}), so the limit of {t['limit'].removeprefix('>= ')} "
                         "is out of reach for anything served the same way here.")
        elif floor is not None and not _within(floor, t["limit"]):
            lines.append(f"- **{name}**: the bare baseline misses this limit too ({floor:.2f} {t['unit']} "
                         f"against a limit of {t['limit'].removeprefix('<= ')}). "
                         f"What the gateway itself adds on top of the floor is "
                         f"{t['value'] - floor:.2f} {t['unit']}; the rest is the server, client and "
                         "scheduling cost every pass-through on this machine pays.")
        elif floor is not None:
            lines.append(f"- **{name}**: the gateway adds {t['value'] - floor:.2f} {t['unit']} over the "
                         f"bare baseline's {floor:.2f} {t['unit']}; see the profile below for where it goes.")
        else:
            lines.append(f"- **{name}**: {_figure(t['value'], t['limit'])} {t['unit']} against a limit of {t['limit']}, both "
                         "measured in this run.")
    if not lines:
        return []
    return ["### Reading the failed targets", ""] + lines + [""]


def _figure(value: float, limit: str) -> str:
    """A target's figure to two decimals, or three where two would read as the limit itself
    (1.055 against "<= 1.05x" fails, and "1.05" would not show why)."""
    bound = _bound(limit)
    text = f"{value:.2f}"
    return f"{value:.3f}" if bound is not None and float(text) == bound and value != bound else text


def _bound(limit: str) -> float | None:
    """The number of a limit such as ">= 0.85x" or "<= 1.2 ms"; None for a relative one."""
    try:
        return float(limit.split()[1].rstrip("x"))
    except (IndexError, ValueError):
        return None


def _within(value: float, limit: str) -> bool:
    bound = _bound(limit)
    if bound is None:
        return True
    return value <= bound if limit.startswith("<=") else value >= bound


def _translation_cost(results: Results) -> str:
    """What translating to Anthropic's format adds per request, against what the limit allows."""
    plain = median(results, "anthropic", "gateway-pass", "cpu_ms_per_request")
    translated = median(results, "anthropic", "gateway", "cpu_ms_per_request")
    if plain is None or translated is None:
        return "- **Anthropic translation**: CPU per request was not measured."
    return (f"- **Anthropic translation**: a translated request costs {(translated - plain) * 1000:.0f} µs more "
            f"than a pass-through in the same process ({translated:.3f} ms against {plain:.3f} ms); 0.8x the "
            f"throughput would allow {plain * 250:.0f} µs. That time is the `anthropic` pack's request and answer templates "
            "running in Jinja's sandbox (the pass-through pack runs none); run to run, this machine's "
            "figures for the two routes move by a tenth or more, so a ratio this close to the limit can "
            "land on either side of it.")


def _throughput_budget(results: Results) -> str:
    """The CPU a request may cost at 0.75x the baseline's throughput, against what it costs."""
    g_cpu = median(results, "pass", "gateway", "cpu_ms_per_request")
    b_cpu = median(results, "pass", "baseline", "cpu_ms_per_request")
    if g_cpu is None or b_cpu is None:
        return "- **throughput**: CPU per request was not measured."
    budget = b_cpu * (1 / 0.75 - 1)
    return (f"- **throughput**: both servers are CPU-bound on one core, so throughput is the inverse "
            f"of CPU per request. At 0.75x the baseline a request may cost {b_cpu / 0.75:.3f} ms, which "
            f"leaves {budget * 1000:.0f} µs for everything the gateway does beyond forwarding (key "
            f"check, route plan, limits, pack rendering, one JSON decode and encode each way, "
            f"metrics, the log line, the usage ledger). It spends {(g_cpu - b_cpu) * 1000:.0f} µs "
            f"({g_cpu:.3f} ms against the baseline's {b_cpu:.3f} ms); the profile below splits "
            "that by package and function.")


def _throughput_rows(results: Results, scenario: str, reference: float | None) -> list[list[str]]:
    rows = []
    servers = results["scenarios"][scenario].get("servers", {})
    for name, record in servers.items():
        if "throughput_rps" not in record:
            continue
        rps = median(results, scenario, name, "throughput_rps")
        errors = sum(v or 0 for v in record.get("errors", []))
        rows.append([name, _runs(record["throughput_rps"], 0), _ratio(rps, reference),
                     _runs(record.get("cpu_ms_per_request"), 3),
                     _runs(record.get("wrk_p50_ms")), _runs(record.get("wrk_p99_ms")),
                     str(errors)])
    return rows


def throughput_table(results: Results, scenario: str) -> list[str]:
    reference = median(results, "pass", "baseline", "throughput_rps")
    rows = _throughput_rows(results, scenario, reference)
    if not rows:
        return []
    header = ["server", "requests/s", "x baseline", "CPU ms/request", "wrk p50 ms",
              "wrk p99 ms", "errors"]
    return ["Closed loop, 50 connections (wrk):", ""] + _table(header, rows)


def latency_table(results: Results, scenario: str) -> list[str]:
    servers = results["scenarios"][scenario].get("servers", {})
    rows = []
    for rate in results["settings"]["rates"]:
        key = str(int(rate))
        direct_p50 = median(results, scenario, "direct", "latency", key, "p50_ms")
        direct_p99 = median(results, scenario, "direct", "latency", key, "p99_ms")
        for name, record in servers.items():
            runs = _get(record, "latency", key)
            if not runs:
                continue
            p50 = median(results, scenario, name, "latency", key, "p50_ms")
            p99 = median(results, scenario, name, "latency", key, "p99_ms")
            added = name != "direct"
            rows.append([f"{key}/s", name, _runs(runs["p50_ms"], 3), _runs(runs["p90_ms"], 3),
                         _runs(runs["p99_ms"], 3),
                         _num(p50 - direct_p50, 3) if added and p50 and direct_p50 else "–",
                         _num(p99 - direct_p99, 3) if added and p99 and direct_p99 else "–",
                         str(sum(runs.get("failed", [])))])
    if not rows:
        return []
    header = ["rate", "server", "p50 ms", "p90 ms", "p99 ms", "added p50 ms", "added p99 ms",
              "failed"]
    return ["Open loop, fixed rate (latency measured from send to last byte):", ""] + _table(
        header, rows)


def stream_table(results: Results, scenario: str) -> list[str]:
    servers = results["scenarios"][scenario].get("servers", {})
    direct = median(results, scenario, "direct", "stream", "ttfb_p50_ms")
    base_cpu = median(results, "pass", "baseline", "stream", "cpu_ms_per_stream")
    rows = []
    for name, record in servers.items():
        runs = record.get("stream")
        if not runs:
            continue
        ttfb = median(results, scenario, name, "stream", "ttfb_p50_ms")
        cpu = median(results, scenario, name, "stream", "cpu_ms_per_stream")
        rows.append([name, _runs(runs["ttfb_p50_ms"], 3), _runs(runs["ttfb_p99_ms"], 3),
                     _num(ttfb - direct, 3) if name != "direct" and ttfb and direct else "–",
                     _runs(runs["p50_ms"], 1),
                     _runs([v for v in runs["cpu_ms_per_stream"] if v is not None], 2),
                     _ratio(cpu, base_cpu) if cpu else "–", str(sum(runs.get("failed", [])))])
    if not rows:
        return []
    rate = results["settings"]["stream_rate"]
    header = ["server", "TTFB p50 ms", "TTFB p99 ms", "added TTFB p50 ms", "whole stream p50 ms",
              "CPU ms/stream", "CPU x baseline", "failed"]
    return [f"Streams of 20 chunks paced 10 ms apart, {rate:.0f} streams/s open loop:",
            ""] + _table(header, rows)


def memory_table(results: Results) -> list[str]:
    servers = results["scenarios"]["pass"].get("servers", {})
    start = results["scenarios"].get("startup", {}).get("servers", {})
    base = servers.get("baseline", {})
    rows = []
    for name in ("baseline", "gateway"):
        record = servers.get(name, {})
        startup = _get(start, name, "startup_s") or []
        base_start = _get(start, "baseline", "startup_s") or []
        rows.append([name, _num(record.get("rss_idle_mib"), 1), _num(record.get("rss_peak_mib"), 1),
                     _ratio(record.get("rss_peak_mib"), base.get("rss_peak_mib")),
                     _runs([v * 1e3 for v in startup], 0),
                     _ratio(spread(startup)["median"] if startup else None,
                            spread(base_start)["median"] if base_start else None)])
    header = ["server", "idle RSS MiB", "peak RSS MiB", "peak x baseline",
              "start-up ms (spawn to /health 200)", "start-up x baseline"]
    return ["Memory (VmRSS after start-up, VmHWM after the load) and start-up time:", ""] + \
        _table(header, rows)


SCENARIO_TITLES = {
    "pass": "OpenAI pass-through",
    "anthropic": "Anthropic translation (OpenAI in, Anthropic Messages upstream)",
    "responses": "Responses API in, chat completions upstream (against chat pass-through)",
    "limits": "Key limits on, state in Redis",
    "cache": "Cache hit",
    "semantic": "Semantic cache hit against an exact hit (the embedding call measured on its own)",
    "ledger": "The request ledger: no database, SQLite, PostgreSQL",
    "keys": "10,000 keys made by the admin API against one key in routes.yaml",
    "jwt": "A bearer JWT (RS256, cached JWKS key) against a static key",
    "workers": "Two workers against one",
    "server": "The server: uvicorn (shipped) against granian",
}


BUSY_WARNING_PERCENT = 10.0


def _busy_warning(entry: dict[str, Any]) -> list[str]:
    """Say so when other processes were using the machine as the scenario began."""
    calm = entry.get("machine_before") or {}
    before, during = calm.get("busy_percent", 0.0), entry.get("foreign_cpu_percent", 0.0)
    if max(before, during) <= BUSY_WARNING_PERCENT:
        return [f"Other work on the machine: {before:.0f}% before, {during:.0f}% during.", ""]
    return [f"**Warning:** other processes used the machine ({before:.0f}% of all cores "
            f"before this scenario, after waiting {calm.get('waited_s', 0):.0f} s; "
            f"{during:.0f}% during it); these figures are noisy.", ""]


def scenario_section(results: Results, scenario: str) -> list[str]:
    entry = results["scenarios"].get(scenario)
    lines = [f"## {SCENARIO_TITLES[scenario]}", ""]
    if entry is None:
        return lines + ["Not run.", ""]
    if entry.get("status") != "measured":
        lines += [f"**{entry.get('status')}**: {entry.get('note', '')}", ""]
        if entry.get("detail"):
            lines += ["```", entry["detail"], "```", ""]
        return lines
    if entry.get("note"):
        lines += [f"Note: {entry['note']}.", ""]
    lines += _busy_warning(entry)
    if entry.get("evidence"):
        lines += ["Checks: " + ", ".join(f"{k} = `{v}`" for k, v in entry["evidence"].items()),
                  ""]
    if scenario == "limits":
        lines += redis_note(results)
    if scenario == "ledger":
        lines += ledger_note(results)
    if scenario == "keys":
        lines += keys_note(results)
    if scenario == "jwt":
        lines += jwt_note(results)
    if scenario == "semantic":
        lines += semantic_note(results)
    if scenario == "server":
        return lines + server_tables(results)
    lines += throughput_table(results, scenario)
    if scenario != "workers":
        lines += latency_table(results, scenario) + stream_table(results, scenario)
    if scenario == "pass":
        lines += memory_table(results)
    return lines


def semantic_note(results: Results) -> list[str]:
    """What a semantic hit adds over an exact hit once its embedding call is taken out."""
    p50 = {name: median(results, "semantic", name, "latency", "200", "p50_ms")
           for name in ("semantic-hit", "exact-hit", "embedding")}
    if any(v is None for v in p50.values()):
        return []
    rest = p50["semantic-hit"] - p50["exact-hit"] - p50["embedding"]  # type: ignore[operator]
    return [f"At 200/s, p50: semantic hit {p50['semantic-hit']:.3f} ms = exact hit {p50['exact-hit']:.3f} ms "
            f"+ embedding call {p50['embedding']:.3f} ms (an embeddings request through the gateway, measured on "
            f"its own) + {rest:.3f} ms for the semantic lookup itself. A miss adds only the embedding call.", ""]


LEDGER_CPU_LIMIT = 1.05  # issue: at most 5% more CPU per request with the ledger on


def ledger_note(results: Results) -> list[str]:
    """Each database against no database in the same run: CPU per request and added p50."""
    p50_off = added(results, "ledger", "ledger-off", "latency", "200", "p50_ms")
    lines = []
    for name, label in (("ledger-sqlite", "SQLite"), ("ledger-postgresql", "PostgreSQL")):
        ratio = paired(results, "ledger", name, "ledger-off", "cpu_ms_per_request")
        p50 = added(results, "ledger", name, "latency", "200", "p50_ms")
        if ratio is None:
            continue
        verdict = "pass" if ratio <= LEDGER_CPU_LIMIT else "FAIL"
        line = f"- ledger on ({label}): CPU per request {_figure(ratio, '<= 1.05x')}x the gateway without a database ({verdict}: <= 1.05x)"
        if p50 is not None and p50_off is not None:
            line += f"; added p50 at 200/s {p50:.2f} ms against {p50_off:.2f} ms ({p50 - p50_off:+.2f} ms)"
        lines.append(line + ".")
    return lines + [""] if lines else []


def keys_note(results: Results) -> list[str]:
    """The issue's measure: added p50 with 10,000 API keys against one YAML key, same run."""
    one = added(results, "keys", "keys-yaml", "latency", "200", "p50_ms")
    many = added(results, "keys", "keys-api-10000", "latency", "200", "p50_ms")
    if one is None or many is None:
        return []
    return [f"Added p50 at 200/s: {many:.2f} ms with 10,000 API keys against {one:.2f} ms with one "
            f"routes.yaml key ({many - one:+.2f} ms). The key is found by one dict lookup either way.", ""]


JWT_ADDED_LIMIT_MS = 0.1  # issue: a cached-key JWT adds at most 0.1 ms to a request


def jwt_note(results: Results) -> list[str]:
    """The issue's measure: added p50 with a bearer JWT against a static key, same run."""
    key = added(results, "jwt", "static-key", "latency", "200", "p50_ms")
    token = added(results, "jwt", "jwt-rs256", "latency", "200", "p50_ms")
    if key is None or token is None:
        return []
    verdict = "pass" if token - key <= JWT_ADDED_LIMIT_MS else "FAIL"
    return [f"Added p50 at 200/s: {token:.2f} ms with a bearer JWT against {key:.2f} ms with a static key "
            f"({token - key:+.2f} ms; {verdict}: <= +{JWT_ADDED_LIMIT_MS} ms).", ""]


def redis_note(results: Results) -> list[str]:
    """Redis-backed limits against a key without limits on the same gateway (+0.3 ms p50 allowed)."""
    with_redis = added(results, "limits", "gateway", "latency", "200", "p50_ms")
    without = added(results, "limits", "gateway-nolimits", "latency", "200", "p50_ms")
    against = "a key without limits on the same gateway"
    if without is None:  # results from before the scenario measured a key without limits
        without, against = added(results, "pass", "gateway", "latency", "200", "p50_ms"), "the pass-through"
    if with_redis is None or without is None:
        return []
    line = (f"Added p50 at 200/s: {with_redis:.2f} ms with Redis-backed key limits against {without:.2f} ms "
            f"for {against} ({with_redis - without:+.2f} ms; the limit is +0.3 ms).")
    if with_redis - without > 0.3:
        line += (" The difference is one Redis round trip before the upstream call (the settle after the "
                 "answer runs once the client has it) plus redis-py's work; at 200/s each request finds "
                 "Redis idle, and waking an idle process is most of a round trip on this machine.")
    return [line, ""]


APPS = (("baseline", "floor (bench/baseline.py)"), ("gateway", "gateway"))


def server_tables(results: Results) -> list[str]:
    """Four servers of one run: the floor and the gateway, each under uvicorn and granian."""
    servers = results["scenarios"]["server"].get("servers", {})
    shipped, other = shipped_and_other(results)
    rows = []
    for app, label in APPS:
        for server in (shipped, other):
            record = servers.get(f"{app}-{server}", {})
            rows.append([label, server + (" (shipped)" if server == shipped else ""),
                         _runs(record.get("throughput_rps"), 0), _runs(record.get("cpu_ms_per_request"), 3),
                         _runs(record.get("wrk_p50_ms")), _runs(record.get("wrk_p99_ms")),
                         _num(record.get("rss_peak_mib"), 1), str(record.get("processes", "–")),
                         str(sum(v or 0 for v in record.get("errors", [])))])
    lines = ["The OpenAI pass-through, closed loop at 50 connections (wrk, the same script and mock as "
             "above), each server pinned to the server core and the four taking turns run by run. "
             "Granian runs with `granian " + " ".join(_granian_options(results)) + "`: one worker, one "
             "single-threaded runtime, like uvicorn's one process; its supervisor is a second "
             "process, and CPU is counted for the whole process tree.", ""]
    lines += _table(["app", "server", "requests/s", "CPU ms/request", "wrk p50 ms", "wrk p99 ms",
                     "peak RSS MiB", "processes", "errors"], rows)
    ratio_rows = []
    for server in (shipped, other):
        g, b = f"gateway-{server}", f"baseline-{server}"
        ratio_rows.append([server, _x(paired(results, "server", g, b, "throughput_rps")),
                           _x(paired(results, "server", g, b, "cpu_ms_per_request")),
                           _x(paired(results, "server", g, b, "wrk_p50_ms"))])
    lines += ["The gateway against the floor on the same server (median of run-by-run ratios):", ""]
    lines += _table(["server", "requests/s x floor", "CPU ms/request x floor", "wrk p50 x floor"], ratio_rows)
    return lines + server_verdict(results)


def _x(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}x"


def _granian_options(results: Results) -> list[str]:
    return results["scenarios"]["server"].get("granian_options") or ["--interface", "asgi"]


def server_verdict(results: Results) -> list[str]:
    """Which server serves users faster, from the gateway's own figures in this run."""
    shipped, other = shipped_and_other(results)
    rps = server_ratio(results, "gateway", "throughput_rps")
    p50 = server_ratio(results, "gateway", "wrk_p50_ms")
    p99 = server_ratio(results, "gateway", "wrk_p99_ms")
    cpu = server_ratio(results, "gateway", "cpu_ms_per_request")
    floor_rps = server_ratio(results, "baseline", "throughput_rps")
    if rps is None or p50 is None:
        return []
    m = lambda app, server, figure: median(results, "server", f"{app}-{server}", figure)  # noqa: E731
    if rps >= 1.0 and p50 <= 1.0:
        faster, verdict = shipped, f"**{shipped}**, the server `gateway serve` runs"
    elif rps < 1.0 and p50 > 1.0:
        faster, verdict = other, (f"**{other}**, not the shipped {shipped}: switching `gateway serve` "
                                  "to it would serve users faster (or re-run: see the spread)")
    else:
        faster, verdict = "", "neither clearly: one gives more requests/s, the other a lower median latency"
    lines = [f"Faster for users: {verdict}. The gateway serves {_num(m('gateway', shipped, 'throughput_rps'), 0)} "
             f"requests/s under {shipped} against {_num(m('gateway', other, 'throughput_rps'), 0)} under {other} "
             f"({rps:.2f}x, median of run-by-run ratios), with a wrk p50 of {_num(m('gateway', shipped, 'wrk_p50_ms'))} ms "
             f"against {_num(m('gateway', other, 'wrk_p50_ms'))} ms ({p50:.2f}x run by run)"
             + (f" and a p99 {p99:.2f}x as long" if p99 is not None else "")
             + (f"; it costs {cpu:.2f}x the CPU per request" if cpu is not None else "") + "."]
    lines += _floor_reading(results, floor_rps)
    if faster == shipped:
        lines.append("Both apps are CPU-bound on one core, so requests/s follows CPU per request, and at 50 "
                     "connections the median latency follows requests/s.")
    return [" ".join(lines), ""]


def _floor_reading(results: Results, floor_rps: float | None) -> list[str]:
    """Whether the gap between the servers is there for bare forwarding too, or comes with the
    gateway's own work, from the CPU each request costs under either server."""
    shipped, other = shipped_and_other(results)
    cpu = {(app, server): median(results, "server", f"{app}-{server}", "cpu_ms_per_request")
           for app in ("baseline", "gateway") for server in (shipped, other)}
    if floor_rps is None or None in cpu.values():
        return []
    extra = {app: (cpu[app, other] - cpu[app, shipped]) * 1000 for app in ("baseline", "gateway")}  # type: ignore[operator]
    cost = (f"under {other} a request costs {extra['gateway']:+.0f} µs of CPU for the gateway and "
            f"{extra['baseline']:+.0f} µs for the floor")
    if abs(floor_rps - 1.0) <= 0.03:
        return [f"The floor is about as fast under either server ({floor_rps:.2f}x): forwarding alone costs "
                f"the same, and the gap comes with the gateway's own work ({cost})."]
    if floor_rps > 1.0:
        return [f"The floor, too, is faster under {shipped} ({floor_rps:.2f}x its requests/s under {other}), "
                f"so part of the gap is the server's own; {cost}."]
    return [f"The floor alone is faster under {other} (under {shipped} it serves {floor_rps:.2f}x its "
            f"requests/s under {other}), so forwarding itself is not what {other} does slower: {cost}."]


def _server_failed(results: Results, t: dict[str, Any]) -> str:
    shipped, other = shipped_and_other(results)
    floor = t.get("floor")
    floor_text = "" if floor is None else f" (the floor's ratio: {floor:.2f}x)"
    return (f"- **{t['target']}**: {t['value']:.2f}x{floor_text}. In this run {other} served the gateway "
            f"better than the shipped {shipped}; if a re-run agrees, `gateway serve` "
            "(gateway/server/cli.py) should run the faster server.")


def workers_note(results: Results) -> list[str]:
    m = lambda *a: median(results, "workers", *a)  # noqa: E731
    if results["scenarios"].get("workers", {}).get("status") != "measured":
        return []
    return [f"Scaling: gateway {_ratio(m('gateway-two', 'throughput_rps'), m('gateway-one', 'throughput_rps'))}, "
            f"baseline {_ratio(m('baseline-two', 'throughput_rps'), m('baseline-one', 'throughput_rps'))}. "
            "One worker is pinned to core 0; two workers may use both cores, which they share "
            "with the mock and wrk on a two-core machine, so the baseline's ratio is the "
            "ceiling this machine allows.", ""]


def profile_section(results: Results) -> list[str]:
    profile = results.get("profile") or {}
    lines = ["## Profile of the pinned gateway under load", ""]
    if profile.get("status") != "measured":
        return lines + [f"Not profiled: {profile.get('note', 'not run')}.", ""]
    lines += [f"`{profile['command']}` while wrk drives the pass-through route; "
              f"{profile['samples']} samples (raw stacks: `bench/results/{profile['raw']}`, kept "
              "on the machine that ran it, not committed). Self time includes the C calls a "
              "frame makes (socket writes, JSON), so I/O shows up in the frame that asked for it; "
              "`asyncio/runners.py:Runner.run` is uvloop's own C loop (polling, socket reads "
              "and writes, callback dispatch).",
              "", "Self time by package (the baseline profiled the same way, for the floor):", ""]
    floor = {r["frame"]: r["percent"] for r in profile.get("baseline_self_by_package", [])}
    g_cpu = median(results, "pass", "gateway", "cpu_ms_per_request")
    b_cpu = median(results, "pass", "baseline", "cpu_ms_per_request")
    per_request = lambda pct, cpu: _num(pct * cpu * 10, 0) if pct and cpu else "–"  # noqa: E731
    lines += _table(["package", "gateway %", "gateway µs/request", "baseline %",
                     "baseline µs/request"],
                    [[r["frame"], f"{r['percent']:.1f}", per_request(r["percent"], g_cpu),
                      _num(floor.get(r["frame"]), 1), per_request(floor.get(r["frame"]), b_cpu)]
                     for r in profile.get("self_by_package", [])])
    lines += ["(µs/request: the share times the CPU ms per request measured in the "
              "pass-through scenario.)", ""]
    lines += ["Where the CPU is spent (self time, top frames):", ""]
    lines += _table(["frame", "% of samples"],
                    [[f"`{r['frame']}`", f"{r['percent']:.1f}"] for r in profile["self_top"]])
    if profile.get("gateway_inclusive_top"):
        lines += ["Gateway functions including what they call:", ""]
        lines += _table(["function", "% of samples"],
                        [[f"`{r['frame']}`", f"{r['percent']:.1f}"]
                         for r in profile["gateway_inclusive_top"]])
    return lines


def machine_section(results: Results) -> list[str]:
    m = results["machine"]
    packages = ", ".join(f"{k} {v}" for k, v in m["packages"].items())
    tools = ", ".join(f"{k} {v}" for k, v in m["tools"].items())
    s = results["settings"]
    return ["## Machine and method", "",
            f"- CPU: {m['cpu']}, {m['cores']} cores; kernel {m['kernel']}; Python {m['python']}",
            f"- Packages: {packages}", f"- Tools: {tools}",
            f"- Code: `{m['commit']}`; run took {results['elapsed_s']:.0f} s",
            f"- Placement: gateway and baseline pinned to core(s) {s['server_cores']} "
            f"(`taskset`); mock (nginx, one process) and load generators on core(s) "
            f"{s['load_cores']}; all of them at nice {s.get('nice', 0)} so other work on the "
            "machine disturbs less.",
            f"- Each figure is the median of {s['runs']} runs, (min–max) after it; runs of "
            "different servers are interleaved. Where a target compares two servers of one "
            f"scenario (Anthropic, Responses, limits, ledger), they take {s.get('paired_runs', s['runs'])} "
            "runs each, and the ratio is the median of the run-by-run ratios: a run and its "
            "neighbour share the machine's state of that moment.",
            "- The mock is nginx with inlined answers (`bench/mock/nginx.conf.in`): OpenAI "
            "JSON, an OpenAI SSE stream of 20 chunks 10 ms apart, Anthropic JSON and events, "
            "embeddings. \"Direct\" is the load generator talking to the mock itself.",
            "- The baseline (`bench/baseline.py`) is a bare Starlette + aiohttp pass-through "
            "served by uvicorn with uvloop and httptools, like the gateway.",
            "- CPU ms is utime+stime of the server's processes (`/proc/PID/stat`) over a run, "
            "divided by the requests or streams it served.", "",
            "Commands:", "", "```", *results["commands"], "```", ""]


INSTRUCTIONS = Path(__file__).resolve().parent / "results" / "instructions.json"


def instructions_section(path: Path = INSTRUCTIONS) -> list[str]:
    """The latest drift-free count of `bench/instructions.py`, when one was taken."""
    lines = ["## Instructions per request (valgrind, in-process)", ""]
    try:
        reading = json.loads(path.read_text())
        floor, gateway = float(reading["floor"]), float(reading["gateway"])
    except (OSError, ValueError, KeyError, TypeError):
        return lines + ["No reading yet: run `python bench/instructions.py` (needs valgrind).", ""]
    return lines + [
        "The timed figures above move with the machine; this count does not. `bench/instructions.py` "
        "drives the floor and the gateway in-process (ASGI calls, no HTTP server) against the same mock "
        "under callgrind, at two request counts, and divides the difference: the Python-side cost of one "
        "pass-through, the same on every run. It is taken by hand, not by `make bench`:", "",
        "| | instructions a request | against the floor |", "|---|---|---|",
        f"| bare floor | {floor / 1000:,.0f}k | 1.00x |",
        f"| gateway (`{reading.get('scenario', 'plain')}` config) | {gateway / 1000:,.0f}k | {gateway / floor:.2f}x |", "",
        f"Taken {reading.get('taken', '?')} at `{reading.get('commit', '?')}`. uvicorn and the kernel are not "
        "in it (they are in the timed CPU figures), so the ratio is not the one the CPU target reads.", ""]


PARTS = Path(__file__).resolve().parent / "results" / "parts.json"


def parts_section(path: Path = PARTS) -> list[str]:
    """The floor taken apart (`bench/parts.py`), when a reading was taken."""
    lines = ["## What the floor is made of", ""]
    try:
        reading = json.loads(path.read_text())
        cpu = {key: float(value) for key, value in reading["cpu_us"].items()}
        floor, server, client, bare = cpu["floor"], cpu["server_uvicorn"], cpu["client_aiohttp"], cpu["client_bare"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return lines + ["No reading yet: run `python bench/parts.py`.", ""]
    rest = floor - server - client
    budget = floor * 0.33
    rows = [
        ("the floor, whole (`baseline.py`)", floor),
        ("its server: uvicorn with httptools, answering a constant body", server),
        ("the same with the gateway's protocol (`gateway/server/connections.py`)", cpu.get("server_gateway")),
        ("its upstream client: aiohttp, called as the floor calls it", client),
        ("the gateway's plain call on the same pool (`Upstream.fetch`)", cpu.get("client_gateway")),
        ("the rest: Starlette's request and response, and running both sides on one loop", rest),
        ("for scale: the same upstream exchange on a bare asyncio protocol with httptools' parser", bare),
    ]
    table = ["| part | CPU µs a request | share of the floor |", "|---|---|---|"] + [
        f"| {name} | {value:.1f} | {value / floor:.0%} |" for name, value in rows if value is not None]
    gateway_client = cpu.get("client_gateway")
    direct = (
        f"The gateway's plain calls spend {gateway_client:.0f} µs: they take their connection from the "
        "same aiohttp pool and read the answer with aiohttp's parser, but write the request's head "
        "themselves (`gateway/providers/origin.py`, docs/architecture.md), so the gateway does not pay "
        f"the {client - gateway_client:.0f} µs more the floor does. " if gateway_client is not None else "")
    return lines + [
        "`bench/parts.py` measures the halves of the floor on their own, pinned and loaded as above "
        "(taken by hand, not by `make bench`):", "", *table, "",
        f"The CPU target (at most 1.33x the floor) leaves the gateway {budget:.0f} µs a request for all it "
        f"does beyond forwarding. aiohttp's client alone spends {client:.0f} µs of the floor's {floor:.0f}; "
        f"the same exchange on a bare protocol costs {bare:.0f} µs, so nearly all of the client's share is "
        "its own machinery (request and response objects, header multidicts, a task to write the body, "
        f"timers) rather than the socket. {direct}Streams still go aiohttp's whole way.", "",
        f"Taken {reading.get('taken', '?')} at `{reading.get('commit', '?')}`, the median of "
        f"{reading.get('rounds', '?')} interleaved rounds.", ""]


def render(results: Results) -> str:
    lines = ["# Benchmarks", "",
             f"Generated by `make bench` on {results['started']}. Raw figures: "
             f"`bench/results/{results['stamp']}.json`. Do not edit by hand: the next run "
             "rewrites this page.", ""]
    lines += targets_section(results)
    for scenario in ("pass", "anthropic", "responses", "limits", "cache", "semantic", "ledger", "keys", "jwt", "workers",
                     "server"):
        lines += scenario_section(results, scenario)
        if scenario == "workers":
            lines += workers_note(results)
    lines += profile_section(results) + instructions_section() + parts_section() + machine_section(results)
    return "\n".join(lines).rstrip() + "\n"
