"""index of open cases per group

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 22:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

OPEN = "closed_at IS NULL AND deleted_at IS NULL"


def upgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.create_index(
            "ix_cases_open_group_id_expires_at",
            ["group_id", "expires_at"],
            unique=False,
            postgresql_where=sa.text(OPEN),
            sqlite_where=sa.text(OPEN),
        )


def downgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_cases_open_group_id_expires_at",
            postgresql_where=sa.text(OPEN),
            sqlite_where=sa.text(OPEN),
        )
