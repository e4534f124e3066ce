"""The interface behind which limits, budgets, cache entries and usage totals live, and
the values its operations take and give.

Two homes implement it: `MemoryStore` (the default: one process needs nothing else) and
`RedisStore` (with `REDIS_URL`: every replica shares the same state). The operations are
cut by concern, not by data structure, so that each is one atomic step and, on Redis,
one round trip: `take` checks and takes every limit and the budget of a request at once,
`settle` gives back what the answer did not use, and the cache is a plain get and put.
On Redis, large rpm and tpm buckets and large budgets are spent from a per-replica lease
instead, with no round trip on most requests (`gateway.store.lease`, `gateway.store.budget_lease`).

A store that cannot answer raises `StoreUnavailable`; the caller decides, per concern,
whether that lets the request through (fail open) or refuses it (fail closed).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import field
from typing import Protocol

from gateway.config.snapshot import StoreSettings
from gateway.values import value

WINDOW_SECONDS = 60.0  # rpm and tpm buckets refill over one minute


class StoreUnavailable(Exception):
    """The shared store did not answer in time (or is known to be down): apply the outage policy."""


@value
class Draw:
    """Take `amount` units from the token bucket `bucket` of size `capacity` (refilled per minute).

    The same shape adjusts a bucket when settling: a negative amount gives units back.
    """

    bucket: str
    capacity: int
    amount: int


@value
class Slots:
    """A concurrency limit: at most `limit` leases held at once under `name`."""

    name: str
    limit: int


@value
class Hold:
    """Reserve `amount` USD of a budget `name` (one window of one key) that may not pass `limit`."""

    name: str
    limit: float
    amount: float
    ttl: int  # seconds the window's counter is kept


@value
class Take:
    """Everything one request must get, all or nothing."""

    draws: tuple[Draw, ...] = ()
    slots: tuple[Slots, ...] = ()
    lease: str = ""
    lease_seconds: float = 600.0
    hold: Hold | None = None
    # Further budgets the request must also fit in (its tenant's), checked after `hold`.
    holds: tuple[Hold, ...] = ()

    @property
    def checks(self) -> int:
        return len(self.draws) + len(self.slots) + len(self.budgets)

    @property
    def budgets(self) -> tuple[Hold, ...]:
        """Every budget hold: the key's (`hold`) first, then `holds`."""
        return ((self.hold,) if self.hold is not None else ()) + self.holds


@value
class Level:
    """A bucket's state after a take: whole units left and seconds until it is full again."""

    remaining: int
    reset: float


@value
class Verdict:
    """`refused` is the index of the first check that failed (draws, then slots, then the holds), or -1."""

    refused: int
    wait: float  # seconds until the refused check could pass
    levels: tuple[Level, ...] = ()

    @property
    def granted(self) -> bool:
        return self.refused < 0


@value
class Usage:
    """One request's contribution to the usage totals of each window it falls in."""

    windows: tuple[str, ...]
    key: str
    route: str
    requests: int = 1
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    cache_hits: int = 0
    errors: int = 0

    def counts(self) -> dict[str, float]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost_usd": self.cost_usd,
            "cache_hits": self.cache_hits,
        }


@value
class Settlement:
    """What happens once the answer is in: adjust buckets, free leases, settle the budget."""

    adjustments: tuple[Draw, ...] = ()
    slots: tuple[str, ...] = ()
    lease: str = ""
    budget: tuple[str, float, int] | None = None  # (hold name, USD delta, ttl)
    budgets: tuple[tuple[str, float, int], ...] = ()  # further holds settled the same way (a tenant's)

    @property
    def all_budgets(self) -> tuple[tuple[str, float, int], ...]:
        return ((self.budget,) if self.budget is not None else ()) + self.budgets


@value
class UsageRow:
    key: str
    route: str
    counts: dict[str, float] = field(default_factory=dict)


@value
class CircuitRecord:
    """Shared state of one target's circuit breaker (for replicas to agree on open circuits)."""

    state: str  # closed | open | half_open
    failures: int
    opened_at: float  # unix seconds


class Store(Protocol):
    kind: str  # "memory" | "redis"

    async def take(self, take: Take) -> Verdict:
        """Check every draw, slot and hold; take them all only if all pass. One atomic step."""

    def take_here(self, take: Take) -> Verdict | None:
        """`take` at once, when it needs no I/O: always in memory; on Redis, when this replica's
        leases cover the whole take. None: it needs `take` (nothing was taken)."""

    async def settle(self, settlement: Settlement) -> None:
        """Apply a settlement. One atomic step."""

    def settle_here(self, settlement: Settlement) -> Settlement | None:
        """Apply at once the part of a settlement that needs no I/O (all of it in memory, what
        this replica's leases hold on Redis); returns the rest for `settle`, or None."""

    def record(self, usage: Usage) -> None:
        """Add to the usage totals. Not atomic with anything, so a store may batch it."""

    async def flush(self) -> None:
        """Send usage totals that are still batched (at shutdown, before a report)."""

    async def cache_get(self, key: str) -> bytes | None: ...

    async def cache_put(self, key: str, value: bytes, ttl: float) -> None: ...

    async def usage(self, window: str) -> list[UsageRow]:
        """Usage totals of one window (`d:YYYY-MM-DD` or `m:YYYY-MM`), by key and route."""

    async def spent(self, holds: Sequence[str]) -> list[float]:
        """USD committed so far (settled spend plus open reservations) under each hold name."""

    async def circuits(self, targets: Sequence[str]) -> list[tuple[CircuitRecord, float] | None]:
        """Each target's shared circuit record and when it last changed (unix seconds)."""

    async def circuit_put(self, target: str, record: CircuitRecord, changed_at: float, ttl: float) -> None: ...

    async def start(self) -> None:
        """Connect ahead of the first request (an unreachable store is not fatal)."""

    async def ping(self) -> bool:
        """Whether the store answers now (for /ready)."""

    async def close(self) -> None: ...


# How a store reads its settings: per call, so a reload applies them at once.
SettingsSource = Callable[[], StoreSettings]
