"""Moving averages of each target's latency, for the `fastest` strategy.

An exponentially weighted average follows a target that gets slower or faster within a
handful of requests, without keeping a window of samples. What is measured is the time
until the target is committed: the whole answer for a plain request, the first chunk
for a stream (what a client waits for before anything shows). A timeout counts with the
time it took, so a hanging target sorts last.

Averages are per process and keyed by target id: each replica ranks targets by what its
own network path sees, and a config reload keeps what was learned.
"""

from __future__ import annotations

from gateway.observe import metrics

ALPHA = 0.3  # weight of the newest sample: about the last five requests dominate


class LatencyAverages:
    def __init__(self, alpha: float = ALPHA) -> None:
        self._alpha = alpha
        self._averages: dict[str, float] = {}

    def observe(self, target_id: str, seconds: float) -> None:
        previous = self._averages.get(target_id)
        average = seconds if previous is None else previous + self._alpha * (seconds - previous)
        self._averages[target_id] = average
        metrics.target_latency(target_id, average)

    def average(self, target_id: str) -> float | None:
        """None until the target has answered once here."""
        return self._averages.get(target_id)
