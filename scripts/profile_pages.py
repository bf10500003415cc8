"""Profile pages in process (pyinstrument) as a signed-in shopper and as a visitor.

    .venv/bin/python scripts/profile_pages.py [N]      # N requests per page (default 300)
    PROFILE_PAGES="cart checkout order" .venv/bin/python scripts/profile_pages.py   # only those pages

Starts the test stack, signs a shopper in through the form, places an order (their order's page)
and puts one item in the cart, then
requests each page N times through the real app (httpx's ASGI transport, in this process) and
prints the CPU time per request (signed in and as a visitor) and the signed-in profile (pyinstrument).
"""

from __future__ import annotations

import asyncio
import html
import os
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

import httpx  # noqa: E402
from pyinstrument import Profiler  # noqa: E402

from tests.integration.helpers import post_form, register  # noqa: E402
from tests.support import start_test_stack  # noqa: E402


async def main(n: int) -> None:
    from sweetdream.app import create_app
    from sweetdream.settings import Settings

    settings = Settings.from_env()
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)  # in this process and thread: the profile sees the app
    async with app.lifespan(), httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        listing = await client.get("/products")
        slug = re.search(r'href="(/products/[^"?#/]+)"', listing.text).group(1)  # type: ignore[union-attr]
        pages = {"products": "/products", "product": slug, "search": "/products?q=banh+kem"}
        wanted = os.environ.get("PROFILE_PAGES", "").split()  # e.g. "cart checkout": only those
        visitor_times = {}
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as visitor:
            for name, path in pages.items():
                await visitor.get(path)
                started = time.process_time()
                for _ in range(n):
                    await visitor.get(path)
                visitor_times[name] = (time.process_time() - started) / n * 1000
        assert (await register(client)).status_code in (302, 303)
        page = await client.get(slug)
        variant = re.search(r'<option value="([0-9a-f-]{36})"', page.text).group(1)  # type: ignore[union-attr]
        await post_form(client, "/cart/items", {"variant_id": variant, "quantity": "1"})
        form = dict(
            re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)"', (await client.get("/checkout/")).text)
        )
        form = {k: html.unescape(v) for k, v in form.items()}
        shipping = {"name": "Lan", "phone": "0901234567", "address": "12 Lê Lợi, Quận 1", "payment_method": "COD"}
        order = (await client.post("/checkout/", data={**form, **shipping})).headers["location"]
        await post_form(client, "/cart/items", {"variant_id": variant, "quantity": "1"})
        # a signed-in shopper's own pages
        pages |= {"cart": "/cart/", "checkout": "/checkout/", "order": order}
        for name, path in pages.items():
            if wanted and name not in wanted:
                continue
            assert (await client.get(path)).status_code == 200
            started = time.process_time()
            for _ in range(n):
                await client.get(path)
            signed_in = (time.process_time() - started) / n * 1000
            profiler = Profiler(interval=0.0005, async_mode="enabled")
            with profiler:
                for _ in range(n):
                    await client.get(path)
            print(
                f"\n===== {name} {path}: CPU per request (this process, client included): "
                f"signed in {signed_in:.2f} ms, visitor {visitor_times.get(name, 0):.2f} ms ====="
            )
            print(profiler.output_text(unicode=False, color=False, show_all=False, short_mode=False)[:15000])


if __name__ == "__main__":
    os.environ["LOG_LEVEL"] = "WARNING"
    stack = start_test_stack()
    os.environ["SWEETDREAM_ENV"] = "test"
    try:
        asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 300))
    finally:
        stack.close()
