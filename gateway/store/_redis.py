"""The Redis store: the same operations as `MemoryStore`, shared by every replica.

Each operation that must be atomic is one Lua script, so it costs one round trip and no
other replica can slip in between the check and the take. Time inside the scripts is
Redis's own clock (`TIME`), so replicas with skewed clocks still agree. Large rpm and tpm
buckets are not asked on every request: each replica spends a lease of their units taken
with `GRANT` (gateway.store.lease), and large budgets from a lease of their dollars taken
with `BUDGET_GRANT` (gateway.store.budget_lease); only the rest of a take goes to `TAKE`.

Redis failing must never hang or break a request. Every call is bounded by
`store.timeout`; a failure marks Redis as down for `store.retry_interval`, during which
calls fail at once without touching the network; after it, the next call tries again,
so recovery needs no restart. Failures raise `StoreUnavailable` and are counted.

Key layout (everything under `store.prefix`, `gateway:` by default):

  rl:<scope>:<name>:<rpm|tpm>   hash {t: units left, ts: ms}   token bucket
  cc:<scope>:<name>             sorted set lease -> expiry ms   concurrency slots
  budget:<key>:<window>         string, USD committed            budget window (leased dollars included)
  usage:<window>                hash ["key","route","metric"] -> total
  cache:<sha256>                string, the cached answer        exact-match cache
  circuit:<target>              string, JSON circuit record      circuit breaker
  sem:entry:<id>                string, target + answer          semantic cache entry (route's ttl)
  sem:order:<route>             sorted set id -> last used ms    least recently used past max_entries go
  sem:log:<route>               stream of {id, partition, vector, expires}: what each replica's
                                in-memory index reads (gateway.store.semantic)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any, TypeVar

import orjson
from loguru import logger

from gateway.observe import metrics
from gateway.store._redis_client import NoBackoff, RedisError, Retry, aioredis
from gateway.store.budget_lease import Ask, BudgetLeases
from gateway.store.interface import (
    WINDOW_SECONDS,
    CircuitRecord,
    Draw,
    Level,
    SettingsSource,
    Settlement,
    StoreUnavailable,
    Take,
    Usage,
    UsageRow,
    Verdict,
)
from gateway.store.lease import QuotaLeases

T = TypeVar("T")

WINDOW_MS = int(WINDOW_SECONDS * 1000)

# KEYS: draws..., slots..., holds...   ARGV: nd, ns, nh, lease, lease_ms, (capacity, amount)*nd, limit*ns, (limit, amount, ttl)*nh
# Returns {refused index or -1, wait ms, (units left, ms until full)*nd}.
TAKE = """
local nd, ns, nh = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local lease, lease_ms = ARGV[4], tonumber(ARGV[5])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[6 + 2 * nd + ns + 3 * nh] or 60000)
local refused, wait = -1, 0
local levels = {}
for i = 1, nd do
  local cap, amount = tonumber(ARGV[4 + 2 * i]), tonumber(ARGV[5 + 2 * i])
  local v = redis.call('HMGET', KEYS[i], 't', 'ts')
  local tokens = cap
  if v[1] then tokens = math.min(cap, tonumber(v[1]) + (now - tonumber(v[2])) * cap / window) end
  local need = math.min(amount, cap)
  if refused < 0 and tokens < need then
    refused = i - 1
    wait = (need - tokens) * window / cap
  end
  levels[i] = tokens
end
local a = 6 + 2 * nd
for j = 1, ns do
  local key = KEYS[nd + j]
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  if refused < 0 and redis.call('ZCARD', key) >= tonumber(ARGV[a + j - 1]) then
    refused = nd + j - 1
    wait = 1000
  end
end
a = a + ns
for h = 1, nh do
  if refused < 0 then
    local spent = tonumber(redis.call('GET', KEYS[nd + ns + h]) or '0')
    if spent >= tonumber(ARGV[a + 3 * (h - 1)]) then refused = nd + ns + h - 1 end
  end
