"""The rolling traffic window: what falls out of it, percentiles, and bounded memory."""

from __future__ import annotations

import pytest

from gateway.observe.exchange import Exchange
from gateway.observe.traffic import Traffic

T0 = 1_800_000_000.0  # a slot boundary for 5-second slots


def make() -> Traffic:
    traffic = Traffic(window=60, slot=5)
    traffic.started = T0 - 3600  # up for an hour: rates are over the whole window
    return traffic


def test_requests_leave_the_window_once_it_has_passed():
    traffic = make()
    for i in range(12):
        traffic.record("chat", "p/m", 200, 0.1, now=T0 + i)
    assert traffic.report(now=T0 + 12)["totals"]["requests"] == 12
    assert traffic.report(now=T0 + 12)["totals"]["rps"] == pytest.approx(12 / 60)
    # 60 s later the first slot (T0..T0+5) has left the window, the rest have not.
    assert traffic.report(now=T0 + 60)["totals"]["requests"] == 7
    assert traffic.report(now=T0 + 75)["totals"]["requests"] == 0
    # The ring slot of T0..T0+5 is reused for T0+60..T0+65: it starts empty, not with the old five.
    traffic = make()
    for i in range(12):
        traffic.record("chat", "p/m", 200, 0.1, now=T0 + i)
    traffic.record("chat", "p/m", 200, 0.1, now=T0 + 61)
    assert traffic.report(now=T0 + 62)["totals"]["requests"] == 7 + 1


def test_a_narrower_window_counts_only_its_slots():
    traffic = make()
    traffic.record("chat", "p/m", 200, 0.1, now=T0)
    traffic.record("chat", "p/m", 200, 0.1, now=T0 + 50)
    assert traffic.report(window=10, now=T0 + 51)["totals"]["requests"] == 1
    assert traffic.report(window=60, now=T0 + 51)["totals"]["requests"] == 2
    assert traffic.report(window=3600, now=T0 + 51)["window_seconds"] == 60  # capped to what is kept


def test_percentiles_are_within_a_bin_of_the_truth():
    traffic = make()
    for ms in range(1, 1001):  # 1 ms .. 1000 ms, evenly
        traffic.record("chat", "p/m", 200, ms / 1000, now=T0)
    marks = traffic.report(now=T0 + 1)["totals"]["latency_ms"]
    for name, truth in (("p50", 500), ("p90", 900), ("p99", 990)):
        assert truth <= marks[name] <= truth * 1.25, (name, marks[name])
    one = make()
    one.record("chat", "p/m", 200, 0.0123, now=T0)
    assert one.report(now=T0)["totals"]["latency_ms"] == {"p50": 12.3, "p90": 12.3, "p99": 12.3}


def test_fallbacks_errors_and_refusals_are_counted_from_one_call_per_request():
    traffic = make()
    traffic.record("chat", "b/m", 200, 0.2, [("a/m", True), ("a/m", True)], now=T0)  # retried, then fell back
    traffic.record("chat", "", 502, 0.3, [("a/m", True), ("b/m", True)], now=T0)
    traffic.record("chat", "", 400, 0.01, now=T0)
    chat = traffic.report(now=T0)["routes"][0]
    assert (chat["requests"], chat["errors"], chat["rejected"], chat["fallbacks"]) == (3, 1, 1, 2)
    targets = {t["target"]: t for t in traffic.targets(now=T0)}
    assert (targets["a/m"]["calls"], targets["a/m"]["failures"], targets["a/m"]["share"]) == (3, 3, 0.0)
    assert (targets["b/m"]["calls"], targets["b/m"]["failures"], targets["b/m"]["share"]) == (2, 1, 1.0)


def test_idle_series_are_forgotten_so_memory_stays_bounded():
    traffic = make()
    for n in range(50):  # aliases that a reload later removed
        traffic.record(f"old-{n}", "p/m", 200, 0.1, now=T0)
    traffic.record("new", "p/m", 200, 0.1, now=T0 + 120)
    report = traffic.report(now=T0 + 121)
    assert [r["route"] for r in report["routes"]] == ["new"]
    assert len(traffic._routes) == 1 and len(traffic._targets) == 1


def test_a_request_end_records_the_calls_that_failed_before_the_answer():
    traffic = Traffic()
    exchange = Exchange("r1", 0.0, "chat", route="r", target="b/m", failed=[("a/m", True), ("a/m", False)])
    traffic.request_ended(exchange, 200, 0.2)
    targets = {t["target"]: t for t in traffic.targets()}
    assert targets["a/m"]["calls"] == 2 and targets["a/m"]["failures"] == 1
    assert targets["b/m"]["answered"] == 1
    assert traffic.report()["routes"][0]["fallbacks"] == 1


def test_a_routes_cache_hit_rate_counts_exact_and_semantic_hits():
    traffic = make()
    for cache in ("miss", "hit", "semantic-hit", "miss", "bypass", ""):
        traffic.record("faq", "p/m", 200, 0.01, now=T0, cache=cache)
    route = traffic.report(now=T0 + 1)["routes"][0]
    assert route["cache"] == {"lookups": 4, "hits": 1, "semantic_hits": 1, "hit_rate": 0.5, "semantic_hit_rate": 0.25}
