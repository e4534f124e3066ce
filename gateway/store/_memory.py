"""The in-process store: plain dicts, no locks.

Every method runs to completion without an `await` inside, so on one asyncio loop each
is atomic by construction: a check-and-take cannot interleave with another request.
State is per process; run several replicas or `--workers N` with Redis to share it.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Sequence

from gateway.store.interface import (
    WINDOW_SECONDS,
    CircuitRecord,
    Level,
    SettingsSource,
    Settlement,
    Take,
    Usage,
    UsageRow,
    Verdict,
)

USAGE_WINDOWS_KEPT = 800  # about a year of days plus their months


class _Buckets:
    """Token buckets by name: (units available, monotonic time of that figure)."""

    def __init__(self) -> None:
        self.state: dict[str, tuple[float, float]] = {}

    def level(self, name: str, capacity: int, now: float) -> float:
        state = self.state.get(name)
        if state is None:
            return float(capacity)
        tokens, at = state
        return min(float(capacity), tokens + (now - at) * capacity / WINDOW_SECONDS)

    def set(self, name: str, tokens: float, now: float) -> None:
        self.state[name] = (tokens, now)


class _Cache:
    """Answers by key, least recently used first, bounded by total bytes."""

    def __init__(self) -> None:
        self.entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self.bytes = 0

    def get(self, key: str, now: float) -> bytes | None:
        entry = self.entries.get(key)
        if entry is None:
            return None
        if entry[0] <= now:
            self._drop(key)
            return None
        self.entries.move_to_end(key)
        return entry[1]

    def put(self, key: str, value: bytes, expires: float, max_bytes: int) -> None:
        if key in self.entries:
            self._drop(key)
        if len(value) > max_bytes:
            return
        self.entries[key] = (expires, value)
        self.bytes += len(value)
        while self.bytes > max_bytes:
            self._drop(next(iter(self.entries)))

    def _drop(self, key: str) -> None:
        _, value = self.entries.pop(key)
        self.bytes -= len(value)


class MemoryStore:
    kind = "memory"

    def __init__(self, settings: SettingsSource):
        self._settings = settings
        self._buckets = _Buckets()
        # Slot name -> lease -> expiry. Leases expire as in Redis, so a request that never
        # settles (a stream dropped before its first byte) cannot hold a slot forever.
        self._leases: dict[str, dict[str, float]] = {}
        self._holds: dict[str, tuple[float, float]] = {}  # name -> (USD committed, expiry)
        self._usage: dict[str, dict[tuple[str, str], dict[str, float]]] = {}
        self._cache = _Cache()
        self._circuits: dict[str, tuple[CircuitRecord, float, float]] = {}  # record, changed_at, expiry

    async def take(self, take: Take) -> Verdict:
        return self.take_here(take)

    def take_here(self, take: Take) -> Verdict:
        """Everything is here: decided and taken at once."""
        now = time.monotonic()
        levels = [self._buckets.level(d.bucket, d.capacity, now) for d in take.draws]
        verdict = self._check(take, levels)
        if verdict is not None:
            return verdict
        out = []
        for draw, tokens in zip(take.draws, levels):
            left = tokens - min(draw.amount, draw.capacity)
            self._buckets.set(draw.bucket, left, now)
            out.append(_level(left, draw.capacity))
        for slots in take.slots:
            self._leases.setdefault(slots.name, {})[take.lease] = now + take.lease_seconds
        for hold in take.budgets:
            spent = self._spent(hold.name)
            self._holds[hold.name] = (spent + hold.amount, time.time() + hold.ttl)
        return Verdict(-1, 0.0, tuple(out))

    def _check(self, take: Take, levels: list[float]) -> Verdict | None:
        """The first refusal, or None when everything fits."""
        for i, (draw, tokens) in enumerate(zip(take.draws, levels)):
            need = min(draw.amount, draw.capacity)
            if tokens < need:
                wait = (need - tokens) * WINDOW_SECONDS / draw.capacity
                return Verdict(i, wait, tuple(_level(t, d.capacity) for d, t in zip(take.draws, levels)))
        base = len(take.draws)
        for j, slots in enumerate(take.slots):
            if self._full(slots.name, slots.limit):
                return Verdict(base + j, 1.0)
        for k, hold in enumerate(take.budgets):
            if self._spent(hold.name) >= hold.limit:
                return Verdict(base + len(take.slots) + k, 0.0)
        return None

    def _full(self, name: str, limit: int) -> bool:
        leases = self._leases.get(name)
        if leases is None or len(leases) < limit:
            return False
        now = time.monotonic()  # only a full set is worth sweeping for expired leases
        for lease in [lease for lease, expiry in leases.items() if expiry <= now]:
            del leases[lease]
        return len(leases) >= limit

    def _spent(self, name: str) -> float:
        entry = self._holds.get(name)
        if entry is None or entry[1] <= time.time():
            return 0.0
        return entry[0]

    async def settle(self, settlement: Settlement) -> None:
        self.settle_here(settlement)

    def settle_here(self, settlement: Settlement) -> Settlement | None:
        """Everything is here: applied at once, nothing left."""
        now = time.monotonic()
        for draw in settlement.adjustments:
            tokens = self._buckets.level(draw.bucket, draw.capacity, now) - draw.amount
            self._buckets.set(draw.bucket, max(-float(draw.capacity), min(float(draw.capacity), tokens)), now)
        for name in settlement.slots:
            held = self._leases.get(name)
            if held is not None:
                held.pop(settlement.lease, None)
        for name, delta, ttl in settlement.all_budgets:
            self._holds[name] = (max(0.0, self._spent(name) + delta), time.time() + ttl)
        return None

    def record(self, usage: Usage) -> None:
        counts = usage.counts()
        moved = [(name, value) for name, value in counts.items() if value]  # the same for every window
        owner = (usage.key, usage.route)
        for window in usage.windows:
            rows = self._usage.get(window)
            if rows is None:
                rows = self._usage[window] = {}
                while len(self._usage) > USAGE_WINDOWS_KEPT:
                    del self._usage[min(self._usage)]
            row = rows.get(owner)
            if row is None:
                row = rows[owner] = dict.fromkeys(counts, 0)
            for name, value in moved:
                row[name] += value

    async def flush(self) -> None:
        return None

    async def cache_get(self, key: str) -> bytes | None:
        return self._cache.get(key, time.monotonic())

    async def cache_put(self, key: str, value: bytes, ttl: float) -> None:
        settings = self._settings()
        if len(value) <= settings.cache_max_entry_bytes:
            self._cache.put(key, value, time.monotonic() + ttl, settings.cache_max_bytes)

    async def usage(self, window: str) -> list[UsageRow]:
        rows = self._usage.get(window, {})
        return [UsageRow(key, route, dict(counts)) for (key, route), counts in rows.items()]

    async def spent(self, holds: Sequence[str]) -> list[float]:
        return [self._spent(name) for name in holds]

    async def circuits(self, targets: Sequence[str]) -> list[tuple[CircuitRecord, float] | None]:
        now = time.monotonic()
        found = [self._circuits.get(t) for t in targets]
        return [(entry[0], entry[1]) if entry is not None and entry[2] > now else None for entry in found]

    async def circuit_put(self, target: str, record: CircuitRecord, changed_at: float, ttl: float) -> None:
        self._circuits[target] = (record, changed_at, time.monotonic() + ttl)

    async def start(self) -> None:
        return None

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        return None


def _level(tokens: float, capacity: int) -> Level:
    reset = max(0.0, (capacity - tokens) * WINDOW_SECONDS / capacity)
    return Level(max(0, int(tokens)), reset)

