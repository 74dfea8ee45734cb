"""place contacts and delivery channel

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 16:24:34.600800
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:

    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("delivered_via", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True)
        )

    with op.batch_alter_table("places", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "contact_email",
                sqlmodel.sql.sqltypes.AutoString(length=200),
                nullable=False,
                server_default="",
            )
        )
        batch_op.add_column(
            sa.Column(
                "contact_phone",
                sqlmodel.sql.sqltypes.AutoString(length=32),
                nullable=False,
                server_default="",
            )
        )


def downgrade() -> None:

    with op.batch_alter_table("places", schema=None) as batch_op:
        batch_op.drop_column("contact_phone")
        batch_op.drop_column("contact_email")

    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("delivered_via")
