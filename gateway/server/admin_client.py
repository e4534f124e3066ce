"""`gateway keys ...` and `gateway tenants ...`: the admin API from a terminal.

They talk to a running gateway (`--url`, else GATEWAY_URL, else http://127.0.0.1:8080)
with the admin key (`--admin-key`, else GATEWAY_ADMIN_KEY), so a replica's database is
never written behind the gateway's back and every change lands in the audit. The
standard library's HTTP client is enough for a handful of calls; the request path's
client (aiohttp) and the tests' (httpx) stay where they are.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.parse import quote
from urllib.request import Request, urlopen

URL_ENV = "GATEWAY_URL"
ADMIN_KEY_ENV = "GATEWAY_ADMIN_KEY"
DEFAULT_URL = "http://127.0.0.1:8080"


class AdminError(Exception):
    """The gateway refused or could not be reached; the message is the gateway's own."""


def call(args: argparse.Namespace, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    base = (args.url or os.environ.get(URL_ENV) or DEFAULT_URL).rstrip("/")
    key = args.admin_key or os.environ.get(ADMIN_KEY_ENV)
    if not key:
        raise AdminError(f"no admin key: pass --admin-key or set {ADMIN_KEY_ENV}")
    data = json.dumps(body).encode() if body is not None else None
    request = Request(base + path, data=data, method=method,  # noqa: S310 - an operator-given URL
                      headers={"authorization": f"Bearer {key}", "content-type": "application/json"})
    try:
        with urlopen(request, timeout=15) as response:  # noqa: S310
            return json.loads(response.read() or b"null")
    except HTTPError as exc:
        try:
            message = json.loads(exc.read())["error"]["message"]
        except Exception:  # noqa: BLE001 - not the gateway's error shape
            message = exc.reason
        raise AdminError(f"{exc.code}: {message}") from None
    except (URLError, OSError) as exc:
        raise AdminError(f"could not reach {base} ({exc})") from None


def _grants(args: argparse.Namespace) -> dict[str, Any]:
    """The fields tenants and keys share, from the flags that were given."""
    body: dict[str, Any] = {}
    if args.routes:
        body["routes"] = [r.strip() for r in args.routes.split(",") if r.strip()]
    limits = {name: getattr(args, name) for name in ("rpm", "tpm", "concurrency") if getattr(args, name)}
    if limits:
        body["limits"] = limits
    if args.budget is not None:
        body["budget"] = {"usd": args.budget, "per": args.per}
    if args.max_tier:
        body["max_tier"] = args.max_tier
    return body


def _print(args: argparse.Namespace, value: Any, rows: list[list[str]] | None = None) -> None:
    if args.format == "json" or rows is None:
        print(json.dumps(value, indent=2, ensure_ascii=False))
        return
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


def _secret_notice(key: dict[str, Any]) -> None:
    print(f"key {key['name']} ({key['id']})", file=sys.stderr)
    print("the secret is shown this once; store it now:", file=sys.stderr)


def keys_create(args: argparse.Namespace) -> Any:
    body = {"name": args.name, **_grants(args)}
    if args.tenant:
        body["tenant"] = args.tenant
    if args.expires_at:
        body["expires_at"] = args.expires_at
    key = call(args, "POST", "/admin/keys", body)
    if args.format == "json":
        return _print(args, key)
    _secret_notice(key)
    print(key["secret"])


def keys_list(args: argparse.Namespace) -> Any:
    path = "/admin/keys" + (f"?tenant={quote(args.tenant)}" if args.tenant else "")
    keys = call(args, "GET", path)["data"]
    rows = [["ID", "NAME", "TENANT", "KEY", "STATUS", "EXPIRES", "LAST USED", "SPEND (MONTH)"]]
    rows += [[k["id"], k["name"], k["tenant_name"] or "-", k["display"] or "(routes.yaml)", k["status"],
              k["expires_at"] or "-", k["last_used_at"] or "-", f"${k['spend_usd']['month']:.4f}"] for k in keys]
    _print(args, keys, rows)


def keys_revoke(args: argparse.Namespace) -> Any:
    key = call(args, "DELETE", f"/admin/keys/{quote(args.id)}")
    if args.format == "json":
        return _print(args, key)
    print(f"revoked {key['name']} ({key['id']})")


def keys_rotate(args: argparse.Namespace) -> Any:
    key = call(args, "POST", f"/admin/keys/{quote(args.id)}/rotate", {"grace_seconds": args.grace_seconds})
    if args.format == "json":
        return _print(args, key)
    _secret_notice(key)
    print(f"the old secret works until {key['previous_until']}", file=sys.stderr)
    print(key["secret"])


def tenants_create(args: argparse.Namespace) -> Any:
    tenant = call(args, "POST", "/admin/tenants", {"name": args.name, **_grants(args)})
    if args.format == "json":
        return _print(args, tenant)
    print(f"tenant {tenant['name']} ({tenant['id']})", file=sys.stderr)
    _secret_notice(tenant["key"])
    print(tenant["key"]["secret"])


def tenants_list(args: argparse.Namespace) -> Any:
    tenants = call(args, "GET", "/admin/tenants")["data"]
    rows = [["ID", "NAME", "SOURCE", "KEYS", "ROUTES", "BUDGET", "MAX TIER"]]
    rows += [[t["id"], t["name"], t["source"], str(t["keys"]), ",".join(t["routes"] or ["*"]),
              f"${t['budget']['usd']:g}/{t['budget']['per']}" if t["budget"] else "-", t["max_tier"] or "-"]
             for t in tenants]
    _print(args, tenants, rows)


def run(args: argparse.Namespace) -> int:
    try:
        args.action(args)
    except AdminError as exc:
        print(f"gateway {args.command}: {exc}", file=sys.stderr)
        return 1
    return 0


def add_commands(commands: Any) -> None:
    """`keys` and `tenants`, with their sub-commands, on the `gateway` parser."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help=f"the gateway (default: {URL_ENV}, else {DEFAULT_URL})")
    common.add_argument("--admin-key", help=f"default: {ADMIN_KEY_ENV}")
    common.add_argument("--format", choices=("text", "json"), default="text")
    grants = argparse.ArgumentParser(add_help=False)
    grants.add_argument("--routes", help="aliases or globs, comma separated (default: all)")
    grants.add_argument("--rpm", type=int)
    grants.add_argument("--tpm", type=int)
    grants.add_argument("--concurrency", type=int)
    grants.add_argument("--budget", type=float, metavar="USD")
    grants.add_argument("--per", choices=("day", "month"), default="month")
    grants.add_argument("--max-tier")

    keys = commands.add_parser("keys", help="client keys of a running gateway (admin API)")
    key_actions = keys.add_subparsers(dest="key_action", required=True)
    create = key_actions.add_parser("create", parents=[common, grants], help="make a key; prints its secret once")
    create.add_argument("name")
    create.add_argument("--tenant", help="the tenant's id or name")
    create.add_argument("--expires-at", help="ISO 8601, e.g. 2027-01-01T00:00:00Z")
    create.set_defaults(action=keys_create)
    listing = key_actions.add_parser("list", parents=[common], help="every key, without secrets")
    listing.add_argument("--tenant")
    listing.set_defaults(action=keys_list)
    revoke = key_actions.add_parser("revoke", parents=[common], help="stop a key on every replica")
    revoke.add_argument("id")
    revoke.set_defaults(action=keys_revoke)
    rotate = key_actions.add_parser("rotate", parents=[common], help="a new secret; the old one lasts --grace-seconds")
    rotate.add_argument("id")
    rotate.add_argument("--grace-seconds", type=float, default=0)
    rotate.set_defaults(action=keys_rotate)
    keys.set_defaults(run=run)

    tenants = commands.add_parser("tenants", help="tenants of a running gateway (admin API)")
    tenant_actions = tenants.add_subparsers(dest="tenant_action", required=True)
    make = tenant_actions.add_parser("create", parents=[common, grants], help="make a tenant and its first key")
    make.add_argument("name")
    make.set_defaults(action=tenants_create)
    tenant_actions.add_parser("list", parents=[common], help="every tenant").set_defaults(action=tenants_list)
    tenants.set_defaults(run=run)
