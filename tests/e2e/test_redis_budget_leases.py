"""Budget leases on a real Redis: dollars of a budget window spent locally by two stores (two
replicas), the overshoot bound, settlement, leftovers going back, small budgets staying exact,
window rollover, all-or-nothing takes and Redis dying mid-way."""

from __future__ import annotations

import asyncio
import hashlib

import httpx
import pytest
import redis

from gateway.config.snapshot import StoreSettings
from gateway.pipeline.admit import windows_now
from gateway.store import Draw, Hold, Settlement, Slots, StoreUnavailable, Take
from gateway.store import budget_lease as budget_lease_module
from gateway.store._redis import RedisStore
from gateway.store.budget_lease import budget_lease_size, leasable, window_owner
from tests.support.redis_server import new_prefix

FRACTION = 0.02
TTL = 3600


def replica(url: str, prefix: str, **extra) -> RedisStore:
    chosen = StoreSettings(**{"prefix": prefix, "quota_lease": FRACTION, **extra})
    return RedisStore(url, lambda: chosen)


def committed(url: str, prefix: str, name: str) -> float:
    """The window's counter as Redis keeps it."""
    value = redis.Redis.from_url(url).get(f"{prefix}budget:{name}")
    return float(value) if value is not None else 0.0


def script_calls(url: str) -> int:
    stats = redis.Redis.from_url(url).info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k in ("cmdstat_evalsha", "cmdstat_eval"))


def budget_lease(store: RedisStore, name: str):
    return store._budget_leases._leases.get(name)


@pytest.fixture
def prefix() -> str:
    return new_prefix()


def test_the_lease_rule():
    assert budget_lease_size(50, FRACTION) == 1.0
    assert leasable(Hold("k:d:2026-01-01", 50, 0.125, TTL), 1.0)  # 8 reservations fit a lease
    assert not leasable(Hold("k:d:2026-01-01", 50, 0.126, TTL), 1.0)
    assert not leasable(Hold("k:d:2026-01-01", 50, 0.0, TTL), 0.0)  # quota_lease: 0 turns them off
    assert window_owner("team:d:2026-11-23") == window_owner("team:m:2026-11") == "team"
    assert window_owner("tenant:acme:d:2026-11-23") == "tenant:acme"


async def test_a_leased_budget_costs_no_round_trip_per_request(redis_url, prefix):
    a = replica(redis_url, prefix)
    hold = Hold("busy:d:2026-01-01", 1000.0, 0.01, TTL)
    try:
        assert (await a.take(Take(hold=hold))).granted  # takes the lease: $20
        before = script_calls(redis_url)
        for _ in range(300):
            assert (await a.take(Take(hold=hold))).granted
            await a.settle(Settlement(budget=(hold.name, 0.005 - hold.amount, TTL)))  # cost half the estimate
        # About $1.51 spent of a $20 lease: no renewal was even due, no settle went to Redis.
        assert script_calls(redis_url) - before == 0
        assert committed(redis_url, prefix, hold.name) == pytest.approx(20.0)
        assert (await a.spent([hold.name])) == [pytest.approx(20.0)]  # leased dollars count as committed
    finally:
        await a.close()
    assert committed(redis_url, prefix, hold.name) == pytest.approx(0.01 + 0.005 * 300)


async def test_what_the_leases_hold_is_settled_at_once_and_only_the_rest_is_left_for_redis(redis_url, prefix):
    a = replica(redis_url, prefix)
    hold = Hold("now:d:2026-01-01", 1000.0, 0.01, TTL)
    draw = Draw("key:now:rpm", 60_000, 1)
    try:
        assert (await a.take(Take(draws=(draw,), hold=hold))).granted  # both leased
        held = budget_lease(a, hold.name).usd
        before = script_calls(redis_url)
        # The request cost $0.004 less than its reservation and used its one rpm unit: no I/O left.
        assert a.settle_here(Settlement(adjustments=(Draw(draw.bucket, draw.capacity, 0),),
                                        budget=(hold.name, -0.004, TTL))) is None
        assert budget_lease(a, hold.name).usd == pytest.approx(held + 0.004)
        # A concurrency slot lives in Redis only: it is what is left, without the leased parts.
        rest = a.settle_here(Settlement(slots=("key:now",), lease="r1", budget=(hold.name, -0.001, TTL)))
        assert rest is not None and rest.slots == ("key:now",) and rest.all_budgets == ()
        assert script_calls(redis_url) == before  # settle_here itself never calls Redis
    finally:
        await a.close()


