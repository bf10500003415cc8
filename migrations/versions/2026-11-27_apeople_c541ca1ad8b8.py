"""people: users.is_active (deactivation) and the indexes of the admin's customer list and search

Revision ID: c541ca1ad8b8
Revises: 5d0c4e1a7b93
Create Date: 2026-11-27 21:40:00
"""

from alembic import op

revision = "c541ca1ad8b8"
down_revision = "5d0c4e1a7b93"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for statement in (
        # A constant default: added without rewriting the table; every existing account stays active.
        "ALTER TABLE users ADD COLUMN is_active boolean NOT NULL DEFAULT true",
        # The customer list, newest first, pages by keyset on (created_at, id).
        "CREATE INDEX ix_users_created_id ON users (created_at DESC, id DESC)",
        # Search matches the start of an email, of a name (any case) or of a phone's digits;
        # pattern_ops make LIKE 'prefix%' use the index whatever the database's collation.
        "CREATE INDEX ix_users_email_prefix ON users (email varchar_pattern_ops)",
        "CREATE INDEX ix_users_name_prefix ON users (lower(name) varchar_pattern_ops)",
        "CREATE INDEX ix_users_phone_digits ON users (regexp_replace(phone, '[^0-9]', '', 'g') varchar_pattern_ops)",
        # The "Admins" filter: a handful of rows among 100,000, found without walking the whole list.
        "CREATE INDEX ix_users_admins ON users (created_at DESC, id DESC) WHERE role = 'ADMIN'",
    ):
        op.execute(statement)


def downgrade() -> None:
    for statement in (
        "DROP INDEX ix_users_admins",
        "DROP INDEX ix_users_phone_digits",
        "DROP INDEX ix_users_name_prefix",
        "DROP INDEX ix_users_email_prefix",
        "DROP INDEX ix_users_created_id",
        "ALTER TABLE users DROP COLUMN is_active",
    ):
        op.execute(statement)
