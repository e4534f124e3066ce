"""Stored responses of /v1/responses.

Revision ID: 0003
Revises: 0001
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stored_responses",
        sa.Column("id", sa.String(80), primary_key=True),
        sa.Column("owner", sa.String(256), nullable=False,
                  comment="the key's name that made it ('' on an open gateway)"),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("expires_ms", sa.BigInteger(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False, comment="JSON: the response and its input items"),
    )
    op.create_index("ix_stored_responses_expires", "stored_responses", ["expires_ms"])


def downgrade() -> None:
    op.drop_table("stored_responses")
