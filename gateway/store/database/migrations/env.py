"""Alembic's entry point. The gateway runs it on a connection it opened itself
(`gateway.store.database.migrate`), at start and through `gateway db upgrade`."""

from __future__ import annotations

from alembic import context

from gateway.store.database.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `gateway db upgrade`, which opens the connection")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
