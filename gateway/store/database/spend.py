"""Budget spend rebuilt from the ledger when a gateway starts.

Budgets are enforced on hot counters (in the process, or in Redis for a fleet); the
ledger is their durable record. A starting gateway raises each budgeted key's counter
for the current window to what the ledger says was spent, so a restart (or Redis coming
back empty) does not hand out a fresh budget. A counter already at or above the ledger
(Redis kept it, other replicas are serving) is left alone: it also holds reservations
of requests still in flight.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from loguru import logger

from gateway.store import Settlement
from gateway.store.database import queries

EPSILON = 1e-12


async def restore_budgets(
    database: Any, store: Any, holds: Sequence[tuple[str, str, int, int]], *, tenants: bool = False
) -> None:
    """`holds`: (hold name, key name, window start in ms, ttl) of every budgeted key; with
    `tenants`, (hold name, tenant name, ...) of every budgeted tenant, summed over its keys."""
    if not holds:
        return
    read = queries.tenant_spend if tenants else queries.spend
    spent = await read(database.engine, [(key, since) for _, key, since, _ in holds])
    current = await store.spent([name for name, _, _, _ in holds])
    for (name, key, _, ttl), now in zip(holds, current):
        delta = spent.get(key, 0.0) - now
        if delta > EPSILON:
            await store.settle(Settlement(budget=(name, delta, ttl)))
            logger.bind(event="budget_restored", key=key, spent_usd=round(spent.get(key, 0.0), 9)).info(
                "budget of {} '{}' restored from the ledger: ${:.6f} spent this window",
                "tenant" if tenants else "key", key, spent[key])
