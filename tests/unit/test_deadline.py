"""Route deadlines on one timer: they cancel exactly the requests whose time is up."""

from __future__ import annotations

import asyncio

import pytest

from gateway.pipeline.deadline import Deadlines


async def guarded(deadlines: Deadlines, seconds: float, work: float) -> str:
    """Like dispatch: watch, work, tell the deadline's cancellation from any other."""
    watch = deadlines.watch(asyncio.get_running_loop().time() + seconds)
    try:
        await asyncio.sleep(work)
        return "answered"
    except asyncio.CancelledError:
        if watch.timed_out():
            return "deadline"
        raise
    finally:
        deadlines.release(watch)


def test_only_the_requests_past_their_deadline_are_cut():
    async def main() -> list[str]:
        deadlines = Deadlines()
        started = asyncio.get_running_loop().time()
        results = await asyncio.gather(
            guarded(deadlines, 0.05, 1.0), guarded(deadlines, 1.0, 0.01), guarded(deadlines, 0.1, 1.0),
        )
        assert asyncio.get_running_loop().time() - started < 0.5, "the slow ones were cut at their deadlines"
        assert len(deadlines) == 0
        return results

    assert asyncio.run(main()) == ["deadline", "answered", "deadline"]


def test_a_client_leaving_is_not_a_deadline():
    async def main() -> None:
        deadlines = Deadlines()
        task = asyncio.ensure_future(guarded(deadlines, 5.0, 5.0))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert len(deadlines) == 0

    asyncio.run(main())


def test_answered_requests_leave_nothing_behind_even_out_of_order():
    async def main() -> None:
        deadlines = Deadlines()
        slow = asyncio.ensure_future(guarded(deadlines, 5.0, 0.3))  # the earliest deadline, still pending
        await asyncio.sleep(0)
        for _ in range(2000):  # each answers long before its deadline, behind the slow one
            assert await guarded(deadlines, 10.0, 0) == "answered"
        assert len(deadlines._heap) <= 256 + 1, "released entries are compacted away"
        assert await slow == "answered"
        assert len(deadlines) == 0 and not deadlines._heap

    asyncio.run(main())


def test_in_order_traffic_keeps_one_timer():
    async def main() -> None:
        deadlines = Deadlines()
        for _ in range(100):
            assert await guarded(deadlines, 30.0, 0) == "answered"
        # One timer armed by the first request; the later deadlines are all after it.
        assert deadlines._timer is not None and deadlines._armed_at < asyncio.get_running_loop().time() + 30.0
        assert not deadlines._heap

    asyncio.run(main())
