"""Open-loop latency: requests leave on a fixed schedule whether or not earlier ones are back.

A closed loop hides slow answers (a slow server just gets fewer requests); a fixed send
rate does not, which is how real clients behave and what "latency added at 200/s" means.
Latency is timed from the moment a request actually leaves; how late it left against its
schedule is recorded too, so a generator that fell behind is visible rather than silent.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import aiohttp
from calls import Call
from summary import percentile

# How each API ends a stream that completed: chat's [DONE], Anthropic's message_stop, and the
# Responses API's response.completed (whose frame carries the whole response, so the tail
# looked at must hold a frame of a few kilobytes).
STREAM_END_MARKERS = (b"[DONE]", b"message_stop", b"response.completed")
STREAM_TAIL_BYTES = 8192


@dataclass(frozen=True)
class Sample:
    """One request: total seconds, seconds to the first body byte, whether it succeeded."""

    total: float
    first_byte: float
    ok: bool


@dataclass(frozen=True)
class OpenLoopResult:
    """Percentiles in milliseconds over one run at one rate."""

    rate: float
    sent: int
    failed: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    ttfb_p50_ms: float
    ttfb_p90_ms: float
    ttfb_p99_ms: float
    lag_p99_ms: float

    def as_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


async def _send(session: aiohttp.ClientSession, call: Call, headers: dict[str, str]) -> Sample:
    """Send once; for streams, the first body chunk marks time to first byte."""
    start = time.perf_counter()
    try:
        async with session.post(call.url, data=call.body, headers=headers) as answer:
            first = await answer.content.readany()
            first_byte = time.perf_counter() - start
            rest = await answer.content.read()
            total = time.perf_counter() - start
            ok = answer.status == 200
            if call.stream:
                tail = (first + rest)[-STREAM_TAIL_BYTES:]
                ok = ok and any(marker in tail for marker in STREAM_END_MARKERS)
            return Sample(total, first_byte, ok)
    except (aiohttp.ClientError, asyncio.TimeoutError):
        return Sample(time.perf_counter() - start, float("nan"), False)


async def _schedule(call: Call, rate: float, seconds: float, warmup: int) -> tuple[
        list[Sample], list[float]]:
    """Fire requests at start + i/rate; gather them all at the end."""
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=30)
    headers = call.all_headers()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        for _ in range(warmup):
            await _send(session, call, headers)
        loop = asyncio.get_running_loop()
        count = max(1, int(rate * seconds))
        begin = loop.time() + 0.02
        tasks, lags = [], []
        for index in range(count):
            due = begin + index / rate
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            lags.append(max(0.0, loop.time() - due))
            tasks.append(asyncio.create_task(_send(session, call, headers)))
        return list(await asyncio.gather(*tasks)), lags


def run_open_loop(call: Call, rate: float, seconds: float, warmup: int = 20) -> OpenLoopResult:
    """One open-loop run; failed requests are counted and left out of the percentiles."""
    try:
        import uvloop

        samples, lags = uvloop.run(_schedule(call, rate, seconds, warmup))
    except ImportError:
        samples, lags = asyncio.run(_schedule(call, rate, seconds, warmup))
    good = [s for s in samples if s.ok]
    totals = [s.total * 1e3 for s in good]
    firsts = [s.first_byte * 1e3 for s in good]
    return OpenLoopResult(
        rate=rate, sent=len(samples), failed=len(samples) - len(good),
        p50_ms=percentile(totals, 50), p90_ms=percentile(totals, 90),
        p99_ms=percentile(totals, 99),
        ttfb_p50_ms=percentile(firsts, 50), ttfb_p90_ms=percentile(firsts, 90),
        ttfb_p99_ms=percentile(firsts, 99),
        lag_p99_ms=percentile([lag * 1e3 for lag in lags], 99),
    )
