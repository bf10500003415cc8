"""events: one event id at most once per instant (the drain may repeat a batch), and the daily
rollups the analytics page reads (per product, per user, per event name).

Revision ID: 5e1ec7ed0a11
Revises: c541ca1ad8b8
Create Date: 2026-11-27 21:40:00
"""

from alembic import op

revision = "5e1ec7ed0a11"
down_revision = "c541ca1ad8b8"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for statement in (
        # A unique index on a partitioned table must hold the partition key: an event's time is part
        # of the event, so (occurred_at, event_id) is as good as event_id alone.
        """
        CREATE UNIQUE INDEX uq_analytics_events_event ON analytics_events (occurred_at, event_id)
        """,
        """
        CREATE TABLE analytics_daily_totals (
            day date NOT NULL,
            name varchar(32) NOT NULL,
            events bigint NOT NULL,
            amount bigint NOT NULL DEFAULT 0,
            PRIMARY KEY (day, name)
        )
        """,
        # The insights read one event name over a range of days: (name, day, ...) keys serve them.
        """
        CREATE TABLE analytics_daily_products (
            day date NOT NULL,
            name varchar(32) NOT NULL,
            product_id uuid NOT NULL,
            events bigint NOT NULL,
            units bigint NOT NULL DEFAULT 0,
            amount bigint NOT NULL DEFAULT 0,
            PRIMARY KEY (name, day, product_id)
        )
        """,
        """
        CREATE TABLE analytics_daily_users (
            day date NOT NULL,
            name varchar(32) NOT NULL,
            user_id uuid NOT NULL,
            events bigint NOT NULL,
            amount bigint NOT NULL DEFAULT 0,
            PRIMARY KEY (name, day, user_id)
        )
        """,
    ):
        op.execute(statement)


def downgrade() -> None:
    for statement in (
        "DROP TABLE analytics_daily_users",
        "DROP TABLE analytics_daily_products",
        "DROP TABLE analytics_daily_totals",
        "DROP INDEX uq_analytics_events_event",
    ):
        op.execute(statement)
