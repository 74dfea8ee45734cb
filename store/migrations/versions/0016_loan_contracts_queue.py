"""the student loan's first contracts (renewals name one), the centre's queue, and an
application's university code (the university that confirms a loan's receipt)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05 21:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    text = sqlmodel.sql.sqltypes.AutoString
    op.create_table(
        "loan_contracts",
        sa.Column("contract_no", text(length=32), nullable=False),
        sa.Column("national_id_hash", text(length=64), nullable=False),
        sa.Column("workflow_id", text(length=200), nullable=False),
        sa.Column("county_code", text(length=12), nullable=False),
        sa.Column("first_year", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("contract_no"),
        sa.UniqueConstraint("workflow_id"),
    )
    op.create_index("ix_loan_contracts_national_id_hash", "loan_contracts", ["national_id_hash"])
    op.create_table(
        "loan_queue",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("county_code", text(length=12), nullable=False),
        sa.Column("national_id_hash", text(length=64), nullable=False),
        sa.Column("student_masked", text(length=100), nullable=False),
        sa.Column("registered_poor", sa.Boolean(), nullable=False),
        sa.Column("arrived_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("served_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("workflow_id", text(length=200), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_loan_queue_waiting", "loan_queue", ["county_code", "served_at"])
    with op.batch_alter_table("applications", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("university_code", text(length=5), nullable=False, server_default="")
        )


def downgrade() -> None:
    with op.batch_alter_table("applications", schema=None) as batch_op:
        batch_op.drop_column("university_code")
    op.drop_index("ix_loan_queue_waiting", table_name="loan_queue")
    op.drop_table("loan_queue")
    op.drop_index("ix_loan_contracts_national_id_hash", table_name="loan_contracts")
    op.drop_table("loan_contracts")
