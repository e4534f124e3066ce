"""What a key and a tenant have used and have left: usage today and this month, and the
budget window's spend. Read from the store (the same counters admission enforces), so
the figures are what the next request is held to.
"""

from __future__ import annotations

from typing import Any

from gateway.api.usage import COUNTS
from gateway.config.snapshot import Budget, Key, Limits, Snapshot, Tenant
from gateway.pipeline.admit import tenant_hold_name, windows_now
from gateway.store import Store, UsageRow


async def usage_by_key(store: Store) -> dict[str, dict[str, dict[str, Any]]]:
    """{key name: {"day": counts, "month": counts}} for the current UTC day and month."""
    day, month = windows_now()
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for period, window in (("day", day), ("month", month)):
        for row in await store.usage(window):
            slot = out.setdefault(row.key, {}).setdefault(period, _zero())
            _add(slot, row)
    return out


def totals(usage: dict[str, dict[str, dict[str, Any]]], names: list[str]) -> dict[str, dict[str, Any]]:
    """Day and month counts summed over some keys."""
    out = {"day": _zero(), "month": _zero()}
    for name in names:
        for period in ("day", "month"):
            for field, value in usage.get(name, {}).get(period, {}).items():
                out[period][field] += value
    for period in out.values():
        period["cost_usd"] = round(period["cost_usd"], 9)
        period["total_tokens"] = period["prompt_tokens"] + period["completion_tokens"]
    return out


async def key_budget(store: Store, key: Key) -> dict[str, Any] | None:
    return (await key_budgets(store, [key]))[0]


async def key_budgets(store: Store, keys: list[Key]) -> list[dict[str, Any] | None]:
    """Each key's budget window and what is left of it, in one store call."""
    day, month = windows_now()
    budgeted = [k for k in keys if k.budget is not None]
    names = [f"{k.name}:{day if k.budget.per == 'day' else month}" for k in budgeted]  # type: ignore[union-attr]
    spent = dict(zip((k.id for k in budgeted), await store.spent(names) if names else []))
    return [_left(k.budget, spent[k.id]) if k.budget is not None else None for k in keys]


async def tenant_budget(store: Store, tenant: Tenant) -> dict[str, Any] | None:
    if tenant.budget is None:
        return None
    name = tenant_hold_name(tenant.name, tenant.budget.per, windows_now())
    return _left(tenant.budget, (await store.spent([name]))[0])


def key_counts(snapshot: Snapshot) -> dict[str, int]:
    """How many keys each tenant has (a rotated key, listed twice by digest, counts once)."""
    counts: dict[str, int] = {}
    for tenant in {k.id: k.tenant for k in snapshot.keys.values() if k.tenant}.values():
        counts[tenant] = counts.get(tenant, 0) + 1  # type: ignore[index]
    return counts


def tenant_keys(snapshot: Snapshot, tenant: str) -> list[Key]:
    unique = {k.id: k for k in snapshot.keys.values() if k.tenant == tenant}  # a rotated key is there twice
    return sorted(unique.values(), key=lambda k: k.name)


def limits_dict(limits: Limits) -> dict[str, int] | None:
    values = {n: getattr(limits, n) for n in ("rpm", "tpm", "concurrency") if getattr(limits, n) is not None}
    return values or None


def _left(budget: Budget, spent: float) -> dict[str, Any]:
    return {"usd": budget.usd, "per": budget.per, "spent_usd": round(spent, 9),
            "remaining_usd": round(max(0.0, budget.usd - spent), 9)}


def _zero() -> dict[str, Any]:
    return {name: 0 for name in COUNTS}


def _add(slot: dict[str, Any], row: UsageRow) -> None:
    for name in COUNTS:
        slot[name] += row.counts.get(name, 0)
