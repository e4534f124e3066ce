"""Where the semantic cache's entries live: an in-memory vector index per route, and
with Redis the answers themselves, shared by every replica.

In one process (no Redis) an entry is its vector in the route's `VectorIndex` with the
answer beside it. With Redis the answer is stored there under the entry's id with the
route's ttl, and the vector is appended to the route's log (a Redis stream); every
replica reads the logs of the routes it serves every `REFRESH_SECONDS` into its own
index, so a lookup is a local matrix product plus one GET of the answer. A replica
that starts later reads each log from its beginning; an answer that expired or was
evicted in Redis is a miss, and its vector is dropped from the local index then.

Lookups and stores fail open: Redis down is a miss, and nothing is stored.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from loguru import logger

from gateway.ids import random_hex
from gateway.store.interface import SettingsSource, Store, StoreUnavailable

if TYPE_CHECKING:  # numpy loads with the first index (gateway.store.vectors), not with the gateway
    import numpy as np

    from gateway.store.vectors import VectorIndex

REFRESH_SECONDS = 0.25  # how often a replica reads the entries other replicas stored
LOG_BATCH = 1000  # log entries read per route per round trip
SEPARATOR = b"\n"  # between the answering target's id and the answer's JSON, as in the exact cache


@dataclass(frozen=True, slots=True)
class Found:
    """A lookup's nearest entry (`answer` None when it was below the threshold or gone)."""

    similarity: float
    target: str = ""
    answer: bytes | None = None


class SharedEntries(Protocol):
    """What the Redis store offers the semantic cache (`gateway.store._redis.RedisStore`)."""

    async def semantic_put(
        self, route: str, entry_id: str, partition: str, vector: bytes, value: bytes, ttl: float, max_entries: int,
        writer: str,
    ) -> None: ...

    async def semantic_answer(self, route: str, entry_id: str) -> bytes | None: ...

    async def semantic_log(self, cursors: dict[str, str], count: int) -> list[tuple[str, str, dict[bytes, bytes]]]: ...


# The semantic routes being served now, as (alias, max_entries): read at each refresh.
RouteBounds = Callable[[], Iterable[tuple[str, int]]]


class SemanticEntries:
    """The process's semantic cache entries, for every route that has one."""

    def __init__(self, store: Store, settings: SettingsSource) -> None:
        self._settings = settings  # store.cache_max_entry_bytes bounds an answer, as in the exact cache
        self._shared: SharedEntries | None = store if store.kind == "redis" else None  # type: ignore[assignment]
        self._indexes: dict[str, VectorIndex] = {}
        self._cursors: dict[str, str] = {}  # route -> last log id read
        self._writer = os.urandom(8).hex()  # this replica, on the log: it skips its own entries

    def index(self, route: str, max_entries: int) -> VectorIndex:
        found = self._indexes.get(route)
        if found is None:
            from gateway.store.vectors import VectorIndex

            found = self._indexes[route] = VectorIndex(max_entries)
        elif found.max_entries != max_entries:
            found.resize(max_entries)
        return found

    async def find(self, route: str, max_entries: int, partition: str, vector: np.ndarray, threshold: float) -> Found | None:
        """The nearest entry of `partition`, with its answer when it is at least `threshold`
        similar; None when the partition has no live entry."""
        index = self.index(route, max_entries)
        match = index.nearest(partition, vector, time.time())
        if match is None:
            return None
        if match.similarity < threshold:
            return Found(match.similarity)
        if self._shared is None:
            target, answer = match.payload
        else:
            try:
                raw = await self._shared.semantic_answer(route, match.entry_id)
            except StoreUnavailable:
                return Found(match.similarity)
            if raw is None:  # expired or evicted in Redis: the vector goes too
                index.remove(match.entry_id)
                return Found(match.similarity)
            head, _, answer = raw.partition(SEPARATOR)
            target = head.decode()
        index.touch(match.entry_id)
        return Found(match.similarity, target, answer)

    async def add(
        self, route: str, max_entries: int, partition: str, vector: np.ndarray, target: str, answer: bytes, ttl: float,
    ) -> None:
        """Store an answer under its question's vector (with Redis: for every replica)."""
        if len(answer) > self._settings().cache_max_entry_bytes:
            return
        entry_id = random_hex()[:24]
        index = self.index(route, max_entries)
        expires = time.time() + ttl
        if self._shared is None:
            index.add(partition, entry_id, vector, expires, (target, answer))
            return
        try:
            value = target.encode() + SEPARATOR + answer
            await self._shared.semantic_put(route, entry_id, partition, vector.tobytes(), value, ttl, max_entries,
                                            self._writer)
        except StoreUnavailable:
            return
        index.add(partition, entry_id, vector, expires)

    async def refresh(self, routes: Iterable[tuple[str, int]]) -> int:
        """Read what other replicas stored since the last refresh; returns how many entries came in."""
        if self._shared is None:
            return 0
        bounds = dict(routes)
        cursors = {route: self._cursors.get(route, "0-0") for route in bounds}
        read = await self._shared.semantic_log(cursors, LOG_BATCH)
        now = time.time()
        for route, stream_id, fields in read:
            self._cursors[route] = stream_id
            expires = float(fields[b"expires"]) / 1000
            if expires <= now:
                continue
            if fields.get(b"writer", b"").decode() == self._writer:
                continue  # stored by this replica: already in its index (or evicted from it since)
            index = self.index(route, bounds[route])
            entry_id = fields[b"id"].decode()
            vector = index.vector(fields[b"vector"])
            index.add(fields[b"partition"].decode(), entry_id, vector, expires)
        return len(read)

    async def run(self, routes: RouteBounds) -> None:
        """With Redis: keep this replica's indexes fed from the routes' logs until cancelled."""
        if self._shared is None:
            return
        while True:
            try:
                bounds = list(routes())
                while bounds and await self.refresh(bounds) >= LOG_BATCH:
                    pass  # a backlog (a replica just started): read on at once
            except StoreUnavailable:
                pass  # counted by the store; the next round tries again
            except Exception:
                logger.opt(exception=True).error("reading the semantic cache's shared entries failed")
            await asyncio.sleep(REFRESH_SECONDS)

