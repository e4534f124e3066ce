"""Reading the request ledger over HTTP: GET /admin/requests, and the ledger side of
GET /admin/usage (ranges, grouping, hourly or daily series, CSV).

Admin only. Rows carry key NAMES, never keys, and no message content is stored at all.
"""

from __future__ import annotations

import csv
import io
import os
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.api.endpoint import Exchange, endpoint, json_response
from gateway.errors import BadRequest, GatewayError
from gateway.pipeline.identify import ADMIN_KEY_ENV, require_admin
from gateway.pipeline.runtime import Runtime
from gateway.store.database import queries

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100


class DatabaseDown(GatewayError):
    status = 503
    type = "service_unavailable"
    code = "database_unavailable"


@endpoint("admin")
async def list_requests(request: Request, exchange: Exchange) -> Response:
    """The newest ledger rows, filtered by key, route, status, provider, model, endpoint, tenant, time."""
    require_admin(request.headers, os.environ.get(ADMIN_KEY_ENV))
    runtime: Runtime = request.app.state.runtime
    params = request.query_params
    filters = {name: params[name] for name in queries.FILTERS if params.get(name)}
    status = _int(params.get("status"), "status", 100, 599)
    limit = _int(params.get("limit"), "limit", 1, MAX_LIMIT) or DEFAULT_LIMIT
    since = parse_time(params["from"], "from") if params.get("from") else None
    until = parse_time(params["to"], "to") if params.get("to") else None
    database = _database(runtime)
    try:
        await database.flush()
        rows = await queries.list_requests(database.engine, filters, status, since, until, limit)
    except Exception as exc:
        raise DatabaseDown("the request ledger cannot be read while the database is down",
                           headers={"retry-after": "1"}) from exc
    for row in rows:
        row["at"] = iso(row["ts"])
    if wants_csv(request):
        columns = ["at", *(c for c in rows[0] if c != "at")] if rows else ["at"]
        return csv_response(rows, columns)
    return json_response({"object": "list", "data": rows, "limit": limit})


def _database(runtime: Runtime) -> Any:
    if runtime.database is None:
        raise DatabaseDown("this gateway has no database open")
    return runtime.database


async def ledger_usage(runtime: Runtime, since: int, until: int, group_by: list[str], interval: str | None) -> dict[str, Any]:
    """The ledger's figures for [since, until): by key and route (the report's base), and as asked."""
    database = _database(runtime)
    await database.flush()
    engine = database.engine
    out: dict[str, Any] = {"by_key_route": await queries.usage(engine, since, until, ["key", "route"])}
    if group_by:
        out["groups"] = await queries.usage(engine, since, until, group_by)
    if interval is not None:
        series = await queries.usage(engine, since, until, group_by, interval)
        for entry in series:
            entry["start"] = iso(entry["start"])
        out["series"] = series
    return out


def usage_query(request: Request) -> tuple[int | None, int | None, list[str], str | None]:
    """`from`, `to` (ms), `group_by` and `interval` of a usage request; None where not given."""
    params = request.query_params
    since = parse_time(params["from"], "from") if params.get("from") else None
    until = parse_time(params["to"], "to") if params.get("to") else None
    if since is not None and until is not None and until <= since:
        raise BadRequest("'to' must be after 'from' ('to' is exclusive)", param="to")
    group_by: list[str] = []
    for value in params.getlist("group_by"):
        group_by += [g.strip() for g in value.split(",") if g.strip()]
    for name in group_by:
        if name not in queries.GROUPS:
            raise BadRequest(f"'group_by' may name {', '.join(queries.GROUPS)}; not '{name}'", param="group_by")
    interval = params.get("interval")
    if interval is not None and interval not in queries.INTERVALS:
        raise BadRequest("'interval' must be 'day' or 'hour'", param="interval")
    return since, until, list(dict.fromkeys(group_by)), interval


def parse_time(value: str, name: str) -> int:
    """A UTC day (YYYY-MM-DD) or an ISO 8601 time (without offset: UTC), as ms since the epoch."""
    try:
        text = value.strip()
        if len(text) == 10:
            moment = datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
        else:
            # An offset's '+' arrives as a space when the client did not percent-encode it.
            text = text.replace("Z", "+00:00").replace(" ", "+")
            moment = datetime.fromisoformat(text)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
    except ValueError:
        raise BadRequest(f"'{name}' must be a date (YYYY-MM-DD) or an ISO 8601 time", param=name) from None
    return int(moment.timestamp() * 1000)


def day_range(window: str) -> tuple[int, int]:
    """A store window (`d:YYYY-MM-DD`, `m:YYYY-MM`) as [start, end) in ms."""
    kind, _, value = window.partition(":")
    if kind == "d":
        start = datetime.combine(date.fromisoformat(value), datetime.min.time(), UTC)
        end = start + timedelta(days=1)
    else:
        year, month = (int(part) for part in value.split("-"))
        start = datetime(year, month, 1, tzinfo=UTC)
        end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000)


def now_ms() -> int:
    return int(time.time() * 1000)


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def wants_csv(request: Request) -> bool:
    fmt = request.query_params.get("format")
    if fmt is not None and fmt not in ("csv", "json"):
        raise BadRequest("'format' must be 'json' or 'csv'", param="format")
    return fmt == "csv" or (fmt is None and "text/csv" in request.headers.get("accept", ""))


def csv_response(rows: list[dict[str, Any]], columns: list[str], filename: str = "ledger.csv") -> Response:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"content-disposition": f'attachment; filename="{filename}"'})


def _int(value: str | None, name: str, low: int, high: int) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except ValueError:
        number = low - 1
    if not low <= number <= high:
        raise BadRequest(f"'{name}' must be a whole number from {low} to {high}", param=name)
    return number
