"""Sending email, with three backends chosen by MAIL_BACKEND:

- `file` (the embedded default): each message is written as an .eml file under var/mail/;
- `smtp`: SMTP_URL, e.g. smtp://user:password@host:587 (STARTTLS) or smtps://host:465;
- `ses`: Amazon SES through boto3, in AWS_REGION, with the task's IAM role.

Blocking clients (smtplib, boto3) run in a thread, off the event loop.

Every message the shop sends has a Message-ID made from what it announces (`message_id`), the same
on every attempt: the mail log can be searched for it, and a mail client that ever received a copy
keeps one. (Amazon SES puts its own Message-ID on what it relays; its send log is keyed by that.)
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import smtplib
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import parseaddr
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit


class Mailer(Protocol):
    async def send(self, message: EmailMessage) -> None: ...


_NOT_ATOM = re.compile(r"[^A-Za-z0-9._-]+")


def message_id(key: str, sender: str) -> str:
    """A stable Message-ID for the message named `key`, in the sender's domain:
    `order:<id>:confirmation` from shop@sweetdream.example -> `<order-<id>-confirmation@sweetdream.example>`.
    A key with characters a Message-ID cannot hold (an address, say) gets a short hash of itself
    appended, so two keys never share an id."""
    domain = parseaddr(sender)[1].partition("@")[2] or "sweetdream"
    local = _NOT_ATOM.sub("-", key).strip("-.")
    if local != key.replace(":", "-"):
        local += "." + hashlib.sha256(key.encode()).hexdigest()[:12]
    return f"<{local}@{domain}>"


def build_message(
    sender: str, to: str, subject: str, text: str, html: str, message_id: str | None = None
) -> EmailMessage:
    """The message as sent; `message_id` from `message_id()` (a random one when none is given)."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
    message["Message-ID"] = message_id or f"<{uuid.uuid4().hex}@sweetdream>"
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message


class FileMailer:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def send(self, message: EmailMessage) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        path = self.directory / f"{stamp}-{uuid.uuid4().hex[:8]}.eml"
        await asyncio.to_thread(path.write_bytes, message.as_bytes())


class SMTPMailer:
    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in {"smtp", "smtps"} or not parts.hostname:
            raise ValueError("SMTP_URL must look like smtp://user:password@host:587 or smtps://host:465")
        self.ssl = parts.scheme == "smtps"
        self.host = parts.hostname
        self.port = parts.port or (465 if self.ssl else 587)
        self.username = unquote(parts.username or "")
        self.password = unquote(parts.password or "")

    def _send(self, message: EmailMessage) -> None:
        client: smtplib.SMTP = (
            smtplib.SMTP_SSL(self.host, self.port, timeout=30)
            if self.ssl
            else smtplib.SMTP(self.host, self.port, timeout=30)
        )
        with client:
            if not self.ssl and client.has_extn("starttls"):
                client.starttls()
            if self.username:
                client.login(self.username, self.password)
            client.send_message(message)

    async def send(self, message: EmailMessage) -> None:
        await asyncio.to_thread(self._send, message)


class SESMailer:
    def __init__(self, region: str, endpoint_url: str = "") -> None:
        import boto3

        self.client: Any = boto3.client("ses", region_name=region, endpoint_url=endpoint_url or None)

    async def send(self, message: EmailMessage) -> None:
        # Sender and recipients are read from the message's own headers.
        await asyncio.to_thread(self.client.send_raw_email, RawMessage={"Data": message.as_bytes()})


def mailer_for(backend: str, var_dir: Path, smtp_url: str = "", region: str = "", endpoint_url: str = "") -> Mailer:
    if backend == "file":
        return FileMailer(var_dir / "mail")
    if backend == "smtp":
        return SMTPMailer(smtp_url)
    if backend == "ses":
        return SESMailer(region, endpoint_url)
    raise ValueError(f"MAIL_BACKEND must be file, smtp or ses, not {backend!r}")
