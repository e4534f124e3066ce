"""Retry waits: exponential, capped, with equal jitter in [delay/2, delay]."""

from __future__ import annotations

import random

from gateway.config.snapshot import Retry
from gateway.pipeline.dispatch import backoff_delay


def test_backoff_doubles_is_capped_and_jittered_within_bounds():
    retry = Retry(attempts=6, backoff=0.25, max_backoff=1.5)
    rng = random.Random(1)
    for number, full in [(1, 0.25), (2, 0.5), (3, 1.0), (4, 1.5), (5, 1.5)]:
        waits = [backoff_delay(retry, number, rng) for _ in range(2000)]
        assert min(waits) >= full / 2
        assert max(waits) <= full
        assert max(waits) - min(waits) > full / 2 * 0.9  # really jittered, over the whole range


def test_zero_backoff_retries_at_once():
    assert backoff_delay(Retry(3, 0.0, 4.0), 2) == 0.0
