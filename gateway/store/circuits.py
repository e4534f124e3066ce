"""Per-target circuit breakers: stop sending traffic to a target that keeps failing.

A target's circuit is *closed* while it works. After `failures` consecutive failures
(rate limits, server errors, timeouts, connection errors) it *opens*: the plan skips the
target instead of making every request pay for a call that will probably fail. After
`cooldown` seconds it is *half-open*: exactly one request is let through as a probe. A
probe that succeeds closes the circuit; one that fails opens it for another cooldown.

State is keyed by target id (`provider/model`) and lives on the process's `Runtime`, not
in the config snapshot, so a reload neither forgets an outage nor resets a recovery.
It sits behind `CircuitStore` so that a shared home (Redis) can replace the in-process
one. The protocol is synchronous on purpose: the plan asks about every candidate of
every request, and a breaker that waits on the network to decide whether the network
is healthy defeats itself. A shared implementation keeps a local mirror for reads and
publishes its writes in the background.

Shared by every replica (`SharedCircuits`, with Redis): since reads must never wait on
the network, it keeps the in-process breakers as a local mirror and only *transitions* travel: when a circuit opens or
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
from dataclasses import dataclass
from typing import Protocol

from loguru import logger

from gateway.config.snapshot import Target
from gateway.observe import metrics
from gateway.store.interface import CircuitRecord, Store, StoreUnavailable

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"

# The failure classes that say something about the target's health. A context-length
# or content-filter refusal is about the request: the target answered, so it is alive.
TRIPPING_CLASSES = frozenset({"rate_limit", "server_error", "timeout", "connection"})


@dataclass(frozen=True, slots=True)
class CircuitView:
    """What a plan needs to know: the state, whether a call may go now, and if not, when."""

    state: str
    usable: bool
    retry_in: float = 0.0


# Every closed circuit looks the same, so the plan's question about one allocates nothing.
CLOSED_VIEW = CircuitView(CLOSED, True)


class CircuitStore(Protocol):
    def view(self, target: Target, now: float | None = None) -> CircuitView:
        """Read-only: never takes the probe slot (the plan and `gateway explain` use it)."""
        ...

    def allow(self, target: Target, now: float | None = None) -> bool:
        """Right before a call: True if it may go; takes the single probe slot when half-open."""
        ...

    def record_success(self, target: Target) -> None: ...

    def record_failure(self, target: Target, now: float | None = None) -> None: ...

    def force_open(self, target: Target, now: float | None = None) -> None:
        """Open the circuit as if it had just tripped (`gateway explain --open`, seeding from a live gateway)."""
        ...


@dataclass(slots=True)
class _Entry:
    failures: int = 0
    opened_at: float | None = None
    probe_at: float | None = None


class MemoryCircuits:
    """The in-process `CircuitStore`: one small entry per target that has ever failed."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    def view(self, target: Target, now: float | None = None) -> CircuitView:
        entry = self._entries.get(target.id)
        if entry is None or entry.opened_at is None:
            return CLOSED_VIEW
        now = time.monotonic() if now is None else now
        cooldown = target.circuit.cooldown
        reopen_at = entry.opened_at + cooldown
        if now < reopen_at:
            return CircuitView(OPEN, False, reopen_at - now)
        # A probe that never reported back (its request was abandoned) frees its slot
        # after one more cooldown, so a lost probe cannot keep a circuit open forever.
        if entry.probe_at is not None and now < entry.probe_at + cooldown:
            return CircuitView(HALF_OPEN, False, entry.probe_at + cooldown - now)
        return CircuitView(HALF_OPEN, True)

    def allow(self, target: Target, now: float | None = None) -> bool:
        entry = self._entries.get(target.id)
        if entry is None or entry.opened_at is None:
            return True  # closed: the common case, decided without a clock read
        now = time.monotonic() if now is None else now
        view = self.view(target, now)
        if view.state == CLOSED:
            return True
        if not view.usable:
            return False
        self._entries[target.id].probe_at = now
        _publish(target, HALF_OPEN)
        return True

    def record_success(self, target: Target) -> None:
        entry = self._entries.get(target.id)
        if entry is None:
            return
        was_open = entry.opened_at is not None
        del self._entries[target.id]
        if was_open:
            _publish(target, CLOSED)

    def record_failure(self, target: Target, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        entry = self._entries.setdefault(target.id, _Entry())
        entry.failures += 1
        if entry.opened_at is not None or entry.failures >= target.circuit.failures:
            # Tripping, a failed probe, or a straggler failing while open: a fresh cooldown.
            self._open(target, entry, now)

    def force_open(self, target: Target, now: float | None = None) -> None:
        entry = self._entries.setdefault(target.id, _Entry())
        self._open(target, entry, time.monotonic() if now is None else now)

    def _open(self, target: Target, entry: _Entry, now: float) -> None:
        if entry.opened_at is None or entry.probe_at is not None:
            metrics.circuit_opened(target.id)
        entry.opened_at = now
        entry.probe_at = None
        _publish(target, OPEN)


def _publish(target: Target, state: str) -> None:
    metrics.circuit_changed(target.id, state)


# ---------------------------------------------------------------- shared by every replica

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
