"""fulfillment: card payment columns on orders, sent messages, outbox failures index

Revision ID: b3c1d2e4f5a6
Revises: 7e882c28874c
Create Date: 2026-11-22 12:00:00

"""

import sqlalchemy as sa
from alembic import op
from advanced_alchemy.types import GUID, DateTimeUTC

revision = "b3c1d2e4f5a6"
down_revision = "7e882c28874c"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("orders", sa.Column("payment_token", sa.String(length=64), nullable=True))
    op.add_column("orders", sa.Column("card_last4", sa.String(length=4), nullable=True))
    op.add_column("orders", sa.Column("payment_reference", sa.String(length=64), nullable=True))
    op.add_column("orders", sa.Column("payment_note", sa.Text(), server_default="", nullable=False))
    op.create_table(
        "sent_messages",
        sa.Column("id", GUID(length=16), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("recipient", sa.String(length=254), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("created_at", DateTimeUTC(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sent_messages")),
        sa.UniqueConstraint("key", name=op.f("uq_sent_messages_key")),
    )
    # `sweetdream outbox` lists failed rows; the sweep reads undelivered ones (ix_outbox_undelivered).
    op.create_index("ix_outbox_failed", "outbox", ["failed_at"], postgresql_where=sa.text("failed_at IS NOT NULL"))


def downgrade() -> None:
    op.drop_index("ix_outbox_failed", table_name="outbox")
    op.drop_table("sent_messages")
    for column in ("payment_note", "payment_reference", "card_last4", "payment_token"):
        op.drop_column("orders", column)
