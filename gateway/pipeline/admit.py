"""Admission: may this request go ahead under its key's and route's limits and budget?

`admit` checks and takes everything at once (one store call, so one Redis round trip):
one request from each `rpm`, an estimate of its tokens from each `tpm`, a `concurrency`
slot, and a reservation of its estimated cost from the key's budget. It returns an
`Admission`, which the endpoint settles once the answer is in (`account.py`): real
tokens replace the estimate, real cost replaces the reservation, slots are freed.

A provider's own quota is checked per candidate by `Admission.take_target`, just before
that target is called: a target whose provider is at its quota is skipped, never waited for.

Estimates are deliberately high (prompt estimate plus the requested or default output),
so a late settle can only make limits stricter for a moment, never looser.
"""

from __future__ import annotations

import asyncio
import calendar
import math
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from loguru import logger

from gateway.config.snapshot import Key, Limits, Route, Snapshot, StoreSettings, Target
from gateway.errors import BadRequest, BudgetExceeded, GatewayError, RateLimited
from gateway.ids import random_hex
from gateway.observe import metrics
from gateway.pipeline.request import EMBEDDING, ModelRequest
from gateway.providers.rate_limits import duration
from gateway.store import (
    Draw,
    Hold,
    Level,
    Settlement,
    Slots,
    Store,
    StoreUnavailable,
    Take,
    Verdict,
)
from gateway.values import value

DEFAULT_OUTPUT_TOKENS = 256  # reserved when a request names no output ceiling and its route none either
OPEN_KEY = "anonymous"  # the usage name of callers on a gateway without keys
DAY_HOLD_TTL = 2 * 86400
MONTH_HOLD_TTL = 33 * 86400


class StoreDown(GatewayError):
    """Fail-closed answer while the shared store cannot be reached."""

    status = 503
    type = "service_unavailable"
    code = "store_unavailable"


@value
class Check:
    """What one entry of a `Take` stands for, to explain a refusal."""

    scope: str  # key | tenant | user | route | provider
    name: str
    limit: str  # rpm | tpm | concurrency | budget
    value: float


