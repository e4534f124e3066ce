"""The database: what must outlast a process (today the request ledger).

Embedded SQLite by default, PostgreSQL for a fleet (`url.py`); one schema for both
(`schema.py`), versioned by Alembic (`migrations/`, applied at start). The request path
never waits on it: `Database.ledger.add` queues a row and this module's one background
task writes batches. While the database is down, requests are served as usual, rows
wait in the bounded queue, `/ready` and `gateway_db_up` say so, and the writer retries
every flush interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

from loguru import logger
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gateway.observe import metrics
from gateway.store.database import migrate, queries
from gateway.store.database.batch import BatchInsert
from gateway.store.database.ledger import (
    BATCH_ROWS,
    BOOLEAN_FLAGS,
    COLUMNS,
    INTEGER_FLAGS,
    Ledger,
)
from gateway.store.database.schema import requests
from gateway.store.database.sqlite_writer import SqliteWriter
from gateway.store.database.url import (
    async_url,
    dialect,
    resolve_url,
    safe,
    sqlite_file,
)

PRUNE_EVERY = 3600.0  # seconds between retention sweeps
CONNECT_TIMEOUT = 5.0
PING_TIMEOUT = 1.0
CLOSE_TIMEOUT = 10.0  # seconds a graceful stop may spend writing what is left
SQLITE_BUSY_TIMEOUT = 15.0  # seconds to wait for the file's write lock held by another process

OnReady = Callable[[], Awaitable[None]]


class Database:
    """One process's database: its engine, its ledger and the task that writes it."""

    def __init__(
        self, url: str, retention_days: int = 90, flush_interval: float = 1.0, queue_size: int = 10000,
        resync_interval: float = 60.0,
    ):
        self.url = url
        self.resync_interval = resync_interval
        self._resynced_at = time.monotonic()
        self.kind = dialect(url)
        self.retention_days = retention_days
        self.flush_interval = flush_interval
        self.ledger = Ledger(queue_size, INTEGER_FLAGS if self.kind == "sqlite" else BOOLEAN_FLAGS)
        self.engine: AsyncEngine = create_async_engine(async_url(url), **_engine_options(self.kind))
        self.up = False
        self.revision: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False  # set by `close`: the writer stops even if a cancellation is lost
        self._on_ready: OnReady | None = None
        self._pruned_at: float | None = None  # monotonic time of the last retention sweep
        self._warned = False  # an outage was logged and has not ended
        self._lock = asyncio.Lock()
        self._sqlite: SqliteWriter | None = None  # batches of an SQLite file go through it
        if self.kind == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
            path = sqlite_file(url)
            if path is not None:
                self._sqlite = SqliteWriter(path, SQLITE_BUSY_TIMEOUT)
        self._insert = BatchInsert(requests, COLUMNS, self.engine.dialect)

    @property
    def migrated(self) -> bool:
        return self.revision is not None

    async def start(self, on_ready: OnReady | None = None) -> bool:
        """Migrate and start the writer. An unreachable database is not fatal: the writer
        keeps trying, and `on_ready` runs once it has answered (now or later)."""
        self._on_ready = on_ready
        await self._connect()
        self.ledger.wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self.up

    async def _connect(self) -> None:
        try:
            self.revision = await asyncio.wait_for(migrate.upgrade(self.engine), CONNECT_TIMEOUT * 2)
        except Exception as exc:  # noqa: BLE001 - any failure means "not yet"; the writer retries
            self._down(exc)
            return
        self._set_up(True)
        logger.bind(event="database_ready", database=safe(self.url), revision=self.revision).info(
            "database ready: {} at revision {}", self.kind, self.revision)
        if self._on_ready is not None:
            try:
                await self._on_ready()
            except Exception as exc:  # noqa: BLE001
                logger.bind(event="database_error").warning("after the database came up: {}", exc)

    async def _run(self) -> None:
        wake = self.ledger.wake
        while not self._stopping:
            # Not `asyncio.wait_for`: on Python 3.11 it drops a cancellation that arrives as
            # the event is set, and the writer would then outlive `close` (which waits for it).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.flush_interval):
                    await wake.wait()
            # Woken by a full batch (under load): write full batches only. The few rows that
            # ended while one was being written go with the next batch rather than as a
            # transaction of their own; written alone, such crumbs (each commit rewrites the
            # last page of the table and of every index) made a row cost the writing thread
            # over twice what it costs in a full batch. The interval writes whatever is left.
            full_only = wake.is_set()
            wake.clear()
            if self._stopping:
                return
            if not self.migrated:
                await self._connect()
                if not self.migrated:
                    metrics.ledger_queued(len(self.ledger.rows))
                    continue
            await self.flush(full_only)
            await self._resync()
            if self.up and (self._pruned_at is None or time.monotonic() - self._pruned_at > PRUNE_EVERY):
                await self._prune()

    async def flush(self, full_only: bool = False) -> bool:
        """Write every queued row (with `full_only`, whole batches of `BATCH_ROWS` only);
        False when the database refused (the rows stay queued).

        The writer calls it each interval; a usage report calls it first, so it counts the
        requests this process has just answered. The lock keeps the two from writing one batch twice."""
        async with self._lock:
            return await self._flush(BATCH_ROWS if full_only else 1)

    async def _flush(self, least: int) -> bool:
        ledger = self.ledger
        while len(ledger.rows) >= least and self.migrated:
            batch = ledger.rows[:BATCH_ROWS]
            try:
                if self.kind == "postgresql":
                    async with self.engine.begin() as connection:
                        await _copy(connection, batch)
                else:
                    await self.insert(self._insert, batch)
            except Exception as exc:  # noqa: BLE001
                self._down(exc)
                break
            ledger.written(len(batch))
            self._set_up(True)
        metrics.ledger_queued(len(ledger.rows))
        return len(ledger.rows) < least

    async def insert(self, statement: BatchInsert, rows: list[tuple[Any, ...]]) -> None:
        """Write `rows` in one transaction: an SQLite file's in one hand-off to its writing
        thread (`sqlite_writer`), any other database's through the engine."""
        if self._sqlite is not None:
            await self._sqlite.write(statement.statements(rows))
            return
        async with self.engine.begin() as connection:
            for sql, values in statement.statements(rows):
                await connection.exec_driver_sql(sql, values)

    async def _resync(self) -> None:
        """Now and then, after a flush (the ledger is then as new as the store's settled
        spend), run `on_ready` again: it only ever raises a budget counter that is below
        the ledger, which happens when the store lost its state (Redis restarted empty)."""
        if self._on_ready is None or not self.up or time.monotonic() - self._resynced_at < self.resync_interval:
            return
        self._resynced_at = time.monotonic()
        try:
            await self._on_ready()
        except Exception as exc:  # noqa: BLE001
            logger.bind(event="database_error").warning("re-reading budget spend from the ledger: {}", exc)

    async def _prune(self) -> None:
        self._pruned_at = time.monotonic()
        before = int((time.time() - self.retention_days * 86400) * 1000)
        try:
            deleted = await queries.prune(self.engine, before)
        except Exception as exc:  # noqa: BLE001
            self._down(exc)
            return
        if deleted:
            logger.bind(event="ledger_pruned", rows=deleted).info(
                "deleted {} ledger rows older than {} days", deleted, self.retention_days)

    async def ping(self) -> bool:
        """Whether the database answers now (for /ready); also updates `gateway_db_up`."""
        try:
            async with asyncio.timeout(PING_TIMEOUT):
                async with self.engine.connect() as connection:
                    await connection.execute(text("SELECT 1"))
        except Exception as exc:  # noqa: BLE001
            self._down(exc)
            return False
        self._set_up(True)
        return True

    async def close(self) -> None:
        """A graceful stop: write everything left, then release the connections."""
        if self._task is not None:
            # Under the lock, so a batch the writer is inserting right now is committed and
            # marked written first: cancelled mid-commit, the batch would stay queued after
            # the database had taken it, and be written a second time below.
            async with self._lock:
                self._stopping = True
                self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.ledger.rows:
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT):
                    if not self.migrated:
                        await self._connect()
                    await self.flush()
            except TimeoutError:
                pass
            if self.ledger.rows:
                logger.bind(event="ledger_lost", rows=len(self.ledger.rows)).error(
                    "stopping with {} ledger rows unwritten: the database did not answer", len(self.ledger.rows))
        if self._sqlite is not None:
            await self._sqlite.close()
        await self.engine.dispose()

    def status(self) -> dict[str, Any]:
        return {"kind": self.kind, "up": self.up, "queued": len(self.ledger.rows), "revision": self.revision}

    def _set_up(self, up: bool) -> None:
        if not self.up:
            metrics.db_up(True)
            if self._warned:
                logger.bind(event="database_up", queued=len(self.ledger.rows)).info(
                    "database answers again: writing {} queued ledger rows", len(self.ledger.rows))
        self._warned = False
        self.up = up

    def _down(self, exc: BaseException) -> None:
        """Log an outage once, when it starts; the metric tells the rest."""
        if not self._warned:
            logger.bind(event="database_down", database=safe(self.url), queued=len(self.ledger.rows)).warning(
                "database unavailable ({}): requests go on, ledger rows wait in the queue", _reason(exc))
            self._warned = True
        self.up = False
        metrics.db_up(False)


