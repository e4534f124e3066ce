"""The in-process store's limits: all-or-nothing takes, token buckets, and leases that expire."""

from __future__ import annotations

import asyncio

import pytest

from gateway.config.snapshot import StoreSettings
from gateway.store import Draw, Hold, Settlement, Slots, Take
from gateway.store._memory import MemoryStore


def store() -> MemoryStore:
    settings = StoreSettings()
    return MemoryStore(lambda: settings)


async def test_a_refused_take_takes_nothing():
    s = store()
    take = Take(draws=(Draw("key:a:rpm", 5, 1), Draw("route:r:rpm", 1, 1)))
    assert (await s.take(take)).granted
    refused = await s.take(take)
    assert refused.refused == 1 and refused.wait > 0
    # The key's bucket was not charged for the refused request: 3 more fit, not 2.
    assert all([(await s.take(Take(draws=(Draw("key:a:rpm", 5, 1),)))).granted for _ in range(4)])
    assert not (await s.take(Take(draws=(Draw("key:a:rpm", 5, 1),)))).granted


async def test_settling_gives_back_unused_tokens():
    s = store()
    first = await s.take(Take(draws=(Draw("key:a:tpm", 1000, 900),)))
    assert first.levels[0].remaining == 100
    await s.settle(Settlement(adjustments=(Draw("key:a:tpm", 1000, 20 - 900),)))
    assert (await s.take(Take(draws=(Draw("key:a:tpm", 1000, 900),)))).granted


async def test_a_budget_admits_until_committed_spend_reaches_it():
    s = store()
    hold = Hold("k:d:2026-01-01", 1.0, 0.6, 60)
    assert (await s.take(Take(hold=hold))).granted
    assert (await s.take(Take(hold=hold))).granted  # 0.6 committed < 1.0
    assert not (await s.take(Take(hold=hold))).granted  # 1.2 committed
    await s.settle(Settlement(budget=("k:d:2026-01-01", -1.0, 60)))
    assert await s.spent(["k:d:2026-01-01"]) == [pytest.approx(0.2)]


async def test_a_slot_never_given_back_expires_with_its_lease():
    s = store()
    assert (await s.take(Take(slots=(Slots("key:k", 1),), lease="lost", lease_seconds=0.05))).granted
    assert not (await s.take(Take(slots=(Slots("key:k", 1),), lease="next", lease_seconds=60))).granted
    await asyncio.sleep(0.06)
    assert (await s.take(Take(slots=(Slots("key:k", 1),), lease="next", lease_seconds=60))).granted
