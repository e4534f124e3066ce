"""A plain call's read timeout: the target's own, unless the route's deadline comes first."""

from __future__ import annotations

import time
from types import SimpleNamespace

from gateway.pipeline.dispatch import plain_read_timeout


def test_a_read_timeout_shorter_than_the_time_left_is_kept():
    target = SimpleNamespace(read_timeout=0.3)
    assert plain_read_timeout(target, time.monotonic() + 60) == 0.3  # type: ignore[arg-type]


def test_a_read_timeout_the_deadline_beats_is_left_out():
    target = SimpleNamespace(read_timeout=120.0)
    assert plain_read_timeout(target, time.monotonic() + 60) is None  # type: ignore[arg-type]
    assert plain_read_timeout(target, time.monotonic() + 119) is None  # type: ignore[arg-type]


def test_without_a_deadline_the_read_timeout_is_kept():
    target = SimpleNamespace(read_timeout=120.0)
    assert plain_read_timeout(target, float("inf")) == 120.0  # type: ignore[arg-type]
