"""Quota leases on a real Redis: two stores (two replicas) sharing buckets, the overshoot bound,
exact small limits, tpm settlement, leftovers going back, and Redis dying mid-way."""

from __future__ import annotations

import asyncio
import math
import time

import httpx
import pytest
import redis

from gateway.config.snapshot import StoreSettings
from gateway.store import Draw, Hold, Settlement, Slots, StoreUnavailable, Take, Usage
from gateway.store import lease as lease_module
from gateway.store._redis import RedisStore
from gateway.store.lease import lease_size
from tests.support.redis_server import new_prefix

FRACTION = 0.02
CHAT = {"messages": [{"role": "user", "content": "lease"}]}


def settings(prefix: str, **extra) -> StoreSettings:
    return StoreSettings(**{"prefix": prefix, "quota_lease": FRACTION, **extra})


def replica(url: str, prefix: str, **extra) -> RedisStore:
    chosen = settings(prefix, **extra)
    return RedisStore(url, lambda: chosen)


def tokens_in_redis(url: str, key: str) -> float:
    """The bucket's level as Redis keeps it (without the refill since its last write)."""
    value = redis.Redis.from_url(url).hget(key, "t")
    return float(value) if value is not None else float("nan")


def script_calls(url: str) -> int:
    stats = redis.Redis.from_url(url).info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k in ("cmdstat_evalsha", "cmdstat_eval"))


@pytest.fixture
def prefix() -> str:
    return new_prefix()


async def test_two_replicas_never_pass_the_limit_by_more_than_a_lease_each(redis_url, prefix):
    capacity = 1200
    size = lease_size(capacity, FRACTION)
    assert size == 24
    a, b = replica(redis_url, prefix), replica(redis_url, prefix)
    take = Take(draws=(Draw("route:big:rpm", capacity, 1),))
    started = time.monotonic()
    admitted = refused = 0
    try:
        for _ in range(2 * capacity):
            verdicts = await asyncio.gather(a.take(take), b.take(take), a.take(take), b.take(take))
            admitted += sum(v.granted for v in verdicts)
            refused += sum(not v.granted for v in verdicts)
            if refused >= 40:
                break
        elapsed = time.monotonic() - started
        refill = capacity * elapsed / 60
        # Every unit admitted came out of the Redis bucket; each replica holds at most one lease.
        assert admitted <= capacity + refill + 2 * size
        assert admitted >= capacity - 2 * size
        assert refused >= 40
    finally:
        await a.close()
        await b.close()


async def test_a_leased_bucket_costs_a_handful_of_round_trips(redis_url, prefix):
    a, b = replica(redis_url, prefix), replica(redis_url, prefix)
    take = Take(draws=(Draw("key:busy:rpm", 100_000, 1), Draw("route:busy:rpm", 100_000, 1)))
    try:
        await a.take(take)
        await b.take(take)
        before = script_calls(redis_url)
        for _ in range(500):
            assert (await a.take(take)).granted and (await b.take(take)).granted
        # A lease is 2000 units: no renewal was even due.
        assert script_calls(redis_url) - before <= 2
        headers = (await a.take(take)).levels
        assert 100_000 - 2 * 2000 - 10 <= headers[0].remaining <= 100_000
    finally:
        await a.close()
        await b.close()


async def test_small_limits_stay_exact_across_replicas(redis_url, prefix):
    a, b = replica(redis_url, prefix), replica(redis_url, prefix)
    try:
        for capacity, name in ((1, "one"), (3, "three"), (399, "under-a-lease")):
            take = Take(draws=(Draw(f"key:{name}:rpm", capacity, 1),))
            assert lease_size(capacity, FRACTION) == 0
            started = time.monotonic()
            granted = [(await (a if i % 2 else b).take(take)).granted for i in range(capacity + 2)]
            # Exact: every unit of the bucket, then only what refilled meanwhile (for 399 a minute,
            # a few units while hundreds of round trips run on a busy machine; none for 1 or 3).
            refilled = math.floor((time.monotonic() - started) * capacity / 60)
            assert granted[:capacity] == [True] * capacity
            assert granted.count(True) <= capacity + refilled
            refused = await a.take(take)
            for _ in range(refilled + 2):
                if not refused.granted:
                    break
                refused = await a.take(take)
            assert refused.refused == 0 and 0 < refused.wait <= 60 / capacity
    finally:
        await a.close()
        await b.close()


