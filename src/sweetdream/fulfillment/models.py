"""What fulfilment remembers: each message claimed and sent, so a job that runs twice sends once."""

from __future__ import annotations

from datetime import datetime

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from sweetdream.db import UUIDBase

SENDING = "sending"
SENT = "sent"


class SentMessage(UUIDBase):
    """One email, claimed before it is sent (see `notifications.Notifier.send_once`).

    `key` names what it announces (e.g. `order:<id>:confirmation`) and is unique. `status` is
    "sending" from the claim until the mail backend accepted the message, then "sent"; a row left
    "sending" means the worker died while sending: the message may or may not have gone out, and is
    never sent again by itself (`sweetdream outbox` lists those). `created_at` is the claim's time.
    """

    __tablename__ = "sent_messages"
    __table_args__ = (Index("ix_sent_messages_sending", "created_at", postgresql_where=text("status = 'sending'")),)

    key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(40))
    recipient: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(10), server_default=SENT)
    message_id: Mapped[str | None] = mapped_column(String(250))
    created_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), server_default=text("now()"))
    sent_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True))
