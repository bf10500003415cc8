"""ops: sent_messages records a claim before the send (status, Message-ID, sent time)

Revision ID: 5e1d0a7c9b24
Revises: 953b9cdb8dc6
Create Date: 2026-11-27 12:00:00

Rows that exist already were sent: they get status "sent".
"""

import sqlalchemy as sa
from alembic import op
from advanced_alchemy.types import DateTimeUTC

revision = "5e1d0a7c9b24"
down_revision = "953b9cdb8dc6"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("sent_messages", sa.Column("status", sa.String(length=10), server_default="sent", nullable=False))
    op.add_column("sent_messages", sa.Column("message_id", sa.String(length=250), nullable=True))
    op.add_column("sent_messages", sa.Column("sent_at", DateTimeUTC(timezone=True), nullable=True))
    op.create_index(
        "ix_sent_messages_sending", "sent_messages", ["created_at"], postgresql_where=sa.text("status = 'sending'")
    )


def downgrade() -> None:
    op.drop_index("ix_sent_messages_sending", table_name="sent_messages")
    for column in ("sent_at", "message_id", "status"):
        op.drop_column("sent_messages", column)
