"""help that is a case (PROCESS.md §5): the cases and their trails

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05 22:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    text = sqlmodel.sql.sqltypes.AutoString
    op.create_table(
        "cases",
        sa.Column("workflow_id", text(length=200), nullable=False),
        sa.Column("programme", text(length=40), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("county_code", text(length=12), nullable=False),
        sa.Column("township_code", text(length=12), nullable=False),
        sa.Column("village_code", text(length=12), nullable=False),
        sa.Column("subject_masked", text(length=100), nullable=False),
        sa.Column("subject_hash", text(length=64), nullable=False),
        sa.Column("level", text(length=16), nullable=False, server_default=""),
        sa.Column("stage", text(length=40), nullable=False),
        sa.Column("overdue", sa.Integer(), nullable=False),
        sa.Column("members", sa.JSON(), nullable=True),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("workflow_id"),
    )
    op.create_index("ix_cases_programme", "cases", ["programme"])
    op.create_index("ix_cases_year", "cases", ["year"])
    op.create_index("ix_cases_county_code", "cases", ["county_code"])
    op.create_table(
        "case_events",
        sa.Column("workflow_id", text(length=200), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", text(length=32), nullable=False),
        sa.Column("actor_id", text(length=64), nullable=False),
        sa.Column("actor_role", text(length=32), nullable=False),
        sa.Column("summary", text(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("workflow_id", "seq"),
    )
    op.create_index("ix_case_events_kind", "case_events", ["kind"])


def downgrade() -> None:
    op.drop_index("ix_case_events_kind", table_name="case_events")
    op.drop_table("case_events")
    op.drop_index("ix_cases_county_code", table_name="cases")
    op.drop_index("ix_cases_year", table_name="cases")
    op.drop_index("ix_cases_programme", table_name="cases")
    op.drop_table("cases")
