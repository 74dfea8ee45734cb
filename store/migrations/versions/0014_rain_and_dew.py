"""Rain and Dew: dated registries for its cross-check (the registered-poor registry's
round date, households.as_of; enrolment snapshots kept apart by register, the general
enrolment data and the vocational enrolment registry, newest of each), and the recovery
list (recoveries) of paid grants cancelled

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 23:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("households", schema=None) as batch_op:
        batch_op.add_column(sa.Column("as_of", sa.Date(), nullable=True))
    with op.batch_alter_table("enrolments", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "kind",
                sqlmodel.sql.sqltypes.AutoString(length=16),
                nullable=False,
                server_default="enrolment",
            )
        )
        batch_op.drop_constraint("uq_enrolment", type_="unique")
        batch_op.create_unique_constraint("uq_enrolment", ["kind", "as_of", "national_id_hash"])
    text = sqlmodel.sql.sqltypes.AutoString
    op.create_table(
        "recoveries",
        sa.Column("application_id", text(length=200), nullable=False),
        sa.Column("programme", text(length=64), nullable=False),
        sa.Column("season", sa.Integer(), nullable=False),
        sa.Column("round", text(length=16), nullable=False),
        sa.Column("county_code", text(length=12), nullable=False),
        sa.Column("village_code", text(length=12), nullable=False),
        sa.Column("applicant_name", text(length=100), nullable=False),
        sa.Column("national_id_masked", text(length=18), nullable=False),
        sa.Column("amount_cny", sa.Integer(), nullable=False),
        sa.Column("reason", text(length=2000), nullable=False),
        sa.Column("report_ref", text(length=100), nullable=False),
        sa.Column("cancelled_by", text(length=100), nullable=False),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recovered_cny", sa.Integer(), nullable=False),
        sa.Column("recovered_reference", text(length=100), nullable=False),
        sa.Column("recovered_by", text(length=100), nullable=False),
        sa.Column("recovered_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("application_id"),
    )
    with op.batch_alter_table("recoveries", schema=None) as batch_op:
        batch_op.create_index("ix_recoveries_programme", ["programme"], unique=False)
        batch_op.create_index("ix_recoveries_county_code", ["county_code"], unique=False)


def downgrade() -> None:
    op.drop_table("recoveries")
    with op.batch_alter_table("enrolments", schema=None) as batch_op:
        batch_op.drop_constraint("uq_enrolment", type_="unique")
        batch_op.create_unique_constraint("uq_enrolment", ["as_of", "national_id_hash"])
        batch_op.drop_column("kind")
    with op.batch_alter_table("households", schema=None) as batch_op:
        batch_op.drop_column("as_of")