end
local out = {refused, math.ceil(wait)}
for i = 1, nd do
  local cap, amount = tonumber(ARGV[4 + 2 * i]), tonumber(ARGV[5 + 2 * i])
  local left = levels[i]
  if refused < 0 then
    left = left - math.min(amount, cap)
    redis.call('HSET', KEYS[i], 't', left, 'ts', now)
    redis.call('PEXPIRE', KEYS[i], math.ceil((cap - left) * window / cap) + 1000)
  end
  out[3 + 2 * (i - 1)] = math.floor(math.max(left, 0))
  out[4 + 2 * (i - 1)] = math.ceil((cap - left) * window / cap)
end
if refused < 0 then
  for j = 1, ns do
    redis.call('ZADD', KEYS[nd + j], now + lease_ms, lease)
    redis.call('PEXPIRE', KEYS[nd + j], lease_ms)
  end
  for h = 1, nh do
    local key = KEYS[nd + ns + h]
    local b = a + 3 * (h - 1)
    redis.call('INCRBYFLOAT', key, ARGV[b + 1])
    redis.call('EXPIRE', key, tonumber(ARGV[b + 2]))
  end
end
return out
"""

# KEYS: draws..., slots..., budgets...   ARGV: nd, ns, nb, lease, (capacity, delta)*nd, (delta, ttl)*nb
SETTLE = """
local nd, ns, nb = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local lease = ARGV[4]
local window = 60000
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 1, nd do
  local cap, delta = tonumber(ARGV[3 + 2 * i]), tonumber(ARGV[4 + 2 * i])
  local v = redis.call('HMGET', KEYS[i], 't', 'ts')
  local tokens = cap
  if v[1] then tokens = math.min(cap, tonumber(v[1]) + (now - tonumber(v[2])) * cap / window) end
  tokens = math.max(-cap, math.min(cap, tokens - delta))
  redis.call('HSET', KEYS[i], 't', tokens, 'ts', now)
  redis.call('PEXPIRE', KEYS[i], math.ceil((cap - tokens) * window / cap) + 1000)
end
for j = 1, ns do
  redis.call('ZREM', KEYS[nd + j], lease)
end
for h = 1, nb do
  local key = KEYS[nd + ns + h]
  local a = 5 + 2 * nd + 2 * (h - 1)
  local spent = redis.call('INCRBYFLOAT', key, ARGV[a])
  if tonumber(spent) < 0 then redis.call('SET', key, '0') end
  redis.call('EXPIRE', key, tonumber(ARGV[a + 1]))
end
return 1
"""

# KEYS: draws...   ARGV: n, window ms, (capacity, ask)*n
# Returns (units granted, units left, ms until full)*n. A positive ask takes up to that many
# whole units (none past empty): a replica's quota lease (gateway.store.lease). A negative ask
# gives units back, never past capacity.
GRANT = """
local n, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for i = 1, n do
  local cap, ask = tonumber(ARGV[1 + 2 * i]), tonumber(ARGV[2 + 2 * i])
  local v = redis.call('HMGET', KEYS[i], 't', 'ts')
  local tokens = cap
  if v[1] then tokens = math.min(cap, tonumber(v[1]) + (now - tonumber(v[2])) * cap / window) end
  local granted = 0
  if ask > 0 then
    granted = math.max(0, math.min(ask, math.floor(tokens)))
  else
    granted = math.max(ask, tokens - cap)
  end
  tokens = tokens - granted
  redis.call('HSET', KEYS[i], 't', tokens, 'ts', now)
  redis.call('PEXPIRE', KEYS[i], math.ceil((cap - tokens) * window / cap) + 1000)
  out[3 * i - 2] = granted
  out[3 * i - 1] = math.floor(math.max(tokens, 0))
  out[3 * i] = math.ceil((cap - tokens) * window / cap)
