"""Versioned migrations (Alembic, `migrations/`), applied at start and by `gateway db upgrade`.

Replicas of a fleet may start together: on PostgreSQL the upgrade runs under an advisory
lock, so one replica migrates and the others find the schema already at head.

Alembic (with Mako and its other imports, about 10 MiB of every process) is imported only
when a schema is behind: the revision a database is at is one row of `alembic_version`,
read with the engine, and the newest revision is read from the migration files' own
`revision = "..."` lines. A restart on a database already at head, the usual case, never
loads it, and neither does the first start on an empty database: that one is built from
`schema.py` in one `create_all`, with the rows the migrations seed, and stamped at head,
which is what running every migration in turn would leave (the test suite builds a database
both ways and compares them). Only a database part of the way there runs migrations.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    insert,
    inspect,
    text,
)
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store.database.schema import SEEDED, metadata

MIGRATIONS = Path(__file__).with_name("migrations")
VERSION_TABLE = "alembic_version"
_LOCK_ID = 0x6761746577617900  # "gatewayx": any constant the fleet agrees on
# Alembic's own bookkeeping table, as it creates it, for stamping a database built whole.
_version = Table(VERSION_TABLE, MetaData(), Column("version_num", String(32), nullable=False),
                 PrimaryKeyConstraint("version_num", name="alembic_version_pkc"))
_REVISION = re.compile(r'^(down_revision|revision)\s*=\s*["\']([^"\']+)["\']', re.MULTILINE)


def _config(connection: Connection | None = None) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


@lru_cache(maxsize=1)
def head() -> str | None:
    """The newest revision: the one no other migration names as its `down_revision`."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in sorted((MIGRATIONS / "versions").glob("*.py")):
        found = dict(_REVISION.findall(path.read_text()))
        if "revision" in found:
            revisions.add(found["revision"])
        if "down_revision" in found:
            parents.add(found["down_revision"])
    heads = sorted(revisions - parents)
    return heads[-1] if heads else None


def revision_of(connection: Connection) -> str | None:
    """The revision the database's schema is at; None for a database never migrated."""
    if not inspect(connection).has_table(VERSION_TABLE):
        return None
    return connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()


def _build_whole(connection: Connection, revision: str) -> None:
    """An empty database at `revision` (head) in one go: the tables, the seeded rows, the stamp."""
    metadata.create_all(connection)
    for table, rows in SEEDED:
        connection.execute(insert(table), rows)
    _version.create(connection)
    connection.execute(insert(_version), {"version_num": revision})


def _upgrade(connection: Connection) -> str | None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
    newest = head()
    at = revision_of(connection)
    if at == newest:
        return at
    if at is None and newest is not None and not inspect(connection).get_table_names():
        _build_whole(connection, newest)
    else:
        from alembic import command

        command.upgrade(_config(connection), "head")
    return revision_of(connection)


async def upgrade(engine: AsyncEngine) -> str | None:
    """Bring the schema to the newest revision; returns it."""
    async with engine.begin() as connection:
        return await connection.run_sync(_upgrade)


async def current(engine: AsyncEngine) -> str | None:
    async with engine.connect() as connection:
        return await connection.run_sync(revision_of)
