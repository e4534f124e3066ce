"""/admin/tenants: tenants made and changed by API, beside those of routes.yaml.

`POST /admin/tenants` answers with the tenant and a first key whose secret is shown that
once. A tenant of routes.yaml is listed too (`"source": "config"`) but changed only in
the file: PATCH and DELETE answer 409. Deleting a tenant revokes its keys.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response

from gateway.api import keys as key_api
from gateway.api import spend
from gateway.api.admin_change import (
    Conflict,
    address,
    admin_runtime,
    check_tier,
    commit,
    compact,
    directory_of,
    read_model,
    times,
)
from gateway.api.endpoint import Exchange, endpoint, json_response
from gateway.config import model
from gateway.config.snapshot import Tenant
from gateway.errors import NotFound
from gateway.pipeline.runtime import Runtime
from gateway.store.database import directory as tables


class TenantSpec(model.Strict):
    routes: list[str] | None = None
    limits: model.Limits | None = None
    budget: model.Budget | None = None
    max_tier: str | None = None
    metadata: dict[str, Any] | None = None


class FirstKey(model.Strict):
    name: model.Name | None = None
    routes: list[str] | None = None
    expires_at: datetime | None = None


class NewTenant(TenantSpec):
    name: model.Name
    key: FirstKey | None = Field(None, description="the first key; absent: one named '<tenant>-key'")


def find_tenant(runtime: Runtime, ref: str) -> Tenant:
    """A tenant by id or by name, from the served snapshot (routes.yaml and API alike)."""
    tenants = runtime.snapshot.tenants
    found = tenants.get(ref) or next((t for t in tenants.values() if t.id == ref), None)
    if found is None:
        raise NotFound(f"tenant '{ref}' does not exist")
    return found


def describe(runtime: Runtime, tenant: Tenant, counts: dict[str, int] | None = None) -> dict[str, Any]:
    """A tenant as the API shows it; `counts` (from `spend.key_counts`) saves a pass over every key."""
    row = runtime.directory.tenants.get(tenant.id, {}) if runtime.directory is not None else {}
    counts = counts if counts is not None else spend.key_counts(runtime.snapshot)
    return {
        "id": tenant.id, "object": "tenant", "name": tenant.name, "source": tenant.source,
        "routes": list(tenant.routes) if tenant.routes is not None else None,
        "limits": spend.limits_dict(tenant.limits),
        "budget": {"usd": tenant.budget.usd, "per": tenant.budget.per} if tenant.budget else None,
        "max_tier": tenant.max_tier, "metadata": row.get("metadata"),
        "keys": counts.get(tenant.name, 0),
        **times(row, "created_at", "updated_at"),
    }


def _values(spec: TenantSpec, fields: set[str]) -> dict[str, Any]:
    dumped = spec.model_dump(mode="json", exclude_none=False)
    return {name: compact(dumped[name]) if name == "limits" else dumped[name]
            for name in ("routes", "limits", "budget", "max_tier", "metadata") if name in fields}


@endpoint("admin")
async def create_tenant(request: Request, exchange: Exchange) -> Response:
    runtime = admin_runtime(request)
    directory_of(runtime)
    spec = await read_model(request, NewTenant)
    check_tier(runtime.snapshot, spec.max_tier)
    if spec.name in runtime.configured.tenants:
        raise Conflict(f"tenant '{spec.name}' is defined in routes.yaml", param="name")
    now = tables.now_ms()
    tenant_id = "ten_" + secrets.token_hex(8)
    row = {"id": tenant_id, "name": spec.name, **_values(spec, spec.model_fields_set | {"routes"}),
           "created_at": now, "updated_at": now}
    first = spec.key or FirstKey()
    key_row, secret = key_api.new_key_row(runtime, {
        "name": first.name or f"{spec.name}-key", "tenant_id": tenant_id, "routes": first.routes,
        "expires_at": first.expires_at,
    })
    entry = {"action": "tenant.create", "target_type": "tenant", "target_id": tenant_id, "target_name": spec.name,
             "address": address(request), "detail": {"fields": sorted(spec.model_fields_set - {"key"}),
                                                     "first_key": key_row["id"]}}
    await commit(runtime, [tables.insert_tenant(row), tables.insert_key(key_row)], entry,
                 f"a tenant named '{spec.name}' or a key named '{key_row['name']}'")
    tenant = find_tenant(runtime, tenant_id)
    return json_response({**describe(runtime, tenant), "key": key_api.shown_once(runtime, key_row["id"], secret)},
                         status=201)


@endpoint("admin")
async def list_tenants(request: Request, exchange: Exchange) -> Response:
    runtime = admin_runtime(request)
    tenants = sorted(runtime.snapshot.tenants.values(), key=lambda t: t.name)
    counts = spend.key_counts(runtime.snapshot)
    return json_response({"object": "list", "data": [describe(runtime, t, counts) for t in tenants]})


@endpoint("admin")
async def get_tenant(request: Request, exchange: Exchange) -> Response:
    runtime = admin_runtime(request)
    return json_response(describe(runtime, find_tenant(runtime, request.path_params["id"])))


@endpoint("admin")
async def update_tenant(request: Request, exchange: Exchange) -> Response:
    runtime = admin_runtime(request)
    tenant = _api_tenant(runtime, request.path_params["id"])
    spec = await read_model(request, TenantSpec)
    check_tier(runtime.snapshot, spec.max_tier)
    values = _values(spec, spec.model_fields_set)
    entry = {"action": "tenant.update", "target_type": "tenant", "target_id": tenant.id, "target_name": tenant.name,
             "address": address(request), "detail": {"fields": sorted(values)}}
    await commit(runtime, [tables.update_tenant(tenant.id, {**values, "updated_at": tables.now_ms()})], entry,
                 f"tenant '{tenant.name}'")
    return json_response(describe(runtime, find_tenant(runtime, tenant.id)))


@endpoint("admin")
async def delete_tenant(request: Request, exchange: Exchange) -> Response:
    runtime = admin_runtime(request)
    tenant = _api_tenant(runtime, request.path_params["id"])
    now = tables.now_ms()
    entry = {"action": "tenant.delete", "target_type": "tenant", "target_id": tenant.id, "target_name": tenant.name,
             "address": address(request), "detail": {"keys_revoked": len(spend.tenant_keys(runtime.snapshot, tenant.name))}}
    await commit(runtime, [tables.revoke_tenant_keys(tenant.id, now), tables.delete_tenant(tenant.id)], entry,
                 f"tenant '{tenant.name}'")
    return json_response({"id": tenant.id, "object": "tenant", "name": tenant.name, "deleted": True})


@endpoint("admin")
async def tenant_usage(request: Request, exchange: Exchange) -> Response:
    """The tenant's usage today and this month, its budget left, and the same per key."""
    runtime = admin_runtime(request)
    tenant = find_tenant(runtime, request.path_params["id"])
    return json_response(await tenant_report(runtime, tenant))


async def tenant_report(runtime: Runtime, tenant: Tenant, only: str | None = None) -> dict[str, Any]:
    """`only`: a key name, when a client asks for itself (then no other key is listed)."""
    store = runtime.store
    used = await spend.usage_by_key(store)
    members = spend.tenant_keys(runtime.snapshot, tenant.name)
    names = [k.name for k in members] + key_api.retired_names(runtime, tenant.id)
    report: dict[str, Any] = {
        "id": tenant.id, "object": "tenant.usage", "name": tenant.name,
        "limits": spend.limits_dict(tenant.limits), "max_tier": tenant.max_tier,
        "budget": await spend.tenant_budget(store, tenant),
        "usage": spend.totals(used, names),
    }
    if only is None:
        budgets = await spend.key_budgets(store, members)
        report["keys"] = [{"id": k.id, "name": k.name, "usage": spend.totals(used, [k.name]), "budget": budget}
                          for k, budget in zip(members, budgets)]
    return report


def _api_tenant(runtime: Runtime, ref: str) -> Tenant:
    tenant = find_tenant(runtime, ref)
    if tenant.source != "api":
        raise Conflict(f"tenant '{tenant.name}' is defined in routes.yaml: change it there")
    directory_of(runtime)
    return tenant
