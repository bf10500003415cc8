"""Known browsers: a browser that signed in to an account is given a signed token for it.

Guesses from many addresses at one account are slowed down for that account as a whole, but a
browser holding the account's token is not held back by them: strangers can't lock the owner
out of the browser they use (OWASP's "device cookie"). The token names no one (a random nonce and
an HMAC over it and the email); only the server's secret can make one for an email.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

COOKIE = "sd_device"
COOKIE_PATH = "/account/login"  # the only place that reads it
MAX_AGE = 365 * 24 * 3600


def _signature(secret: str, nonce: str, email: str) -> str:
    message = f"known-device:{nonce}:{email}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()[:32]


def token_for(secret: str, email: str) -> str:
    nonce = secrets.token_urlsafe(12)
    return f"{nonce}.{_signature(secret, nonce, email)}"


def is_known(secret: str, token: str | None, email: str) -> bool:
    """Whether `token` was made by `token_for(secret, email)`."""
    nonce, _, signature = (token or "").partition(".")
    return bool(nonce and signature) and hmac.compare_digest(signature, _signature(secret, nonce, email))