async def test_two_replicas_never_pass_a_budget_by_more_than_a_lease_each(redis_url, prefix):
    usd, amount = 10.0, 0.01
    size = budget_lease_size(usd, FRACTION)
    hold = Hold("shared:d:2026-01-01", usd, amount, TTL)
    assert leasable(hold, size) and size == pytest.approx(0.2)
    a, b = replica(redis_url, prefix), replica(redis_url, prefix)
    admitted = refused = 0
    try:
        for _ in range(2000):
            verdicts = await asyncio.gather(*(store.take(Take(hold=hold)) for store in (a, b, a, b)))
            admitted += sum(v.granted for v in verdicts)
            refused += sum(not v.granted for v in verdicts)
            assert all(v.refused in (-1, 0) for v in verdicts)  # a refusal names the budget
            if refused >= 40:
                break
        assert refused >= 40
        reserved = admitted * amount
        # The documented bound: at most one lease per replica past the budget, and as many early.
        assert usd - 2 * size <= reserved <= usd + 2 * size
        # Grants never pass the budget: only the exact path's last reservation may.
        assert reserved <= usd + amount + 1e-9
        assert committed(redis_url, prefix, hold.name) <= usd + amount + 1e-9
    finally:
        await a.close()
        await b.close()
    assert committed(redis_url, prefix, hold.name) == pytest.approx(reserved)  # leftovers went back


async def test_settled_costs_below_and_above_the_reservation_reach_redis(redis_url, prefix):
    a = replica(redis_url, prefix)
    name = "settle:d:2026-01-01"
    hold = Hold(name, 1000.0, 0.5, TTL)
    try:
        assert (await a.take(Take(hold=hold))).granted
        await a.settle(Settlement(budget=(name, 0.1 - 0.5, TTL)))  # cost $0.10 of $0.50 reserved
        assert budget_lease(a, name).usd == pytest.approx(19.9)
        assert (await a.take(Take(hold=hold))).granted
        await a.settle(Settlement(budget=(name, 0.8 - 0.5, TTL)))  # cost $0.80: more than reserved
        assert budget_lease(a, name).usd == pytest.approx(19.1)
        assert (await a.take(Take(hold=hold))).granted
        await a.settle(Settlement(budget=(name, 25.0 - 0.5, TTL)))  # $25: past the whole lease
        assert budget_lease(a, name).usd < 0
        await asyncio.sleep(0.2)  # the renewal pays the debt whatever the budget, and refills the lease
        assert budget_lease(a, name).usd == pytest.approx(20.0)
        assert committed(redis_url, prefix, name) == pytest.approx(0.1 + 0.8 + 25.0 + 20.0)
    finally:
        await a.close()
    assert committed(redis_url, prefix, name) == pytest.approx(0.1 + 0.8 + 25.0)


async def test_an_exact_reservation_is_settled_against_the_lease(redis_url, prefix):
    a = replica(redis_url, prefix)
    name = "mixed:d:2026-01-01"
    small, large = Hold(name, 1000.0, 0.5, TTL), Hold(name, 1000.0, 5.0, TTL)
    try:
        assert (await a.take(Take(hold=small))).granted  # a $20 lease
        assert not leasable(large, 20.0)
        assert (await a.take(Take(hold=large))).granted  # too large for it: reserved in Redis
        assert committed(redis_url, prefix, name) == pytest.approx(25.0)
        await a.settle(Settlement(budget=(name, 1.0 - 5.0, TTL)))  # it cost $1
    finally:
        await a.close()
    assert committed(redis_url, prefix, name) == pytest.approx(0.5 + 1.0)


async def test_leftover_dollars_go_back_on_close(redis_url, prefix):
    a = replica(redis_url, prefix)
    name = "back:d:2026-01-01"
    assert (await a.take(Take(hold=Hold(name, 500.0, 0.25, TTL)))).granted
    assert committed(redis_url, prefix, name) == pytest.approx(10.0)  # a whole lease left Redis
    await a.close()
    assert committed(redis_url, prefix, name) == pytest.approx(0.25)  # all but the reservation came back
    assert 0 < redis.Redis.from_url(redis_url).ttl(f"{prefix}budget:{name}") <= TTL


async def test_an_idle_budget_lease_goes_back_by_itself(redis_url, prefix, monkeypatch):
    monkeypatch.setattr(budget_lease_module, "IDLE_SECONDS", 0.2)
    monkeypatch.setattr(budget_lease_module, "SWEEP_SECONDS", 0.05)
    a = replica(redis_url, prefix)
    name = "idle:d:2026-01-01"
    try:
        assert (await a.take(Take(hold=Hold(name, 500.0, 0.25, TTL)))).granted
        assert committed(redis_url, prefix, name) == pytest.approx(10.0)
        await asyncio.sleep(0.6)
        assert committed(redis_url, prefix, name) == pytest.approx(0.25)
        assert not a._budget_leases._leases
        await a.settle(Settlement(budget=(name, 0.05 - 0.25, TTL)))  # a late settle goes to Redis itself
        assert committed(redis_url, prefix, name) == pytest.approx(0.05)
    finally:
        await a.close()


