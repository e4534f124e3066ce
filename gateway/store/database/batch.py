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
        # SQLite takes up to 32766 variables a statement since 3.32, 999 before.
        limit = 32766 if sqlite3.sqlite_version_info >= (3, 32) else 999
        self.chunk = max(1, min(500, limit // max(1, len(columns))))
        self._full = self._sql(self.chunk)

    def _sql(self, rows: int) -> str:
        return self._head + ", ".join([self._group] * rows)

    def statements(self, batch: Rows) -> list[tuple[str, Any]]:
        """(statement, parameters) to run in order: the batch for `executemany`, or one
        multi-row statement with its flat values for each chunk."""
        if not self.multirow:
            return [(self.single, batch)]
        out: list[tuple[str, Any]] = []
        for start in range(0, len(batch), self.chunk):
            chunk = batch[start:start + self.chunk]
            sql = self._full if len(chunk) == self.chunk else self._sql(len(chunk))
            out.append((sql, tuple(value for row in chunk for value in row)))
        return out
