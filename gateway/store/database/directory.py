"""Reads and writes of the tenants, keys and audit tables (schema.py).

Every change runs in one transaction with its audit row and a step of
`directory_revision`, so a replica that sees the counter move finds the change and its
record together, and a change that fails leaves neither. Names are unique per table: a
second tenant or key of the same name is an `IntegrityError`, which the admin API
answers with 409.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql import Executable

from gateway.store.database.schema import (
    api_keys,
    audit,
    directory_revision,
    requests,
    tenants,
)

Row = dict[str, Any]
AUDIT_PAGE = 1000


def now_ms() -> int:
    return int(time.time() * 1000)


# A change to the tables, built once the transaction knows its revision (rows are stamped with it).
Change = Callable[[int], Executable]


async def revision(engine: AsyncEngine) -> int:
    """The change counter: one integer read, cheap enough to poll every half second."""
    async with engine.connect() as connection:
        value = (await connection.execute(select(directory_revision.c.revision))).scalar()
    return int(value or 0)


async def load(engine: AsyncEngine, after: int) -> tuple[int, list[Row], list[Row], set[str]]:
    """(revision, tenants changed after `after`, keys changed after `after`, every tenant id).

    With `after` < 0, every row. Tenant ids come whole, as deleting a tenant removes its row;
    keys are never deleted (a revoked key keeps its row)."""
    async with engine.connect() as connection:
        value = (await connection.execute(select(directory_revision.c.revision))).scalar()
        tenant_query, key_query = select(tenants), select(api_keys)
        if after >= 0:
            tenant_query = tenant_query.where(tenants.c.revision > after)
            key_query = key_query.where(api_keys.c.revision > after)
        tenant_rows = (await connection.execute(tenant_query)).mappings().all()
        key_rows = (await connection.execute(key_query)).mappings().all()
        ids = set((await connection.execute(select(tenants.c.id))).scalars().all())
    return int(value or 0), [_plain(r) for r in tenant_rows], [_plain(r) for r in key_rows], ids


async def change(engine: AsyncEngine, changes: Sequence[Change], entry: Row) -> int:
    """Step the revision, apply the changes stamped with it, and write the audit row: one
    transaction. Returns the new revision.

    Stepping first takes the counter's row lock, so writers of the directory queue behind
    each other and revisions become visible in order: a reader that saw revision N has seen
    every change up to N. A change meant to touch a row that is not there raises `LookupError`."""
    async with engine.begin() as connection:
        await connection.execute(update(directory_revision).values(revision=directory_revision.c.revision + 1))
        stamp = int((await connection.execute(select(directory_revision.c.revision))).scalar() or 0)
        for make in changes:
            statement = make(stamp)
            result = await connection.execute(statement)
            if statement.get_execution_options().get("expect_row") and result.rowcount == 0:
                raise LookupError("no such row")
        await _record(connection, entry)
    return stamp


async def record(engine: AsyncEngine, entries: Sequence[Row]) -> None:
    """Audit rows that change nothing (a refused key): no step of the revision counter."""
    if not entries:
        return
    async with engine.begin() as connection:
        await connection.execute(insert(audit), [_audit_row(e) for e in entries])


async def _record(connection: AsyncConnection, entry: Row) -> None:
    await connection.execute(insert(audit).values(**_audit_row(entry)))


def _audit_row(entry: Row) -> Row:
    return {"ts": entry.get("ts") or now_ms(), "action": entry["action"], "target_type": entry["target_type"],
            "target_id": entry.get("target_id"), "target_name": entry.get("target_name"),
            "address": entry.get("address"), "detail": entry.get("detail")}


def insert_tenant(row: Row) -> Change:
    return lambda stamp: insert(tenants).values(**row, revision=stamp)


def update_tenant(tenant_id: str, values: Row) -> Change:
    return lambda stamp: (update(tenants).where(tenants.c.id == tenant_id).values(**values, revision=stamp)
                          .execution_options(expect_row=True))


def delete_tenant(tenant_id: str) -> Change:
    return lambda stamp: delete(tenants).where(tenants.c.id == tenant_id).execution_options(expect_row=True)


def revoke_tenant_keys(tenant_id: str, at: int) -> Change:
    """A deleted tenant's keys are revoked with it (kept, so the audit can still name them)."""
    return lambda stamp: (update(api_keys).where(api_keys.c.tenant_id == tenant_id, api_keys.c.revoked_at.is_(None))
                          .values(revoked_at=at, updated_at=at, revision=stamp))


def insert_key(row: Row) -> Change:
    return lambda stamp: insert(api_keys).values(**row, revision=stamp)


def update_key(key_id: str, values: Row) -> Change:
    return lambda stamp: (update(api_keys).where(api_keys.c.id == key_id).values(**values, revision=stamp)
                          .execution_options(expect_row=True))


async def audit_rows(engine: AsyncEngine, limit: int, since: int | None, target_id: str | None) -> list[Row]:
    query = select(audit).order_by(audit.c.id.desc()).limit(min(max(limit, 1), AUDIT_PAGE))
    if since is not None:
        query = query.where(audit.c.ts >= since)
    if target_id is not None:
        query = query.where(audit.c.target_id == target_id)
    async with engine.connect() as connection:
        return [_plain(r) for r in (await connection.execute(query)).mappings().all()]


async def last_used(engine: AsyncEngine, names: Sequence[str]) -> dict[str, int]:
    """When each key last made a request, from the ledger (so the request path writes nothing extra)."""
    if not names:
        return {}
    query = (select(requests.c.key_name, func.max(requests.c.ts))
             .where(requests.c.key_name.in_(list(names))).group_by(requests.c.key_name))
    async with engine.connect() as connection:
        return {name: int(ts) for name, ts in (await connection.execute(query)).all() if ts is not None}


def _plain(row: Any) -> Row:
    return {str(k): v for k, v in row.items()}

