"""Small helpers for driving the HTML app like a browser does (CSRF cookie + form posts)."""

from __future__ import annotations

import asyncio
import html
import re
import secrets
from pathlib import Path
from typing import Any

from click.testing import CliRunner


async def csrf_token(client: Any) -> str:
    if "sd_csrf" not in client.cookies:
        await client.get("/products")
    return str(client.cookies["sd_csrf"])


async def post_form(client: Any, url: str, data: dict[str, str], **kwargs: Any) -> Any:
    token = await csrf_token(client)
    return await client.post(url, data={**data, "_csrf_token": token}, **kwargs)


def unique_email(prefix: str = "shopper") -> str:
    return f"{prefix}.{secrets.token_hex(4)}@example.com"


async def register(client: Any, email: str | None = None, password: str = "correct horse battery", **extra: str) -> Any:
    data = {
        "email": email or unique_email(),
        "password": password,
        "name": "Lan Nguyen",
        "phone": "0901234567",
        "address": "12 Lê Lợi, Quận 1, TP.HCM",
        **extra,
    }
    return await post_form(client, "/account/register", data)


async def sign_in(client: Any, email: str, password: str = "correct horse battery", next_url: str = "") -> Any:
    return await post_form(client, "/account/login", {"email": email, "password": password, "next": next_url})


async def cli(app: Any, *args: str, **kwargs: Any) -> Any:
    """Run `sweetdream <args>` through Litestar's real CLI group, with our app loaded."""
    from litestar.cli._utils import LitestarEnv
    from litestar.cli.main import litestar_group

    env = LitestarEnv(app_path="sweetdream.app:create_app", app=app, cwd=Path.cwd())
    return await asyncio.to_thread(CliRunner().invoke, litestar_group, list(args), obj=env, **kwargs)


_HIDDEN = re.compile(r'<input type="hidden" name="(reviewed|reviewed_lines)" value="([^"]*)"')


async def reviewed(client: Any) -> dict[str, str]:
    """Open the checkout page as a shopper would before placing: the review its form carries
    (a checkout post without it is refused: the shopper must have seen the prices)."""
    page = await client.get("/checkout/")
    assert page.status_code == 200, page.status_code
    return {name: html.unescape(value) for name, value in _HIDDEN.findall(page.text)}
