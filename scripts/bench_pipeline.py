"""The fulfilment bench: how many orders per second ARQ worker processes fulfil, and how long an
order waits between its commit and PROCESSING.

    BENCH_SECONDS=5 .venv/bin/python scripts/bench.py pipeline   # BENCH_PIPELINE_ORDERS: 600 by default

Orders are placed through the real service (OrderService.place: the checkout transaction, its
outbox row, the relay's enqueue right after commit) by this process; `sweetdream worker`
processes, started as production starts them, fulfil them (cash on delivery: PENDING ->
PROCESSING, then the confirmation email written by the file mailer, then the row marked
delivered). For 1 and then 2 worker processes:

  backlog: BENCH_PIPELINE_ORDERS orders are placed with no worker running; then the workers start
           and drain them. Fulfilled orders per second = orders / (first PROCESSING -> last row
           delivered), from the database's own timestamps (worker start-up is not counted).
  steady:  with the workers running, orders are placed at 60 % of that backlog rate for
           BENCH_SECONDS; the delay from the moment the checkout returned (committed and
           enqueued: when the shopper's confirmation page would load) to the order's PROCESSING
           event gives p50/p99.

After each run the books are checked: every order PROCESSING, one confirmation email each,
no outbox row failed.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from statistics import quantiles
from typing import Any

from bench import BENCH_DIR, Bench, Report, Result, Verdict, stop_process
from bench_checkout import Shop

BACKLOG = int(os.environ.get("BENCH_PIPELINE_ORDERS", "600"))
WORKER_COUNTS = (1, 2)
STEADY_SHARE = 0.6
PLACING_CONCURRENCY = 16
SHOPPERS = 64
DRAIN_TIMEOUT = 300.0


@dataclass
class PipelineRun:
    workers: int
    backlog_orders: int
    fulfilled_per_second: float
    steady_offered_per_second: float
    steady_orders: int
    delay_p50_ms: float
    delay_p99_ms: float
    failed_rows: int
    orders_not_processing: int
    orders_without_one_email: int


class Pipeline:
    def __init__(self, shop: Shop) -> None:
        self.shop = shop
        self.users: list[uuid.UUID] = []
        self.variant_ids: list[uuid.UUID] = []

    async def arrange(self) -> None:
        from sqlalchemy import select

        from sweetdream.accounts.models import User

        shoppers = await self.shop.create_shoppers(SHOPPERS)
        emails = [s.email for s in shoppers]
        async with self.shop.sessions() as db:
            self.users = list(await db.scalars(select(User.id).where(User.email.in_(emails))))
        labels = [f"P{i}" for i in range(16)]
        _, ids = await self.shop.create_product("Pipeline cake", [1_000_000] * len(labels), labels)
        self.variant_ids = [uuid.UUID(v) for v in ids]

    async def place_one(self, index: int) -> tuple[uuid.UUID, datetime]:
        from sweetdream.accounts.models import User
        from sweetdream.cart.models import CartItem
        from sweetdream.cart.services import CartService, DbCartStore
        from sweetdream.orders.models import PaymentMethod
        from sweetdream.orders.services import OrderService, Shipping

        user_id = self.users[index % len(self.users)]
        variant_id = self.variant_ids[index % len(self.variant_ids)]
        async with self.shop.sessions() as db:
            db.add(CartItem(user_id=user_id, variant_id=variant_id, quantity=1, price_seen=120_000))
            await db.commit()
            user = await db.get(User, user_id)
            assert user is not None
            shipping = Shipping("Bench", "0901234567", "1 Nguyễn Huệ, Quận 1, TP.HCM", "", PaymentMethod.COD)
            order, _ = await OrderService(db, self.shop.redis).place(
                user, CartService(db, DbCartStore(db, user_id)), shipping, uuid.uuid4().hex, 30_000, 500_000
            )
            return order.id, datetime.now(UTC)

    async def place(self, count: int, rate: float | None = None) -> dict[uuid.UUID, datetime]:
        """Place `count` orders, as fast as PLACING_CONCURRENCY allows or at `rate` per second.
        Orders of one shopper are serialised by the checkout's user lock, so shoppers rotate."""
        gate = asyncio.Semaphore(PLACING_CONCURRENCY)
        started = time.monotonic()

        async def one(index: int) -> tuple[uuid.UUID, datetime]:
            if rate:
                await asyncio.sleep(max(0.0, started + index / rate - time.monotonic()))
            async with gate:
                return await self.place_one(index)

        return dict(await asyncio.gather(*(one(i) for i in range(count))))

    async def wait_drained(self) -> None:
        from sqlalchemy import func, select

        from sweetdream.orders.models import OutboxEvent

        deadline = time.monotonic() + DRAIN_TIMEOUT
        while time.monotonic() < deadline:
            async with self.shop.sessions() as db:
                waiting = await db.scalar(
                    select(func.count()).where(OutboxEvent.delivered_at.is_(None), OutboxEvent.failed_at.is_(None))
                )
            if not waiting:
                return
            await asyncio.sleep(0.25)
        raise RuntimeError(f"the workers did not drain the outbox within {DRAIN_TIMEOUT:.0f} s")

    async def fulfilled_rate(self, order_ids: list[uuid.UUID]) -> float:
        """Orders per second from the first PROCESSING to the last order.placed row delivered."""
        from sqlalchemy import func, select

        from sweetdream.orders.models import OrderEvent, OutboxEvent

        ids = [str(i) for i in order_ids]
        async with self.shop.sessions() as db:
            first = await db.scalar(
                select(func.min(OrderEvent.created_at)).where(
                    OrderEvent.order_id.in_(order_ids), OrderEvent.to_status == "PROCESSING"
                )
            )
            last = await db.scalar(
                select(func.max(OutboxEvent.delivered_at)).where(
                    OutboxEvent.topic == "order.placed", OutboxEvent.payload["order_id"].astext.in_(ids)
                )
            )
        assert first is not None and last is not None
        return len(order_ids) / max((last - first).total_seconds(), 1e-3)

    async def delays_ms(self, placed: dict[uuid.UUID, datetime]) -> list[float]:
        """Checkout returned -> PROCESSING, per order."""
        from sqlalchemy import select

        from sweetdream.orders.models import OrderEvent

        async with self.shop.sessions() as db:
            rows = await db.execute(
                select(OrderEvent.order_id, OrderEvent.created_at).where(
                    OrderEvent.order_id.in_(list(placed)), OrderEvent.to_status == "PROCESSING"
                )
            )
            return [(processing - placed[order_id]).total_seconds() * 1000 for order_id, processing in rows.all()]

    async def books(self, order_ids: list[uuid.UUID]) -> tuple[int, int, int]:
        """(failed outbox rows, orders not PROCESSING, orders without exactly one confirmation)."""
        from sqlalchemy import func, select

        from sweetdream.fulfillment.models import SentMessage
        from sweetdream.orders.models import Order, OrderStatus, OutboxEvent

        async with self.shop.sessions() as db:
            failed = await db.scalar(select(func.count()).where(OutboxEvent.failed_at.is_not(None))) or 0
            not_processing = (
                await db.scalar(
                    select(func.count()).where(Order.id.in_(order_ids), Order.status != OrderStatus.PROCESSING)
                )
                or 0
            )
            keys = [f"order:{i}:confirmation" for i in order_ids]
            sent = await db.scalar(select(func.count()).where(SentMessage.key.in_(keys))) or 0
        return int(failed), int(not_processing), len(order_ids) - int(sent)


