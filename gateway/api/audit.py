"""GET /admin/audit: every change made through the admin API (what, when, from which
address), and every attempt with a revoked, rotated-out or expired key (which key, why).
Newest first. Rows hold names, ids and the fields that changed; never a secret.
"""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError
from starlette.requests import Request
from starlette.responses import Response

from gateway.api.admin_change import admin_runtime, directory_of
from gateway.api.endpoint import Exchange, endpoint, json_response
from gateway.api.ledger import DatabaseDown, parse_time
from gateway.config.tenancy import iso
from gateway.errors import BadRequest
from gateway.store.database import directory as tables


@endpoint("admin")
async def list_audit(request: Request, exchange: Exchange) -> Response:
    runtime = admin_runtime(request)
    directory_of(runtime)
    params = request.query_params
    limit = params.get("limit", "100")
    if not limit.isdigit() or not 1 <= int(limit) <= tables.AUDIT_PAGE:
        raise BadRequest(f"'limit' must be a whole number from 1 to {tables.AUDIT_PAGE}", param="limit")
    since = parse_time(params["since"], "since") if "since" in params else None
    try:
        rows = await tables.audit_rows(runtime.database.engine, int(limit), since, params.get("target"))  # type: ignore[union-attr]
    except (DBAPIError, OSError, TimeoutError) as exc:
        raise DatabaseDown("the audit cannot be read while the database is down", headers={"retry-after": "1"}) from exc
    data = [{"id": r["id"], "object": "audit.entry", "at": iso(r["ts"] / 1000), "action": r["action"],
             "target_type": r["target_type"], "target_id": r["target_id"], "target_name": r["target_name"],
             "address": r["address"], "detail": r["detail"]} for r in rows]
    return json_response({"object": "list", "data": data})
