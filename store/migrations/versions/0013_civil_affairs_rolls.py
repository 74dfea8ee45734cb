"""the civil-affairs rolls, dated snapshots per county, for the freshman grant's check

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 20:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "civil_affairs_rolls",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("county_code", sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
        sa.Column("national_id_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column(
            "national_id_masked", sqlmodel.sql.sqltypes.AutoString(length=18), nullable=False
        ),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
        sa.Column("category", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "as_of", "county_code", "national_id_hash", name="uq_civil_affairs_roll"
        ),
    )
    with op.batch_alter_table("civil_affairs_rolls", schema=None) as batch_op:
        batch_op.create_index("ix_civil_affairs_rolls_as_of", ["as_of"], unique=False)
        batch_op.create_index("ix_civil_affairs_rolls_county_code", ["county_code"], unique=False)
        batch_op.create_index(
            "ix_civil_affairs_rolls_national_id_hash", ["national_id_hash"], unique=False
        )


def downgrade() -> None:
    op.drop_table("civil_affairs_rolls")
