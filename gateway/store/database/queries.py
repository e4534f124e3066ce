"""What is read back from the ledger: usage totals, a request list, spend per budget window.

Every query is SQLAlchemy Core, so the same code runs on SQLite and PostgreSQL; the
grouping by hour or day is integer arithmetic on the millisecond `ts` column.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Integer, and_, case, delete, func, literal, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store.database.schema import requests

# group_by names (the API's words) -> ledger columns
GROUPS = {
    "key": requests.c.key_name,
    "tenant": requests.c.tenant,
    "route": requests.c.route,
    "provider": requests.c.provider,
    "model": requests.c.model,
    "endpoint": requests.c.endpoint,
    "user": requests.c.user,
}
INTERVALS = {"hour": 3_600_000, "day": 86_400_000}
COUNTS = ("requests", "errors", "cache_hits", "prompt_tokens", "completion_tokens", "cached_tokens", "cost_usd")
# What /admin/requests lists (everything but the internal id) and may filter on.
FILTERS = {
    "key": requests.c.key_name,
    "tenant": requests.c.tenant,
    "route": requests.c.route,
    "provider": requests.c.provider,
    "model": requests.c.model,
    "endpoint": requests.c.endpoint,
    "user": requests.c.user,
    "request_id": requests.c.request_id,
}


def _aggregates() -> list[Any]:
    c = requests.c
    return [
        func.count().label("requests"),
        func.sum(case((c.status >= 400, 1), else_=0)).label("errors"),
        func.sum(case((c.cache_hit, 1), else_=0)).label("cache_hits"),
        func.sum(c.prompt_tokens).label("prompt_tokens"),
        func.sum(c.completion_tokens).label("completion_tokens"),
        func.sum(c.cached_tokens).label("cached_tokens"),
        func.sum(c.cost_usd).label("cost_usd"),
    ]


async def usage(
    engine: AsyncEngine, since_ms: int, until_ms: int, group_by: Sequence[str] = (), interval: str | None = None,
) -> list[dict[str, Any]]:
    """Counts per group (and per hour or day bucket, as `start` in ms) of rows in [since, until)."""
    columns = [GROUPS[name].label(name) for name in group_by]
    if interval is not None:
        size = INTERVALS[interval]
        columns.append(((requests.c.ts // literal(size, Integer)) * literal(size, Integer)).label("start"))
    query = (
        select(*columns, *_aggregates())
        .where(and_(requests.c.ts >= since_ms, requests.c.ts < until_ms))
    )
    if columns:
        query = query.group_by(*[c.name for c in columns]).order_by(*[c.name for c in columns])
    async with engine.connect() as connection:
        result = await connection.execute(query)
        out = []
        for row in result.mappings():
            entry = {str(k): v for k, v in row.items()}
            for name in COUNTS:
                entry[name] = entry[name] or 0
            entry["cost_usd"] = float(entry["cost_usd"])
            if "start" in entry:
                entry["start"] = int(entry["start"])
            out.append(entry)
        return out


async def list_requests(
    engine: AsyncEngine, filters: dict[str, str], status: int | None, since_ms: int | None, until_ms: int | None,
    limit: int,
) -> list[dict[str, Any]]:
    """The newest rows first, matching every filter given."""
    conditions = [FILTERS[name] == value for name, value in filters.items()]
    if status is not None:
        conditions.append(requests.c.status == status)
    if since_ms is not None:
        conditions.append(requests.c.ts >= since_ms)
    if until_ms is not None:
        conditions.append(requests.c.ts < until_ms)
    columns = [c for c in requests.columns if c.name != "id"]
    query = select(*columns).where(and_(True, *conditions)).order_by(requests.c.ts.desc(), requests.c.id.desc())
    async with engine.connect() as connection:
        result = await connection.execute(query.limit(limit))
        # Column names come back as SQLAlchemy's str subclass, which JSON encoders refuse.
        return [{str(k): v for k, v in row.items()} for row in result.mappings()]


async def spend(engine: AsyncEngine, windows: Sequence[tuple[str, int]]) -> dict[str, float]:
    """USD spent per key since each window's start: [(key name, since ms)] -> {key name: USD}."""
    if not windows:
        return {}
    out: dict[str, float] = {}
    async with engine.connect() as connection:
        for since in sorted({since for _, since in windows}):
            names = [name for name, s in windows if s == since]
            query = (
                select(requests.c.key_name, func.sum(requests.c.cost_usd))
                .where(and_(requests.c.key_name.in_(names), requests.c.ts >= since))
                .group_by(requests.c.key_name)
            )
            for name, total in (await connection.execute(query)).all():
                out[name] = float(total or 0.0)
    return out


async def tenant_spend(engine: AsyncEngine, windows: Sequence[tuple[str, int]]) -> dict[str, float]:
    """USD spent per tenant since each window's start (the ledger's tenant column): {tenant: USD}."""
    out: dict[str, float] = {}
    if not windows:
        return out
    async with engine.connect() as connection:
        for since in sorted({since for _, since in windows}):
            names = [name for name, s in windows if s == since]
            query = (
                select(requests.c.tenant, func.sum(requests.c.cost_usd))
                .where(and_(requests.c.tenant.in_(names), requests.c.ts >= since))
                .group_by(requests.c.tenant)
            )
            for name, total in (await connection.execute(query)).all():
                out[name] = float(total or 0.0)
    return out


async def prune(engine: AsyncEngine, before_ms: int) -> int:
    """Delete rows older than the retention; returns how many."""
    async with engine.begin() as connection:
        result = await connection.execute(delete(requests).where(requests.c.ts < before_ms))
        return result.rowcount or 0
