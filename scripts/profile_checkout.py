"""Profile the checkout cycle in process (pyinstrument): add to cart (HTMX), the checkout page, place.

    .venv/bin/python scripts/profile_checkout.py [N]      # N cycles (default 200)

Prints CPU per step (this process, client included) and the profile of all steps together.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
from collections import defaultdict
from html import unescape
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

import httpx  # noqa: E402
from pyinstrument import Profiler  # noqa: E402
from sqlalchemy import update  # noqa: E402
from sqlalchemy.ext.asyncio import create_async_engine  # noqa: E402

from tests.integration.helpers import register  # noqa: E402
from tests.support import start_test_stack  # noqa: E402


def field(html: str, name: str) -> str:
    match = re.search(rf'<input[^>]*name="{name}"[^>]*value="([^"]*)"', html) or re.search(
        rf'<textarea[^>]*name="{name}"[^>]*>([^<]*)</textarea>', html
    )
    assert match, name
    return unescape(match.group(1))


async def main(n: int) -> None:
    from sweetdream.app import create_app
    from sweetdream.catalog.models import Variant
    from sweetdream.settings import Settings

    settings = Settings.from_env()
    engine = create_async_engine(settings.database_url)
    async with engine.begin() as conn:
        await conn.execute(update(Variant).values(stock=1_000_000))
    await engine.dispose()
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with app.lifespan(), httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        listing = await client.get("/products")
        slug = re.search(r'href="(/products/[^"?#/]+)"', listing.text).group(1)  # type: ignore[union-attr]
        assert (await register(client, address="12 Lê Lợi")).status_code in (302, 303)
        page = await client.get(slug)
        variant = re.search(r'<option value="([0-9a-f-]{36})"', page.text).group(1)  # type: ignore[union-attr]
        redis = app.state.redis
        cpu: dict[str, float] = defaultdict(float)

        async def cycle() -> None:
            token = client.cookies["sd_csrf"]
            hx = {"hx-request": "true", "x-csrftoken": token}
            started = time.process_time()
            added = await client.post("/cart/items", data={"variant_id": variant, "quantity": "1"}, headers=hx)
            assert added.status_code == 200, added.status_code
            cpu["add"] += time.process_time() - started
            started = time.process_time()
            checkout = await client.get("/checkout/")
            assert checkout.status_code == 200, checkout.status_code
            cpu["checkout page"] += time.process_time() - started
            names = ("idempotency_key", "reviewed", "reviewed_lines", "name", "phone", "address")
            data = {name: field(checkout.text, name) for name in names}
            data.update(note="", payment_method="COD", _csrf_token=token)
            started = time.process_time()
            placed = await client.post("/checkout/", data=data)
            assert placed.status_code == 303, (placed.status_code, placed.text[:500])
            cpu["place"] += time.process_time() - started
            for key in await redis.keys("rl:*"):  # the 10-a-minute limit is not what is measured
                await redis.delete(key)

        for _ in range(5):
            await cycle()
        cpu.clear()
        profiler = Profiler(interval=0.0005, async_mode="enabled")
        with profiler:
            for _ in range(n):
                await cycle()
        for step, seconds in cpu.items():
            print(f"{step}: {seconds / n * 1000:.2f} ms CPU per request (profiled)")
        print(profiler.output_text(unicode=False, color=False, show_all=False)[:30000])


if __name__ == "__main__":
    os.environ["LOG_LEVEL"] = "WARNING"
    stack = start_test_stack()
    try:
        asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 200))
    finally:
        stack.close()
