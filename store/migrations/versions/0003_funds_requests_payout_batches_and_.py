"""funds requests, payout batches and payments

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 16:29:23.680683
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "funds_requests",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("programme", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("season", sa.Integer(), nullable=False),
        sa.Column("county_code", sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("total_cny", sa.Integer(), nullable=False),
        sa.Column("roster_path", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("arrived_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("arrived_amount_cny", sa.Integer(), nullable=True),
        sa.Column("arrived_reference", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("funds_requests", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_funds_requests_county_code"), ["county_code"], unique=False
        )

    op.create_table(
        "payout_batches",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("programme", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("season", sa.Integer(), nullable=False),
        sa.Column("county_code", sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("file_path", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("total_cny", sa.Integer(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("payout_batches", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_payout_batches_county_code"), ["county_code"], unique=False
        )

    op.create_table(
        "funds_request_items",
        sa.Column("request_id", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("workflow_id", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("amount_cny", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["funds_requests.id"],
        ),
        sa.PrimaryKeyConstraint("request_id", "workflow_id"),
        sa.UniqueConstraint("workflow_id"),
    )
    op.create_table(
        "payments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("workflow_id", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("batch_id", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("amount_cny", sa.Integer(), nullable=False),
        sa.Column("account_masked", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("account_holder", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("bank_reference", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["payout_batches.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("idempotency_key"),
    )
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_payments_batch_id"), ["batch_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_payments_workflow_id"), ["workflow_id"], unique=False)

    with op.batch_alter_table("applications", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "bank_name",
                sqlmodel.sql.sqltypes.AutoString(length=100),
                nullable=False,
                server_default="",
            )
        )
        batch_op.add_column(
            sa.Column(
                "account_masked",
                sqlmodel.sql.sqltypes.AutoString(length=32),
                nullable=False,
                server_default="",
            )
        )
        batch_op.add_column(
            sa.Column(
                "account_sealed",
                sqlmodel.sql.sqltypes.AutoString(),
                nullable=False,
                server_default="",
            )
        )
        batch_op.add_column(
            sa.Column(
                "account_holder",
                sqlmodel.sql.sqltypes.AutoString(length=100),
                nullable=False,
                server_default="",
            )
        )


def downgrade() -> None:

    with op.batch_alter_table("applications", schema=None) as batch_op:
        batch_op.drop_column("account_holder")
        batch_op.drop_column("account_sealed")
        batch_op.drop_column("account_masked")
        batch_op.drop_column("bank_name")

    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payments_workflow_id"))
        batch_op.drop_index(batch_op.f("ix_payments_batch_id"))

    op.drop_table("payments")
    op.drop_table("funds_request_items")
    with op.batch_alter_table("payout_batches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payout_batches_county_code"))

    op.drop_table("payout_batches")
    with op.batch_alter_table("funds_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_funds_requests_county_code"))

    op.drop_table("funds_requests")
