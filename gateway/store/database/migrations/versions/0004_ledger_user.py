"""The end user of each ledger row (bearer tokens' subjects, users that requests name).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch_alter_table: SQLite adds the column in place (a nullable column needs no table copy).
    with op.batch_alter_table("requests") as batch:
        batch.add_column(sa.Column("user", sa.String(256), nullable=True,
                                   comment="the end user: a token's subject, or the user a request named"))


def downgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.drop_column("user")
