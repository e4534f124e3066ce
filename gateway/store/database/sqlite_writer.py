"""Batches written to an SQLite file in one hand-off to a thread of their own.

Through SQLAlchemy and aiosqlite a batch crosses between the event loop and the driver's
thread once for every step: taking a connection from the pool, BEGIN, each INSERT, COMMIT,
giving it back. Each crossing is a queue, a thread woken up and a wake-up of the loop.
Once per second for a ledger batch of hundreds of rows that was noise. Then a stored
response began to be written before its client gets the answer, as a group commit of the
responses finished meanwhile: those groups are small and frequent, and the crossings
cost a Responses request more than everything else the database does for it.

So the gateway's two writers (the ledger and the response store) send a whole batch to
this thread in one call, where a plain `sqlite3` connection of its own runs the
transaction. Reads, migrations and the admin's queries keep going through the engine.
Both connections use WAL, so the reader never blocks the writer.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

Statements = Sequence[tuple[str, Any]]

# How `sqlite3` binds a value that is not exactly an int, float, str or bytes (a ledger row
# has several: None for an absent tenant, error or user): it looks for an adapter
# registered for the type, finds none, then asks the protocol and the value itself for
# one, which cost about 0.25 µs a value, more than binding all the row's other values.
# Registered adapters are found in one lookup, so None gets one that changes nothing
# (it still binds as NULL): an empty dict's `get`, a C function, which a value's call
# costs far less than a Python function's. A bool gets the integer `sqlite3` makes of
# it anyway (the ledger writes its flags as integers already: `Ledger.flags`). They
# apply to every sqlite3 connection of the process, which is the point; SQLAlchemy
# converts its own booleans to integers before the driver sees them.
sqlite3.register_adapter(type(None), {}.get)
sqlite3.register_adapter(bool, int)


class SqliteWriter:
    """One SQLite file's writing connection, used from one thread only (opened there on first use)."""

    def __init__(self, path: str, busy_timeout: float) -> None:
        self.path = path
        self.busy_timeout = busy_timeout  # seconds to wait for another process's write lock
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        self._connection: sqlite3.Connection | None = None
        self._closed = False

    async def write(self, statements: Statements) -> None:
        """Run `statements` in one transaction; all of them are written, or none."""
        await asyncio.get_running_loop().run_in_executor(self._thread, self._transaction, statements)

    def _transaction(self, statements: Statements) -> None:
        connection = self._connection
        if connection is None:
            connection = self._connection = self._open()
        try:
            connection.execute("BEGIN IMMEDIATE")  # take the write lock now: the busy timeout covers it
            for sql, values in statements:
                connection.execute(sql, values)
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.rollback()
            raise

    def _open(self) -> sqlite3.Connection:
        # isolation_level=None: the module starts no transaction of its own; BEGIN is ours.
        connection = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        return connection

    async def close(self) -> None:
        """Close the connection in its thread, then let the thread go. A write after this
        raises, as one on a database that went away would (its caller logs it)."""
        if self._closed:
            return
        self._closed = True
        await asyncio.get_running_loop().run_in_executor(self._thread, self._close)
        self._thread.shutdown(wait=False)

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
