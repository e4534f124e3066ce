"""GET /v1/usage: what the calling key has used today and this month, its limits and
budget left, and the same for its tenant as a whole. A client key sees itself and its
tenant's totals, never another key's figures or name.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.api import spend, tenants
from gateway.api.endpoint import Exchange, endpoint, json_response
from gateway.config.tenancy import iso
from gateway.pipeline.admit import StoreDown
from gateway.pipeline.identify import identify
from gateway.pipeline.runtime import Runtime
from gateway.store import StoreUnavailable


@endpoint("usage")
async def caller_usage(request: Request, exchange: Exchange) -> Response:
    runtime: Runtime = request.app.state.runtime
    snapshot = runtime.snapshot
    key = await identify(snapshot, request.headers, runtime.key_sets)
    if key is None:
        return json_response({"object": "usage", "key": None, "open": True,
                              "message": "this gateway has no client keys: nothing is metered per caller"})
    exchange.key = key.name
    try:
        used = await spend.usage_by_key(runtime.store)
        body: dict[str, Any] = {
            "object": "usage",
            "key": {"id": key.id, "name": key.name, "expires_at": iso(key.expires_at),
                    "routes": list(key.routes) if key.routes is not None else None,
                    "limits": spend.limits_dict(key.limits), "max_tier": key.max_tier,
                    "budget": await spend.key_budget(runtime.store, key),
                    "usage": spend.totals(used, [key.name])},
            "tenant": None,
        }
        if key.plan is not None or key.user is not None:  # a token's caller, or a key with a plan
            plan = key.plan
            body["plan"] = {"name": plan.name if plan is not None else None, "user": key.user,
                            "limits": spend.limits_dict(plan.limits) if plan is not None else None,
                            "counted": "per user" if key.per_user else "for the key"}
        if key.grants is not None:
            body["tenant"] = await tenants.tenant_report(runtime, key.grants, only=key.name)
            body["tenant"]["routes"] = list(key.grants.routes) if key.grants.routes is not None else None
    except StoreUnavailable:
        raise StoreDown("usage cannot be read while the shared store is down", headers={"retry-after": "1"}) from None
    return json_response(body)
