"""money: payment attempts, declined orders held for payment, refunds, titled timeline entries

Order status gains PREPARING and payment_status gains charging/refunding/refunded: both are
plain strings (status is a non-native enum with no CHECK constraint, 16 characters), so neither
needs DDL.

Revision ID: 953b9cdb8dc6
Revises: c395ca4b90b4
Create Date: 2026-11-27 12:00:00

"""

import sqlalchemy as sa
from alembic import op
from advanced_alchemy.types import DateTimeUTC

revision = "953b9cdb8dc6"
down_revision = "c395ca4b90b4"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("orders", sa.Column("payment_attempt", sa.Integer(), server_default=sa.text("1"), nullable=False))
    op.add_column("orders", sa.Column("declined_at", DateTimeUTC(timezone=True), nullable=True))
    op.add_column("orders", sa.Column("refund_reference", sa.String(length=64), nullable=True))
    # The unpaid-order sweep reads declined orders only.
    op.create_index(
        "ix_orders_declined_at", "orders", ["declined_at"], postgresql_where=sa.text("declined_at IS NOT NULL")
    )
    op.add_column("order_events", sa.Column("title", sa.String(length=40), nullable=True))


def downgrade() -> None:
    op.drop_column("order_events", "title")
    op.drop_index("ix_orders_declined_at", table_name="orders")
    for column in ("refund_reference", "declined_at", "payment_attempt"):
        op.drop_column("orders", column)
