"""The tables, written once in SQLAlchemy Core for every dialect.

This module is the schema as the code reads and writes it; each change to it comes with
a migration in `migrations/versions/` (the test suite upgrades an empty database and
compares the two).

Times are whole milliseconds since the Unix epoch (UTC) in a BIGINT: the same integer
arithmetic groups rows by hour or day on SQLite and PostgreSQL alike. Keys are stored
by NAME (routes.yaml `keys[].name`), never the secret.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Double,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
)

metadata = MetaData()

# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
_Id = BigInteger().with_variant(Integer(), "sqlite")

requests = Table(
    "requests",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("ts", BigInteger, nullable=False, comment="when the request arrived: ms since the epoch, UTC"),
    Column("request_id", String(128), nullable=False),
    Column("key_name", String(128), nullable=True, comment="the client key's name; 'anonymous' on an open gateway"),
    Column("tenant", String(128), nullable=True),
    Column("route", String(256), nullable=False),
    Column("provider", String(128), nullable=True),
    Column("model", String(256), nullable=True),
    Column("endpoint", String(32), nullable=False),
    Column("status", SmallInteger, nullable=False),
    Column("error_type", String(64), nullable=True),
    Column("prompt_tokens", Integer, nullable=False, default=0),
    Column("completion_tokens", Integer, nullable=False, default=0),
    Column("cached_tokens", Integer, nullable=False, default=0),
    Column("cost_usd", Double, nullable=False, default=0.0),
    Column("latency_ms", Double, nullable=False),
    Column("attempts", SmallInteger, nullable=False, default=0),
    Column("cache_hit", Boolean, nullable=False, default=False),
    Column("stream", Boolean, nullable=False, default=False),
    Column("user", String(256), nullable=True, comment="the end user: a token's subject, or the user a request named"),
    Index("ix_requests_ts", "ts"),
    Index("ix_requests_key_ts", "key_name", "ts"),
    Index("ix_requests_route_ts", "route", "ts"),
)

COLUMNS = tuple(c.name for c in requests.columns if c.name != "id")

# ------------------------------------------------------- tenants and keys (the admin API)
# Written by the admin API, read whole into each replica's memory when `directory_revision`
# moves: the request path never queries them. Times as above (ms since the epoch, UTC).

tenants = Table(
    "tenants",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("routes", JSON, nullable=True),
    Column("limits", JSON, nullable=True),
    Column("budget", JSON, nullable=True),
    Column("max_tier", String(64), nullable=True),
    Column("metadata", JSON, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("revision", BigInteger, nullable=False, comment="the directory_revision of its last change"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("tenant_id", String(40), nullable=True),
    Column("digest", String(64), nullable=False, unique=True, comment="sha256 hex of the secret, never the secret"),
    Column("prefix", String(16), nullable=False),
    Column("last4", String(4), nullable=False),
    Column("previous_digest", String(64), nullable=True, comment="the secret before the last rotation"),
    Column("previous_until", BigInteger, nullable=True, comment="when the previous secret stops working"),
    Column("routes", JSON, nullable=True),
    Column("limits", JSON, nullable=True),
    Column("budget", JSON, nullable=True),
    Column("max_tier", String(64), nullable=True),
    Column("metadata", JSON, nullable=True),
    Column("expires_at", BigInteger, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
    Column("revision", BigInteger, nullable=False, comment="the directory_revision of its last change"),
    Index("ix_api_keys_tenant", "tenant_id"),
    Index("ix_api_keys_revision", "revision"),
)

audit = Table(
    "audit",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("ts", BigInteger, nullable=False),
    Column("action", String(64), nullable=False, comment="tenant.create, key.rotate, key.refused, ..."),
    Column("target_type", String(16), nullable=False),
    Column("target_id", String(40), nullable=True),
    Column("target_name", String(128), nullable=True),
    Column("address", String(64), nullable=True, comment="the client address the change came from"),
    Column("detail", JSON, nullable=True),
    Index("ix_audit_ts", "ts"),
)

# One row; every change to tenants or keys adds one in the same transaction and stamps the
# rows it touched with the new value, so a replica learns of any change by reading a single
# integer and then reads only the rows stamped after the revision it already has.
directory_revision = Table(
    "directory_revision",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("revision", BigInteger, nullable=False),
)

# The rows the migrations insert (0002 seeds the revision counter), for a database built
# whole from this module (`migrate._build_whole`): a migration that seeds rows adds them here.
SEEDED = ((directory_revision, [{"id": 1, "revision": 0}]),)

# /v1/responses: each stored response (with the conversation it continues) belongs to one
# owner (the key's name); a lookup always names both, so another key never finds it.
stored_responses = Table(
    "stored_responses",
    metadata,
    Column("id", String(80), primary_key=True),
    Column("owner", String(256), nullable=False, comment="the key's name that made it ('' on an open gateway)"),
    Column("created_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
    Column("body", LargeBinary, nullable=False, comment="JSON: the response and its input items"),
    Index("ix_stored_responses_expires", "expires_ms"),
)