@dataclass(slots=True)
class Admission:
    """What a request took; `account.settle` gives back what the answer did not use."""

    store: Store
    settings: StoreSettings
    key_name: str
    route: str
    tokens: int  # the estimate taken from each tpm
    windows: tuple[str, ...]
    lease: str = ""
    draws: list[Draw] = field(default_factory=list)  # tpm draws to settle with real usage
    slots: list[str] = field(default_factory=list)
    hold: Hold | None = None
    tenant_hold: Hold | None = None  # the tenant's shared budget, taken beside the key's own
    headers: dict[str, str] = field(default_factory=dict)
    providers: dict[str, list[Draw]] = field(default_factory=dict)  # target id -> its provider's tpm draw
    tasks: set[asyncio.Task[Any]] | None = None

    async def take_target(self, target: Target) -> bool:
        """Take one request (and the token estimate) from the target's provider quota; False: skip it."""
        limits = target.limits
        if not limits.metered:
            return True
        take, checks = _take(self, (("provider", target.provider, limits),), None)
        verdict = self.store.take_here(take)
        if verdict is None:
            try:
                verdict = await self.store.take(take)
            except StoreUnavailable:
                return self.settings.limits_fail_open
        if not verdict.granted:
            check = checks[verdict.refused]
            metrics.limit_rejected("provider", check.name, check.limit)
            logger.debug("skipping {}: provider '{}' is at its {} quota", target.id, target.provider, check.limit)
            return False
        self.providers[target.id] = [d for d in take.draws if d.bucket.endswith(":tpm")]
        self.slots.extend(s.name for s in take.slots)
        return True

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run store work after the answer, without making the client wait for a round trip."""
        if self.tasks is None:
            asyncio.ensure_future(work)
            return
        task = asyncio.get_running_loop().create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


def windows_now(now: float | None = None) -> tuple[str, str]:
    """The usage windows a moment falls in: its UTC day and its UTC month."""
    now = time.time() if now is None else now
    day_number = int(now // 86400)
    if _windows[0] != day_number:  # formatted once a day, not once a request
        day = time.strftime("%Y-%m-%d", time.gmtime(now))
        _windows[:] = [day_number, (f"d:{day}", f"m:{day[:7]}")]
    return _windows[1]


_windows: list[Any] = [None, ()]  # [UTC day number, its windows]


def open_holds(snapshot: Snapshot, now: float | None = None) -> list[tuple[str, str, int, int]]:
    """Each budgeted key's current window as (hold name, key name, window start in ms, ttl):
    what a starting gateway rebuilds from the ledger, so a restart does not renew a budget."""
    now = time.time() if now is None else now
    day, month = windows_now(now)
    t = time.gmtime(now)
    day_start = calendar.timegm((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0)) * 1000
    month_start = calendar.timegm((t.tm_year, t.tm_mon, 1, 0, 0, 0)) * 1000
    out = []
    for key in snapshot.keys.values():
        if key.budget is None:
            continue
        if key.budget.per == "day":
            out.append((f"{key.name}:{day}", key.name, day_start, DAY_HOLD_TTL))
        else:
            out.append((f"{key.name}:{month}", key.name, month_start, MONTH_HOLD_TTL))
    return out


def open_tenant_holds(snapshot: Snapshot, now: float | None = None) -> list[tuple[str, str, int, int]]:
    """`open_holds` for the budgets of tenants: (hold name, tenant name, window start in ms, ttl)."""
    now = time.time() if now is None else now
    windows = windows_now(now)
    t = time.gmtime(now)
    out = []
    for tenant in snapshot.tenants.values():
        if tenant.budget is None:
            continue
        day = tenant.budget.per == "day"
        start = calendar.timegm((t.tm_year, t.tm_mon, t.tm_mday if day else 1, 0, 0, 0)) * 1000
        out.append((tenant_hold_name(tenant.name, tenant.budget.per, windows), tenant.name, start,
                    DAY_HOLD_TTL if day else MONTH_HOLD_TTL))
    return out


def tenant_hold_name(tenant: str, per: str, windows: tuple[str, ...]) -> str:
    """A tenant's budget counter for the window it is in; key names have no ':', so no key's clashes."""
    return f"tenant:{tenant}:{windows[0] if per == 'day' else windows[1]}"


def seconds_to_rollover(per: str, now: float | None = None) -> int:
    """Seconds until the budget window (UTC day or month) starts again."""
    now = time.time() if now is None else now
    t = time.gmtime(now)
    if per == "day":
        end = calendar.timegm((t.tm_year, t.tm_mon, t.tm_mday + 1, 0, 0, 0))  # timegm carries day overflow
    else:
        end = calendar.timegm((t.tm_year + (t.tm_mon == 12), t.tm_mon % 12 + 1, 1, 0, 0, 0))
    return max(1, math.ceil(end - now))


def check_max_tokens(route: Route, request: ModelRequest) -> None:
    cap = route.limits.max_tokens
    asked = request.output_tokens
    if cap is None or asked is None or asked <= cap:
        return
    metrics.limit_rejected("route", route.alias, "max_tokens")
    raise BadRequest(
        f"'{request.output_field}' is {asked}, over the limit of {cap} for model '{route.alias}'",
        param=request.output_field, code="max_tokens_exceeded",
    )


def estimate_tokens(request: ModelRequest, route: Route) -> tuple[int, int]:
    """(prompt, output) tokens expected before the upstream answers: the request's own
    estimate, and the output it asked for (else the route's cap, else a default), once per
    answer it asks for (`n`)."""
    if request.kind == EMBEDDING:
        return request.prompt_tokens, 0
    output = request.output_tokens or route.limits.max_tokens or DEFAULT_OUTPUT_TOKENS
    return request.prompt_tokens, output * request.choices


def estimate_cost(candidates: tuple[Target, ...], prompt: int, output: int) -> float:
    """The dearest candidate's price: the reservation must cover whoever answers."""
    if len(candidates) == 1:
        return candidates[0].price.cost(prompt, output)
    return max((t.price.cost(prompt, output) for t in candidates), default=0.0)


async def admit(
    store: Store,
    snapshot: Snapshot,
    key: Key | None,
    route: Route,
    request: ModelRequest,
    candidates: tuple[Target, ...],
    tasks: set[asyncio.Task[Any]] | None = None,
    user: str | None = None,
) -> Admission:
    """Take the request's share of every limit and budget, or raise 429 (or 503 when failing closed).

    A caller whose plan counts per end user (a token's, or a key's with `per_user`) also takes
    from its user's own counters, named for the tenant (else the key) and the user, so one
    heavy user is throttled alone; a request naming no user counts against the key alone."""
    check_max_tokens(route, request)
    prompt, output = estimate_tokens(request, route)
    usage_name = OPEN_KEY if key is None else key.id if key.source == "jwt" else key.name
    admission = Admission(store, snapshot.store, usage_name, route.alias, prompt + output, windows_now(), tasks=tasks)
    grants = key.grants if key is not None else None
    per_user = key is not None and key.per_user and user is not None and key.plan.limits.metered  # type: ignore[union-attr]
    if not route.limits.metered and (key is None or (not key.limits.metered and key.budget is None)) and (
        grants is None or (not grants.limits.metered and grants.budget is None)
    ) and not per_user:
        return admission  # nothing to take: no store call, nothing to settle
    scopes: list[tuple[str, str, Limits]] = [("route", route.alias, route.limits)]
    if per_user:
        assert key is not None and key.plan is not None
        scopes.insert(0, ("user", f"{key.tenant or key.name}/{user}", key.plan.limits))
    hold = None
    if key is not None:
        scopes.insert(0, ("key", key.name, key.limits))
        if key.budget is not None:
            window = admission.windows[0] if key.budget.per == "day" else admission.windows[1]
            ttl = DAY_HOLD_TTL if key.budget.per == "day" else MONTH_HOLD_TTL
            hold = Hold(f"{key.name}:{window}", key.budget.usd, estimate_cost(candidates, prompt, output), ttl)
    if grants is not None:
        scopes.insert(1, ("tenant", grants.name, grants.limits))
        if grants.budget is not None:
            ttl = DAY_HOLD_TTL if grants.budget.per == "day" else MONTH_HOLD_TTL
            admission.tenant_hold = Hold(tenant_hold_name(grants.name, grants.budget.per, admission.windows),
                                         grants.budget.usd, estimate_cost(candidates, prompt, output), ttl)
    take, checks = _take(admission, scopes, hold)
    if not take.checks:
        return admission
    verdict = store.take_here(take)  # most takes on a busy replica: from its leases, no round trip
    if verdict is None:
        try:
            verdict = await store.take(take)
        except StoreUnavailable:
            admission.tenant_hold = None  # nothing was reserved, so nothing is to be settled
            return _outage(admission, take, snapshot.store)
    if not verdict.granted:
        raise _refusal(checks[verdict.refused], verdict, take, checks, key, snapshot.per_key_metrics,
                       snapshot.per_user_metrics)
    admission.draws = [d for d in take.draws if d.bucket.endswith(":tpm")]
    admission.slots = [s.name for s in take.slots]
    admission.hold = hold
    admission.headers = rate_headers(take, checks, verdict)
    return admission


def _take(admission: Admission, scopes: Any, hold: Hold | None) -> tuple[Take, list[Check]]:
    """Build the all-or-nothing take for some scopes, and what each of its checks means."""
    draws: list[Draw] = []
    slots: list[Slots] = []
    draw_checks: list[Check] = []
    slot_checks: list[Check] = []
    for scope, name, limits in scopes:
        meter = _meter(scope, name, limits)
        if meter.rpm is not None:
            draws.append(meter.rpm)
            draw_checks.append(meter.rpm_check)
        if meter.tpm is not None:
            draws.append(Draw(meter.tpm, meter.tpm_capacity, admission.tokens))
            draw_checks.append(meter.tpm_check)
        if meter.slots is not None:
            slots.append(meter.slots)
            slot_checks.append(meter.slots_check)
    checks = draw_checks + slot_checks if slot_checks else draw_checks
    if hold is not None:
        checks.append(Check("key", admission.key_name, "budget", hold.limit))
    tenant_hold = admission.tenant_hold if scopes and scopes[0][0] != "provider" else None
    if tenant_hold is not None:
        checks.append(Check("tenant", tenant_hold.name.split(":")[1], "budget", tenant_hold.limit))
    if slots and not admission.lease:
        admission.lease = random_hex()
    take = Take(tuple(draws), tuple(slots), admission.lease, admission.settings.lease, hold,
                (tenant_hold,) if tenant_hold is not None else ())
    return take, checks


@dataclass(slots=True)
class _Meter:
    """What one scope's limits put in a take, built once: bucket names, the rpm draw (always
    one unit), the checks. Only a tpm draw's amount changes from request to request."""

    limits: Limits  # the object these were built from, to tell a reload's new limits apart
    rpm: Draw | None
    rpm_check: Check | None
    tpm: str | None
    tpm_capacity: int
    tpm_check: Check | None
    slots: Slots | None
    slots_check: Check | None


_meters: dict[tuple[str, str], _Meter] = {}


def _meter(scope: str, name: str, limits: Limits) -> _Meter:
    """The scope's `_Meter`, remade when its limits object is not the one it was built from."""
    meter = _meters.get((scope, name))
    if meter is not None and meter.limits is limits:
        return meter
    if len(_meters) >= 4096:  # users' scopes are named by clients: keep the table bounded
        _meters.clear()
    rpm, tpm, concurrency = limits.rpm, limits.tpm, limits.concurrency
    meter = _meters[(scope, name)] = _Meter(
        limits,
        Draw(f"{scope}:{name}:rpm", rpm, 1) if rpm is not None else None,
        Check(scope, name, "rpm", rpm) if rpm is not None else None,
        f"{scope}:{name}:tpm" if tpm is not None else None,
        tpm or 0,
        Check(scope, name, "tpm", tpm) if tpm is not None else None,
        Slots(f"{scope}:{name}", concurrency) if concurrency is not None else None,
        Check(scope, name, "concurrency", concurrency) if concurrency is not None else None,
    )
    return meter


def _outage(admission: Admission, take: Take, settings: StoreSettings) -> Admission:
    """The store is down: each concern the request touches lets it through or refuses it."""
    if take.budgets and not settings.budgets_fail_open:
        raise StoreDown("budgets cannot be checked right now; try again shortly", headers={"retry-after": "1"})
    if (take.draws or take.slots) and not settings.limits_fail_open:
        raise StoreDown("rate limits cannot be checked right now; try again shortly", headers={"retry-after": "1"})
    return admission  # nothing was taken, so nothing will be settled


def _refusal(
    check: Check, verdict: Verdict, take: Take, checks: list[Check], key: Key | None, per_key: bool = True,
    per_user: bool = False,
) -> GatewayError:
    label = check.name if per_key or check.scope != "key" else ""  # key names are labels only when allowed
    if check.scope == "user":
        label = check.name.partition("/")[2] if per_user else ""  # users are unbounded: labels only when asked
    if check.limit == "budget":
        metrics.budget_rejected(label)
        budget = key.budget if key is not None and check.scope == "key" else None
        if check.scope == "tenant" and key is not None and key.grants is not None:
            budget = key.grants.budget
        per = budget.per if budget is not None else "day"
        wait = seconds_to_rollover(per)
        return BudgetExceeded(
            f"the budget of {check.scope} '{check.name}' (${check.value:g} per {per}) is spent; it renews in {wait}s",
            headers={"retry-after": str(wait)},
        )
    metrics.limit_rejected(check.scope, label, check.limit)
    wait = max(verdict.wait, 0.001)
    headers = rate_headers(take, checks, verdict)
    if check.limit == "concurrency":
        headers["x-ratelimit-limit-concurrency"] = str(int(check.value))
        headers["x-ratelimit-remaining-concurrency"] = "0"
    headers["retry-after"] = str(max(1, math.ceil(wait)))
    headers["retry-after-ms"] = str(max(1, math.ceil(wait * 1000)))
    unit = {"rpm": "requests per minute", "tpm": "tokens per minute", "concurrency": "requests at once"}[check.limit]
    if check.scope == "user":
        owner, _, user = check.name.partition("/")
        plan = key.plan.name if key is not None and key.plan is not None else ""
        return RateLimited(
            f"rate limit reached for user '{user}' of '{owner}' (plan '{plan}'): {int(check.value)} {unit}; "
            f"retry in {wait:.2f}s",
            headers=headers,
        )
    what = check.scope if check.scope in ("key", "tenant") else "model"
    return RateLimited(
        f"rate limit reached for {what} '{check.name}': {int(check.value)} {unit}; retry in {wait:.2f}s",
        headers=headers,
    )


def rate_headers(take: Take, checks: list[Check], verdict: Verdict) -> dict[str, str]:
    """OpenAI's x-ratelimit-* headers, for the tightest request and token limit that applied."""
    best: dict[str, tuple[Draw, Level]] = {}
    for i, level in enumerate(verdict.levels):
        limit = checks[i].limit
        found = best.get(limit)
        if found is None or level.remaining < found[1].remaining:
            best[limit] = (take.draws[i], level)
    headers: dict[str, str] = {}
    for limit, (draw, level) in best.items():
        names = _HEADERS.get(limit)
        if names is not None:
            headers[names[0]] = str(draw.capacity)
            headers[names[1]] = str(level.remaining)
            headers[names[2]] = duration(level.reset)
    return headers


_HEADERS = {limit: (f"x-ratelimit-limit-{kind}", f"x-ratelimit-remaining-{kind}", f"x-ratelimit-reset-{kind}")
            for limit, kind in (("rpm", "requests"), ("tpm", "tokens"))}


def settlement(admission: Admission, target: Target | None, tokens: int, cost: float) -> Settlement | None:
    """Give back what the answer did not use: tokens, slots, and the unspent reservation."""
    adjustments = [Draw(d.bucket, d.capacity, tokens - d.amount) for d in admission.draws]
    for target_id, draws in admission.providers.items():
        used = tokens if target is not None and target_id == target.id else 0
        adjustments += [Draw(d.bucket, d.capacity, used - d.amount) for d in draws]
    budget = None
    if admission.hold is not None:
        budget = (admission.hold.name, cost - admission.hold.amount, admission.hold.ttl)
    shared = admission.tenant_hold
    budgets = ((shared.name, cost - shared.amount, shared.ttl),) if shared is not None else ()
    if not adjustments and not admission.slots and budget is None and not budgets:
        return None
    return Settlement(tuple(adjustments), tuple(admission.slots), admission.lease, budget, budgets)
