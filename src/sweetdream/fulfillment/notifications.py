"""Customer and staff emails: rendered from templates/emails (HTML + text), each sent at most once.

"Once" is kept by a SentMessage row with a unique key, inserted in the same transaction that
sends: a job that runs twice finds the row and stays quiet; a send that fails rolls the row back,
so the retry sends it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from sweetdream.catalog.money import format_vnd
from sweetdream.fulfillment.models import SentMessage
from sweetdream.platform.mail import Mailer, build_message
from sweetdream.platform.shop_time import time_filters
from sweetdream.settings import Settings

SUBJECTS = {
    "confirmation": "Your order {number} is confirmed",
    "preparing": "We are preparing your order {number}",
    "shipped": "Your order {number} is on its way",
    "delivered": "Your order {number} has been delivered",
    "cancelled": "Your order {number} was cancelled",
    "declined": "Payment declined for order {number}",
    "low_stock": "Low stock: {product} ({size}) has {stock} left",
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
        )
        self.env.filters["vnd"] = format_vnd
        self.env.filters.update(time_filters(Settings.shop_timezone))  # a time in an email is shop time too
        self.env.globals.update(site_name=site_name, public_url=public_url.rstrip("/"))

    def render(self, kind: str, to: str, **context: Any) -> Email:
        subject = SUBJECTS[kind].format(**context)
        text = self.env.get_template(f"{kind}.txt").render(subject=subject, **context)
        html = self.env.get_template(f"{kind}.html").render(subject=subject, **context)
        return Email(kind, to, subject, text, html)

    async def send_once(self, db: AsyncSession, key: str, email: Email) -> bool:
        """Send unless a message with this key was sent already. Runs in the caller's transaction,
        which must commit for the 'sent' mark to stick."""
        inserted = await db.scalar(
            insert(SentMessage)
            .values(key=key, kind=email.kind, recipient=email.to, subject=email.subject[:200])
            .on_conflict_do_nothing(index_elements=["key"])
            .returning(SentMessage.id)
        )
        if inserted is None:
            return False
        await self.mailer.send(build_message(self.sender, email.to, email.subject, email.text, email.html))
        return True