end
return out
"""

# KEYS: budget windows...   ARGV: n, (limit, owed, want, ttl)*n
# Returns (USD granted, USD committed afterwards)*n, as strings (a Lua number would come back
# truncated to an integer). `owed` is charged whatever the limit (negative: dollars given back,
# never below 0); then up to `want` is granted, never past `limit`: a replica's budget lease
# (gateway.store.budget_lease). Nothing is granted once the window is at its limit.
BUDGET_GRANT = """
local n = tonumber(ARGV[1])
local out = {}
for i = 1, n do
  local a = 2 + 4 * (i - 1)
  local limit, owed, want = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local spent = tonumber(redis.call('GET', KEYS[i]) or '0')
  if owed ~= 0 then
    spent = tonumber(redis.call('INCRBYFLOAT', KEYS[i], ARGV[a + 1]))
    if spent < 0 then
      redis.call('SET', KEYS[i], '0')
      spent = 0
    end
  end
  local granted = '0'
  if want > 0 and spent < limit then
    granted = tostring(math.min(want, limit - spent))
    spent = tonumber(redis.call('INCRBYFLOAT', KEYS[i], granted))
  end
  if owed ~= 0 or granted ~= '0' then redis.call('EXPIRE', KEYS[i], tonumber(ARGV[a + 3])) end
  out[2 * i - 1] = granted
  out[2 * i] = tostring(spent)
end
return out
"""

# KEYS: entry, order, log   ARGV: id, value, ttl ms, partition, vector bytes, expires ms, max_entries, writer
# One round trip stores the answer, logs the vector for every replica and drops the least
# recently used entries past the route's bound (with Redis's clock, like the scripts above).
SEMANTIC_PUT = """
local id, ttl, limit = ARGV[1], tonumber(ARGV[3]), tonumber(ARGV[7])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('SET', KEYS[1], ARGV[2], 'PX', ttl)
redis.call('ZADD', KEYS[2], now, id)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - ttl)
local over = redis.call('ZCARD', KEYS[2]) - limit
if over > 0 then
  local prefix = string.sub(KEYS[1], 1, string.len(KEYS[1]) - string.len(id))
  local old = redis.call('ZPOPMIN', KEYS[2], over)
  for i = 1, #old, 2 do redis.call('DEL', prefix .. old[i]) end
end
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('XADD', KEYS[3], 'MAXLEN', '~', limit, '*', 'id', id, 'partition', ARGV[4], 'vector', ARGV[5],
           'expires', ARGV[6], 'writer', ARGV[8])
redis.call('PEXPIRE', KEYS[3], ttl)
return 1
"""

# KEYS: entry, order   ARGV: id. A served entry becomes the route's most recently used.
SEMANTIC_GET = """
local value = redis.call('GET', KEYS[1])
if value then
  local t = redis.call('TIME')
  redis.call('ZADD', KEYS[2], 'XX', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), ARGV[1])
