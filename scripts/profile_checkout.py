"""Profile the checkout cycle in process (pyinstrument): add to cart (HTMX), the checkout page, place.

    .venv/bin/python scripts/profile_checkout.py [N] [--plain] [--statements]   # N cycles (default 200)

Prints CPU per step (this process, client included), the SQL statements and Redis round trips of
each step, and the profile of all steps together. `--plain` measures the same cycles without the
profiler (its sampling adds CPU of its own); `--statements` prints the SQL of one cycle's steps.
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
from advanced_alchemy.extensions.litestar import SQLAlchemyPlugin  # noqa: E402
from pyinstrument import Profiler  # noqa: E402
from redis.asyncio.connection import AbstractConnection as Connection  # noqa: E402
from sqlalchemy import event, update  # noqa: E402
from sqlalchemy.ext.asyncio import create_async_engine  # noqa: E402

from tests.integration.helpers import register  # noqa: E402
from tests.support import start_test_stack  # noqa: E402


def field(html: str, name: str) -> str:
    match = re.search(rf'<input[^>]*name="{name}"[^>]*value="([^"]*)"', html) or re.search(
        rf'<textarea[^>]*name="{name}"[^>]*>([^<]*)</textarea>', html
    )
    assert match, name
    return unescape(match.group(1))


async def main(n: int, plain: bool, show_statements: bool) -> None:
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
        statements: dict[str, int] = defaultdict(int)
        round_trips: dict[str, int] = defaultdict(int)
        step = [""]  # the step being timed: its statements and Redis round trips are counted

        seen: dict[str, list[str]] = defaultdict(list)

        def count_statement(conn: object, cursor: object, statement: str, *args: object) -> None:
            if step[0]:
                statements[step[0]] += 1
                seen[step[0]].append(" ".join(statement.split())[:300])

        sync_engine = app.plugins.get(SQLAlchemyPlugin).config[0].get_engine().sync_engine
        event.listen(sync_engine, "before_cursor_execute", count_statement)
        send = Connection.send_packed_command

        async def counted_send(self: Connection, *args: object, **kwargs: object) -> None:
            if step[0]:
                round_trips[step[0]] += 1  # one send is one round trip (a pipeline is one send)
                packed = args[0] if args else b""
                chunks = packed if isinstance(packed, list | tuple) else [packed]
                words = b"".join(bytes(chunk) for chunk in chunks).split(b"\r\n")[2::2]
                seen[step[0]].append("redis: " + " ".join(w.decode(errors="replace")[:40] for w in words[:8]))
            await send(self, *args, **kwargs)  # type: ignore[arg-type]

        Connection.send_packed_command = counted_send  # type: ignore[method-assign]

        async def cycle() -> None:
            token = client.cookies["sd_csrf"]
            hx = {"hx-request": "true", "x-csrftoken": token}
            step[0], started = "add", time.process_time()
            added = await client.post("/cart/items", data={"variant_id": variant, "quantity": "1"}, headers=hx)
            assert added.status_code == 200, added.status_code
            cpu["add"] += time.process_time() - started
            step[0], started = "checkout page", time.process_time()
            checkout = await client.get("/checkout/")
            assert checkout.status_code == 200, checkout.status_code
            cpu["checkout page"] += time.process_time() - started
            step[0] = ""
            names = ("idempotency_key", "reviewed", "reviewed_lines", "name", "phone", "address")
            data = {name: field(checkout.text, name) for name in names}
            data.update(note="", payment_method="COD", _csrf_token=token)
            step[0], started = "place", time.process_time()
            placed = await client.post("/checkout/", data=data)
            assert placed.status_code == 303, (placed.status_code, placed.text[:500])
            cpu["place"] += time.process_time() - started
            step[0] = ""
            for key in await redis.keys("rl:*"):  # the 10-a-minute limit is not what is measured
                await redis.delete(key)

        for _ in range(5):
            await cycle()
        cpu.clear()
        statements.clear()
        round_trips.clear()
        if show_statements:
            seen.clear()
            await cycle()
            for name, texts in seen.items():
                print(f"--- {name}: {statements[name]} statements, {round_trips[name]} Redis round trips")
                print("\n".join(texts))
            cpu.clear()
            statements.clear()
            round_trips.clear()
        profiler = Profiler(interval=0.0005, async_mode="enabled")
        if plain:
            for _ in range(n):
                await cycle()
        else:
            with profiler:
                for _ in range(n):
                    await cycle()
        for name, seconds in cpu.items():
            print(
                f"{name}: {seconds / n * 1000:.2f} ms CPU per request ({'plain' if plain else 'profiled'}), "
                f"{statements[name] / n:.1f} SQL statements, {round_trips[name] / n:.1f} Redis round trips"
            )
        if not plain:
            print(profiler.output_text(unicode=False, color=False, show_all=False)[:30000])


if __name__ == "__main__":
    os.environ["LOG_LEVEL"] = "WARNING"
    stack = start_test_stack()
    try:
        numbers = [arg for arg in sys.argv[1:] if arg.isdigit()]
        asyncio.run(main(int(numbers[0]) if numbers else 200, "--plain" in sys.argv, "--statements" in sys.argv))
    finally:
        stack.close()
