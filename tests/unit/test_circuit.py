"""MemoryCircuits: closed → open after consecutive failures → half-open probe → closed or open again."""

from __future__ import annotations

from dataclasses import replace

import pytest
from prometheus_client import REGISTRY

from gateway.config.snapshot import CircuitPolicy, Target
from gateway.providers.snapshots import build_snapshot
from gateway.store.circuits import CLOSED, HALF_OPEN, OPEN, MemoryCircuits
from tests.support.configs import write_config


@pytest.fixture
def target(tmp_path) -> Target:
    r, p = write_config(tmp_path, {"routes": {"r": {"targets": ["up/unit-circuit"]}}},
                        {"up": {"api": "openai", "base_url": "http://127.0.0.1:9/v1", "models": {"unit-circuit": {}}}})
    return replace(build_snapshot(r, p).targets["up/unit-circuit"], circuit=CircuitPolicy(failures=3, cooldown=10))


def gauge(target_id: str) -> float | None:
    return REGISTRY.get_sample_value("gateway_circuit_state", {"target": target_id})


def test_opens_after_consecutive_failures_only(target):
    c = MemoryCircuits()
    c.record_failure(target, now=0)
    c.record_failure(target, now=1)
    c.record_success(target)  # a success in between resets the count
    c.record_failure(target, now=2)
    c.record_failure(target, now=3)
    assert c.view(target, now=3).state == CLOSED and c.allow(target, now=3)
    c.record_failure(target, now=4)
    view = c.view(target, now=5)
    assert view.state == OPEN and not view.usable and view.retry_in == pytest.approx(9)
    assert not c.allow(target, now=13.9)
    assert gauge(target.id) == 2


def test_after_the_cooldown_one_probe_goes_and_success_closes(target):
    c = MemoryCircuits()
    for t in range(3):
        c.record_failure(target, now=t)
    assert c.view(target, now=12.5).state == HALF_OPEN
    assert c.allow(target, now=12.5)  # the probe
    assert gauge(target.id) == 1
    assert not c.allow(target, now=12.6)  # everyone else waits for its verdict
    c.record_success(target)
    assert c.view(target, now=12.7).state == CLOSED and c.allow(target, now=12.7)
    assert gauge(target.id) == 0


def test_a_failed_probe_opens_for_a_fresh_cooldown(target):
    c = MemoryCircuits()
    for t in range(3):
        c.record_failure(target, now=t)
    assert c.allow(target, now=20)
    c.record_failure(target, now=20.5)
    assert c.view(target, now=30).state == OPEN
    assert c.view(target, now=30.6).state == HALF_OPEN


def test_a_lost_probe_frees_its_slot_after_a_cooldown(target):
    c = MemoryCircuits()
    for t in range(3):
        c.record_failure(target, now=t)
    assert c.allow(target, now=20)  # this probe never reports back
    assert not c.allow(target, now=29)
    assert c.allow(target, now=30.5)


def test_force_open_is_open_at_once(target):
    c = MemoryCircuits()
    c.force_open(target, now=100)
    assert c.view(target, now=101).state == OPEN
