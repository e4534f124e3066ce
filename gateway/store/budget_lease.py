"""Budget leases: a replica's local share of a budget window, in dollars.

A budgeted request reserves its estimated cost before the upstream call and settles it to the
real cost afterwards. On Redis that is a round trip per request, before the call. For a budget
large enough, a replica instead takes a *lease* of `usd × store.quota_lease` dollars from the
window's counter in one script call (`BUDGET_GRANT`), reserves holds from it and settles real
costs against it in memory, tops it up in the background when under half is left, and gives
what is left back when idle for `IDLE_SECONDS` and at close, as quota leases do for rpm/tpm
(`gateway.store.lease`).

What Redis counts for a window is unchanged in meaning: every dollar committed, now including
the dollars leased to replicas and not spent yet. A grant never takes the counter past the
budget (it gives at most what is left), so leased reservations can never overshoot it; a hold
the lease cannot cover goes the exact path, which admits while the counter is below the budget
(as without leases) and so is where the refusal and the one-request overshoot come from. Costs
settled above their reservation are owed to Redis and charged, unconditionally, with the next
call. The fleet can thus refuse up to one lease per replica early (dollars parked elsewhere),
and never admits more than one lease per replica past the budget.

A hold is leased only when a lease covers at least `MIN_LEASE_HOLDS` holds of its size: a share
of a few reservations would renew on nearly every request and park dollars for nothing. With the
default share (0.02) that is a budget worth 400 of the request's reservation, the same rule as
rpm/tpm buckets under 400 units staying exact. Smaller budgets keep one script per request.

Leases are per hold name, which names one window (`<key>:d:2026-11-23`, `tenant:<t>:m:2026-11`):
a new window is a new lease, and the lease of the window before is handed back by the sweeper.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from gateway.store.interface import (
    Hold,
    SettingsSource,
    StoreUnavailable,
    Take,
    Verdict,
)

MIN_LEASE_HOLDS = 8  # a lease must cover this many holds of a request's size, else it goes exact
IDLE_SECONDS = 10.0  # a lease not spent from for this long goes back to Redis
SWEEP_SECONDS = 1.0
EMPTY_RETRY_SECONDS = 1.0  # Redis had little left: no background renewal for this long

BudgetSettle = tuple[str, float, int]  # (hold name, USD delta, ttl), as in `Settlement.budgets`
Exact = Callable[[Take], Awaitable[Verdict]]


@dataclass(frozen=True, slots=True)
class Ask:
    """One window's call to Redis: charge `owed` USD unconditionally (negative: give back), then
    take up to `want` USD without passing `limit`."""

    name: str
    limit: float
    owed: float
    want: float
    ttl: int


# Answers each Ask with (USD granted, USD committed in the window afterwards).
Grant = Callable[[Sequence[Ask]], Awaitable[list[tuple[float, float]]]]


def budget_lease_size(limit: float, fraction: float) -> float:
    """Dollars a replica leases of a budget window (0: leases are off)."""
    return max(0.0, limit * fraction)


def leasable(hold: Hold, size: float) -> bool:
    """Whether a lease of `size` is worth taking for holds like this one."""
    return size > 0 and hold.amount * MIN_LEASE_HOLDS <= size


def window_owner(name: str) -> str:
    """The budget a hold name belongs to, without its window (`d:YYYY-MM-DD` or `m:YYYY-MM`)."""
    return name.rsplit(":", 2)[0]


@dataclass(slots=True)
class _Lease:
    """What this replica holds of one budget window."""

    name: str
    limit: float
    ttl: int
    size: float
    usd: float = 0.0  # spendable here; below 0 when settled costs ran past their reservations
    surplus: float = 0.0  # USD settled back beyond `size`, returned with the next call
    used: float = field(default_factory=time.monotonic)
    not_before: float = 0.0
    renewal: asyncio.Task[None] | None = None

    def fit(self) -> None:
        if self.usd > self.size:
            self.surplus += self.usd - self.size
            self.usd = self.size

    def covers(self, amount: float) -> bool:
        return self.usd >= amount and self.usd > 0  # an empty lease never admits, even a free request

    def low(self) -> bool:
        return self.usd < self.size / 2 or self.surplus >= self.size / 2

    def returning(self) -> Ask:
        """Everything held here goes back (a debt is charged)."""
        return Ask(self.name, self.limit, -(self.usd + self.surplus), 0.0, self.ttl)


class BudgetLeases:
    """Serves the leasable holds of each take locally; the rest of the take goes to `exact`."""

    def __init__(self, grant: Grant, settings: SettingsSource):
        self._grant = grant
        self._settings = settings
        self._leases: dict[str, _Lease] = {}
        self._renewals: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._closed = False

    # ------------------------------------------------------------ taking

    async def take(self, take: Take, exact: Exact) -> Verdict:
        """All of `take` or nothing: leased holds here, everything else in one exact call."""
        holds = take.budgets
        leases = self._leases_for(holds)
        if not any(leases):
            return await exact(take)
        await self._ready(holds, leases)
        served = self._spend(holds, leases)
        rest = [i for i, lease in enumerate(served) if lease is None]
        verdict = Verdict(-1, 0.0)
        if rest or take.draws or take.slots:
            part = Take(take.draws, take.slots, take.lease, take.lease_seconds, None, tuple(holds[i] for i in rest))
            try:
                verdict = await exact(part)
            except BaseException:  # Redis down (the outage policy applies) or the request cancelled
                self._unspend(holds, served)
                raise
            if not verdict.granted:
                self._unspend(holds, served)
        self._renew_low([lease for lease in served if lease is not None])
        return _remapped(take, rest, verdict)

    def covering(self, holds: Sequence[Hold]) -> list[_Lease] | None:
        """Each hold's lease when every hold has one that covers it now, at its current budget
        and size (nothing to create, resize, wait for or send exact); else None. Spends nothing."""
        if self._closed:
            return None
        fraction = self._settings().quota_lease
        leases = self._leases
        out: list[_Lease] = []
        for hold in holds:
            lease = leases.get(hold.name)
            if lease is None or not lease.covers(hold.amount) or lease.limit != hold.limit or \
                    lease.size != budget_lease_size(hold.limit, fraction) or not leasable(hold, lease.size):
                return None
            out.append(lease)
        return out

    def spend_covered(self, holds: Sequence[Hold], leases: Sequence[_Lease]) -> None:
        """Reserve holds from the leases `covering` found for them."""
        now = time.monotonic()
        for hold, lease in zip(holds, leases):
            lease.usd -= hold.amount
            lease.used = now
        self._renew_low(leases)

    def _leases_for(self, holds: Sequence[Hold]) -> list[_Lease | None]:
        """Each hold's lease, or None for a hold that takes the exact path."""
        if self._closed:
            return [None] * len(holds)
        fraction = self._settings().quota_lease
        out: list[_Lease | None] = []
        for hold in holds:
            size = budget_lease_size(hold.limit, fraction)
            if not leasable(hold, size):
                out.append(None)
                continue
            lease = self._leases.get(hold.name)
            if lease is None:
                lease = self._leases[hold.name] = _Lease(hold.name, hold.limit, hold.ttl, size)
                self._retire_other_windows(hold.name)
                self._sweep_later()
            elif lease.size != size or lease.limit != hold.limit:  # a reload changed the budget or share
                lease.size, lease.limit = size, hold.limit
                lease.fit()
            out.append(lease)
        return out

    def _retire_other_windows(self, name: str) -> None:
        """A window rolled over: the old window's lease is idle from now on, so the sweeper returns it."""
        owner = window_owner(name)
        for other, lease in self._leases.items():
            if other != name and window_owner(other) == owner:
                lease.used = float("-inf")

    async def _ready(self, holds: Sequence[Hold], leases: Sequence[_Lease | None]) -> None:
        """Wait for the renewal of each lease too short for its hold (starting one when none runs)."""
        waits: list[asyncio.Task[None]] = []
        fresh: list[_Lease] = []
        now = time.monotonic()
        for hold, lease in zip(holds, leases):
            if lease is None or lease.covers(hold.amount):
                continue
            if lease.renewal is not None:
                waits.append(lease.renewal)
            elif now >= lease.not_before:
                fresh.append(lease)
        if fresh:
            waits.append(self._start_renewal(fresh))
        if waits:
            await asyncio.wait(set(waits))  # a request that gives up does not cancel the renewal

    def _spend(self, holds: Sequence[Hold], leases: Sequence[_Lease | None]) -> list[_Lease | None]:
        """Reserve each hold from its lease when it covers it; None where it does not.

        A lease handed back while this request waited (idle elsewhere, or at close) is not
        spent from: its dollars are Redis's again."""
        now = time.monotonic()
        served: list[_Lease | None] = []
        for hold, lease in zip(holds, leases):
            if lease is not None and self._leases.get(lease.name) is lease and lease.covers(hold.amount):
                lease.usd -= hold.amount
                lease.used = now
                served.append(lease)
            else:
                served.append(None)
        return served

    @staticmethod
    def _unspend(holds: Sequence[Hold], served: Sequence[_Lease | None]) -> None:
        """The rest of the take was refused: the dollars reserved here are this replica's again."""
        for hold, lease in zip(holds, served):
            if lease is not None:
                lease.usd += hold.amount
                lease.fit()

    # ------------------------------------------------------------ settling

    def absorb(self, budgets: Sequence[BudgetSettle]) -> tuple[BudgetSettle, ...]:
        """Settle holds of leased windows here (real cost minus reservation); returns those for Redis.

        Dollars are alike wherever they were reserved, so a hold that went the exact path is
        settled against the lease too: what it gives back is held here, and Redis counts it already.
        """
        rest: list[BudgetSettle] = []
        touched: list[_Lease] = []
        for name, delta, ttl in budgets:
            lease = self._leases.get(name)
            if lease is None or self._closed:
                rest.append((name, delta, ttl))
                continue
            lease.usd -= delta
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
        due = [lease for lease in due if now >= lease.not_before
               and self._leases.get(lease.name) is lease]  # never renew a lease already handed back
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
        """Bring each lease back to its size: pay what it owes, return any surplus, take the rest."""
        debts = [max(0.0, -lease.usd) for lease in leases]
        returned = [lease.surplus for lease in leases]
        asks = [Ask(lease.name, lease.limit, debt - surplus, lease.size - max(lease.usd, 0.0), lease.ttl)
                for lease, debt, surplus in zip(leases, debts, returned)]
        for lease in leases:
            lease.surplus = 0.0
        try:
            answers = await self._grant(asks)
        except StoreUnavailable:
            for lease, surplus in zip(leases, returned):
                lease.surplus += surplus  # still owed to Redis; local dollars may still be spent
            return
        finally:
            for lease in leases:
                lease.renewal = None
        now = time.monotonic()
        for lease, ask, debt, (granted, _) in zip(leases, asks, debts, answers):
            lease.usd += debt + granted
            lease.fit()
            if granted < ask.want / 2:  # the window is nearly spent: leave the rest to the exact path
                lease.not_before = now + EMPTY_RETRY_SECONDS

    # ------------------------------------------------------------ giving back

    def _sweep_later(self) -> None:
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    async def _sweep(self) -> None:
        """Return leases nobody has spent from for `IDLE_SECONDS`; ends once none is held."""
        while self._leases and not self._closed:
            await asyncio.sleep(SWEEP_SECONDS)
            now = time.monotonic()
            idle = [name for name, lease in self._leases.items()
                    if lease.renewal is None and now - lease.used >= IDLE_SECONDS]
            if idle:
                await self._give_back(idle)

    async def _give_back(self, names: Sequence[str]) -> None:
        """Hand leases back to Redis (paying any debt); kept here if Redis does not answer."""
        leases = [self._leases.pop(name) for name in names]
        asks = [lease.returning() for lease in leases]
        if not any(ask.owed for ask in asks):
            return
        try:
            await self._grant([ask for ask in asks if ask.owed])
        except StoreUnavailable:
            for lease in leases:
                self._keep(lease)

    def _keep(self, lease: _Lease) -> None:
        """A lease Redis would not take back is this replica's again (merged with a newer one)."""
        current = self._leases.get(lease.name)
        if current is None:
            self._leases[lease.name] = lease
            return
        current.usd += lease.usd
        current.surplus += lease.surplus
        current.fit()

    async def close(self) -> None:
        """At shutdown: no new leases, and every dollar held goes back to Redis."""
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._renewals:
            await asyncio.wait(set(self._renewals), timeout=2)
        if self._leases:
            await self._give_back(list(self._leases))  # if Redis is down, the window stays counted as spent


def _remapped(take: Take, rest: Sequence[int], verdict: Verdict) -> Verdict:
    """The exact call's verdict in terms of the whole take (its holds were only the `rest`)."""
    before = len(take.draws) + len(take.slots)
    refused = verdict.refused
    if refused >= before:
        refused = before + rest[refused - before]
    return Verdict(refused, verdict.wait, verdict.levels)
