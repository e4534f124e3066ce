"""What every write of the admin API shares: the admin key, a body read into a typed
model, the database it needs, the address it came from, and one commit that also
records the audit row and makes this replica serve the change at once.

Clear errors in OpenAI's shape: 400 for a body that does not fit (every field named),
404 for an unknown id, 409 for a name already taken (in routes.yaml or by the API),
503 while there is no database to write to.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import DBAPIError, IntegrityError
from starlette.requests import Request

from gateway.api.body import read_json
from gateway.api.ledger import DatabaseDown
from gateway.config.snapshot import Snapshot
from gateway.config.tenancy import iso
from gateway.errors import BadRequest, GatewayError, NotFound
from gateway.pipeline.directory import Directory
from gateway.pipeline.identify import ADMIN_KEY_ENV, require_admin
from gateway.pipeline.runtime import Runtime
from gateway.store.database import directory as tables

MAX_ADMIN_BODY = 64 * 1024
M = TypeVar("M", bound=BaseModel)


class Conflict(GatewayError):
    status = 409
    type = "invalid_request_error"
    code = "conflict"


def admin_runtime(request: Request) -> Runtime:
    """The runtime, once the caller has shown the admin key."""
    require_admin(request.headers, os.environ.get(ADMIN_KEY_ENV))
    return request.app.state.runtime


def directory_of(runtime: Runtime) -> Directory:
    """Tenants and keys made by API live in the database: without one they cannot be made."""
    if runtime.directory is None or runtime.database is None:
        raise DatabaseDown("tenants and keys need the database (routes.yaml `database:`), which is off")
    if not runtime.database.migrated:
        raise DatabaseDown("the database is not reachable right now; try again shortly", headers={"retry-after": "1"})
    return runtime.directory


async def read_model(request: Request, shape: type[M]) -> M:
    body = await read_json(request, MAX_ADMIN_BODY)
    try:
        return shape.model_validate(body)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "body"
            message = "unknown field" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
            problems.append(f"{where}: {message}")
        first = exc.errors()[0]["loc"]
        raise BadRequest("; ".join(problems), param=".".join(str(p) for p in first) or None) from None


def check_tier(snapshot: Snapshot, tier: str | None) -> None:
    if tier is not None and tier not in snapshot.tiers:
        raise BadRequest(f"unknown tier '{tier}' (tiers: {', '.join(snapshot.tiers)})", param="max_tier")


def address(request: Request) -> str | None:
    return request.client.host if request.client is not None else None


async def commit(runtime: Runtime, statements: Sequence[tables.Change], entry: dict[str, Any], what: str) -> None:
    """Write the change with its audit row, then serve it here without waiting for the poll."""
    directory = directory_of(runtime)
    try:
        await tables.change(runtime.database.engine, statements, entry)  # type: ignore[union-attr]
    except IntegrityError:
        raise Conflict(f"{what} already exists") from None
    except LookupError:
        raise NotFound(f"{what} does not exist") from None
    except (DBAPIError, OSError, TimeoutError) as exc:
        raise DatabaseDown("the database did not take the change; nothing was changed, try again shortly",
                           headers={"retry-after": "1"}) from exc
    try:
        await directory.refresh()
    except (DBAPIError, OSError, TimeoutError):
        pass  # written: the poller serves it once the database answers reads again


def compact(value: object) -> object:
    """A limits object as stored and shown: only the limits that are set."""
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if v is not None} or None
    return value


def times(row: dict[str, Any], *names: str) -> dict[str, str | None]:
    """The row's millisecond times as ISO 8601."""
    return {name: iso(row[name] / 1000) if row.get(name) is not None else None for name in names}
