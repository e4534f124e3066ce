"""The stored-response store on a real SQLite database: a put returns once its row is in
the database, puts that arrive together share one transaction, and a delete is never undone
by a write that was in flight; a stalled database holds answers up once at most."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from gateway.config.snapshot import ResponsesSettings
from gateway.store import responses
from gateway.store.database import Database
from gateway.store.responses import ResponseStore


def _store(database: Database, in_memory: int = 100) -> ResponseStore:
    settings = ResponsesSettings(retention_days=1, max_in_memory=in_memory)
    return ResponseStore(lambda: settings, database)


async def _database(path: Path) -> Database:
    database = Database(f"sqlite:///{path}")
    assert await database.start()
    return database


@asynccontextmanager
async def _stores(path: Path) -> AsyncIterator[tuple[Database, ResponseStore, ResponseStore]]:
    """A database, the store that writes to it and a store reading it as another replica would
    (nothing in its memory); both closed at the end."""
    database = await _database(path)
    writer, reader = _store(database), _store(database, in_memory=0)
    try:
        yield database, writer, reader
    finally:
        await writer.close()
        await database.close()


def test_a_put_is_in_the_database_when_it_returns(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with _stores(tmp_path / "store.db") as (database, writer, reader):  # the reader: another replica
            await writer.put("key:a", "resp_1", b'{"n": 1}')
            assert await reader.get("key:a", "resp_1") == b'{"n": 1}'
            assert await reader.get("key:b", "resp_1") is None  # another owner's id is not found

    asyncio.run(scenario())


def test_puts_that_arrive_together_share_a_transaction(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with _stores(tmp_path / "store.db") as (database, writer, reader):
            groups: list[int] = []
            insert = database.insert

            async def counted(statement: Any, rows: list[Any]) -> None:
                groups.append(len(rows))
                await insert(statement, rows)

            database.insert = counted  # type: ignore[method-assign]
            await asyncio.gather(*(writer.put("key:a", f"resp_{n}", b"{}") for n in range(50)))
            assert sum(groups) == 50 and len(groups) <= 2  # the first put's group, then every one that waited
            for n in range(50):
                assert await reader.get("key:a", f"resp_{n}") == b"{}"

    asyncio.run(scenario())


@pytest.mark.parametrize("writing", [False, True], ids=["before-its-write", "during-its-write"])
def test_a_delete_of_a_response_being_stored_is_not_undone(tmp_path: Path, writing: bool) -> None:
    async def scenario() -> None:
        async with _stores(tmp_path / "store.db") as (database, writer, reader):
            put = asyncio.create_task(writer.put("key:a", "resp_1", b"{}"))
            for _ in range(3 if writing else 1):
                await asyncio.sleep(0)
            assert (writer._flying is not None) == writing  # the row is queued, or its INSERT is running
            assert await writer.delete("key:a", "resp_1")
            await put
            assert await reader.get("key:a", "resp_1") is None
            assert await writer.get("key:a", "resp_1") is None

    asyncio.run(scenario())


def test_a_caller_that_leaves_does_not_cut_the_wait_of_the_others(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with _stores(tmp_path / "store.db") as (database, writer, reader):
            gone = asyncio.create_task(writer.put("key:a", "resp_gone", b"{}"))
            staying = asyncio.create_task(writer.put("key:a", "resp_staying", b"{}"))
            await asyncio.sleep(0)
            gone.cancel()  # its client disconnected while the group was being written
            await staying
            assert await reader.get("key:a", "resp_staying") == b"{}"
            assert await reader.get("key:a", "resp_gone") == b"{}"  # stored all the same

    asyncio.run(scenario())


def test_a_stalled_database_holds_answers_up_once_then_not_at_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(responses, "WRITE_WAIT", 0.3)

    async def scenario() -> None:
        path = tmp_path / "store.db"
        async with _stores(path) as (_, writer, reader):
            other = sqlite3.connect(path, isolation_level=None)  # another process holding the write lock
            other.execute("BEGIN IMMEDIATE")
            try:
                started = time.monotonic()
                await writer.put("key:a", "resp_1", b"{}")
                assert 0.25 < time.monotonic() - started < 2  # waited WRITE_WAIT, not the 15 s busy timeout
                started = time.monotonic()
                await writer.put("key:a", "resp_2", b"{}")
                assert time.monotonic() - started < 0.2  # the write is overdue: no more waiting
                assert await writer.get("key:a", "resp_2") == b"{}"  # memory answers meanwhile
                other.execute("COMMIT")
                await writer.close()  # the writer goes on once the lock is free
                assert await reader.get("key:a", "resp_1") == b"{}"
                assert await reader.get("key:a", "resp_2") == b"{}"
            finally:
                other.close()

    asyncio.run(scenario())


def test_a_put_while_the_writer_prunes_is_written_and_returns(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with _stores(tmp_path / "store.db") as (_, writer, reader):
            await writer.put("key:a", "resp_1", b"{}")  # the first write: a prune starts right after it
            # This put arrives while that prune awaits the database: it must be written, not left waiting.
            await asyncio.wait_for(writer.put("key:a", "resp_2", b"{}"), 3)
            assert await reader.get("key:a", "resp_2") == b"{}"

    asyncio.run(scenario())


def test_the_database_closes_once_even_when_asked_twice(tmp_path: Path) -> None:
    async def scenario() -> None:
        database = await _database(tmp_path / "store.db")
        await _store(database).put("key:a", "resp_1", b"{}")
        await database.close()
        await database.close()  # a second stop (a test, a signal during shutdown) is harmless

    asyncio.run(scenario())
