"""Route deadlines, on one event-loop timer per process.

`asyncio.timeout` arms and disarms a loop timer each time it is used; under uvloop that
is a libuv timer allocated, started, stopped and closed for every request, plus asyncio's
own bookkeeping: 7% of a pass-through request's instructions, for a deadline that almost
never fires. `Deadlines` keeps the deadlines of the requests in flight in a heap and arms
one timer, for the earliest. A request that ends removes its entry (at once when it is
the earliest, which in-order traffic makes the usual case, else when the timer or a
compaction passes it), so the timer fires about once per route timeout rather than once
per request, and only ever cancels a request whose deadline has passed.

The semantics are `asyncio.timeout`'s: an expired request's task is cancelled, and the
cancellation it receives is told apart from any other (the client leaving) by `expired`
and the task's cancellation count.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math


class Deadline:
    """One request's deadline; `expired` once it has passed and the task was cancelled for it."""

    __slots__ = ("when", "task", "cancelling", "active", "expired")

    def __init__(self, when: float, task: asyncio.Task[object]) -> None:
        self.when = when
        self.task = task
        self.cancelling = task.cancelling()  # cancellations pending before this deadline existed
        self.active = True
        self.expired = False

    def timed_out(self) -> bool:
        """True when the CancelledError being handled is this deadline's own (and is now spent)."""
        return self.expired and self.task.uncancel() <= self.cancelling


class Deadlines:
    """The deadlines of one process's requests in flight (see the module's docstring).

    Used from one event loop, the process's (as uvicorn runs each worker): the timer is
    armed on the loop of the request that arms it.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Deadline]] = []
        self._order = itertools.count()  # ties in `when` must never compare Deadline objects
        self._live = 0
        self._timer: asyncio.TimerHandle | None = None
        self._armed_at = math.inf

    def watch(self, when: float) -> Deadline:
        """Cancel the current task at loop time `when`, unless `release` comes first."""
        task = asyncio.current_task()
        assert task is not None, "a deadline belongs to a task"
        entry = Deadline(when, task)
        heapq.heappush(self._heap, (when, next(self._order), entry))
        self._live += 1
        if when < self._armed_at:
            self._arm(when)
        return entry

    def release(self, entry: Deadline) -> None:
        """The request got its answer (or failed) in time: its deadline no longer applies."""
        if not entry.active:
            return
        entry.active = False
        self._live -= 1
        heap = self._heap
        while heap and not heap[0][2].active:
            heapq.heappop(heap)
        if len(heap) > 256 and len(heap) > 4 * self._live:
            # Entries released out of order pile up under a slow one: drop them in one pass.
            self._heap = [item for item in heap if item[2].active]
            heapq.heapify(self._heap)

    def _arm(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_at(when, self._fire)
        self._armed_at = when

    def _fire(self) -> None:
        self._timer, self._armed_at = None, math.inf
        now = asyncio.get_running_loop().time()
        heap = self._heap
        while heap and (not heap[0][2].active or heap[0][0] <= now):
            entry = heapq.heappop(heap)[2]
            if entry.active:
                entry.active, entry.expired = False, True
                self._live -= 1
                entry.task.cancel()
        if heap:
            self._arm(heap[0][0])

    def __len__(self) -> int:
        """Requests with a deadline pending."""
        return self._live
