"""the database's own identity, which the Temporal namespace it serves records

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 16:30:00
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "deployment",
        sa.Column("database_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("database_id"),
    )
    # Made once, when the database is made: no other database has it.
    op.bulk_insert(
        table, [{"database_id": f"db-{uuid.uuid4().hex}", "created_at": datetime.now(UTC)}]
    )


def downgrade() -> None:
    op.drop_table("deployment")
