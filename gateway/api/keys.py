"""/admin/keys: client keys made, changed, rotated and revoked by API.

A secret is shown once, in the answer that made it (`POST /admin/keys`, the rotation, a
new tenant), and never again: the database keeps its sha256, listings its recognisable
prefix and last four characters. Keys of routes.yaml are listed too (`"source":
"config"`, no prefix: only their digest is known) and changed only in the file.

Revoking (DELETE) keeps the row, so the log and the audit can still name a key that is
tried after it; the client hears exactly what an unknown key hears. A rotation gives a
new secret and lets the old one work `grace_seconds` longer, so clients can roll over
without a failed request. Rotating again within the grace ends the older secret at once.
"""

from __future__ import annotations

import secrets
import time
from datetime import datetime
from typing import Any

from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response

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
from gateway.config.snapshot import Key
from gateway.config.tenancy import epoch, iso
from gateway.errors import BadRequest, NotFound
from gateway.pipeline.identify import hash_key
from gateway.pipeline.runtime import Runtime
from gateway.store.database import directory as tables

SECRET_PREFIX = "gwk-"  # recognisable in a leak report or a secret scanner's rules
SHOWN_PREFIX = len(SECRET_PREFIX) + 4
MAX_GRACE = 30 * 86400


class KeySpec(model.Strict):
    tenant: str | None = Field(None, description="the tenant's id or name")
    routes: list[str] | None = None
    limits: model.Limits | None = None
    budget: model.Budget | None = None
    max_tier: str | None = None
    expires_at: datetime | None = None
    metadata: dict[str, Any] | None = None


class NewKey(KeySpec):
    name: model.Name


class Rotation(model.Strict):
    grace_seconds: float = Field(0, ge=0, le=MAX_GRACE, description="how long the old secret keeps working")


