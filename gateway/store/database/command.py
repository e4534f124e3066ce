"""`gateway db upgrade` and `gateway db current`: the schema outside a running gateway.

A gateway migrates its database when it starts; an operator who prefers to migrate as a
deploy step (before the new replicas roll out) runs `gateway db upgrade` instead. The
database is the one a gateway with the same routes.yaml and environment would use.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any


def run(args: Any) -> int:
    from gateway.store.database import migrate
    from gateway.store.database.url import (
        DatabaseURLError,
        async_url,
        resolve_url,
        safe,
    )

    url = args.url or _configured_url(args.routes)
    url = resolve_url(url)
    try:
        async_url(url)
    except DatabaseURLError as exc:
        print(f"gateway db: {exc}", file=sys.stderr)
        return 2

    async def act() -> str | None:
        from sqlalchemy.ext.asyncio import create_async_engine

        engine = create_async_engine(async_url(url))
        try:
            if args.action == "upgrade":
                return await migrate.upgrade(engine)
            return await migrate.current(engine)
        finally:
            await engine.dispose()

    try:
        revision = asyncio.run(act())
    except Exception as exc:  # noqa: BLE001 - an operator's command: say why, briefly
        print(f"gateway db {args.action}: {safe(url)}: {type(exc).__name__}: {exc}".splitlines()[0], file=sys.stderr)
        return 1
    head = migrate.head()
    print(f"{safe(url)}: revision {revision or 'none'} (newest: {head})")
    return 0 if args.action == "upgrade" or revision == head else 1


def _configured_url(routes: str) -> str | None:
    """routes.yaml `database.url`, with its ${VAR}s substituted; the file is optional here."""
    import os

    from gateway.config.load import load_yaml

    if not os.path.exists(routes):
        return None
    loaded = load_yaml(routes)
    if loaded.issues:
        for issue in loaded.issues:
            print(issue, file=sys.stderr)
        raise SystemExit(2)
    database = (loaded.data or {}).get("database") if isinstance(loaded.data, dict) else None
    url = database.get("url") if isinstance(database, dict) else None
    return url if isinstance(url, str) else None