async def test_small_budgets_stay_exact_across_replicas(redis_url, prefix):
    a, b = replica(redis_url, prefix), replica(redis_url, prefix)
    try:
        for usd, amount in ((1.0, 0.25), (100.0, 1.0), (1000.0, 5.0)):  # a lease would cover under 8 holds
            hold = Hold(f"small{int(usd)}:d:2026-01-01", usd, amount, TTL)
            assert not leasable(hold, budget_lease_size(usd, FRACTION))
            fits = int(usd / amount)
            before = script_calls(redis_url)
            granted = [(await (a if i % 2 else b).take(Take(hold=hold))).granted for i in range(fits + 2)]
            assert script_calls(redis_url) - before == fits + 2  # one script per request, as before
            assert granted == [True] * fits + [False, False]  # refused exactly at the limit
            assert committed(redis_url, prefix, hold.name) == pytest.approx(usd)
        assert not a._budget_leases._leases and not b._budget_leases._leases
    finally:
        await a.close()
        await b.close()


async def test_a_new_window_takes_a_fresh_lease_and_the_old_one_goes_back(redis_url, prefix, monkeypatch):
    monkeypatch.setattr(budget_lease_module, "SWEEP_SECONDS", 0.05)
    a = replica(redis_url, prefix)
    old, new = "roll:d:2026-01-01", "roll:d:2026-01-02"
    try:
        assert (await a.take(Take(hold=Hold(old, 100.0, 0.1, TTL)))).granted
        assert committed(redis_url, prefix, old) == pytest.approx(2.0)
        assert (await a.take(Take(hold=Hold(new, 100.0, 0.1, TTL)))).granted
        assert committed(redis_url, prefix, new) == pytest.approx(2.0)  # a whole lease of the new window
        assert budget_lease(a, new).usd == pytest.approx(1.9)
        await asyncio.sleep(0.3)
        assert committed(redis_url, prefix, old) == pytest.approx(0.1)  # the old window's lease came back
        assert list(a._budget_leases._leases) == [new]
        await a.settle(Settlement(budget=(old, -0.05, TTL)))  # a request of the old window settles in Redis
        assert committed(redis_url, prefix, old) == pytest.approx(0.05)
    finally:
        await a.close()


async def test_a_refusal_elsewhere_in_the_take_gives_the_leased_dollars_back(redis_url, prefix):
    a = replica(redis_url, prefix)
    big = Draw("key:payer:rpm", 1000, 1)
    key_hold = Hold("payer:d:2026-01-01", 1000.0, 0.5, TTL)
    tenant_hold = Hold("tenant:tight:d:2026-01-01", 1.0, 0.5, TTL)  # too small to lease
    try:
        take = Take(draws=(big,), slots=(Slots("key:payer", 1),), lease="r1", hold=key_hold, holds=(tenant_hold,))
        assert (await a.take(take)).granted  # rpm lease 19 left, budget lease $19.50, the slot held
        units = a._leases._leases[(big.bucket, big.capacity)]
        dollars = budget_lease(a, key_hold.name)
        assert (units.units, dollars.usd) == (19, 19.5)
        slot_full = await a.take(Take(draws=(big,), slots=take.slots, lease="r2", hold=key_hold, holds=(tenant_hold,)))
        assert slot_full.refused == 1  # the slot: nothing of the take was kept
        assert (units.units, dollars.usd) == (19, 19.5)
        await a.settle(Settlement(slots=("key:payer",), lease="r1"))
        assert (await a.take(Take(draws=(big,), hold=key_hold, holds=(tenant_hold,)))).granted  # tenant at $1
        assert (units.units, dollars.usd) == (18, 19.0)
        spent = await a.take(Take(draws=(big,), hold=key_hold, holds=(tenant_hold,)))
        assert spent.refused == 2  # the tenant's budget (the second hold) refused in Redis
        assert (units.units, dollars.usd) == (18, 19.0)
        assert committed(redis_url, prefix, tenant_hold.name) == pytest.approx(1.0)
    finally:
        await a.close()
    assert committed(redis_url, prefix, key_hold.name) == pytest.approx(1.0)


