"""Which database a process uses, and the driver each dialect is spoken through.

One setting, in this order: routes.yaml `database.url`, then `DATABASE_URL`, then an
embedded SQLite file under `GATEWAY_DATA_DIR` (default `./data/`), so a gateway started
with nothing configured still keeps its ledger. Operators write plain URLs
(`postgresql://…`, `sqlite:///…`); the async driver (asyncpg, aiosqlite) is added here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from sqlalchemy.engine import URL, make_url

DATABASE_URL_ENV = "DATABASE_URL"
DATA_DIR_ENV = "GATEWAY_DATA_DIR"
DEFAULT_DATA_DIR = "./data"
SQLITE_FILE = "gateway.db"

_DRIVERS = {"postgresql": "postgresql+asyncpg", "postgres": "postgresql+asyncpg", "sqlite": "sqlite+aiosqlite"}


class DatabaseURLError(ValueError):
    """The configured URL names a database the gateway cannot speak to."""


def resolve_url(configured: str | None, environ: Mapping[str, str] | None = None) -> str:
    """The URL this process uses: config, then environment, then the embedded default."""
    environ = os.environ if environ is None else environ
    url = (configured or "").strip() or environ.get(DATABASE_URL_ENV, "").strip()
    if url:
        return url
    data_dir = Path(environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR)
    return f"sqlite:///{data_dir / SQLITE_FILE}"


def async_url(url: str) -> URL:
    """The URL with its async driver; creates a SQLite file's folder on first use."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    driver = _DRIVERS.get(parsed.drivername) or _DRIVERS.get(backend)
    if driver is None:
        raise DatabaseURLError(f"unsupported database URL scheme '{parsed.drivername}': use postgresql:// or sqlite://")
    parsed = parsed.set(drivername=driver)
    if backend == "sqlite" and parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    return parsed


def sqlite_file(url: str) -> str | None:
    """The file an `sqlite:///path` URL names; None for an in-memory database or a URL with
    options (those are left to the driver, which knows them)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.query or not parsed.database or parsed.database == ":memory:":
        return None
    return parsed.database


def dialect(url: str) -> str:
    """`sqlite` or `postgresql`."""
    backend = make_url(url).get_backend_name()
    return "postgresql" if backend in ("postgresql", "postgres") else backend


def safe(url: str) -> str:
    """The URL as logs and /ready may show it: never its password."""
    return make_url(url).render_as_string(hide_password=True)