async def _copy(connection: Any, batch: list[tuple[Any, ...]]) -> None:
    """PostgreSQL takes a batch of ledger rows by COPY, in the open transaction: the driver
    then encodes each row once in binary, where an INSERT per row (executemany) cost the
    gateway's own process several times as much CPU."""
    raw = await connection.get_raw_connection()
    await raw.driver_connection.copy_records_to_table(requests.name, records=batch, columns=list(COLUMNS))


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:300]


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    """WAL: the writer and /admin readers (and other workers) do not block each other."""
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _engine_options(kind: str) -> dict[str, Any]:
    if kind == "sqlite":
        # Several workers (or replicas on one host) may share the file: wait for its lock.
        return {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT}}
    return {
        "pool_pre_ping": True,  # a connection from before a database restart is replaced, not failed on
        "pool_size": 5,
        "max_overflow": 5,
        "connect_args": {"timeout": CONNECT_TIMEOUT, "command_timeout": 30},
    }


def open_database(configured_url: str | None, settings: Any) -> Database:
    """The process's database from routes.yaml `database:` (a `DatabaseSettings`) and the environment."""
    return Database(
        resolve_url(configured_url), settings.retention_days, settings.flush_interval, settings.queue_size,
        settings.resync_interval,
    )


__all__ = ["Database", "open_database", "queries", "resolve_url"]
