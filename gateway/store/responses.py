"""Where /v1/responses keeps the responses it stores, and the conversations they continue.

Two homes, one in front of the other: each process keeps the most recent ones in memory
(bounded, least recently used go first), and the database (SQLite by default, PostgreSQL
for a fleet) keeps them all until their retention ends, so `previous_response_id` works
after a restart and on every replica. With the database off, memory is the only home.

Every record belongs to an owner (the name of the key that made it): reads and deletes
name both the id and the owner, so another key's id is simply not found.

A put returns once its row is in the database: the client's next request may reach another
replica at once, and a stored response must not vanish with a crash right after its answer.
Writes are group commits: one writer task takes every row pending, writes them in one
transaction and releases every put that waited on them; the rows that arrive meanwhile make
the next group, so under load one transaction carries many rows and nothing waits on a
timer. A database slower than `WRITE_WAIT` seconds, or failing, does not hold answers up:
puts then return at once (memory has the response) and the write goes on behind.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

from loguru import logger
from sqlalchemy import and_, delete, select

from gateway.config.snapshot import ResponsesSettings
from gateway.store.database.batch import BatchInsert
from gateway.store.database.schema import stored_responses

if TYPE_CHECKING:
    from gateway.store.database import Database

COLUMNS = ("id", "owner", "created_ms", "expires_ms", "body")
PRUNE_EVERY = 3600.0  # seconds between deletions of expired rows
WRITE_WAIT = 5.0  # seconds a put waits for its row to be written before answering anyway


class ResponseStore:
    def __init__(self, settings: Callable[[], ResponsesSettings], database: Database | None = None) -> None:
        self._settings = settings
        self.database = database
        self._memory: OrderedDict[tuple[str, str], tuple[float, bytes]] = OrderedDict()
        self._pending: list[tuple[str, str, int, int, bytes]] = []  # rows in COLUMNS order
        self._insert_sql: BatchInsert | None = None
        self._writer: asyncio.Task[None] | None = None
        self._pruner: asyncio.Task[None] | None = None
        self._group: asyncio.Future[None] | None = None  # done when the pending rows are written
        self._flying: asyncio.Future[None] | None = None  # the group being written now
        self._overdue = False  # the write in flight has taken longer than WRITE_WAIT
        self._pruned_at = -math.inf  # the first write prunes, however long the machine has been up
        self._warned = False

    async def put(self, owner: str, response_id: str, body: bytes) -> None:
        settings = self._settings()
        now = time.time()
        expires = now + settings.retention_days * 86400
        if settings.max_in_memory:
            memory, slot = self._memory, (owner, response_id)
            if slot in memory:  # a new id goes in at the end already; only a rewrite moves
                memory.move_to_end(slot)
            memory[slot] = (expires, body)
            while len(memory) > settings.max_in_memory:
                memory.popitem(last=False)
        if self.database is not None:
            self._pending.append((response_id, owner, int(now * 1000), int(expires * 1000), body))
            group = self._group
            if group is None:
                group = self._group = asyncio.get_running_loop().create_future()
            if self._writer is None or self._writer.done():
                self._writer = asyncio.get_running_loop().create_task(self._write())
            if self._warned or self._overdue:
                return  # the database is down or stalled: answer now, the write goes on behind
            # Released when written, or after WRITE_WAIT (see `_write`). Shielded: the group is
            # shared, and a client that leaves must not cancel the wait of the others.
            await asyncio.shield(group)

    async def get(self, owner: str, response_id: str) -> bytes | None:
        found = self._memory.get((owner, response_id))
        now = time.time()
        if found is not None:
            if found[0] > now:
                self._memory.move_to_end((owner, response_id))
                return found[1]
            del self._memory[(owner, response_id)]
        for row in self._pending:
            if row[0] == response_id and row[1] == owner:
                return row[4]
        if self.database is None:
            return None
        query = select(stored_responses.c.body).where(and_(
            stored_responses.c.id == response_id, stored_responses.c.owner == owner,
            stored_responses.c.expires_ms > int(now * 1000)))
        try:
            async with self.database.engine.connect() as connection:
                row = (await connection.execute(query)).first()
        except Exception as exc:  # noqa: BLE001 - a database outage is a miss, logged once
            self._down(exc)
            return None
        return bytes(row[0]) if row is not None else None

    async def delete(self, owner: str, response_id: str) -> bool:
        found = self._memory.pop((owner, response_id), None) is not None
        kept = [r for r in self._pending if not (r[0] == response_id and r[1] == owner)]
        found = found or len(kept) != len(self._pending)
        self._pending[:] = kept
        if self.database is None:
            return found
        statement = delete(stored_responses).where(and_(
            stored_responses.c.id == response_id, stored_responses.c.owner == owner))
        if self._flying is not None:  # a write in flight lands first, so it cannot come back after
            await asyncio.wait([self._flying], timeout=WRITE_WAIT)
        try:
            async with self.database.engine.begin() as connection:
                result = await connection.execute(statement)
        except Exception as exc:  # noqa: BLE001
            self._down(exc)
            return found
        return found or bool(result.rowcount)

    async def _write(self) -> None:
        """Write what is pending, one group at a time, until nothing is; then start a prune
        now and then. The prune is a task of its own, never awaited here: this task ends the
        moment nothing is pending, so a put never finds it busy with anything but writes."""
        await self._write_groups()
        if self._group is not None:  # its rows were deleted before they were written
            _release(self._group)
            self._group = None
        if time.monotonic() - self._pruned_at > PRUNE_EVERY and (self._pruner is None or self._pruner.done()):
            self._pruned_at = time.monotonic()
            self._pruner = asyncio.get_running_loop().create_task(self._prune())

    async def _write_groups(self) -> None:
        assert self.database is not None
        loop = asyncio.get_running_loop()
        while self._pending:
            await asyncio.sleep(0)  # requests that finish in this turn of the loop join the group
            if not self._pending:
                break  # deleted meanwhile
            batch, group = self._pending, self._group
            self._pending, self._group = [], None  # rows put from now on make the next group
            self._flying = group
            # A database slower than WRITE_WAIT lets the answers go first; the write goes on.
            overdue = loop.call_later(WRITE_WAIT, self._late, group)
            try:
                await self.database.insert(self._insert(), batch)
                self._warned = False
            except Exception as exc:  # noqa: BLE001 - memory still has them; the database is the second home
                self._down(exc)
            finally:
                overdue.cancel()
                self._overdue = False
                self._flying = None
                _release(group)

    async def _prune(self) -> None:
        """Delete the rows past their retention (after the first write, then hourly)."""
        assert self.database is not None
        try:
            async with self.database.engine.begin() as connection:
                await connection.execute(delete(stored_responses).where(
                    stored_responses.c.expires_ms <= int(time.time() * 1000)))
        except Exception as exc:  # noqa: BLE001
            self._down(exc)

    def _insert(self) -> BatchInsert:
        """The batch INSERT for this database's dialect, compiled on first use."""
        if self._insert_sql is None:
            assert self.database is not None
            self._insert_sql = BatchInsert(stored_responses, COLUMNS, self.database.engine.dialect)
        return self._insert_sql

    async def close(self) -> None:
        """Let a write (and a prune) in flight finish: a graceful stop keeps what was stored."""
        running = [task for task in (self._writer, self._pruner) if task is not None and not task.done()]
        if running:
            await asyncio.wait(running, timeout=10)

    def _late(self, group: asyncio.Future[None] | None) -> None:
        """The write has taken WRITE_WAIT: its puts return, and new ones stop waiting until it ends."""
        self._overdue = True
        _release(group)

    def _down(self, exc: BaseException) -> None:
        if not self._warned:
            self._warned = True
            logger.bind(event="database_error").warning(
                "stored responses: the database did not answer ({}); kept in memory only", type(exc).__name__)


def _release(group: asyncio.Future[None] | None) -> None:
    """Let the puts waiting on `group` return."""
    if group is not None and not group.done():
        group.set_result(None)
