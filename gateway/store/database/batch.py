"""The INSERT that writes a batch of queued rows (ledger rows, stored responses).

Compiled once per dialect from the schema (not written by hand); rows then go to the
driver as they were queued, as tuples, without SQLAlchemy's per-row work (which cost more
than the database's own: about 16 against 9 microseconds a row).

PostgreSQL takes stored responses as one `executemany` (the ledger, far busier, goes by COPY:
see `_copy` in `database/__init__.py`). SQLite gets one statement per chunk of
rows (`VALUES (...), (...), ...`): it runs in a thread beside the event loop and lets go
of the GIL for every step of a statement, so row by row a batch hands the GIL back and
forth with the request path once a row, which cost the gateway far more than the insert.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from itertools import chain
from typing import Any

from sqlalchemy import Table, insert
from sqlalchemy.engine import Dialect

Rows = list[tuple[Any, ...]]


class BatchInsert:
    """The statements that write a batch, for one table, its columns in queued order and one dialect."""

    def __init__(self, table: Table, columns: Sequence[str], dialect: Dialect) -> None:
        compiled = insert(table).compile(dialect=dialect, column_keys=list(columns))
        assert compiled.positiontup == list(columns), "a positional paramstyle in the queued order"
        self.single = str(compiled)
        self.multirow = dialect.name == "sqlite"
        head, _, group = self.single.partition(" VALUES ")
        self._head, self._group = head + " VALUES ", group.strip()
        # SQLite takes up to 32766 variables a statement since 3.32, 999 before. Statements
        # come in sizes that are powers of two: every distinct statement is prepared and kept
        # in the driver's statement cache (128 per connection), and one for each size a batch
        # happened to leave over grew the process by tens of megabytes of prepared statements.
        limit = 32766 if sqlite3.sqlite_version_info >= (3, 32) else 999
        most = max(1, min(256, limit // max(1, len(columns))))
        self.chunk = 1 << (most.bit_length() - 1)
        self._sql: dict[int, str] = {}

    def _statement(self, rows: int) -> str:
        sql = self._sql.get(rows)
        if sql is None:
            sql = self._sql[rows] = self._head + ", ".join([self._group] * rows)
        return sql

    def statements(self, batch: Rows) -> list[tuple[str, Any]]:
        """(statement, parameters) to run in order: the batch for `executemany`, or multi-row
        statements with their flat values: full chunks, then the rest in power-of-two parts."""
        if not self.multirow:
            return [(self.single, batch)]
        out: list[tuple[str, Any]] = []
        start, size = 0, self.chunk
        while start < len(batch):
            while size > len(batch) - start:
                size //= 2
            chunk = batch[start:start + size]
            out.append((self._statement(size), tuple(chain.from_iterable(chunk))))
            start += size
        return out
