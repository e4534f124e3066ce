"""The multi-row INSERTs a queued batch is written with, run against a real SQLite file."""

from __future__ import annotations

import sqlite3

from sqlalchemy import create_engine

from gateway.store.database.batch import BatchInsert
from gateway.store.database.ledger import COLUMNS
from gateway.store.database.schema import metadata, requests


def _row(n: int) -> tuple[object, ...]:
    return (1_700_000_000_000 + n, f"req-{n}", "key", None, "route", "prov", "model", "chat", 200, None,
            n, 2 * n, 0, n / 1000, 1.5, 1, False, n % 2 == 0, None)


def test_every_row_lands_in_order_with_few_distinct_statements(tmp_path):
    path = tmp_path / "ledger.db"
    engine = create_engine(f"sqlite:///{path}")
    metadata.create_all(engine, tables=[requests])
    insert = BatchInsert(requests, COLUMNS, engine.dialect)
    connection = sqlite3.connect(path)
    statements: set[str] = set()
    written = 0
    # Batch sizes as a busy ledger leaves them: every remainder from 1 to a few full chunks.
    for size in [*range(1, 40), 255, 256, 257, 300, 511, 512, 777, 1203]:
        batch = [_row(written + i) for i in range(size)]
        for sql, values in insert.statements(batch):
            statements.add(sql)
            connection.execute(sql, values)
        written += size
    connection.commit()
    columns = ", ".join(f'"{c}"' for c in COLUMNS)
    rows = connection.execute(f"SELECT {columns} FROM requests ORDER BY id").fetchall()
    assert len(rows) == written
    assert [r[1] for r in rows] == [f"req-{n}" for n in range(written)]
    assert rows[1202][10:12] == (1202, 2404)
    # A prepared statement per distinct size is what the driver caches: sizes are powers of
    # two up to the chunk, so a handful, however the batches fall.
    assert insert.chunk == 256 and len(statements) <= 9


async def test_nulls_and_flags_written_by_the_writer_read_back_as_sqlite_types(tmp_path):
    """The writer's adapters for None and bool (sqlite_writer) change the cost of binding, not
    what is stored: NULL stays NULL and a flag an integer 0 or 1, as plain sqlite3 stores them."""
    from gateway.store.database.sqlite_writer import SqliteWriter

    path = tmp_path / "ledger.db"
    engine = create_engine(f"sqlite:///{path}")
    metadata.create_all(engine, tables=[requests])
    insert = BatchInsert(requests, COLUMNS, engine.dialect)
    writer = SqliteWriter(str(path), 5.0)
    await writer.write(insert.statements([_row(0), _row(1)]))
    await writer.close()
    read = sqlite3.connect(path).execute(
        "SELECT tenant, typeof(tenant), error_type, user, cache_hit, typeof(cache_hit), stream, typeof(stream) "
        "FROM requests ORDER BY id").fetchall()
    assert read == [(None, "null", None, None, 0, "integer", 1, "integer"),
                    (None, "null", None, None, 0, "integer", 0, "integer")]
    # Read through SQLAlchemy, the flags are booleans again.
    with engine.connect() as connection:
        flags = connection.execute(requests.select().with_only_columns(requests.c.cache_hit, requests.c.stream)).all()
    assert [tuple(f) for f in flags] == [(False, True), (False, False)]
