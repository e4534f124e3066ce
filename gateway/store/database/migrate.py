"""Versioned migrations (Alembic, `migrations/`), applied at start and by `gateway db upgrade`.

Replicas of a fleet may start together: on PostgreSQL the upgrade runs under an advisory
lock, so one replica migrates and the others find the schema already at head.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).with_name("migrations")
_LOCK_ID = 0x6761746577617900  # "gatewayx": any constant the fleet agrees on


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head() -> str | None:
    return ScriptDirectory.from_config(_config()).get_current_head()


def _upgrade(connection: Connection) -> str | None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
    current = MigrationContext.configure(connection).get_current_revision()
    if current != head():
        command.upgrade(_config(connection), "head")
    return MigrationContext.configure(connection).get_current_revision()


async def upgrade(engine: AsyncEngine) -> str | None:
    """Bring the schema to the newest revision; returns it."""
    async with engine.begin() as connection:
        return await connection.run_sync(_upgrade)


async def current(engine: AsyncEngine) -> str | None:
    async with engine.connect() as connection:
        return await connection.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())