async def test_a_refusal_elsewhere_in_the_take_gives_the_leased_units_back(redis_url, prefix):
    a = replica(redis_url, prefix)
    big = Draw("key:mixed:rpm", 1000, 1)
    try:
        assert (await a.take(Take(draws=(big,)))).granted  # a lease of 20, 19 left here
        take = Take(draws=(big, Draw("route:tiny:rpm", 1, 1)), slots=(Slots("key:mixed", 5),), lease="r1")
        assert (await a.take(take)).granted
        refused = await a.take(Take(draws=take.draws, slots=take.slots, lease="r2"))
        assert refused.refused == 1 and len(refused.levels) == 2 and refused.wait > 0
        lease = a._leases._leases[(big.bucket, big.capacity)]
        assert lease.units == 18  # the refused take kept nothing
        full = await a.take(Take(draws=(big,), slots=(Slots("key:mixed", 1),), lease="r3"))
        assert full.refused == 1 and lease.units == 18  # the slot (index 1 of the whole take) refused
    finally:
        await a.close()


async def test_tpm_settlement_is_applied_to_the_lease(redis_url, prefix):
    capacity = 60_000
    a = replica(redis_url, prefix)
    key = f"{prefix}rl:key:t:tpm"
    started = time.monotonic()
    try:
        for _ in range(40):
            assert (await a.take(Take(draws=(Draw("key:t:tpm", capacity, 300),)))).granted
            await a.settle(Settlement((Draw("key:t:tpm", capacity, 50 - 300),)))  # used 50 of 300
        await a.settle(Settlement((Draw("key:t:tpm", capacity, 400),)))  # one answer ran 400 past its estimate
    finally:
        await a.close()
    elapsed = time.monotonic() - started
    # Once the lease is back, Redis has seen exactly the real usage: 40 × 50 + 400 tokens.
    used = capacity - tokens_in_redis(redis_url, key)
    assert 2400 - capacity * elapsed / 60 - 1 <= used <= 2400


async def test_leftover_units_go_back_to_redis_on_close(redis_url, prefix):
    a = replica(redis_url, prefix)
    key = f"{prefix}rl:route:back:rpm"
    assert (await a.take(Take(draws=(Draw("route:back:rpm", 6000, 1),)))).granted
    assert tokens_in_redis(redis_url, key) <= 6000 - 120 + 1  # a whole lease left Redis
    await a.close()
    assert tokens_in_redis(redis_url, key) >= 6000 - 1  # all but the one spent came back


async def test_an_idle_lease_goes_back_by_itself(redis_url, prefix, monkeypatch):
    monkeypatch.setattr(lease_module, "IDLE_SECONDS", 0.2)
    monkeypatch.setattr(lease_module, "SWEEP_SECONDS", 0.05)
    a = replica(redis_url, prefix)
    key = f"{prefix}rl:route:idle:rpm"
    try:
        assert (await a.take(Take(draws=(Draw("route:idle:rpm", 6000, 1),)))).granted
        assert tokens_in_redis(redis_url, key) <= 6000 - 119
        await asyncio.sleep(0.6)
        assert tokens_in_redis(redis_url, key) >= 6000 - 1
        assert not a._leases._leases
    finally:
        await a.close()


async def test_a_lease_handed_back_while_a_request_waited_is_not_spent_or_renewed(redis_url, prefix):
    """A request looks its lease up, then waits (for another lease's renewal, say); meanwhile
    the idle sweep hands this lease back to Redis. Spending from it would admit on units Redis
    already has again, and topping it up would park units in a lease nobody holds."""
    a = replica(redis_url, prefix)
    key = f"{prefix}rl:route:gone:rpm"
    draw = Draw("route:gone:rpm", 6000, 1)
    try:
        assert (await a.take(Take(draws=(draw,)))).granted
        leases = a._leases
        looked_up = leases._leases_for([draw])
        await leases._give_back([("route:gone:rpm", 6000)])
        back = tokens_in_redis(redis_url, key)
        assert back >= 6000 - 1
        looked_up[0].units = 1  # low: a held lease would be topped up now
        assert leases._spend([draw], looked_up) == [None]  # the request goes the exact path instead
        leases._renew_low([looked_up[0]])
        assert looked_up[0].renewal is None
        await asyncio.sleep(0.05)
        assert tokens_in_redis(redis_url, key) == back  # no grant was taken for it
    finally:
        await a.close()


