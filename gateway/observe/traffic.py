"""The last few minutes of traffic, per route and per target, kept in the process.

Prometheus answers "what happened" over hours across replicas; an operator looking at
one gateway right now wants "what is it doing": requests per second, latency
percentiles, errors and fallbacks per route, and which targets answer how often and how
well. `Traffic` keeps exactly that for one process, without Prometheus, for the admin
API (`GET /admin/traffic`, `GET /admin/routes`) and the operator's page.

Shape: every series (all requests, one route, one route's target) is a ring of
fixed-width time slots covering the window (five minutes of five-second slots by
default). A request adds to the current slot of at most a handful of series; a slot that
has fallen out of the window is reset when its turn comes round again. Latency is kept
as a log-scale histogram per slot (each bin about 25% wide), so percentiles over any
part of the window are a sum of bins, and memory per series is fixed whatever the
request rate. Recording is O(1) and lock-free: it runs on the event loop, never awaits.

Series are named by route alias and `provider/model` from the compiled config, never
from client input, so their number is bounded by the config; series that saw nothing
for a whole window are dropped, so aliases removed by a reload disappear on their own.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.observe.exchange import Exchange

SLOT_SECONDS = 5.0
WINDOW_SECONDS = 300.0

# Latency bins: bin 0 is [0, FIRST); bin i >= 1 is [FIRST * RATIO**(i-1), FIRST * RATIO**i).
_FIRST = 0.0005  # 0.5 ms
_RATIO = 1.25
_LOG_RATIO = math.log(_RATIO)
_BINS = 62  # the last bin starts near 5 minutes and takes everything slower
_UPPER = tuple(_FIRST * _RATIO**i for i in range(_BINS))

# Endpoints that are not traffic to a model: the page's own polling must not count.
_LOOKED_UP = frozenset({"hit", "semantic-hit", "miss"})  # an Exchange's cache values that looked in a cache
IGNORED_ENDPOINTS = frozenset({"admin", "models", "ui", "count_tokens"})
UNROUTED = ""  # requests refused before a route was known (bad key, unknown model, bad body)


def _bin(seconds: float) -> int:
    if seconds < _FIRST:
        return 0
    return min(_BINS - 1, 1 + int(math.log(seconds / _FIRST) / _LOG_RATIO))


class _Slot:
    """One time slot of one series. Counters only; the histogram exists once a latency is seen."""

    __slots__ = ("epoch", "requests", "errors", "rejected", "fallbacks", "calls", "failures", "answered",
                 "lookups", "hits", "semantic_hits", "max_seconds", "bins")

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch
        self.requests = 0  # requests that ended (route series) — targets leave it at 0
        self.errors = 0  # ended with a 5xx
        self.rejected = 0  # ended with a 4xx
        self.fallbacks = 0  # times a request moved on to another target
        self.calls = 0  # upstream calls to this target (target series)
        self.failures = 0  # of which failed with a fallback class (rate limit, 5xx, timeout, ...)
        self.answered = 0  # requests this target answered
        self.lookups = 0  # requests that looked in the route's cache (route series)
        self.hits = 0  # of which were answered by an exact hit
        self.semantic_hits = 0  # or by a question asked in other words (the semantic cache)
        self.max_seconds = 0.0
        self.bins: list[int] | None = None

    def observe(self, index: int, seconds: float) -> None:
        if self.bins is None:
            self.bins = [0] * _BINS
        self.bins[index] += 1
        if seconds > self.max_seconds:
            self.max_seconds = seconds


class _Series:
    """A ring of slots for one route, one target of a route, or everything."""

    __slots__ = ("slots", "last_epoch")

    def __init__(self, size: int) -> None:
        self.slots: list[_Slot | None] = [None] * size
        self.last_epoch = -1

    def slot(self, epoch: int) -> _Slot:
        index = epoch % len(self.slots)
        current = self.slots[index]
        if current is None or current.epoch != epoch:
            current = _Slot(epoch)
            self.slots[index] = current
        self.last_epoch = epoch
        return current

    def within(self, first: int, last: int) -> list[_Slot]:
        """The slots of epochs first..last (inclusive) that saw something, oldest first."""
        found = [s for s in self.slots if s is not None and first <= s.epoch <= last]
        found.sort(key=lambda s: s.epoch)
        return found


class Traffic:
    """Rolling counters of the requests this process answered. One per `Runtime`."""

    def __init__(self, window: float = WINDOW_SECONDS, slot: float = SLOT_SECONDS) -> None:
        if slot <= 0 or window < slot:
            raise ValueError("the window must hold at least one slot")
        self.slot_seconds = slot
        self.size = int(math.ceil(window / slot))
        self.window = self.size * slot
        self.started = time.time()
        # Every request lands in exactly one route series ("" before routing), so the
        # totals are the sum of the routes and need no series of their own.
        self._routes: dict[str, _Series] = {}
        self._targets: dict[tuple[str, str], _Series] = {}

    # --- recording: called once per request, at its end ------------------------------------

    def request_ended(self, exchange: Exchange, status: int, seconds: float) -> None:
        """The one call the request path makes, where a request ends (a stream: at its last byte)."""
        if exchange.endpoint not in IGNORED_ENDPOINTS:
            self.record(exchange.route, exchange.target, status, seconds, exchange.failed, cache=exchange.cache)

    def record(
        self,
        route: str,
        target: str,
        status: int,
        seconds: float,
        attempts: Iterable[tuple[str, bool]] = (),
        now: float | None = None,
        cache: str = "",
    ) -> None:
        """One request ended.

        `target` answered it ("" if none did); `attempts` are the upstream calls that did
        not answer, in order, as (target, the target's fault), a client error being the
        request's fault rather than the target's. `cache` is what the route's cache did
        (hit, semantic-hit, miss; bypass and "" are no lookup).
        """
        epoch = int((time.time() if now is None else now) // self.slot_seconds)
        index = _bin(seconds)
        fallbacks = 0
        previous = ""
        for failed, target_fault in attempts:
            if previous and failed != previous:
                fallbacks += 1
            previous = failed
            slot = self._target(route, failed).slot(epoch)
            slot.calls += 1
            if target_fault:
                slot.failures += 1
        if target:
            if previous and target != previous:
                fallbacks += 1
            slot = self._target(route, target).slot(epoch)
            slot.calls += 1
            slot.answered += 1
            slot.observe(index, seconds)
        slot = self._route(route).slot(epoch)
        slot.requests += 1
        slot.fallbacks += fallbacks
        if cache in _LOOKED_UP:
            slot.lookups += 1
            slot.hits += cache == "hit"
            slot.semantic_hits += cache == "semantic-hit"
        if status >= 500:
            slot.errors += 1
        elif status >= 400:
            slot.rejected += 1
        slot.observe(index, seconds)

    def _route(self, route: str) -> _Series:
        series = self._routes.get(route)
        if series is None:
            self._forget_idle()
            series = self._routes[route] = _Series(self.size)
        return series

    def _target(self, route: str, target: str) -> _Series:
        series = self._targets.get((route, target))
        if series is None:
            self._forget_idle()
            series = self._targets[(route, target)] = _Series(self.size)
        return series

    def _forget_idle(self, now: float | None = None) -> None:
        """Drop series idle for a whole window; runs only when a series is created or read."""
        oldest = int((time.time() if now is None else now) // self.slot_seconds) - self.size
        for table in (self._routes, self._targets):
            for name in [name for name, series in table.items() if series.last_epoch < oldest]:
                del table[name]

    # --- reading: the admin API -------------------------------------------------------------

    def report(self, window: float | None = None, now: float | None = None) -> dict[str, Any]:
        """Totals per route and per target over the last `window` seconds, plus per-slot series."""
        now = time.time() if now is None else now
        window = self.window if window is None else min(max(window, self.slot_seconds), self.window)
        last = int(now // self.slot_seconds)
        first = last - int(math.ceil(window / self.slot_seconds)) + 1
        # A young process has not been up for the whole window: rates are over what it has seen.
        covered = max(min(window, now - self.started), 1.0)
        self._forget_idle(now)
        oldest = last - self.size + 1
        routes = [
            {"route": name, **_summary(series.within(first, last), covered),
             "series": _timeline([series], oldest, last, self.slot_seconds)}
            for name, series in sorted(self._routes.items())
        ]
        everything = list(self._routes.values())
        targets = self.targets(window, now)
        return {
            "object": "traffic",
            "now": now,
            "window_seconds": window,
            "slot_seconds": self.slot_seconds,
            "series_seconds": self.window,
            "totals": _summary([s for series in everything for s in series.within(first, last)], covered),
            "series": _timeline(everything, oldest, last, self.slot_seconds),
            "routes": routes,
            "targets": targets,
        }

    def targets(self, window: float | None = None, now: float | None = None) -> list[dict[str, Any]]:
        """Each (route, target) pair's calls, failures, latency and share of its route's answers."""
        now = time.time() if now is None else now
        window = self.window if window is None else min(max(window, self.slot_seconds), self.window)
        last = int(now // self.slot_seconds)
        first = last - int(math.ceil(window / self.slot_seconds)) + 1
        rows = []
        answered_by_route: dict[str, int] = {}
        for (route, target), series in sorted(self._targets.items()):
            slots = series.within(first, last)
            calls = sum(s.calls for s in slots)
            failures = sum(s.failures for s in slots)
            answered = sum(s.answered for s in slots)
            answered_by_route[route] = answered_by_route.get(route, 0) + answered
            rows.append({
                "route": route, "target": target, "calls": calls, "answered": answered, "failures": failures,
                "error_rate": _ratio(failures, calls), "latency_ms": _percentiles(slots),
            })
        for row in rows:
            row["share"] = _ratio(row["answered"], answered_by_route[row["route"]])
        return rows


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _summary(slots: list[_Slot], covered: float) -> dict[str, Any]:
    requests = sum(s.requests for s in slots)
    errors = sum(s.errors for s in slots)
    lookups = sum(s.lookups for s in slots)
    hits = sum(s.hits for s in slots)
    semantic_hits = sum(s.semantic_hits for s in slots)
    return {
        "cache": {"lookups": lookups, "hits": hits, "semantic_hits": semantic_hits,
                  "hit_rate": _ratio(hits + semantic_hits, lookups), "semantic_hit_rate": _ratio(semantic_hits, lookups)},
        "requests": requests,
        "rps": round(requests / covered, 3),
        "errors": errors,
        "rejected": sum(s.rejected for s in slots),
        "error_rate": _ratio(errors, requests),
        "fallbacks": sum(s.fallbacks for s in slots),
        "latency_ms": _percentiles(slots),
    }


def _timeline(series: list[_Series], first: int, last: int, width: float) -> list[dict[str, Any]]:
    """One point per slot of the whole window, oldest first, empty slots included (for charts)."""
    by_epoch: dict[int, list[_Slot]] = {}
    for one in series:
        for slot in one.within(first, last):
            by_epoch.setdefault(slot.epoch, []).append(slot)
    points = []
    for epoch in range(first, last + 1):
        slots = by_epoch.get(epoch, [])
        marks = _percentiles(slots) if slots else {"p50": None, "p99": None}
        points.append({
            "t": epoch * width,
            "requests": sum(s.requests for s in slots),
            "errors": sum(s.errors for s in slots),
            "fallbacks": sum(s.fallbacks for s in slots),
            "p50_ms": marks["p50"],
            "p99_ms": marks["p99"],
        })
    return points


def _percentiles(slots: list[_Slot], marks: tuple[int, ...] = (50, 90, 99)) -> dict[str, float | None]:
    """Percentiles from the summed histograms: a bin's upper edge, never above the slowest seen."""
    summed = [0] * _BINS
    slowest = 0.0
    for slot in slots:
        if slot.bins is None:
            continue
        for index, count in enumerate(slot.bins):
            if count:
                summed[index] += count
        slowest = max(slowest, slot.max_seconds)
    total = sum(summed)
    out: dict[str, float | None] = {}
    for mark in marks:
        if not total:
            out[f"p{mark}"] = None
            continue
        rank = max(1, math.ceil(total * mark / 100))
        seen = 0
        for index, count in enumerate(summed):
            seen += count
            if seen >= rank:
                out[f"p{mark}"] = round(min(_UPPER[index], slowest) * 1000, 2)
                break
    return out
