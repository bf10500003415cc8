"""sessions: users.session_epoch, so a password change ends the user's other sessions

Revision ID: 5e3a9c1d7b20
Revises: b3c1d2e4f5a6
Create Date: 2026-11-27 12:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "5e3a9c1d7b20"
down_revision = "b3c1d2e4f5a6"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A constant default: PostgreSQL adds the column without rewriting the table, and every
    # existing session (which carries no epoch, read as 0) stays signed in.
    op.add_column("users", sa.Column("session_epoch", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    op.drop_column("users", "session_epoch")
