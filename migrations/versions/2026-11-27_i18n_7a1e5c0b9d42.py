"""i18n: the shopper's saved language, and the language an order was placed in (its emails' fallback)

Revision ID: 7a1e5c0b9d42
Revises: 5e7d0c1a2b3f
Create Date: 2026-11-27 21:30:00
"""

from alembic import op

revision = "7a1e5c0b9d42"
down_revision = "5e7d0c1a2b3f"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NULL: never chosen (the request's language applies); otherwise "vi" or "en".
    op.execute("ALTER TABLE users ADD COLUMN language varchar(8)")
    op.execute("ALTER TABLE orders ADD COLUMN language varchar(8)")


def downgrade() -> None:
    op.execute("ALTER TABLE orders DROP COLUMN language")
    op.execute("ALTER TABLE users DROP COLUMN language")