def start_workers(env: dict[str, str], count: int) -> list[subprocess.Popen[bytes]]:
    sweetdream = str(Path(sys.executable).parent / "sweetdream")
    worker_env = {**env, "SWEETDREAM_VAR_DIR": str(BENCH_DIR / "var")}
    processes = []
    for n in range(count):
        log = (BENCH_DIR / f"worker-{n + 1}.log").open("wb")
        processes.append(subprocess.Popen([sweetdream, "worker"], env=worker_env, stdout=log, stderr=subprocess.STDOUT))
    return processes


def percentile(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return quantiles(values, n=100, method="inclusive")[q - 1]


async def measure(bench: Bench, workers: int, pipeline: Pipeline) -> PipelineRun:
    print(f"  {workers} worker(s): placing a backlog of {BACKLOG} orders with no worker running", flush=True)
    backlog = list(await pipeline.place(BACKLOG))
    processes = start_workers(bench.env, workers)
    try:
        await pipeline.wait_drained()
        rate = await pipeline.fulfilled_rate(backlog)
        offered = STEADY_SHARE * rate
        count = max(1, int(offered * bench.seconds))
        print(f"  {workers} worker(s): drained at {rate:.0f}/s; now {count} orders at {offered:.0f}/s", flush=True)
        steady = await pipeline.place(count, rate=offered)
        await pipeline.wait_drained()
        delays = await pipeline.delays_ms(steady)
    finally:
        for process in processes:
            stop_process(process)
    failed, not_processing, email_problems = await pipeline.books(backlog + list(steady))
    return PipelineRun(
        workers=workers,
        backlog_orders=len(backlog),
        fulfilled_per_second=rate,
        steady_offered_per_second=offered,
        steady_orders=len(steady),
        delay_p50_ms=percentile(delays, 50),
        delay_p99_ms=percentile(delays, 99),
        failed_rows=failed,
        orders_not_processing=not_processing,
        orders_without_one_email=email_problems,
    )


async def run_all(bench: Bench) -> list[PipelineRun]:
    shop = Shop(bench.env)
    try:
        pipeline = Pipeline(shop)
        await pipeline.arrange()
        return [await measure(bench, workers, pipeline) for workers in WORKER_COUNTS]
    finally:
        await shop.close()


def pipeline_scenario(bench: Bench) -> Report:
    runs = asyncio.run(run_all(bench))
    row = "{:>8} {:>14} {:>16} {:>14} {:>10} {:>10}"
    print("\n" + row.format("workers", "fulfilled/s", "steady offered/s", "steady orders", "p50 ms", "p99 ms"))
    for r in runs:
        print(
            row.format(
                r.workers,
                f"{r.fulfilled_per_second:.0f}",
                f"{r.steady_offered_per_second:.0f}",
                r.steady_orders,
                f"{r.delay_p50_ms:.0f}",
                f"{r.delay_p99_ms:.0f}",
            )
        )
    print("(fulfilled/s: a backlog drained by N worker processes; p50/p99: checkout returned -> PROCESSING)")
    results = [
        Result(
            name=f"{r.workers}-worker",
            path="fulfil COD orders",
            concurrency=r.workers,
            requests_per_second=r.fulfilled_per_second,
            p50_ms=r.delay_p50_ms,
            p99_ms=r.delay_p99_ms,
            non_2xx=r.failed_rows,
            socket_errors=0,
        )
        for r in runs
    ]
    problems = sum(r.failed_rows + r.orders_not_processing + r.orders_without_one_email for r in runs)
    verdicts = [
        Verdict(
            target="every order fulfilled once: PROCESSING, one confirmation email, no failed outbox row",
            passed=problems == 0,
            detail=f"{problems} problem(s)",
        )
    ]
    notes: dict[str, Any] = {"pipeline_runs": [r.__dict__ for r in runs], "backlog_orders": BACKLOG}
    return Report("pipeline", results, verdicts, notes=notes)
