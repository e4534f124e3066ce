"""Tallies (gateway.observe.tally) hold metric updates and hand them to prometheus-client in
batches: after a flush, the exposition is exactly what direct updates would have made."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from gateway.observe import tally

BOUNDS = (0.001, 0.01, 0.1, 1.0)
VALUES = [0.0, 0.0005, 0.001, 0.0011, 0.01, 0.05, 0.1, 0.999, 1.0, 1.5, 42.0, -0.2]


def twin_registries() -> tuple[dict, dict]:
    made = []
    for _ in range(2):
        registry = CollectorRegistry()
        made.append({
            "registry": registry,
            "counter": Counter("c", "c", ["l"], registry=registry),
            "gauge": Gauge("g", "g", ["l"], registry=registry),
            "histogram": Histogram("h", "h", ["l"], buckets=BOUNDS, registry=registry),
        })
    return made[0], made[1]


def test_a_flush_makes_the_same_exposition_as_direct_updates():
    direct, tallied = twin_registries()
    counter = tally.CounterTally(tallied["counter"].labels("a"))
    gauge = tally.GaugeTally(tallied["gauge"].labels("a"))
    histogram = tally.HistogramTally(tallied["histogram"].labels("a"))
    for value in VALUES:
        direct["counter"].labels("a").inc(2)
        counter.inc(2)
        direct["histogram"].labels("a").observe(value)
        histogram.observe(value)
    direct["gauge"].labels("a").inc(3)
    direct["gauge"].labels("a").dec()
    gauge.inc(3)
    gauge.dec()
    assert generate_latest(tallied["registry"]) != generate_latest(direct["registry"])  # nothing handed over yet
    tally.flush()
    assert generate_latest(tallied["registry"]) == generate_latest(direct["registry"])
    # a second batch adds to the first
    direct["histogram"].labels("a").observe(0.02)
    histogram.observe(0.02)
    tally.flush()
    assert generate_latest(tallied["registry"]) == generate_latest(direct["registry"])


def test_a_gauge_set_wins_over_earlier_changes_and_later_ones_add_to_it():
    _, tallied = twin_registries()
    series = tallied["gauge"].labels("a")
    gauge = tally.GaugeTally(series)
    gauge.inc(5)
    gauge.set(2.5)
    tally.flush()
    assert series._value.get() == 2.5
    gauge.set(7)
    gauge.inc()
    tally.flush()
    assert series._value.get() == 8


def test_a_child_without_bucket_internals_gets_every_observation_replayed():
    seen = []

    class Plain:
        def observe(self, value):
            seen.append(value)

    histogram = tally.HistogramTally(Plain())
    for value in VALUES:
        histogram.observe(value)
    assert seen == []
    tally.flush()
    assert seen == VALUES


def test_forget_drops_what_is_pending():
    _, tallied = twin_registries()
    series = tallied["counter"].labels("a")
    counter = tally.CounterTally(series)
    counter.inc(4)
    tally.forget()
    tally.flush()
    assert series._value.get() == 0
    counter.inc()
    tally.flush()
    assert series._value.get() == 1
