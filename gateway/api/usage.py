"""GET /admin/usage: spend, tokens and requests per key and route for a day, a month or a range.

Keys appear by name only; secrets never leave routes.yaml. The figures come from the
request ledger (gateway.store.database), so they survive restarts and, on a shared
PostgreSQL, cover every replica; `from`/`to`, `group_by`, `interval` and CSV are read
there too (gateway.endpoints.ledger). While the database is down, the plain day or month
report falls back to the store's usage totals (`"source": "store"`).
"""

from __future__ import annotations

import os
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.api import ledger
from gateway.api.endpoint import Exchange, endpoint, json_response
from gateway.config.snapshot import Snapshot
from gateway.errors import BadRequest
from gateway.pipeline.admit import StoreDown, windows_now
from gateway.pipeline.identify import ADMIN_KEY_ENV, require_admin
from gateway.pipeline.runtime import Runtime
from gateway.store import Store, StoreUnavailable, UsageRow

COUNTS = ("requests", "errors", "cache_hits", "prompt_tokens", "completion_tokens", "cost_usd")
DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MONTH = re.compile(r"^\d{4}-\d{2}$")


@endpoint("admin")
async def usage(request: Request, exchange: Exchange) -> Response:
    require_admin(request.headers, os.environ.get(ADMIN_KEY_ENV))
    runtime: Runtime = request.app.state.runtime
    snapshot = runtime.snapshot
    period, window = _window(request.query_params.get("period", "day"), request.query_params.get("at"))
    since, until, group_by, interval = ledger.usage_query(request)
    ranged = since is not None or until is not None
    if ranged:
        since, until, period = since or 0, until or ledger.now_ms() + 1, "range"
    else:
        since, until = ledger.day_range(window)
    found: dict[str, Any] | None = None
    try:
        found = await ledger.ledger_usage(runtime, since, until, group_by, interval)
    except Exception as exc:
        if ranged or group_by or interval or ledger.wants_csv(request):
            raise ledger.DatabaseDown("the request ledger cannot be read while the database is down",
                                      headers={"retry-after": "1"}) from exc
    try:
        if found is not None:
            rows = [UsageRow(r["key"] or "", r["route"], r) for r in found["by_key_route"]]
        else:
            rows = await runtime.store.usage(window)
        budgets = await _budgets(runtime.store, snapshot)
    except StoreUnavailable:
        raise StoreDown("usage cannot be read while the shared store is down", headers={"retry-after": "1"}) from None
    if found is not None and ledger.wants_csv(request):
        table = found.get("series") or found.get("groups") or [_sum(rows)]
        columns = (["start"] if interval else []) + group_by + [*COUNTS, "cached_tokens"]
        return ledger.csv_response(table, columns, "usage.csv")
    extra: dict[str, Any] = {}
    if found is not None:
        extra = {k: found[k] for k in ("groups", "series") if k in found}
    return json_response({
        "object": "usage",
        "period": period,
        "window": window[2:] if not ranged else f"{ledger.iso(since)}/{ledger.iso(until)}",
        "from": ledger.iso(since),
        "to": ledger.iso(until),
        "source": "ledger" if found is not None else "store",
        **extra,
        "store": runtime.store.kind,
        "totals": _sum(rows),
        "keys": _by(rows, "key", [k.name for k in snapshot.keys.values()], budgets),
        "routes": _by(rows, "route", list(snapshot.routes), {}),
        "breakdown": [{"key": r.key, "route": r.route, **_counts([r])} for r in sorted(rows, key=lambda r: (r.key, r.route))],
    })


def _window(period: str, at: str | None) -> tuple[str, str]:
    day, month = windows_now()
    if period == "day":
        if at is not None and not DAY.match(at):
            raise BadRequest("'at' must be a UTC day, YYYY-MM-DD, for period=day", param="at")
        return period, f"d:{at}" if at else day
    if period == "month":
        if at is not None and not MONTH.match(at):
            raise BadRequest("'at' must be a UTC month, YYYY-MM, for period=month", param="at")
        return period, f"m:{at}" if at else month
    raise BadRequest("'period' must be 'day' or 'month'", param="period")


def _counts(rows: list[UsageRow]) -> dict[str, Any]:
    out: dict[str, Any] = {name: 0 for name in COUNTS}
    for row in rows:
        for name in COUNTS:
            out[name] += row.counts.get(name, 0)
    out["total_tokens"] = out["prompt_tokens"] + out["completion_tokens"]
    out["cost_usd"] = round(out["cost_usd"], 9)
    return out


def _sum(rows: list[UsageRow]) -> dict[str, Any]:
    return _counts(rows)


def _by(rows: list[UsageRow], field: str, configured: list[str], extra: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per configured name (even when idle) and per name seen in the data."""
    names = list(dict.fromkeys([*configured, *sorted({getattr(r, field) for r in rows})]))
    out = []
    for name in names:
        entry = {field: name, **_counts([r for r in rows if getattr(r, field) == name])}
        if name in extra:
            entry["budget"] = extra[name]
        out.append(entry)
    return out


async def _budgets(store: Store, snapshot: Snapshot) -> dict[str, Any]:
    """Each budgeted key's current window: committed USD (spent plus open reservations) and what is left."""
    day, month = windows_now()
    keys = [k for k in snapshot.keys.values() if k.budget is not None]
    holds = [f"{k.name}:{day if k.budget.per == 'day' else month}" for k in keys]  # type: ignore[union-attr]
    spent = await store.spent(holds)
    return {
        k.name: {
            "usd": k.budget.usd,  # type: ignore[union-attr]
            "per": k.budget.per,  # type: ignore[union-attr]
            "spent_usd": round(s, 9),
            "remaining_usd": round(max(0.0, k.budget.usd - s), 9),  # type: ignore[union-attr]
        }
        for k, s in zip(keys, spent)
    }