def new_key_row(runtime: Runtime, fields: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """A key's database row and its secret (the only time the secret exists outside the client)."""
    name = fields["name"]
    if any(k.name == name for k in runtime.configured.keys.values()):
        raise Conflict(f"key '{name}' is defined in routes.yaml", param="name")
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    now = tables.now_ms()
    expires = epoch(fields.get("expires_at"))
    row = {
        "id": "key_" + secrets.token_hex(8), "name": name, "tenant_id": fields.get("tenant_id"),
        "digest": hash_key(secret), "prefix": secret[:SHOWN_PREFIX], "last4": secret[-4:],
        "previous_digest": None, "previous_until": None,
        "routes": fields.get("routes"), "limits": fields.get("limits"), "budget": fields.get("budget"),
        "max_tier": fields.get("max_tier"), "metadata": fields.get("metadata"),
        "expires_at": int(expires * 1000) if expires is not None else None,
        "created_at": now, "updated_at": now, "revoked_at": None,
    }
    return row, secret


def shown_once(runtime: Runtime, key_id: str, secret: str) -> dict[str, Any]:
    return {**describe_row(runtime, runtime.directory.keys[key_id]), "secret": secret}  # type: ignore[union-attr]


def retired_names(runtime: Runtime, tenant_id: str) -> list[str]:
    """Revoked keys of a tenant: their usage still counts for it."""
    rows = runtime.directory.keys.values() if runtime.directory is not None else ()
    return [r["name"] for r in rows if r["tenant_id"] == tenant_id and r["revoked_at"] is not None]


def _status(row: dict[str, Any]) -> str:
    if row["revoked_at"] is not None:
        return "revoked"
    if row["expires_at"] is not None and row["expires_at"] <= time.time() * 1000:
        return "expired"
    return "active"


def _tenant_name(runtime: Runtime, tenant_id: str | None) -> str | None:
    if tenant_id is None:
        return None
    found = next((t for t in runtime.snapshot.tenants.values() if t.id == tenant_id), None)
    return found.name if found is not None else None


def describe_row(runtime: Runtime, row: dict[str, Any]) -> dict[str, Any]:
    """An API key as listings show it: never the secret nor its digest."""
    return {
        "id": row["id"], "object": "key", "name": row["name"], "source": "api", "status": _status(row),
        "tenant": row["tenant_id"], "tenant_name": _tenant_name(runtime, row["tenant_id"]),
        "prefix": row["prefix"], "last4": row["last4"], "display": f"{row['prefix']}…{row['last4']}",
        "routes": row["routes"], "limits": row["limits"], "budget": row["budget"], "max_tier": row["max_tier"],
        "metadata": row["metadata"],
        **times(row, "created_at", "updated_at", "expires_at", "revoked_at", "previous_until"),
    }


def describe_config_key(key: Key) -> dict[str, Any]:
    return {
        "id": key.id, "object": "key", "name": key.name, "source": "config",
        "status": "expired" if key.expires_at is not None and key.expires_at <= time.time() else "active",
        "tenant": key.grants.id if key.grants is not None else None, "tenant_name": key.tenant,
        "prefix": None, "last4": None, "display": None,
        "routes": list(key.routes) if key.routes is not None else None, "limits": spend.limits_dict(key.limits),
        "budget": {"usd": key.budget.usd, "per": key.budget.per} if key.budget else None,
        "max_tier": key.max_tier, "metadata": None, "created_at": None, "updated_at": None,
        "expires_at": iso(key.expires_at), "revoked_at": None, "previous_until": None,
    }


def _tenant_id(runtime: Runtime, ref: str | None) -> str | None:
    if ref is None:
        return None
    tenants = runtime.snapshot.tenants
    found = tenants.get(ref) or next((t for t in tenants.values() if t.id == ref), None)
    if found is None:
        raise BadRequest(f"tenant '{ref}' does not exist", param="tenant")
    return found.id


def _fields(runtime: Runtime, spec: KeySpec) -> dict[str, Any]:
    """The given fields as row values (the tenant resolved to its id, times to ms)."""
    check_tier(runtime.snapshot, spec.max_tier)
    dumped = spec.model_dump(mode="json")
    out: dict[str, Any] = {}
    for name in spec.model_fields_set:
        if name == "tenant":
            out["tenant_id"] = _tenant_id(runtime, spec.tenant)
        elif name == "expires_at":
            expires = epoch(spec.expires_at)
            out["expires_at"] = int(expires * 1000) if expires is not None else None
        elif name in ("routes", "limits", "budget", "max_tier", "metadata"):
            out[name] = compact(dumped[name]) if name == "limits" else dumped[name]
    return out


def _api_row(runtime: Runtime, ref: str) -> dict[str, Any]:
    """An API key by id (or by name); a key of routes.yaml answers 409: it is changed in the file."""
    directory = directory_of(runtime)
    row = directory.keys.get(ref) or next((r for r in directory.keys.values() if r["name"] == ref), None)
    if row is None:
        if any(k.id == ref for k in runtime.configured.keys.values()):
            raise Conflict(f"key '{ref}' is defined in routes.yaml: change it there")
        raise NotFound(f"key '{ref}' does not exist")
    return row


def _entry(request: Request, action: str, row: dict[str, Any], detail: dict[str, Any]) -> dict[str, Any]:
    return {"action": action, "target_type": "key", "target_id": row["id"], "target_name": row["name"],
            "address": address(request), "detail": detail}


@endpoint("admin")
async def create_key(request: Request, exchange: Exchange) -> Response:
    runtime = admin_runtime(request)
    directory_of(runtime)
    spec = await read_model(request, NewKey)
    fields = _fields(runtime, spec)
    row, secret = new_key_row(runtime, {**fields, "name": spec.name, "expires_at": spec.expires_at})
    detail = {"fields": sorted(spec.model_fields_set), "tenant": row["tenant_id"]}
    await commit(runtime, [tables.insert_key(row)], _entry(request, "key.create", row, detail),
                 f"a key named '{spec.name}'")
    return json_response(shown_once(runtime, row["id"], secret), status=201)


@endpoint("admin")
async def list_keys(request: Request, exchange: Exchange) -> Response:
    """Every key, from routes.yaml and the API, with spend and when it was last used; no secret."""
    runtime = admin_runtime(request)
    tenant = request.query_params.get("tenant")
    data = [describe_config_key(k) for k in sorted({k.id: k for k in runtime.configured.keys.values()}.values(),
                                                   key=lambda k: k.name)]
    if runtime.directory is not None:
        data += [describe_row(runtime, r) for r in sorted(runtime.directory.keys.values(), key=lambda r: r["name"])]
    if tenant is not None:
        data = [d for d in data if tenant in (d["tenant"], d["tenant_name"])]
    await _add_spend(runtime, data)
    return json_response({"object": "list", "data": data})


async def _add_spend(runtime: Runtime, data: list[dict[str, Any]]) -> None:
    used = await spend.usage_by_key(runtime.store)
    last: dict[str, int] = {}
    if runtime.database is not None and runtime.database.migrated:
        try:
            last = await tables.last_used(runtime.database.engine, [d["name"] for d in data])
        except Exception:  # noqa: BLE001 - a listing without "last used" beats none
            last = {}
    for entry in data:
        figures = spend.totals(used, [entry["name"]])
        entry["spend_usd"] = {"day": figures["day"]["cost_usd"], "month": figures["month"]["cost_usd"]}
        entry["requests"] = {"day": figures["day"]["requests"], "month": figures["month"]["requests"]}
        entry["last_used_at"] = iso(last[entry["name"]] / 1000) if entry["name"] in last else None


@endpoint("admin")
async def get_key(request: Request, exchange: Exchange) -> Response:
    runtime = admin_runtime(request)
    ref = request.path_params["id"]
    configured = next((k for k in runtime.configured.keys.values() if k.id == ref), None)
    data = [describe_config_key(configured) if configured is not None else describe_row(runtime, _api_row(runtime, ref))]
    await _add_spend(runtime, data)
    return json_response(data[0])


@endpoint("admin")
async def update_key(request: Request, exchange: Exchange) -> Response:
    runtime = admin_runtime(request)
    row = _api_row(runtime, request.path_params["id"])
    spec = await read_model(request, KeySpec)
    fields = _fields(runtime, spec)
    entry = _entry(request, "key.update", row, {"fields": sorted(spec.model_fields_set)})
    await commit(runtime, [tables.update_key(row["id"], {**fields, "updated_at": tables.now_ms()})], entry,
                 f"key '{row['name']}'")
    return json_response(describe_row(runtime, runtime.directory.keys[row["id"]]))  # type: ignore[union-attr]


@endpoint("admin")
async def revoke_key(request: Request, exchange: Exchange) -> Response:
    """DELETE: the key stops working on every replica within two seconds; its row stays for the record."""
    runtime = admin_runtime(request)
    row = _api_row(runtime, request.path_params["id"])
    if row["revoked_at"] is None:
        now = tables.now_ms()
        await commit(runtime, [tables.update_key(row["id"], {"revoked_at": now, "updated_at": now})],
                     _entry(request, "key.revoke", row, {}), f"key '{row['name']}'")
    return json_response(describe_row(runtime, runtime.directory.keys[row["id"]]))  # type: ignore[union-attr]


@endpoint("admin")
async def rotate_key(request: Request, exchange: Exchange) -> Response:
    """A new secret; the old one keeps working for `grace_seconds` (0: it stops now)."""
    runtime = admin_runtime(request)
    row = _api_row(runtime, request.path_params["id"])
    if row["revoked_at"] is not None:
        raise Conflict(f"key '{row['name']}' is revoked; make a new key instead")
    rotation = await read_model(request, Rotation) if _has_body(request) else Rotation()
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    now = tables.now_ms()
    values = {"digest": hash_key(secret), "prefix": secret[:SHOWN_PREFIX], "last4": secret[-4:],
              "previous_digest": row["digest"], "previous_until": now + int(rotation.grace_seconds * 1000),
              "updated_at": now}
    entry = _entry(request, "key.rotate", row, {"grace_seconds": rotation.grace_seconds})
    await commit(runtime, [tables.update_key(row["id"], values)], entry, f"key '{row['name']}'")
    return json_response(shown_once(runtime, row["id"], secret))


def _has_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    return bool(length and length != "0") or "chunked" in request.headers.get("transfer-encoding", "")
