"""checkout: idempotency keys are unique per shopper, not across the shop

Another shopper's checkout key (by chance or on purpose) was a unique violation answered with a
500; with the key unique per (user_id, idempotency_key) it is simply a different key.

Revision ID: c395ca4b90b4
Revises: 5e3a9c1d7b20
Create Date: 2026-11-27 12:00:00

"""

from alembic import op

revision = "c395ca4b90b4"
down_revision = "5e3a9c1d7b20"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_unique_constraint("uq_orders_user_idempotency_key", "orders", ["user_id", "idempotency_key"])
    op.drop_constraint("uq_orders_idempotency_key", "orders", type_="unique")


def downgrade() -> None:
    # Fails if two shoppers have used the same key since the upgrade: they are then two orders.
    op.create_unique_constraint("uq_orders_idempotency_key", "orders", ["idempotency_key"])
    op.drop_constraint("uq_orders_user_idempotency_key", "orders", type_="unique")
