"""dated snapshots of enrolment data, for coverage (应补尽补)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 18:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "enrolments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("national_id_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column(
            "national_id_masked", sqlmodel.sql.sqltypes.AutoString(length=18), nullable=False
        ),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
        sa.Column("school", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("education_level", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("year_of_study", sa.Integer(), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("as_of", "national_id_hash", name="uq_enrolment"),
    )
    with op.batch_alter_table("enrolments", schema=None) as batch_op:
        batch_op.create_index("ix_enrolments_as_of", ["as_of"], unique=False)
        batch_op.create_index("ix_enrolments_national_id_hash", ["national_id_hash"], unique=False)


def downgrade() -> None:
    op.drop_table("enrolments")
