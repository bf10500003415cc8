"""Shopper events (product_viewed, product_searched, cart_item_added, checkout_started,
order_completed), partitioned by shop day.

Each partition holds one shop day (00:00-24:00 Asia/Ho_Chi_Minh, i.e. 17:00-17:00 UTC), so the
nightly export of a day reads one partition and retention drops whole partitions (no row deletes).
The table is created by hand in the migration (PARTITION BY RANGE); the ORM only reads and inserts.
The primary key must contain the partition key, hence (occurred_at, id).
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any
from uuid import UUID

from advanced_alchemy.base import DefaultBase
from advanced_alchemy.types import GUID, DateTimeUTC
from sqlalchemy import BigInteger, Sequence, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column


class EventName(enum.StrEnum):
    PRODUCT_VIEWED = "product_viewed"
    PRODUCT_SEARCHED = "product_searched"
    CART_ITEM_ADDED = "cart_item_added"
    CHECKOUT_STARTED = "checkout_started"
    ORDER_COMPLETED = "order_completed"


EVENT_ID_SEQUENCE = Sequence("analytics_events_id_seq")


class AnalyticsEvent(DefaultBase):
    __tablename__ = "analytics_events"
    __table_args__ = {"postgresql_partition_by": "RANGE (occurred_at)"}

    occurred_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), primary_key=True)
    id: Mapped[int] = mapped_column(
        BigInteger, EVENT_ID_SEQUENCE, server_default=EVENT_ID_SEQUENCE.next_value(), primary_key=True
    )
    event_id: Mapped[UUID] = mapped_column(GUID)  # unique per event, made by the recorder (uuid4)
    name: Mapped[str] = mapped_column(String(32))  # an EventName
    user_id: Mapped[UUID | None] = mapped_column(GUID, nullable=True)
    visitor_id: Mapped[str | None] = mapped_column(String(64), nullable=True)  # random first-party cookie
    properties: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
