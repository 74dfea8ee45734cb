"""aid recorded from others' lists (the national grant), for the yearly aid ledger

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 17:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "recorded_aid",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("programme", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("national_id_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column(
            "national_id_masked", sqlmodel.sql.sqltypes.AutoString(length=18), nullable=False
        ),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
        sa.Column("university", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("grade", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("amount_cny", sa.Integer(), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "programme", "year", "national_id_hash", "university", name="uq_recorded_aid"
        ),
    )
    with op.batch_alter_table("recorded_aid", schema=None) as batch_op:
        batch_op.create_index("ix_recorded_aid_year", ["year"], unique=False)
        batch_op.create_index(
            "ix_recorded_aid_national_id_hash", ["national_id_hash"], unique=False
        )


def downgrade() -> None:
    op.drop_table("recorded_aid")
