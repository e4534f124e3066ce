"""Fill a database with client keys as the admin API makes them, for the `keys` scenario.

The rows go in through the gateway's own store functions (the ones `POST /admin/keys`
commits with), a thousand to a transaction, so seeding 10,000 keys takes seconds rather
than the minutes 10,000 API calls would; what the gateway then loads is the same.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets

from sqlalchemy.ext.asyncio import create_async_engine

from gateway.store.database import directory as tables
from gateway.store.database import migrate
from gateway.store.database.url import async_url

BATCH = 1000


def _row(name: str, secret: str, now: int) -> dict[str, object]:
    return {"id": "key_" + secrets.token_hex(8), "name": name, "tenant_id": None,
            "digest": hashlib.sha256(secret.encode()).hexdigest(), "prefix": secret[:8], "last4": secret[-4:],
            "previous_digest": None, "previous_until": None, "routes": None, "limits": None, "budget": None,
            "max_tier": None, "metadata": None, "expires_at": None, "created_at": now, "updated_at": now,
            "revoked_at": None}


def seed(url: str, count: int, known_secret: str) -> None:
    """`count` keys; the last one's secret is `known_secret`, the others are random."""
    async def run() -> None:
        engine = create_async_engine(async_url(url))
        try:
            await migrate.upgrade(engine)
            now = tables.now_ms()
            rows = [_row(f"bench-api-{i}", "gwk-" + secrets.token_urlsafe(32), now) for i in range(count - 1)]
            rows.append(_row("bench-api-known", known_secret, now))
            for start in range(0, len(rows), BATCH):
                batch = rows[start:start + BATCH]
                await tables.change(engine, [tables.insert_key(r) for r in batch],
                                    {"action": "key.create", "target_type": "key", "detail": {"seeded": len(batch)}})
        finally:
            await engine.dispose()

    asyncio.run(run())