async def test_redis_down_spends_the_budget_lease_then_raises(own_redis, prefix):
    a = replica(own_redis.url, prefix, timeout=0.1, retry_interval=0.2)
    hold = Hold("down:d:2026-01-01", 1000.0, 1.0, TTL)
    try:
        assert (await a.take(Take(hold=hold))).granted  # $19 of a $20 lease left here
        own_redis.stop()
        served = 0
        with pytest.raises(StoreUnavailable):
            for _ in range(100):
                await a.take(Take(hold=hold))
                served += 1
        assert served == 19  # the renewals failed; the lease was spent to the last dollar, then Redis was needed
        await a.settle(Settlement(budget=(hold.name, -0.5, TTL)))  # absorbed: no Redis needed
        assert budget_lease(a, hold.name).usd == pytest.approx(0.5)
    finally:
        await a.close()  # Redis is gone: closing does not raise


# ------------------------------------------------------------ two gateways over HTTP

PAYER = "sk-budget-lease-payer-0001"


async def test_two_gateways_spend_a_leased_budget_within_a_lease_each(gateway, redis_url, prefix, monkeypatch):
    monkeypatch.setenv("REDIS_URL", redis_url)
    usd, max_tokens = 2.0, 4
    hold = max_tokens * 0.001  # output at $1000 per million tokens, input free: $0.004 reserved
    size = budget_lease_size(usd, FRACTION)
    assert leasable(Hold("payer:d:2026-01-01", usd, hold, TTL), size)
    routes = {
        "routes": {"paid": {"targets": ["echo/echo-1"]}},
        "keys": [{"name": "payer", "sha256": hashlib.sha256(PAYER.encode()).hexdigest(),
                  "budget": {"usd": usd, "per": "day"}}],
        # A generous timeout: on a loaded machine a slow answer must not read as Redis being
        # down (budgets fail closed: a 503 here would be the outage policy, not the lease).
        "store": {"prefix": prefix, "quota_lease": FRACTION, "timeout": 5},
    }
    providers = {"echo": {"api": "echo", "models": {"echo-1": {"input_per_1m": 0, "output_per_1m": 1000}}}}
    urls = [gateway(routes, providers), gateway(routes, providers)]
    gate = asyncio.Semaphore(8)
    body = {"model": "paid", "max_tokens": max_tokens, "messages": [{"role": "user", "content": "lease"}]}
    before = script_calls(redis_url)
    async with httpx.AsyncClient(timeout=10, headers={"authorization": f"Bearer {PAYER}"}) as client:
        async def one(i: int) -> httpx.Response:
            async with gate:
                return await client.post(f"{urls[i % 2]}/v1/chat/completions", json=body)

        answers = await asyncio.gather(*(one(i) for i in range(1200)))
    calls = script_calls(redis_url) - before
    admitted = [r for r in answers if r.status_code == 200]
    refused = [r for r in answers if r.status_code != 200]
    assert refused and all(r.status_code == 429 and r.json()["error"]["code"] == "budget_exceeded" for r in refused)
    cost = sum(float(r.headers["x-gateway-cost-usd"]) for r in admitted)
    assert usd - 2 * size - 8 * hold <= cost <= usd + 2 * size  # 8 requests in flight may hold dollars
    # A refusal is an exact call; of the admitted requests, most reserved and settled with no
    # call (a $0.04 lease covers about ten of them, renewed when half is gone).
    assert calls - len(refused) < len(admitted) / 3
    await asyncio.sleep(0.2)  # the last settlements run after their answers
    assert committed(redis_url, prefix, f"payer:{windows_now()[0]}") <= usd + 2 * size


async def test_a_hold_its_lease_covers_is_reserved_here_without_redis(redis_url, prefix):
    a = replica(redis_url, prefix)
    hold = Hold("here:d:2026-01-01", 1000.0, 0.25, TTL)  # a lease of $20
    try:
        assert a.take_here(Take(hold=hold)) is None  # no lease yet
        assert (await a.take(Take(hold=hold))).granted
        lease = budget_lease(a, hold.name)
        usd, before = lease.usd, script_calls(redis_url)
        verdict = a.take_here(Take(hold=hold))
        assert verdict is not None and verdict.granted
        assert lease.usd == pytest.approx(usd - 0.25)
        assert script_calls(redis_url) == before
        assert a.take_here(Take(hold=Hold(hold.name, 2000.0, 0.25, TTL))) is None  # a reload changed the budget
        assert a.take_here(Take(hold=Hold(hold.name, 1000.0, 5.0, TTL))) is None  # too dear to lease
        lease.usd = 0.1  # short of the reservation: a renewal first, in `take`
        assert a.take_here(Take(hold=hold)) is None and lease.usd == 0.1
        assert (await a.take(Take(hold=hold))).granted
    finally:
        await a.close()
