"""Budget windows are UTC days and months, and roll over at their boundary."""

from __future__ import annotations

import calendar

from gateway.config.snapshot import StoreSettings
from gateway.pipeline.admit import seconds_to_rollover, windows_now
from gateway.store import Hold, Take
from gateway.store._memory import MemoryStore


def utc(*parts: int) -> float:
    return float(calendar.timegm((*parts, 0, 0, 0)[:6]))


def test_windows_are_the_utc_day_and_month():
    assert windows_now(utc(2026, 11, 23, 23, 59, 59)) == ("d:2026-11-23", "m:2026-11")
    assert windows_now(utc(2026, 11, 24, 0, 0, 0)) == ("d:2026-11-24", "m:2026-11")
    assert windows_now(utc(2026, 12, 31, 23, 59, 59)) == ("d:2026-12-31", "m:2026-12")
    assert windows_now(utc(2027, 1, 1, 0, 0, 0)) == ("d:2027-01-01", "m:2027-01")


def test_seconds_until_the_window_starts_again():
    assert seconds_to_rollover("day", utc(2026, 11, 23, 23, 0, 0)) == 3600
    assert seconds_to_rollover("month", utc(2026, 12, 31, 23, 0, 0)) == 3600
    assert seconds_to_rollover("month", utc(2027, 2, 1, 0, 0, 0)) == 28 * 86400


async def test_a_spent_budget_is_whole_again_in_the_next_window():
    store = MemoryStore(lambda: StoreSettings())
    spent = await store.take(Take(hold=Hold("team:d:2026-11-23", 1.0, 5.0, 60)))
    assert spent.granted
    assert not (await store.take(Take(hold=Hold("team:d:2026-11-23", 1.0, 0.1, 60)))).granted
    assert (await store.take(Take(hold=Hold("team:d:2026-11-24", 1.0, 0.1, 60)))).granted