async def test_turning_leases_off_goes_back_to_one_script_per_take(redis_url, prefix):
    a = replica(redis_url, prefix, quota_lease=0)
    try:
        take = Take(draws=(Draw("route:off:rpm", 100_000, 1),))
        before = script_calls(redis_url)
        for _ in range(5):
            assert (await a.take(take)).granted
        assert script_calls(redis_url) - before == 5
    finally:
        await a.close()


async def test_redis_down_spends_the_lease_then_raises(own_redis, prefix):
    a = replica(own_redis.url, prefix, timeout=0.1, retry_interval=0.2)
    take = Take(draws=(Draw("route:down:rpm", 1000, 1),))
    try:
        assert (await a.take(take)).granted  # 19 of a 20-unit lease left here
        own_redis.stop()
        served = 0
        with pytest.raises(StoreUnavailable):
            for _ in range(100):
                await a.take(take)
                served += 1
        assert served >= 9  # at least the units above the renewal threshold were spent locally
        assert served <= 19
        await a.settle(Settlement((Draw("route:down:rpm", 1000, -1),)))  # absorbed: no Redis needed
    finally:
        await a.close()  # Redis is gone: closing does not raise


# ------------------------------------------------------------ two gateways over HTTP

def gateway_routes(prefix: str, **store) -> dict:
    return {
        "routes": {
            "big": {"targets": ["echo/echo-1"], "limits": {"rpm": 600}},
            "small": {"targets": ["echo/echo-1"], "limits": {"rpm": 3}},
        },
        "store": {"prefix": prefix, "timeout": 5, **store},  # slow is not down, unless a test says so
    }


async def post_many(urls: list[str], model: str, count: int, parallel: int = 8) -> list[httpx.Response]:
    """`count` chat requests spread over the gateways, `parallel` at a time."""
    gate = asyncio.Semaphore(parallel)
    async with httpx.AsyncClient(timeout=10) as client:
        async def one(i: int) -> httpx.Response:
            async with gate:
                return await client.post(f"{urls[i % len(urls)]}/v1/chat/completions", json={"model": model, **CHAT})

        return await asyncio.gather(*(one(i) for i in range(count)))


async def test_two_gateways_admit_at_most_a_lease_each_past_the_limit(gateway, redis_url, prefix, monkeypatch):
    monkeypatch.setenv("REDIS_URL", redis_url)
    a, b = gateway(gateway_routes(prefix)), gateway(gateway_routes(prefix))
    size = lease_size(600, 0.02)
    started = time.monotonic()
    answers = await post_many([a, b], "big", 1000)
    elapsed = time.monotonic() - started
    statuses = [r.status_code for r in answers]
    admitted = statuses.count(200)
    assert set(statuses) == {200, 429}
    assert 600 - 2 * size <= admitted <= 600 + 600 * elapsed / 60 + 2 * size
    first = next(r for r in answers if r.status_code == 200)
    assert first.headers["x-ratelimit-limit-requests"] == "600"
    assert 0 <= int(first.headers["x-ratelimit-remaining-requests"]) <= 600
    refusal = next(r for r in answers if r.status_code == 429)
    assert int(refusal.headers["retry-after"]) >= 1


async def test_two_gateways_keep_a_small_limit_exact(gateway, redis_url, prefix, monkeypatch):
    monkeypatch.setenv("REDIS_URL", redis_url)
    a, b = gateway(gateway_routes(prefix)), gateway(gateway_routes(prefix))
    statuses = [(await post_many([url], "small", 1))[0].status_code for url in (a, b, a, b, a)]
    assert statuses == [200, 200, 200, 429, 429]


async def test_redis_down_with_limits_closed_spends_the_lease_then_refuses(gateway, own_redis, prefix, monkeypatch):
    monkeypatch.setenv("REDIS_URL", own_redis.url)
    url = gateway(gateway_routes(prefix, timeout=0.1, retry_interval=0.2,
                                 on_outage={"limits": "closed", "budgets": "closed"}))
    assert (await post_many([url], "big", 1))[0].status_code == 200  # a lease of 12, 11 left here
    own_redis.stop()
    statuses = [r.status_code for r in await post_many([url], "big", 30, parallel=1)]
    served = statuses.count(200)
    assert 5 <= served <= 11 and statuses == [200] * served + [503] * (30 - served)
    refused = (await post_many([url], "big", 1))[0]
    assert refused.json()["error"]["code"] == "store_unavailable" and refused.headers["retry-after"] == "1"


