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
    Index("ix_requests_ts", "ts"),
    Index("ix_requests_key_ts", "key_name", "ts"),
    Index("ix_requests_route_ts", "route", "ts"),
)

COLUMNS = tuple(c.name for c in requests.columns if c.name != "id")

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
