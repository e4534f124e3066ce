"""Circuit breakers shared by every replica through the store.

The plan asks about every candidate of every request, so reads must never wait on the
network (see `gateway.store.breaker`). `SharedCircuits` therefore keeps the in-process
breakers as a local mirror and only *transitions* travel: when a circuit opens or
closes here, the change is written to the store in the background; every
`POLL_SECONDS` one round trip reads every target's record and applies the changes other
replicas made. A target that trips on one replica is skipped by all of them within
about a second, and a probe that closes it anywhere closes it everywhere.

Times in the store are wall-clock (the replicas share no monotonic clock); they are
turned back into this process's monotonic time when applied.

A store that is down leaves each replica with its own breakers, exactly as without Redis.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable

from loguru import logger

from gateway.store.breaker import CLOSED, OPEN, MemoryCircuits, _Entry, _publish
from gateway.config.snapshot import Target
from gateway.store import CircuitRecord, Store, StoreUnavailable

POLL_SECONDS = 1.0
RECORD_TTL = 24 * 3600.0  # a record nobody has touched for a day is forgotten


class SharedCircuits(MemoryCircuits):
    def __init__(self, store: Store, targets: Callable[[], Iterable[Target]]) -> None:
        super().__init__()
        self._store = store
        self._targets = targets  # the current snapshot's targets (they change with reloads)
        self._seen: dict[str, float] = {}  # target id -> changed_at of the last record applied or written
        self._pending: set[asyncio.Task[None]] = set()

    # ---------------------------------------------------------- local transitions, published

    def _open(self, target: Target, entry: _Entry, now: float) -> None:
        super()._open(target, entry, now)
        self._write(target.id, CircuitRecord(OPEN, entry.failures, time.time() - (time.monotonic() - now)))

    def record_success(self, target: Target) -> None:
        entry = self._entries.get(target.id)
        if entry is None:
            return  # the hot path: a healthy target, nothing to say
        was_open = entry.opened_at is not None
        super().record_success(target)
        if was_open:
            self._write(target.id, CircuitRecord(CLOSED, 0, 0.0))

    def _write(self, target_id: str, record: CircuitRecord) -> None:
        changed_at = time.time()
        self._seen[target_id] = changed_at
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # outside the server (gateway explain): nothing to share
        task = loop.create_task(self._put(target_id, record, changed_at))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _put(self, target_id: str, record: CircuitRecord, changed_at: float) -> None:
        try:
            await self._store.circuit_put(target_id, record, changed_at, RECORD_TTL)
        except StoreUnavailable:
            pass

    # ---------------------------------------------------------- remote transitions, applied

    async def poll(self) -> None:
        """Read every target's record in one round trip and apply what other replicas changed."""
        targets = {t.id: t for t in self._targets()}
        if not targets:
            return
        try:
            records = await self._store.circuits(list(targets))
        except StoreUnavailable:
            return
        for target_id, found in zip(targets, records):
            if found is None:
                continue
            record, changed_at = found
            if changed_at <= self._seen.get(target_id, 0.0):
                continue
            self._seen[target_id] = changed_at
            self._apply(targets[target_id], record)

    def _apply(self, target: Target, record: CircuitRecord) -> None:
        if record.state == OPEN:
            opened = time.monotonic() - max(0.0, time.time() - record.opened_at)
            entry = self._entries.setdefault(target.id, _Entry())
            entry.failures = max(entry.failures, record.failures)
            if entry.opened_at is None:
                _publish(target, OPEN)
            entry.opened_at = opened
            entry.probe_at = None
        elif target.id in self._entries:
            was_open = self._entries.pop(target.id).opened_at is not None
            if was_open:
                _publish(target, CLOSED)

    async def run(self) -> None:
        """The poll loop, for the life of the process."""
        while True:
            await asyncio.sleep(POLL_SECONDS)
            try:
                await self.poll()
            except Exception:  # a bug here must not stop sharing for the rest of the process
                logger.exception("reading shared circuit state failed")
