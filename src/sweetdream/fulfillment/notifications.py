"""Customer and staff emails: rendered from templates/emails (HTML + text), each sent AT MOST ONCE.

The guarantee, and where it holds:
- Each message has a key (`order:<id>:confirmation`) and a SentMessage row with that key, unique.
  The row is inserted ("sending") and COMMITTED before the message is handed to the mail backend,
  and marked "sent" after. A job that runs again (a retry, the sweep, a second worker) finds the
  key and sends nothing.
- While it sends, the run holds the row's lock; a second run of the same message waits for it and
  then reads the outcome. So two runs at once send one message.
- A worker killed after the claim and before "sent" leaves the row "sending": the message may or
  may not have left, and it is NOT sent again by itself. That is the price of at most once, and
  it is visible: `sweetdream outbox` lists such rows (older than STUCK_AFTER) with their Message-ID,
  which the operator can look up in the mail provider's log, and the job's next run logs a
  warning naming the key.
- A backend that raises (SMTP refused, SES error) said the message was not sent: the claim is
  released and the job's retry sends it. A send cancelled midway (job timeout, shutdown) keeps
  its claim: smtplib/boto3 run in a thread that may still deliver it.
- Every message carries a Message-ID made from its key (`platform.mail.message_id`), the same on
  any attempt, so even a copy that some relay sends twice is one message to a mail client.

At most once was chosen over "at least once, deduplicated by Message-ID": a customer who gets two
"your order is confirmed" emails (or two refund notices) loses trust in the shop, some clients and
Amazon SES (which replaces the Message-ID) do not deduplicate, and a lost message here is rare,
listed, and can be sent by hand, while a duplicate cannot be unsent.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from sweetdream.catalog.money import format_vnd
from sweetdream.fulfillment.models import SENDING, SENT, SentMessage
from sweetdream.platform import i18n
from sweetdream.platform.i18n import gettext_noop
from sweetdream.platform.mail import Mailer, build_message, mailer_for, message_id
from sweetdream.platform.shop_time import time_filters
from sweetdream.settings import Settings

log = logging.getLogger("sweetdream.mail")

# A send takes seconds (SMTP gives up after 30 s): `sweetdream outbox` lists a claim older than this
# that was never marked sent (younger ones may be sending right now).
STUCK_AFTER = timedelta(minutes=1)
# How long after its claim a live sender surely holds the claim's lock (it takes it right after).
IN_FLIGHT = timedelta(seconds=10)

# Source strings; each email is rendered in its recipient's language (`Notifier.render`).
SUBJECTS = {
    "confirmation": gettext_noop("Your order %(number)s is confirmed"),
    "preparing": gettext_noop("We are preparing your order %(number)s"),
    "shipped": gettext_noop("Your order %(number)s is on its way"),
    "delivered": gettext_noop("Your order %(number)s has been delivered"),
    "cancelled": gettext_noop("Your order %(number)s was cancelled"),
    "declined": gettext_noop("Payment declined for order %(number)s"),
    "low_stock": gettext_noop("Low stock: %(product)s (%(size)s) has %(stock)s left"),
    "export_failed": gettext_noop("The export of shop day %(day)s failed"),
}


@dataclass(frozen=True)
class Email:
    kind: str
    to: str
    subject: str
    text: str
    html: str


class Notifier:
    def __init__(self, mailer: Mailer, sender: str, templates_dir: Path, site_name: str, public_url: str) -> None:
        self.mailer = mailer
        self.sender = sender
        self.env = Environment(
            loader=FileSystemLoader(templates_dir / "emails"),
            autoescape=select_autoescape(["html"]),
            trim_blocks=True,
            lstrip_blocks=True,
            extensions=["jinja2.ext.i18n"],
        )
        self.env.install_gettext_callables(  # type: ignore[attr-defined]
            i18n.gettext, i18n.ngettext, newstyle=True, pgettext=i18n.pgettext, npgettext=i18n.npgettext
        )
        self.env.filters["vnd"] = format_vnd
        self.env.filters["translated"] = i18n.translate_known  # a decline reason the gateway gave
        self.env.filters.update(time_filters(Settings.shop_timezone))  # a time in an email is shop time too
        self.env.globals.update(site_name=site_name, public_url=public_url.rstrip("/"))

    @classmethod
    def from_settings(cls, settings: Settings) -> Notifier:
        """The notifier the settings describe (mail backend, sender, templates): the worker's and the CLI's."""
        mailer = mailer_for(
            settings.mail_backend,
            settings.var_dir,
            smtp_url=settings.smtp_url,
            region=settings.aws_region,
            endpoint_url=settings.ses_endpoint_url,
        )
        return cls(mailer, settings.mail_from, settings.templates_dir, settings.site_name, settings.public_url)

    def render(self, kind: str, to: str, language: str | None = None, **context: Any) -> Email:
        """The email in `language` (the recipient's; Vietnamese when unknown): words, money, times."""
        with i18n.use_language(language):
            subject = i18n.gettext(SUBJECTS[kind]) % context
            text = self.env.get_template(f"{kind}.txt").render(
                subject=subject, lang=i18n.current_language.get(), **context
            )
            html = self.env.get_template(f"{kind}.html").render(
                subject=subject, lang=i18n.current_language.get(), **context
            )
        return Email(kind, to, subject, text, html)

    async def send_once(self, db: AsyncSession, key: str, email: Email) -> bool:
        """Send `email` unless a message with this key was claimed before. True if this call sent it.

        COMMITS the caller's session: the claim must be durable before the message leaves (and
        whatever the message announces must be committed with it, never rolled back after), and the
        "sent" mark after. See the module's docstring for the guarantee.
        """
        stable_id = message_id(key, self.sender)
        for _ in range(2):  # a claim released by a failed send elsewhere is taken over, once
            claim = await _claim(db, key, email, stable_id)
            if claim is not None:
                await self._send_claimed(db, claim, email, stable_id)
                return True
            if await _claimed_elsewhere(db, key) is not None:
                return False
        return False

    async def _send_claimed(self, db: AsyncSession, claim: UUID, email: Email, stable_id: str) -> None:
        # The claim's row lock is held while sending: a second run of the same message waits on it
        # for the outcome. A worker killed meanwhile drops its connection, and the lock with it.
        await db.execute(select(SentMessage.id).where(SentMessage.id == claim).with_for_update())
        message = build_message(self.sender, email.to, email.subject, email.text, email.html, stable_id)
        try:
            await self.mailer.send(message)
        except Exception:
            # The backend says it did not send: release the claim so a retry sends it.
            await db.execute(delete(SentMessage).where(SentMessage.id == claim))
            await db.commit()
            raise
        await db.execute(update(SentMessage).where(SentMessage.id == claim).values(status=SENT, sent_at=func.now()))
        await db.commit()


async def _claim(db: AsyncSession, key: str, email: Email, stable_id: str) -> UUID | None:
    """Insert the key as "sending" and commit. The new row's id, or None if the key exists."""
    claim: UUID | None = await db.scalar(
        insert(SentMessage)
        .values(
            key=key,
            kind=email.kind,
            recipient=email.to,
            subject=email.subject[:200],
            status=SENDING,
            message_id=stable_id,
        )
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(SentMessage.id)
    )
    await db.commit()
    return claim


async def _claimed_elsewhere(db: AsyncSession, key: str) -> str | None:
    """The key was claimed by another run: wait until that run is done sending (its row lock), then
    its outcome: "sent"; "sending" if it died while sending (not sent again: at most once, and a
    warning); None if its send failed and it released the claim.

    A live sender commits its claim and then locks it, so for a moment a claim is "sending" without
    a lock: a claim younger than IN_FLIGHT is looked at again instead of taken for a dead sender's."""
    while True:
        row = (
            await db.execute(
                select(SentMessage.status, SentMessage.created_at, func.now())
                .where(SentMessage.key == key)
                .with_for_update()
            )
        ).one_or_none()
        await db.commit()
        if row is None:
            return None
        status, claimed_at, now = row
        if status != SENDING:
            return str(status)
        if now - claimed_at >= IN_FLIGHT:
            break
        await asyncio.sleep(0.05)
    log.warning(
        "email %s was claimed at %s by a run that never finished sending it (its worker died?); "
        "not sending it again: see `sweetdream outbox`",
        key,
        claimed_at,
    )
    return SENDING


@dataclass(frozen=True)
class UnconfirmedSend:
    key: str
    message_id: str
    claimed_at: datetime


async def unconfirmed_sends(db: AsyncSession, limit: int = 100) -> list[UnconfirmedSend]:
    """Messages claimed more than STUCK_AFTER ago and never marked sent: a worker died while
    sending them. They may or may not have gone out; the mail log knows (search the Message-ID)."""
    rows = await db.execute(
        select(SentMessage.key, SentMessage.message_id, SentMessage.created_at)
        .where(SentMessage.status == SENDING, SentMessage.created_at < func.now() - STUCK_AFTER)
        .order_by(SentMessage.created_at)
        .limit(limit)
    )
    return [UnconfirmedSend(key, mid or "", claimed_at) for key, mid, claimed_at in rows]
