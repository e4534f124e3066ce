"""Metric updates held in plain numbers and handed to prometheus-client in batches.

Every request updates about a dozen series. Through prometheus-client each update takes
a lock, and a histogram observation walks its buckets in Python; under `--workers N`
each one is also a write into a memory-mapped file. A tally instead adds to an int or a
float on the request path (a histogram finds its bucket with one `bisect`), and `flush`
applies what piled up, one prometheus call per series that moved.

`flush` runs before every exposition (so a scrape of the answering worker is exact), once
a second from each worker's background task (so the other workers' files are at most that
far behind) and at shutdown. Everything runs on the event loop's thread: a tally is never
touched by two threads at once.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

_moved: list[Any] = []  # tallies with something to hand over, each listed once


class CounterTally:
    """A counter's (or a gauge's) pending change."""

    __slots__ = ("child", "delta", "listed")

    def __init__(self, child: Any) -> None:
        self.child = child
        self.delta: float = 0
        self.listed = False

    def inc(self, amount: float = 1) -> None:
        self.delta += amount
        if not self.listed:
            self.listed = True
            _moved.append(self)

    def dec(self, amount: float = 1) -> None:
        self.inc(-amount)

    def flush(self) -> None:
        delta, self.delta, self.listed = self.delta, 0, False
        if delta:
            self.child.inc(delta)

    def reset(self) -> None:
        self.delta, self.listed = 0, False


class GaugeTally(CounterTally):
    """A gauge: `inc`/`dec` pile up like a counter's; `set` wins over what came before it."""

    __slots__ = ("value",)

    def __init__(self, child: Any) -> None:
        super().__init__(child)
        self.value: float | None = None

    def set(self, value: float) -> None:
        self.value, self.delta = value, 0
        if not self.listed:
            self.listed = True
            _moved.append(self)

    def flush(self) -> None:
        value, self.value = self.value, None
        if value is not None:
            self.child.set(value)
        super().flush()

    def reset(self) -> None:
        self.value = None
        super().reset()


class HistogramTally:
    """A histogram's pending observations: a count per bucket and their sum.

    prometheus-client keeps a histogram child as one value per bucket (not cumulative) and
    one for the sum; the batch is added to those. A client version without them gets each
    observation replayed instead (`exact`): slower, never wrong."""

    __slots__ = ("child", "bounds", "counts", "total", "listed", "exact")

    def __init__(self, child: Any) -> None:
        self.child = child
        bounds = list(getattr(child, "_upper_bounds", ()))
        buckets = getattr(child, "_buckets", None)
        self.exact: list[float] | None = None
        if not bounds or buckets is None or len(buckets) != len(bounds) or not hasattr(child, "_sum"):
            self.exact = []
        self.bounds = bounds[:-1]  # +Inf is last: whatever is past the finite bounds lands there
        self.counts = [0] * len(bounds)
        self.total = 0.0
        self.listed = False

    def observe(self, value: float) -> None:
        if self.exact is not None:
            self.exact.append(value)
        else:
            self.counts[bisect_left(self.bounds, value)] += 1  # bucket i holds bounds[i-1] < v <= bounds[i]
            self.total += value
        if not self.listed:
            self.listed = True
            _moved.append(self)

    def flush(self) -> None:
        self.listed = False
        child = self.child
        if self.exact is not None:
            values, self.exact = self.exact, []
            for value in values:
                child.observe(value)
            return
        counts, total = self.counts, self.total
        self.counts, self.total = [0] * len(counts), 0.0
        child._sum.inc(total)
        buckets = child._buckets
        for index, count in enumerate(counts):
            if count:
                buckets[index].inc(count)

    def reset(self) -> None:
        self.counts, self.total, self.listed = [0] * len(self.counts), 0.0, False
        if self.exact is not None:
            self.exact = []


def flush() -> None:
    """Hand every pending change to prometheus-client."""
    moved = _moved[:]
    del _moved[:]
    for tally in moved:
        tally.flush()


def forget() -> None:
    """Drop pending changes (the series themselves are being cleared)."""
    for tally in _moved:
        tally.reset()
    del _moved[:]
