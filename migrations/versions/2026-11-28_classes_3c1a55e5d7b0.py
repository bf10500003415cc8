"""classes: a class seat's session start, kept on the order line too; the thumbnails a product has

Revision ID: 3c1a55e5d7b0
Revises: 7a1e5c0b9d42
Create Date: 2026-11-28 00:45:00
"""

from alembic import op

revision = "3c1a55e5d7b0"
down_revision = "7a1e5c0b9d42"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A size with a start is a seat in the class session that starts then (UTC); NULL for goods.
    op.execute("ALTER TABLE variants ADD COLUMN starts_at timestamptz")
    # The order keeps what the shopper booked, as it keeps the size's label and price.
    op.execute("ALTER TABLE order_lines ADD COLUMN starts_at timestamptz")
    # {image url: its 400 px thumbnail's url}, written by the worker's thumbnail job.
    op.execute("ALTER TABLE products ADD COLUMN thumbnails jsonb NOT NULL DEFAULT '{}'::jsonb")


def downgrade() -> None:
    op.execute("ALTER TABLE products DROP COLUMN thumbnails")
    op.execute("ALTER TABLE order_lines DROP COLUMN starts_at")
    op.execute("ALTER TABLE variants DROP COLUMN starts_at")
