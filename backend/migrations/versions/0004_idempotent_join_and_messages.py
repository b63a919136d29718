"""idempotent join and messages

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 21:50:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("join_key", sa.String(length=100), nullable=True))
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("idempotency_key", sa.String(length=100), nullable=True))
        batch_op.create_unique_constraint(
            "uq_messages_idempotency", ["case_id", "idempotency_key"]
        )


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_constraint("uq_messages_idempotency", type_="unique")
        batch_op.drop_column("idempotency_key")
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_column("join_key")
