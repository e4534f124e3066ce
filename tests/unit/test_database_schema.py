"""The database setting and its schema: where the URL comes from, that the migrations build
exactly the tables the code uses, and that retention deletes old ledger rows."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, insert, inspect, text
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.store.database import Database, migrate
from gateway.store.database.schema import metadata, requests
from gateway.store.database.url import DatabaseURLError, async_url, resolve_url, safe
from tests.support.ledger import ledger_rows


def test_the_url_comes_from_config_then_environment_then_the_data_folder():
    env = {"DATABASE_URL": "postgresql://u:p@db/gw", "GATEWAY_DATA_DIR": "/var/lib/gw"}
    assert resolve_url("sqlite:///x.db", env) == "sqlite:///x.db"
    assert resolve_url("", env) == "postgresql://u:p@db/gw"  # `url: ${DATABASE_URL:-}` left empty
    assert resolve_url(None, {"GATEWAY_DATA_DIR": "/var/lib/gw"}) == "sqlite:////var/lib/gw/gateway.db"
    assert resolve_url(None, {}) == "sqlite:///data/gateway.db"
    assert async_url("postgresql://u:p@db/gw").drivername == "postgresql+asyncpg"
    assert "p@" not in safe("postgresql://u:p@db/gw")
    with pytest.raises(DatabaseURLError):
        async_url("mysql://u:p@db/gw")


def test_migrations_build_exactly_the_schema_the_code_uses(tmp_path, database_url):
    async def diff() -> list:
        engine = create_async_engine(async_url(database_url))
        try:
            assert await migrate.upgrade(engine) == migrate.head()
            assert await migrate.upgrade(engine) == migrate.head()  # a second start changes nothing
            async with engine.connect() as connection:
                return await connection.run_sync(
                    lambda c: compare_metadata(MigrationContext.configure(c), metadata))
        finally:
            await engine.dispose()

    assert asyncio.run(diff()) == []


def _describe(connection: Any) -> dict[str, Any]:
    """Everything a schema is made of, as the database reports it, and the rows it starts with."""
    found = inspect(connection)
    shape: dict[str, Any] = {}
    for table in sorted(found.get_table_names()):
        shape[table] = {
            "columns": [(c["name"], str(c["type"]), c["nullable"], c.get("default"), c.get("comment"))
                        for c in found.get_columns(table)],
            "primary key": found.get_pk_constraint(table)["constrained_columns"],
            "indexes": sorted((i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in found.get_indexes(table)),
            "unique": sorted(tuple(u["column_names"]) for u in found.get_unique_constraints(table)),
        }
    shape["seeded"] = connection.execute(text("SELECT id, revision FROM directory_revision")).all()
    shape["stamp"] = migrate.revision_of(connection)
    return shape


def test_an_empty_database_is_built_whole_exactly_as_the_migrations_build_it(tmp_path, database_url, request):
    """The first start on an empty database skips Alembic (10 MiB of every process) and
    builds the schema from schema.py: the result must be what running each migration gives."""
    if database_url.startswith("sqlite"):
        stepwise_url = f"sqlite:///{tmp_path / 'stepwise.db'}"
    else:
        from tests.support.postgres_server import create_database

        stepwise_url = create_database(request.getfixturevalue("postgres_server_url"))

    async def built(url: str, stepwise: bool) -> dict[str, Any]:
        engine = create_async_engine(async_url(url))
        try:
            if stepwise:
                async with engine.begin() as connection:
                    await connection.run_sync(lambda c: command.upgrade(migrate._config(c), "head"))
            else:
                assert await migrate.upgrade(engine) == migrate.head()
            async with engine.connect() as connection:
                return await connection.run_sync(_describe)
        finally:
            await engine.dispose()

    whole, stepwise = asyncio.run(built(database_url, False)), asyncio.run(built(stepwise_url, True))
    assert whole["stamp"] == migrate.head() and whole["seeded"] == [(1, 0)]
    assert whole == stepwise


def test_a_first_start_does_not_load_alembic_and_a_database_part_way_is_migrated(tmp_path):
    url = f"sqlite:///{tmp_path / 'gateway.db'}"
    script = (
        "import asyncio, sys\n"
        "from gateway.store.database import Database\n"
        "async def main():\n"
        "    database = Database(sys.argv[1])\n"
        "    await database.start()\n"
        "    await database.close()\n"
        "    print(database.revision, 'alembic' in sys.modules)\n"
        "asyncio.run(main())\n"
    )

    def start() -> str:
        done = subprocess.run([sys.executable, "-c", script, url], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout.split("\n")[-2]

    assert start() == f"{migrate.head()} False"  # built whole
    assert start() == f"{migrate.head()} False"  # already at head
    engine = create_engine(url)
    with engine.begin() as connection:  # back to the first revision: the next start migrates
        command.downgrade(migrate._config(connection), "0001")
    engine.dispose()
    assert start() == f"{migrate.head()} True"


def test_retention_deletes_rows_older_than_its_days(tmp_path):
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    now = int(time.time() * 1000)
    row = {"request_id": "r", "key_name": "k", "route": "echo", "endpoint": "chat", "status": 200,
           "prompt_tokens": 1, "completion_tokens": 1, "cached_tokens": 0, "cost_usd": 0.0, "latency_ms": 1.0,
           "attempts": 1, "cache_hit": False, "stream": False}

    async def run() -> None:
        database = Database(url, retention_days=2, flush_interval=0.05)
        await database.start()
        async with database.engine.begin() as connection:
            await connection.execute(insert(requests), [
                {**row, "request_id": "old", "ts": now - 3 * 86_400_000},
                {**row, "request_id": "recent", "ts": now - 1 * 86_400_000},
            ])
        database._pruned_at = None  # the writer sweeps at its next turn, as it does once an hour
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and len(await _count(database)) != 1:
            await asyncio.sleep(0.05)
        await database.close()

    async def _count(database: Database) -> list:
        from sqlalchemy import select

        async with database.engine.connect() as connection:
            return (await connection.execute(select(requests.c.request_id))).all()

    asyncio.run(run())
    assert [r["request_id"] for r in ledger_rows(url)] == ["recent"]


def test_a_batch_of_queued_rows_is_written_whole_and_in_order(database_url):
    """More rows than one statement takes (SQLite writes chunks of rows per statement,
    PostgreSQL one executemany): every row lands once, with its values in their columns."""
    from gateway.store.database.ledger import COLUMNS

    now = int(time.time() * 1000)
    rows = [(now + i, f"req-{i}", "k", None, "echo", "p", "m", "chat", 200, None, i, 2 * i, 0, i / 1000,
             1.5, 1, i % 2 == 0, False, f"user-{i % 3}" if i % 4 else None) for i in range(1203)]

    async def run() -> list:
        database = Database(database_url, flush_interval=0.05)
        await database.start()
        database.ledger.rows.extend(rows)
        assert await database.flush()
        async with database.engine.connect() as connection:
            from sqlalchemy import select

            found = (await connection.execute(select(*(requests.c[name] for name in COLUMNS))
                                              .order_by(requests.c.ts))).all()
        await database.close()
        return [tuple(row) for row in found]

    assert asyncio.run(run()) == rows


def test_a_full_batch_wakes_the_writer_for_full_batches_and_the_interval_writes_the_rest(tmp_path):
    """Under load the writer is woken by full batches: it writes those and leaves the few
    rows that arrived meanwhile for the next batch (a transaction of a handful of rows
    costs the writing thread far more per row), and the interval writes what is left."""
    from sqlalchemy import func, select

    from gateway.store.database.ledger import BATCH_ROWS

    now = int(time.time() * 1000)
    rows = [(now + i, f"req-{i}", "k", None, "echo", "p", "m", "chat", 200, None, 1, 1, 0, 0.0,
             1.5, 1, False, False, None) for i in range(2 * BATCH_ROWS + 7)]

    async def count(database: Database) -> int:
        async with database.engine.connect() as connection:
            return (await connection.execute(select(func.count()).select_from(requests))).scalar_one()

    async def written_within(database: Database, expected: int, seconds: float) -> int:
        deadline = time.monotonic() + seconds
        found = await count(database)
        while found != expected and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
            found = await count(database)
        return found

    async def run(interval: float) -> tuple[int, int, int]:
        database = Database(f"sqlite:///{tmp_path / f'ledger-{interval}.db'}", flush_interval=interval)
        await database.start()
        await asyncio.sleep(0.05)  # the writer is parked, waiting to be woken
        database.ledger.rows.extend(rows)
        database.ledger.wake.set()  # what `Ledger.add` does once a batch is full
        woken = await written_within(database, 2 * BATCH_ROWS, 5)
        await asyncio.sleep(0.1)
        left = len(database.ledger.rows)
        later = await written_within(database, len(rows), 5)
        await database.close()
        return woken, left, later

    assert asyncio.run(run(30)) == (2 * BATCH_ROWS, 7, 2 * BATCH_ROWS)  # the rest waits for the interval...
    assert asyncio.run(run(1.5)) == (2 * BATCH_ROWS, 7, len(rows))  # ...which writes it


def test_close_stops_the_writer_even_when_it_was_woken_at_that_moment(tmp_path):
    """A request's row wakes the writer in the same loop turn as the stop: on Python 3.11
    `asyncio.wait_for` would drop the cancellation, the writer would go on, and `close`
    (which waits for it) would hang the gateway's shutdown."""

    async def run() -> None:
        database = Database(f"sqlite:///{tmp_path / 'ledger.db'}", flush_interval=30)
        await database.start()
        await asyncio.sleep(0.05)  # the writer is parked, waiting to be woken
        for attempt in range(20):
            database.ledger.wake.set()
            await asyncio.wait_for(database.close(), 5)
            assert database._task is not None and database._task.done()
            if attempt < 19:
                database = Database(f"sqlite:///{tmp_path / 'ledger.db'}", flush_interval=30)
                await database.start()
                await asyncio.sleep(0.01)

    asyncio.run(run())


def test_the_head_read_from_the_migration_files_is_alembics():
    from alembic.script import ScriptDirectory

    assert migrate.head() == ScriptDirectory.from_config(migrate._config()).get_current_head()