async def test_usage_recorded_during_a_flush_reaches_redis_without_another_request(redis_url, prefix):
    """A record that arrives while the usage flush waits on Redis is sent by a later flush of
    the same task, not left behind until some other request happens to start one."""
    a, b = replica(redis_url, prefix), replica(redis_url, prefix)
    pauser = redis.Redis.from_url(redis_url)
    try:
        a.record(Usage(("d:2026-01-01",), "key-a", "route", prompt_tokens=1))
        pauser.execute_command("CLIENT", "PAUSE", 1500, "WRITE")  # the flush due in a second waits for Redis
        await asyncio.sleep(1.2)
        a.record(Usage(("d:2026-01-01",), "key-a", "route", prompt_tokens=1))  # during that flush
        deadline = time.monotonic() + 5
        rows = []
        while time.monotonic() < deadline:
            rows = await b.usage("d:2026-01-01")  # another replica: only what reached Redis
            if rows and rows[0].counts.get("requests") == 2:
                break
            await asyncio.sleep(0.2)
        assert [(r.key, r.counts.get("requests"), r.counts.get("prompt_tokens")) for r in rows] == [("key-a", 2, 2)]
    finally:
        pauser.execute_command("CLIENT", "UNPAUSE")
        pauser.close()
        await a.close()
        await b.close()


async def test_a_take_the_leases_cover_is_decided_here_without_redis(redis_url, prefix):
    """`take_here` serves a take its leases cover whole, at once and with no script call; it
    declines (None, nothing spent) whatever needs Redis: no lease yet, a lease too short for the
    draw, a slot, a bucket too small to lease, a budget not leased yet."""
    a = replica(redis_url, prefix)
    rpm = Draw("key:here:rpm", 6000, 1)  # a lease of 120
    tpm = Draw("key:here:tpm", 100_000, 500)  # a lease of 2000
    key = f"{prefix}rl:key:here:rpm"
    take = Take(draws=(rpm, tpm))
    try:
        assert a.take_here(take) is None  # no lease yet: only `take` gets one
        assert (await a.take(take)).granted
        leases = a._leases._leases
        held, tokens = leases[(rpm.bucket, rpm.capacity)], leases[(tpm.bucket, tpm.capacity)]
        units = (held.units, tokens.units)
        before, in_redis = script_calls(redis_url), tokens_in_redis(redis_url, key)
        verdict = a.take_here(take)
        assert verdict is not None and verdict.granted and len(verdict.levels) == 2
        assert (held.units, tokens.units) == (units[0] - 1, units[1] - 500)
        assert verdict.levels[0].remaining <= 6000 and verdict.levels[1].remaining <= 100_000
        assert script_calls(redis_url) == before and tokens_in_redis(redis_url, key) == in_redis

        spent = (held.units, tokens.units)
        declined = [
            Take(draws=(rpm, Draw(tpm.bucket, tpm.capacity, 2001))),  # more than a whole lease: exact
            Take(draws=(rpm,), slots=(Slots("key:here", 5),), lease="r1"),  # a slot lives in Redis
            Take(draws=(rpm, Draw("key:tiny:rpm", 3, 1))),  # too small to lease
            Take(draws=(rpm,), hold=Hold("here:d:2026-01-01", 1000.0, 0.01, 3600)),  # budget not leased yet
        ]
        for other in declined:
            assert a.take_here(other) is None
        assert (held.units, tokens.units) == spent  # all or nothing: nothing was spent by a decline

        tokens.units = 100  # short of the next draw: the renewal has to come first
        assert a.take_here(take) is None
        assert held.units == spent[0]
        assert (await a.take(take)).granted  # `take` waits for the top-up and spends
    finally:
        await a.close()


async def test_take_here_and_take_share_one_lease(redis_url, prefix):
    """Alternating the two ways of taking never admits more than the bucket plus one lease."""
    capacity = 1200
    a, b = replica(redis_url, prefix), replica(redis_url, prefix)
    take = Take(draws=(Draw("route:mixed-ways:rpm", capacity, 1),))
    admitted = 0
    started = time.monotonic()
    try:
        for i in range(3 * capacity):
            store = a if i % 2 else b
            verdict = store.take_here(take) if i % 3 else None
            if verdict is None:
                verdict = await store.take(take)
            admitted += verdict.granted
        refill = capacity * (time.monotonic() - started) / 60
        assert capacity - 2 * 24 <= admitted <= capacity + refill + 2 * 24
    finally:
        await a.close()
        await b.close()
