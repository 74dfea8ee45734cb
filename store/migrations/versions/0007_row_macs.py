"""row MACs on the read model and the payments (issue 16), and when they began

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 15:00:00
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing rows get an empty row_mac: their MAC needs the deployment's key, which
    # neither the database nor this migration holds. aidflow seals an applications row
    # the next time it records an event of that application, and a payment when it
    # records the bank's result; until then an empty row_mac means "not yet sealed".
    for table in ("applications", "payments"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(
                sa.Column(
                    "row_mac",
                    sqlmodel.sql.sqltypes.AutoString(length=64),
                    nullable=False,
                    server_default="",
                )
            )
    # The watermark that says which rows those are (store/tables.RowSealing): an
    # applications row last updated before now, a payment with an id up to the highest
    # one now. An empty row_mac on any later row is a break, never "not yet sealed": stop
    # the workers of the old code before migrating (they write rows without a MAC).
    sealing = op.create_table(
        "row_sealing",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payments_before_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    before = op.get_bind().execute(sa.text("select coalesce(max(id), 0) from payments")).scalar()
    op.bulk_insert(
        sealing, [{"id": 1, "since": datetime.now(UTC), "payments_before_id": int(before or 0)}]
    )


def downgrade() -> None:
    op.drop_table("row_sealing")
    for table in ("payments", "applications"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("row_mac")
