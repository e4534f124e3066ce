"""The request ledger: one row per admitted request.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "requests",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("ts", sa.BigInteger(), nullable=False, comment="when the request arrived: ms since the epoch, UTC"),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("key_name", sa.String(128), nullable=True,
                  comment="the client key's name; 'anonymous' on an open gateway"),
        sa.Column("tenant", sa.String(128), nullable=True),
        sa.Column("route", sa.String(256), nullable=False),
        sa.Column("provider", sa.String(128), nullable=True),
        sa.Column("model", sa.String(256), nullable=True),
        sa.Column("endpoint", sa.String(32), nullable=False),
        sa.Column("status", sa.SmallInteger(), nullable=False),
        sa.Column("error_type", sa.String(64), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("cached_tokens", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Double(), nullable=False),
        sa.Column("latency_ms", sa.Double(), nullable=False),
        sa.Column("attempts", sa.SmallInteger(), nullable=False),
        sa.Column("cache_hit", sa.Boolean(), nullable=False),
        sa.Column("stream", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_requests_ts", "requests", ["ts"])
    op.create_index("ix_requests_key_ts", "requests", ["key_name", "ts"])
    op.create_index("ix_requests_route_ts", "requests", ["route", "ts"])


def downgrade() -> None:
    op.drop_table("requests")
