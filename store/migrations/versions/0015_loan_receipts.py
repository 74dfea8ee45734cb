"""the student loan's receipts of acceptance: verification codes by digest

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04 23:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    text = sqlmodel.sql.sqltypes.AutoString
    op.create_table(
        "loan_receipts",
        sa.Column("code_digest", text(length=64), nullable=False),
        sa.Column("workflow_id", text(length=200), nullable=False),
        sa.Column("student_masked", text(length=100), nullable=False),
        sa.Column("university", text(length=100), nullable=False),
        sa.Column("university_code", text(length=5), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("amount_cny", sa.Integer(), nullable=False),
        sa.Column("accepted_on", text(length=10), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("code_digest"),
        sa.UniqueConstraint("workflow_id"),
    )


def downgrade() -> None:
    op.drop_table("loan_receipts")
