"""Reading a gateway's ledger straight from its database, as an operator's SQL would."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.store.database.schema import requests
from gateway.store.database.url import async_url


def ledger_rows(url: str) -> list[dict[str, Any]]:
    async def read() -> list[dict[str, Any]]:
        engine = create_async_engine(async_url(url))
        try:
            async with engine.connect() as connection:
                result = await connection.execute(select(requests).order_by(requests.c.id))
                return [dict(row) for row in result.mappings()]
        finally:
            await engine.dispose()

    return asyncio.run(read())
