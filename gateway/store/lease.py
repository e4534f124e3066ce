"""Quota leases: a replica's local share of a shared rpm or tpm bucket.

Asking Redis on every request costs a round trip before the upstream call. For a bucket
large enough that a small share of it is still several units, a replica instead takes a
*lease*, `capacity × store.quota_lease` units (rounded down), from the Redis bucket in one
script call and spends it locally with no I/O. When less than half a lease is left a
background call tops it up, so a busy replica rarely waits; unused units go back to Redis
when the lease has been idle for `IDLE_SECONDS` and when the store closes.

The price is a bounded error. A replica never holds more than one lease of a bucket, and
the units it holds were already taken from Redis, so a fleet of N replicas admits at most
N leases more than one exact bucket would over any stretch of time (units taken before the
stretch and spent in it), and refuses at most N leases early (units parked on another
replica). Buckets whose lease would be under `MIN_LEASE_UNITS` units, draws larger than a
lease and concurrency slots keep the exact path: one atomic script per request. Budgets are
leased in dollars, by the same rules, in `gateway.store.budget_lease`; a take's exact part
goes through those leases before it reaches Redis.

A request whose leased units do not cover it waits for the renewal (one round trip, as
without leases) and, when Redis had too little to give, goes the exact path, so a refusal
and its retry-after come from Redis's own bucket.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from gateway.store.interface import (
    WINDOW_SECONDS,
    Draw,
    Level,
    SettingsSource,
    StoreUnavailable,
    Take,
    Verdict,
)

MIN_LEASE_UNITS = 8  # smaller shares would buy little and make small limits inexact
IDLE_SECONDS = 10.0  # a lease not spent from for this long goes back to Redis
SWEEP_SECONDS = 1.0

# Asks Redis for units: each Draw's amount is how many (up to that many are granted; a
# negative amount gives units back). Returns, per draw, the units granted and the level left.
Grant = Callable[[Sequence[Draw]], Awaitable[list[tuple[int, Level]]]]
# Applies adjustments to Redis buckets the way a settlement does (returns, or usage owed).
Adjust = Callable[[Sequence[Draw]], Awaitable[None]]
Exact = Callable[[Take], Awaitable[Verdict]]


def lease_size(capacity: int, fraction: float) -> int:
    """Units a replica leases of a bucket; 0 when the bucket is too small to lease."""
    size = int(capacity * fraction)
    return size if size >= MIN_LEASE_UNITS else 0


@dataclass(slots=True)
class _Lease:
    """What this replica holds of one bucket, and what it last heard of the rest."""

    bucket: str
    capacity: int
    size: int
    units: int = 0  # spendable here; below 0 when settled usage ran past the estimate
    surplus: int = 0  # units settled back beyond `size`, returned with the next call
    shared: int = 0  # units Redis had left after the last grant
    granted_at: float = field(default_factory=time.monotonic)
    used: float = field(default_factory=time.monotonic)
    not_before: float = 0.0  # Redis was nearly empty: no renewal before this
    renewal: asyncio.Task[None] | None = None

    def resize(self, size: int) -> None:
        """A reload changed the share: units past the new size go back with the next call."""
        self.size = size
        self.fit()

    def fit(self) -> None:
        if self.units > self.size:
            self.surplus += self.units - self.size
            self.units = self.size

    def low(self) -> bool:
        return self.units < self.size // 2 or self.surplus >= self.size // 2

    def level(self, now: float) -> Level:
        """An estimate of the bucket's level: Redis's at the last grant, refilled since, plus what is held here."""
        refill = (now - self.granted_at) * self.capacity / WINDOW_SECONDS
        tokens = min(float(self.capacity), self.shared + refill + self.units)
        reset = max(0.0, (self.capacity - tokens) * WINDOW_SECONDS / self.capacity)
        return Level(max(0, int(tokens)), reset)


class QuotaLeases:
    """Serves the leasable draws of each take locally; the rest goes to `exact`."""

    def __init__(self, grant: Grant, adjust: Adjust, settings: SettingsSource):
        self._grant = grant
        self._adjust = adjust
        self._settings = settings
        self._leases: dict[tuple[str, int], _Lease] = {}
        self._renewals: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._closed = False

    # ------------------------------------------------------------ taking

    async def take(self, take: Take, exact: Exact) -> Verdict:
        """All of `take` or nothing: leased units here, everything else in one exact call."""
        leases = self._leases_for(take.draws)
        if not any(leases):
            return await exact(take)
        await self._ready(take.draws, leases)
        served = self._spend(take.draws, leases)
        rest = [i for i, lease in enumerate(served) if lease is None]
        verdict = Verdict(-1, 0.0)
        if rest or take.slots or take.budgets:
            part = Take(tuple(take.draws[i] for i in rest), take.slots, take.lease, take.lease_seconds,
                        take.hold, take.holds)
            try:
                verdict = await exact(part)
            except BaseException:  # Redis down (the outage policy applies) or the request cancelled
                self._unspend(take.draws, served)
                raise
            if not verdict.granted:
                self._unspend(take.draws, served)
        self._renew_low([lease for lease in served if lease is not None])
        return _merged(take, served, rest, verdict)

    def covering(self, draws: Sequence[Draw]) -> list[_Lease] | None:
        """Each draw's lease when every draw has one that covers it now, at its current size
        (nothing to create, resize, wait for or send exact); else None. Spends nothing."""
        if self._closed:
            return None
        fraction = self._settings().quota_lease
        leases = self._leases
        out: list[_Lease] = []
        for draw in draws:
            lease = leases.get((draw.bucket, draw.capacity))
            if lease is None or lease.units < draw.amount or draw.amount > lease.size or \
                    lease.size != lease_size(draw.capacity, fraction):
                return None
            out.append(lease)
        return out

    def spend_covered(self, draws: Sequence[Draw], leases: Sequence[_Lease]) -> tuple[Level, ...]:
        """Spend draws from the leases `covering` found for them; each bucket's estimated level."""
        now = time.monotonic()
        for draw, lease in zip(draws, leases):
            lease.units -= draw.amount
            lease.used = now
        self._renew_low(leases)
        return tuple(lease.level(now) for lease in leases)

    def _leases_for(self, draws: Sequence[Draw]) -> list[_Lease | None]:
        """Each draw's lease, or None for a draw that takes the exact path."""
        if self._closed:
            return [None] * len(draws)
        fraction = self._settings().quota_lease
        out: list[_Lease | None] = []
        for draw in draws:
            size = lease_size(draw.capacity, fraction)
            if size == 0 or draw.amount > size:
                out.append(None)
                continue
            lease = self._leases.get((draw.bucket, draw.capacity))
            if lease is None:
                lease = self._leases[(draw.bucket, draw.capacity)] = _Lease(draw.bucket, draw.capacity, size)
                self._sweep_later()
            elif lease.size != size:
                lease.resize(size)
            out.append(lease)
        return out

    async def _ready(self, draws: Sequence[Draw], leases: Sequence[_Lease | None]) -> None:
        """Wait for the renewal of each lease too short for its draw (starting one when none runs)."""
        waits: list[asyncio.Task[None]] = []
        fresh: list[_Lease] = []
        now = time.monotonic()
        for draw, lease in zip(draws, leases):
            if lease is None or lease.units >= draw.amount:
                continue
            if lease.renewal is not None:
                waits.append(lease.renewal)
            elif now >= lease.not_before:
                fresh.append(lease)
        if fresh:
            waits.append(self._start_renewal(fresh))
        if waits:
            await asyncio.wait(set(waits))  # a request that gives up does not cancel the renewal

    def _spend(self, draws: Sequence[Draw], leases: Sequence[_Lease | None]) -> list[_Lease | None]:
        """Take each draw from its lease when it covers it; None where it does not.

        A lease handed back while this request waited (idle, or at close) is not spent
        from: its units are Redis's again."""
        now = time.monotonic()
        served: list[_Lease | None] = []
        for draw, lease in zip(draws, leases):
            if lease is not None and lease.units >= draw.amount and self._held(lease):
                lease.units -= draw.amount
                lease.used = now
                served.append(lease)
            else:
                served.append(None)
        return served

    @staticmethod
    def _unspend(draws: Sequence[Draw], served: Sequence[_Lease | None]) -> None:
        """The rest of the take was refused: the units spent here are this replica's again."""
        for draw, lease in zip(draws, served):
            if lease is not None:
                lease.units += draw.amount
                lease.fit()

    def _held(self, lease: _Lease) -> bool:
        """Whether `lease` is still this replica's (not handed back since it was looked up)."""
        return self._leases.get((lease.bucket, lease.capacity)) is lease

    # ------------------------------------------------------------ settling

    def absorb(self, adjustments: Sequence[Draw]) -> tuple[Draw, ...]:
        """Apply settlement adjustments of leased buckets here; returns those Redis must apply."""
        rest: list[Draw] = []
        touched: list[_Lease] = []
        for draw in adjustments:
            lease = self._leases.get((draw.bucket, draw.capacity))
            if lease is None or self._closed:
                rest.append(draw)
                continue
            lease.units -= draw.amount
            lease.fit()
            touched.append(lease)
        self._renew_low(touched)
        return tuple(rest)

    # ------------------------------------------------------------ renewing

    def _renew_low(self, leases: Sequence[_Lease]) -> None:
        """Top up, in the background and in one call, every lease that is running low."""
        if self._closed:
            return
        due = [lease for lease in leases if lease.renewal is None and lease.low()]
        if not due:  # the usual case: nothing to look at twice
            return
        now = time.monotonic()
        due = [lease for lease in due if now >= lease.not_before and self._held(lease)]  # never top up one handed back
        if due:
            self._start_renewal(list({id(lease): lease for lease in due}.values()))

    def _start_renewal(self, leases: list[_Lease]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(self._renew(leases))
        for lease in leases:
            lease.renewal = task
        self._renewals.add(task)
        task.add_done_callback(self._renewals.discard)
        return task

    async def _renew(self, leases: list[_Lease]) -> None:
        """Ask Redis to bring each lease back to its size, returning any surplus in the same call."""
        returned = [lease.surplus for lease in leases]
        asks = [lease.size - lease.units - lease.surplus for lease in leases]
        for lease in leases:
            lease.surplus = 0
        try:
            answers = await self._grant([Draw(lease.bucket, lease.capacity, ask) for lease, ask in zip(leases, asks)])
        except StoreUnavailable:
            for lease, surplus in zip(leases, returned):
                lease.surplus += surplus  # still owed to Redis; local units may still be spent
            return
        finally:
            for lease in leases:
                lease.renewal = None
        now = time.monotonic()
        for lease, ask, surplus, (granted, level) in zip(leases, asks, returned, answers):
            lease.units += (granted if ask > 0 else ask) + surplus
            lease.fit()
            lease.shared = level.remaining
            lease.granted_at = now
            if ask > 0 and granted < ask // 2:  # Redis is nearly empty: wait for half a lease to refill
                lease.not_before = now + (lease.size / 2) * WINDOW_SECONDS / lease.capacity

    # ------------------------------------------------------------ giving back

    def _sweep_later(self) -> None:
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    async def _sweep(self) -> None:
        """Return leases nobody has spent from for `IDLE_SECONDS`; ends once none is held."""
        while self._leases and not self._closed:
            await asyncio.sleep(SWEEP_SECONDS)
            now = time.monotonic()
            idle = [key for key, lease in self._leases.items()
                    if lease.renewal is None and now - lease.used >= IDLE_SECONDS]
            if idle:
                await self._give_back(idle)

    async def _give_back(self, keys: Sequence[tuple[str, int]]) -> None:
        """Hand leases back to Redis (settling any usage they owe); kept here if Redis does not answer."""
        leases = [self._leases.pop(key) for key in keys]
        adjustments = [Draw(lease.bucket, lease.capacity, -(lease.units + lease.surplus)) for lease in leases]
        adjustments = [draw for draw in adjustments if draw.amount]
        if not adjustments:
            return
        try:
            await self._adjust(adjustments)
        except StoreUnavailable:
            for lease in leases:
                self._keep(lease)

    def _keep(self, lease: _Lease) -> None:
        """A lease Redis would not take back is this replica's again (merged with a newer one)."""
        key = (lease.bucket, lease.capacity)
        current = self._leases.get(key)
        if current is None:
            self._leases[key] = lease
            return
        current.units += lease.units
        current.surplus += lease.surplus
        current.fit()

    async def close(self) -> None:
        """At shutdown: no new leases, and every unit held goes back to Redis."""
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._renewals:
            await asyncio.wait(set(self._renewals), timeout=2)
        if self._leases:
            await self._give_back(list(self._leases))  # if Redis is down, its buckets refill anyway


def _merged(take: Take, served: Sequence[_Lease | None], rest: Sequence[int], verdict: Verdict) -> Verdict:
    """The verdict of the whole take, from the local draws and the exact call's verdict for `rest`."""
    now = time.monotonic()
    levels: list[Level] = []
    exact = {i: j for j, i in enumerate(rest)}
    for i, lease in enumerate(served):
        j = exact.get(i)
        if j is not None and j < len(verdict.levels):
            levels.append(verdict.levels[j])
        elif lease is not None:
            levels.append(lease.level(now))
        else:
            levels.append(Level(0, 0.0))
    refused = verdict.refused
    if refused >= 0:
        refused = rest[refused] if refused < len(rest) else refused - len(rest) + len(take.draws)
    return Verdict(refused, verdict.wait, tuple(levels))
