"""The in-process vector index of one route's semantic cache.

A semantic lookup may only ever compare a question with questions of the same
partition: the same caller scope, alias, system prompt, settings and tier (the pipeline
hashes all of that into the partition name). So the index keeps one contiguous float32
matrix per partition, and a lookup is one matrix-vector product over that partition's
rows alone: an exact cosine search, since every vector is stored with unit length.

Why exact search with numpy rather than an approximate graph (HNSW): a partition is one
caller's slice of at most `max_entries` rows, and the product over 10,000 rows of 768
floats takes about 1-2 ms on one core; an approximate index would add a native library,
a build step per insert and recall below 100%, to save time that only very large shared
partitions would notice. The bound and the eviction are the index's own: past
`max_entries` (counted over all partitions) the least recently used entry goes, and an
entry past its expiry is dropped when a lookup meets it.

Rows are removed by moving the partition's last row into the hole, so a matrix never has
gaps and never needs compacting. Everything here is synchronous and runs on the event
loop without awaiting, so no lock is needed.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

# A lookup is one matrix-vector product: bound by memory, not arithmetic. BLAS threads would
# spin against the event loop (and the other workers) for no gain, so one thread unless the
# operator says otherwise; this must be set before numpy loads its BLAS.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import numpy as np  # noqa: E402

_FIRST_ROWS = 8
_GROWTH = 1.5  # a partition's matrix grows by half when full: bounded slack, few copies


def unit(vector: Any) -> np.ndarray | None:
    """`vector` as float32 of length one, or None when it has no direction (all zeros, NaN)."""
    array = np.asarray(vector, dtype=np.float32).reshape(-1)
    if array.size == 0:
        return None
    norm = float(np.linalg.norm(array))
    if not np.isfinite(norm) or norm == 0.0:
        return None
    return array / norm


@dataclass(frozen=True, slots=True)
class Match:
    """The nearest entry of a partition: its id, its cosine similarity and what was stored with it."""

    entry_id: str
    similarity: float
    payload: Any


class _Partition:
    __slots__ = ("matrix", "ids", "size")

    def __init__(self, dimension: int) -> None:
        self.matrix = np.empty((_FIRST_ROWS, dimension), dtype=np.float32)
        self.ids: list[str] = []
        self.size = 0

    @property
    def dimension(self) -> int:
        return int(self.matrix.shape[1])

    def append(self, entry_id: str, vector: np.ndarray, most: int) -> int:
        """Add a row; the matrix grows by half when full, never past `most` rows plus one
        (the index's bound: the row over it is evicted right after)."""
        if self.size == self.matrix.shape[0]:
            rows = max(self.size + 1, min(int(self.size * _GROWTH) + 1, most + 1))
            grown = np.empty((rows, self.dimension), dtype=np.float32)
            grown[: self.size] = self.matrix[: self.size]
            self.matrix = grown
        row = self.size
        self.matrix[row] = vector
        self.ids.append(entry_id)
        self.size += 1
        return row

    def remove(self, row: int) -> str | None:
        """Drop `row`; returns the id of the entry moved into its place, if any."""
        last = self.size - 1
        moved = None
        if row != last:
            self.matrix[row] = self.matrix[last]
            moved = self.ids[row] = self.ids[last]
        self.ids.pop()
        self.size = last
        return moved


@dataclass(slots=True)
class _Entry:
    partition: str
    row: int
    expires: float  # unix seconds
    payload: Any


class VectorIndex:
    """Vectors by partition, bounded to `max_entries`, least recently used evicted first."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._partitions: dict[str, _Partition] = {}
        self._entries: OrderedDict[str, _Entry] = OrderedDict()  # least recently used first

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, entry_id: str) -> bool:
        return entry_id in self._entries

    def resize(self, max_entries: int) -> None:
        """A reload changed the bound: a smaller one evicts at once."""
        self.max_entries = max_entries
        self._evict()

    def add(self, partition: str, entry_id: str, vector: np.ndarray, expires: float, payload: Any = None) -> None:
        """Keep a unit vector (see `unit`) under `partition`; a vector of another length than
        the partition's (the embeddings model changed) replaces the partition."""
        if entry_id in self._entries:
            self.remove(entry_id)
        rows = self._partitions.get(partition)
        if rows is not None and rows.dimension != vector.shape[0]:
            for stale in list(rows.ids):
                self.remove(stale)
            rows = None
        if rows is None:
            rows = self._partitions[partition] = _Partition(int(vector.shape[0]))
        row = rows.append(entry_id, vector, self.max_entries)
        self._entries[entry_id] = _Entry(partition, row, expires, payload)
        self._evict()

    @staticmethod
    def vector(raw: bytes) -> np.ndarray:
        """A vector as another replica wrote it (`ndarray.tobytes()` of float32)."""
        return np.frombuffer(raw, dtype=np.float32).copy()

    def nearest(self, partition: str, vector: np.ndarray, now: float) -> Match | None:
        """The most similar live entry of `partition`, whatever its similarity; expired
        entries met on the way are dropped."""
        rows = self._partitions.get(partition)
        while rows is not None and rows.size and rows.dimension == vector.shape[0]:
            scores = rows.matrix[: rows.size] @ vector
            best = int(np.argmax(scores))
            entry_id = rows.ids[best]
            entry = self._entries[entry_id]
            if entry.expires > now:
                return Match(entry_id, float(scores[best]), entry.payload)
            self.remove(entry_id)
            rows = self._partitions.get(partition)
        return None

    def touch(self, entry_id: str) -> None:
        """The entry was served: it is now the most recently used."""
        if entry_id in self._entries:
            self._entries.move_to_end(entry_id)

    def remove(self, entry_id: str) -> None:
        entry = self._entries.pop(entry_id, None)
        if entry is None:
            return
        rows = self._partitions[entry.partition]
        moved = rows.remove(entry.row)
        if moved is not None:
            self._entries[moved].row = entry.row
        if rows.size == 0:
            del self._partitions[entry.partition]

    def _evict(self) -> None:
        while len(self._entries) > self.max_entries:
            self.remove(next(iter(self._entries)))
