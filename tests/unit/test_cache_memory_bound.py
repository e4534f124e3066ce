"""The in-process cache stays within its memory bound, dropping the least recently used first."""

from __future__ import annotations

from gateway.config.snapshot import StoreSettings
from gateway.store._memory import MemoryStore


def store(max_bytes: int, max_entry: int = 1024) -> MemoryStore:
    settings = StoreSettings(cache_max_bytes=max_bytes, cache_max_entry_bytes=max_entry)
    return MemoryStore(lambda: settings)


async def test_least_recently_used_entries_go_first_when_full():
    s = store(max_bytes=300)
    for name in "abc":
        await s.cache_put(name, name.encode() * 100, ttl=60)
    assert await s.cache_get("a") is not None  # a is now the most recently used
    await s.cache_put("d", b"d" * 100, ttl=60)
    assert await s.cache_get("b") is None
    assert all([await s.cache_get(n) for n in "acd"])
    assert s._cache.bytes <= 300


async def test_answers_over_the_entry_limit_are_not_cached():
    s = store(max_bytes=10_000, max_entry=100)
    await s.cache_put("big", b"x" * 101, ttl=60)
    assert await s.cache_get("big") is None


async def test_thousands_of_entries_never_pass_the_bound():
    s = store(max_bytes=50_000)
    for i in range(5_000):
        await s.cache_put(f"k{i}", b"v" * 500, ttl=60)
    assert s._cache.bytes <= 50_000 and len(s._cache.entries) == 100

