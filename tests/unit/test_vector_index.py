"""The semantic cache's in-process index: the nearest vector within one partition only,
least recently used entries evicted at the bound, expired ones never returned."""

from __future__ import annotations

import numpy as np

from gateway.store.vectors import VectorIndex, unit


def vec(*values: float) -> np.ndarray:
    found = unit(values)
    assert found is not None
    return found


def test_the_nearest_entry_of_the_partition_and_its_cosine():
    index = VectorIndex(10)
    index.add("p", "a", vec(1, 0, 0), expires=100, payload="A")
    index.add("p", "b", vec(0, 1, 0), expires=100, payload="B")
    match = index.nearest("p", vec(0.97, 0.243, 0), now=0)
    assert match is not None and match.entry_id == "a" and match.payload == "A"
    assert abs(match.similarity - 0.97) < 0.001


def test_partitions_never_see_each_other():
    index = VectorIndex(10)
    index.add("alpha", "a", vec(1, 0), expires=100)
    assert index.nearest("beta", vec(1, 0), now=0) is None
    index.add("beta", "b", vec(0, 1), expires=100)
    match = index.nearest("beta", vec(1, 0), now=0)
    assert match is not None and match.entry_id == "b" and abs(match.similarity) < 1e-6


def test_the_least_recently_used_entry_goes_at_the_bound():
    index = VectorIndex(2)
    index.add("p", "a", vec(1, 0, 0), expires=100)
    index.add("q", "b", vec(0, 1, 0), expires=100)
    index.touch("a")
    index.add("p", "c", vec(0, 0, 1), expires=100)
    assert len(index) == 2 and "b" not in index and "a" in index
    assert index.nearest("q", vec(0, 1, 0), now=0) is None
    index.resize(1)
    assert len(index) == 1 and "c" in index


def test_removing_a_row_keeps_the_others_findable():
    index = VectorIndex(10)
    for i in range(5):
        values = [0.0] * 5
        values[i] = 1.0
        index.add("p", f"e{i}", vec(*values), expires=100, payload=i)
    index.remove("e1")
    for i in (0, 2, 3, 4):
        values = [0.0] * 5
        values[i] = 1.0
        match = index.nearest("p", vec(*values), now=0)
        assert match is not None and match.payload == i and match.similarity > 0.999


def test_an_expired_entry_is_dropped_and_the_next_nearest_returned():
    index = VectorIndex(10)
    index.add("p", "old", vec(1, 0), expires=5)
    index.add("p", "new", vec(0.8, 0.6), expires=50)
    match = index.nearest("p", vec(1, 0), now=10)
    assert match is not None and match.entry_id == "new"
    assert "old" not in index


def test_a_new_dimension_replaces_the_partition():
    index = VectorIndex(10)
    index.add("p", "short", vec(1, 0), expires=100)
    index.add("p", "long", vec(1, 0, 0), expires=100)
    assert "short" not in index
    assert index.nearest("p", vec(1, 0), now=0) is None


def test_a_vector_without_direction_is_refused():
    assert unit([0.0, 0.0]) is None
    assert unit([]) is None
    assert unit([float("nan"), 1.0]) is None
