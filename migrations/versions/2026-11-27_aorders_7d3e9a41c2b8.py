"""aorders: indexes that make every admin order-list query an index scan at a million orders

The list is read newest first by (created_at, id), the keyset the pages walk; each filter that
narrows it has an index led by the filter, then the keyset, so PostgreSQL reads one page of
entries and stops. Searches: the number has its unique index, an email goes through the users'
unique email to ix_orders_user_created, a phone is an equality, a name a case-folded prefix
(a range in the C collation, because the embedded server has no pg_trgm).

Revision ID: 7d3e9a41c2b8
Revises: a1c0ffee2026
Create Date: 2026-11-27 21:40:00
"""

from alembic import op

revision = "7d3e9a41c2b8"
down_revision = "a1c0ffee2026"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for statement in (
        # INCLUDE total (and status): the capped count and revenue of a filtered set read the index alone.
        "CREATE INDEX ix_orders_created_id ON orders (created_at, id) INCLUDE (total, status)",
        "CREATE INDEX ix_orders_status_created_id ON orders (status, created_at, id) INCLUDE (total)",
        "DROP INDEX ix_orders_status_created",  # its prefix: the index above answers all it did
        "CREATE INDEX ix_orders_payment_status_created_id ON orders (payment_status, created_at, id)"
        " INCLUDE (total, status)",
        "CREATE INDEX ix_orders_payment_method_created_id ON orders (payment_method, created_at, id)"
        " INCLUDE (total, status)",
        "CREATE INDEX ix_orders_phone_created ON orders (shipping_phone, created_at)",
        # shipping_name too: PostgreSQL reads an expression index alone only if it holds the column.
        'CREATE INDEX ix_orders_name_prefix ON orders ((lower(shipping_name) COLLATE "C"))'
        " INCLUDE (total, status, shipping_name)",
    ):
        op.execute(statement)


def downgrade() -> None:
    for statement in (
        "DROP INDEX ix_orders_name_prefix",
        "DROP INDEX ix_orders_phone_created",
        "DROP INDEX ix_orders_payment_method_created_id",
        "DROP INDEX ix_orders_payment_status_created_id",
        "CREATE INDEX ix_orders_status_created ON orders (status, created_at)",
        "DROP INDEX ix_orders_status_created_id",
        "DROP INDEX ix_orders_created_id",
    ):
        op.execute(statement)
