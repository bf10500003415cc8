"""What fulfilment remembers: each message sent, so a job that runs twice sends once."""

from __future__ import annotations

from datetime import datetime

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import String, text
from sqlalchemy.orm import Mapped, mapped_column

from sweetdream.db import UUIDBase


class SentMessage(UUIDBase):
    """One email sent. `key` names what it announces (e.g. `order:<id>:confirmation`) and is unique:
    the row is inserted in the transaction that sends, so a second attempt finds it and stays quiet."""

    __tablename__ = "sent_messages"

    key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(40))
    recipient: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), server_default=text("now()"))
