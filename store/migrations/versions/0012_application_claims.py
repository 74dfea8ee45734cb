"""one application per student, programme, season and round in any county, claimed at submission

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 19:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "application_claims",
        sa.Column("programme", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("season", sa.Integer(), nullable=False),
        sa.Column("round", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("national_id_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("workflow_id", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("county_code", sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("programme", "season", "round", "national_id_hash"),
    )


def downgrade() -> None:
    op.drop_table("application_claims")