end
return value
"""

USAGE_FLUSH_SECONDS = 1.0
DAY_TTL = 100 * 86400  # daily usage is kept 100 days
MONTH_TTL = 800 * 86400  # monthly usage about two years


class RedisStore:
    kind = "redis"

    def __init__(self, url: str, settings: SettingsSource):
        self._settings = settings
        initial = settings()
        self._client = aioredis.Redis.from_url(
            url,
            socket_timeout=max(initial.timeout, 0.5),
            socket_connect_timeout=max(initial.timeout, 0.5),
            # One immediate retry lets a pooled connection that died with a restarted Redis be
            # replaced; the call's own deadline still bounds the whole.
            retry=Retry(NoBackoff(), 1),
            health_check_interval=0,
            driver_info=None,  # no CLIENT SETINFO round trips on every new connection
        )
        self._take = self._client.register_script(TAKE)
        self._grant = self._client.register_script(GRANT)
        self._budget_grant = self._client.register_script(BUDGET_GRANT)
        self._settle = self._client.register_script(SETTLE)
        self._semantic_put = self._client.register_script(SEMANTIC_PUT)
        self._semantic_get = self._client.register_script(SEMANTIC_GET)
        self._down_until = 0.0
        self._up = True
        self._pending: dict[tuple[str, str, str], dict[str, float]] = {}
        self._flusher: asyncio.Task[None] | None = None
        self._leases = QuotaLeases(self._grant_units, self._adjust, settings)
        self._budget_leases = BudgetLeases(self._grant_dollars, settings)
        metrics.store_up(True)

    # ------------------------------------------------------------ failure handling

    async def _call(self, concern: str, call: Callable[[], Awaitable[T]]) -> T:
        settings = self._settings()
        if self._down_until and time.monotonic() < self._down_until:
            metrics.store_failed(concern)
            raise StoreUnavailable("redis is down")
        try:
            async with asyncio.timeout(settings.timeout):
                result = await call()
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed(concern, exc, settings.retry_interval)
            raise StoreUnavailable(f"redis did not answer ({type(exc).__name__})") from None
        if not self._up:
            self._up = True
            self._down_until = 0.0
            metrics.store_up(True)
            logger.info("redis answers again: shared limits, budgets and cache are back")
        return result

    def _failed(self, concern: str, exc: BaseException, retry_interval: float) -> None:
        metrics.store_failed(concern)
        self._down_until = time.monotonic() + retry_interval
        if self._up:
            self._up = False
            metrics.store_up(False)
            logger.error("redis is not answering ({}): applying the store.on_outage policy", type(exc).__name__)

    def _key(self, *parts: str) -> str:
        return self._settings().prefix + ":".join(parts)

    # ------------------------------------------------------------ limits and budgets

    async def take(self, take: Take) -> Verdict:
        """Large rpm/tpm buckets and budgets are spent from this replica's leases; the rest in one script call."""
        if not take.draws:
            return await self._take_budgets(take)
        return await self._leases.take(take, self._take_budgets)

    def take_here(self, take: Take) -> Verdict | None:
        """A take this replica's leases cover whole (no slot, nothing for Redis), spent from
        them at once; None otherwise, with nothing spent: `take` then decides."""
        if take.slots:
            return None
        draws = self._leases.covering(take.draws) if take.draws else []
        if draws is None:
            return None
        budgets = take.budgets
        holds = self._budget_leases.covering(budgets) if budgets else []
        if holds is None:
            return None
        if holds:
            self._budget_leases.spend_covered(budgets, holds)
        return Verdict(-1, 0.0, self._leases.spend_covered(take.draws, draws) if draws else ())

    async def _take_budgets(self, take: Take) -> Verdict:
        """What the rpm/tpm leases left of a take: leased budgets here, the rest exact."""
        if not take.budgets:
            return await self._take_exact(take)
        return await self._budget_leases.take(take, self._take_exact)

    async def _take_exact(self, take: Take) -> Verdict:
        keys = [self._key("rl", d.bucket) for d in take.draws]
        keys += [self._key("cc", s.name) for s in take.slots]
        budgets = take.budgets
        args: list[Any] = [len(take.draws), len(take.slots), len(budgets), take.lease, int(take.lease_seconds * 1000)]
        for d in take.draws:
            args += [d.capacity, d.amount]
        args += [s.limit for s in take.slots]
        for hold in budgets:
            keys.append(self._key("budget", hold.name))
            args += [hold.limit, repr(hold.amount), hold.ttl]
        args.append(WINDOW_MS)
        concern = "budgets" if budgets and not take.draws and not take.slots else "limits"
        raw = await self._call(concern, lambda: self._take(keys=keys, args=args))
        levels = tuple(Level(int(raw[2 + 2 * i]), int(raw[3 + 2 * i]) / 1000) for i in range(len(take.draws)))
        return Verdict(int(raw[0]), int(raw[1]) / 1000, levels)

    async def _grant_units(self, asks: Sequence[Draw]) -> list[tuple[int, Level]]:
        """Take (or give back) lease units of several buckets in one script call."""
        keys = [self._key("rl", d.bucket) for d in asks]
        args: list[Any] = [len(asks), WINDOW_MS]
        for d in asks:
            args += [d.capacity, d.amount]
        raw = await self._call("limits", lambda: self._grant(keys=keys, args=args))
        return [(int(raw[3 * i]), Level(int(raw[3 * i + 1]), int(raw[3 * i + 2]) / 1000)) for i in range(len(asks))]

    async def _grant_dollars(self, asks: Sequence[Ask]) -> list[tuple[float, float]]:
        """Take (or give back, or pay owed) lease dollars of several budget windows in one script call."""
        keys = [self._key("budget", ask.name) for ask in asks]
        args: list[Any] = [len(asks)]
        for ask in asks:
            args += [repr(ask.limit), repr(ask.owed), repr(ask.want), ask.ttl]
        raw = await self._call("budgets", lambda: self._budget_grant(keys=keys, args=args))
        return [(float(raw[2 * i]), float(raw[2 * i + 1])) for i in range(len(asks))]

    async def _adjust(self, adjustments: Sequence[Draw]) -> None:
        await self._settle_exact(Settlement(tuple(adjustments)))

    async def settle(self, settlement: Settlement) -> None:
        """Adjustments of leased buckets and budgets stay local; the rest (and slots) in one script call."""
        rest = self.settle_here(settlement)
        if rest is not None:
            await self._settle_exact(rest)

    def settle_here(self, settlement: Settlement) -> Settlement | None:
        """Leased buckets and budgets take their adjustments here; the rest needs Redis."""
        adjustments = self._leases.absorb(settlement.adjustments) if settlement.adjustments else ()
        budgets = self._budget_leases.absorb(settlement.all_budgets) if settlement.all_budgets else ()
        if not adjustments and not settlement.slots and not budgets:
            return None
        return replace(settlement, adjustments=adjustments, budget=None, budgets=budgets)

    async def _settle_exact(self, settlement: Settlement) -> None:
        keys = [self._key("rl", d.bucket) for d in settlement.adjustments]
        keys += [self._key("cc", name) for name in settlement.slots]
        args: list[Any] = [
            len(settlement.adjustments), len(settlement.slots), len(settlement.all_budgets), settlement.lease,
        ]
        for d in settlement.adjustments:
            args += [d.capacity, d.amount]
        for name, delta, ttl in settlement.all_budgets:
            keys.append(self._key("budget", name))
            args += [repr(delta), ttl]
        await self._call("limits", lambda: self._settle(keys=keys, args=args))

    def record(self, usage: Usage) -> None:
        """Usage totals need no atomicity: they are summed here and sent at most once a second."""
        counts = usage.counts()
        for window in usage.windows:
            row = self._pending.setdefault((window, usage.key, usage.route), {})
            for name, value in counts.items():
                if value:
                    row[name] = row.get(name, 0) + value
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        """Flush a second after the first unsent record, and again while records keep coming:
        one that arrives during a flush's round trip (or one Redis refused) finds this task
        still running and starts none, so the task only ends once nothing is left to send."""
        while True:
            await asyncio.sleep(USAGE_FLUSH_SECONDS)
            await self.flush()
            if not self._pending:
                return

    async def flush(self) -> None:
        """Send the summed usage in one pipelined round trip; kept for the next try if Redis fails."""
        if not self._pending:
            return
        pending, self._pending = self._pending, {}

        async def send() -> None:
            pipe = self._client.pipeline(transaction=False)
            for (window, key, route), counts in pending.items():
                name = self._key("usage", window)
                for metric, value in counts.items():
                    pipe.hincrbyfloat(name, orjson.dumps([key, route, metric]), value)
                pipe.expire(name, DAY_TTL if window.startswith("d:") else MONTH_TTL)
            await pipe.execute()

        try:
            await self._call("usage", send)
        except StoreUnavailable:
            for slot, counts in pending.items():  # keep them for the next flush
                row = self._pending.setdefault(slot, {})
                for metric, value in counts.items():
                    row[metric] = row.get(metric, 0) + value

    async def spent(self, holds: Sequence[str]) -> list[float]:
        """Each window's counter: settled spend, open reservations and dollars leased to replicas."""
        if not holds:
            return []
        keys = [self._key("budget", name) for name in holds]
        values = await self._call("budgets", lambda: self._client.mget(keys))
        return [float(v) if v is not None else 0.0 for v in values]

    async def usage(self, window: str) -> list[UsageRow]:
        await self.flush()
        raw = await self._call("usage", lambda: self._client.hgetall(self._key("usage", window)))
        rows: dict[tuple[str, str], dict[str, float]] = {}
        for field, value in raw.items():
            key, route, name = orjson.loads(field)
            number = float(value)
            rows.setdefault((key, route), {})[name] = int(number) if name != "cost_usd" else number
        return [UsageRow(key, route, counts) for (key, route), counts in rows.items()]

    # ------------------------------------------------------------ cache

    async def cache_get(self, key: str) -> bytes | None:
        return await self._call("cache", lambda: self._client.get(self._key("cache", key)))

    async def cache_put(self, key: str, value: bytes, ttl: float) -> None:
        if len(value) > self._settings().cache_max_entry_bytes:
            return
        await self._call("cache", lambda: self._client.set(self._key("cache", key), value, px=max(1, int(ttl * 1000))))

    # ------------------------------------------------------------ semantic cache

    async def semantic_put(
        self, route: str, entry_id: str, partition: str, vector: bytes, value: bytes, ttl: float, max_entries: int,
        writer: str,
    ) -> None:
        """Store one entry for every replica: its answer, and its vector on the route's log."""
        if len(value) > self._settings().cache_max_entry_bytes:
            return
        ttl_ms = max(1, int(ttl * 1000))
        keys = [self._key("sem", "entry", entry_id), self._key("sem", "order", route), self._key("sem", "log", route)]
        args = [entry_id, value, ttl_ms, partition, vector, int((time.time() + ttl) * 1000), max_entries, writer]
        await self._call("cache", lambda: self._semantic_put(keys=keys, args=args))

    async def semantic_answer(self, route: str, entry_id: str) -> bytes | None:
        """An entry's answer, which becomes the route's most recently used (None: expired or evicted)."""
        keys = [self._key("sem", "entry", entry_id), self._key("sem", "order", route)]
        return await self._call("cache", lambda: self._semantic_get(keys=keys, args=[entry_id]))

    async def semantic_log(
        self, cursors: dict[str, str], count: int,
    ) -> list[tuple[str, str, dict[bytes, bytes]]]:
        """Entries logged after each route's cursor: (route, stream id, fields), oldest first."""
        if not cursors:
            return []
        streams = {self._key("sem", "log", route): cursor for route, cursor in cursors.items()}
        routes = {self._key("sem", "log", route): route for route in cursors}
        raw = await self._call("cache", lambda: self._client.xread(streams, count=count))
        out = []
        for name, items in raw or ():
            route = routes[name.decode() if isinstance(name, bytes) else name]
            for stream_id, fields in items:
                out.append((route, stream_id.decode() if isinstance(stream_id, bytes) else stream_id, fields))
        return out

    # ------------------------------------------------------------ circuits

    async def circuits(self, targets: Sequence[str]) -> list[tuple[CircuitRecord, float] | None]:
        keys = [self._key("circuit", t) for t in targets]
        raws = await self._call("circuit", lambda: self._client.mget(keys))
        out: list[tuple[CircuitRecord, float] | None] = []
        for raw in raws:
            if raw is None:
                out.append(None)
                continue
            data = orjson.loads(raw)
            record = CircuitRecord(str(data["state"]), int(data["failures"]), float(data["opened_at"]))
            out.append((record, float(data["changed_at"])))
        return out

    async def circuit_put(self, target: str, record: CircuitRecord, changed_at: float, ttl: float) -> None:
        value = orjson.dumps({"state": record.state, "failures": record.failures,
                              "opened_at": record.opened_at, "changed_at": changed_at})
        key = self._key("circuit", target)
        await self._call("circuit", lambda: self._client.set(key, value, px=max(1, int(ttl * 1000))))

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Open a first connection and load the scripts, so the first request pays neither.

        A Redis that is down at start-up is not fatal: the outage policy applies until it answers.
        """
        try:
            async with asyncio.timeout(max(self._settings().timeout, 2.0)):
                await self._client.script_load(TAKE)
                await self._client.script_load(GRANT)
                await self._client.script_load(BUDGET_GRANT)
                await self._client.script_load(SETTLE)
                await self._client.script_load(SEMANTIC_PUT)
                await self._client.script_load(SEMANTIC_GET)
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed("ping", exc, self._settings().retry_interval)

    async def ping(self) -> bool:
        """Always asks Redis (ignoring the down period), so /ready tells the truth and heals the state."""
        self._down_until = 0.0
        try:
            await self._call("ping", self._client.ping)
        except StoreUnavailable:
            return False
        return True

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
        try:
            await self._leases.close()  # unspent lease units go back to the shared buckets
            await self._budget_leases.close()  # and unspent lease dollars to their budget windows
            await self.flush()
        finally:
            await self._client.aclose()
