"""The three mail backends deliver a real message: to a file, to a real SMTP server (aiosmtpd on
127.0.0.1), and to SES (moto's server standing in for AWS)."""

import asyncio
import email
import socket
from email.policy import default as default_policy

import boto3
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Message
from moto.server import ThreadedMotoServer

from sweetdream.platform.mail import FileMailer, SESMailer, SMTPMailer, build_message, mailer_for

SENDER = "SweetDream <shop@sweetdream.example>"


def a_message(to: str = "lan@example.com"):
    return build_message(
        SENDER, to, "Your order SD-000001 is confirmed", "Thank you, Lan!", "<p>Thank you, <b>Lan</b>!</p>"
    )


async def test_file_mailer_writes_one_eml_with_text_and_html(tmp_path):
    await FileMailer(tmp_path).send(a_message())
    (path,) = tmp_path.glob("*.eml")
    message = email.message_from_bytes(path.read_bytes(), policy=default_policy)
    assert message["To"] == "lan@example.com" and message["Subject"].endswith("is confirmed")
    assert message.get_body(preferencelist=("plain",)).get_content().strip() == "Thank you, Lan!"
    assert "<b>Lan</b>" in message.get_body(preferencelist=("html",)).get_content()


class Inbox(Message):
    def __init__(self) -> None:
        super().__init__()
        self.received: list[email.message.Message] = []

    def handle_message(self, message) -> None:
        self.received.append(message)


async def test_smtp_mailer_delivers_to_a_real_smtp_server():
    inbox = Inbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = Controller(inbox, hostname="127.0.0.1", port=port)
    server.start()
    try:
        await SMTPMailer(f"smtp://127.0.0.1:{port}").send(a_message())
        for _ in range(50):
            if inbox.received:
                break
            await asyncio.sleep(0.05)
    finally:
        server.stop()
    (received,) = inbox.received
    assert received["To"] == "lan@example.com" and "SD-000001" in received["Subject"]


@pytest.fixture(scope="module")
def moto_endpoint():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


async def test_ses_mailer_sends_a_raw_email_through_ses(moto_endpoint, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    ses = boto3.client("ses", region_name="ap-southeast-1", endpoint_url=moto_endpoint)
    ses.verify_email_identity(EmailAddress="shop@sweetdream.example")  # SES sends only from verified senders
    mailer = mailer_for("ses", var_dir=None, region="ap-southeast-1", endpoint_url=moto_endpoint)
    assert isinstance(mailer, SESMailer)
    await mailer.send(a_message())
    stats = ses.get_send_statistics()["SendDataPoints"]
    assert sum(point["DeliveryAttempts"] for point in stats) == 1


def test_an_unknown_backend_or_a_bad_smtp_url_is_refused_at_start(tmp_path):
    with pytest.raises(ValueError, match="MAIL_BACKEND"):
        mailer_for("pigeon", tmp_path)
    with pytest.raises(ValueError, match="SMTP_URL"):
        mailer_for("smtp", tmp_path, smtp_url="http://mail.example.com")
