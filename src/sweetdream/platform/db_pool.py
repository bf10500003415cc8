"""The web's database pool, handing its connections out in the order they were asked for.

SQLAlchemy's asyncio pool (`AsyncAdaptedQueuePool`) keeps its free connections in an
`asyncio.Queue`, which is not first come, first served. A connection given back wakes the first
waiter, but until that waiter runs, any request arriving meanwhile takes the connection straight
from the queue (the pool tries `get_nowait` first); the woken waiter finds the queue empty again and
waits anew at the back of the line. On a busy event loop a wake-up takes a turn of the loop, so
under load some requests lost that race again and again: at 64 shoppers the wait for a connection
was the larger part of the place-order p99 (issue #13).

`FairQueue` hands a connection given back straight to the longest waiter, so nobody can take it in
between: a free connection only waits in the queue when nobody waits for one. The checkout bench at
64 shoppers, alternating runs on one morning: uncontested place-order p99 307-426 ms, against 387-605
with SQLAlchemy's queue.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from sqlalchemy.pool import AsyncAdaptedQueuePool
from sqlalchemy.util import await_
from sqlalchemy.util.queue import Empty, Full, QueueCommon


class FairQueue(QueueCommon[Any]):
    """The pool's queue (SQLAlchemy's `QueueCommon` interface); the event loop's, like the pool's."""

    def __init__(self, maxsize: int = 0, use_lifo: bool = False) -> None:
        self.maxsize = maxsize
        self.use_lifo = use_lifo
        self._free: deque[Any] = deque()
        self._waiters: deque[asyncio.Future[Any]] = deque()

    def empty(self) -> bool:
        return not self._free

    def full(self) -> bool:
        return 0 < self.maxsize <= len(self._free)

    def qsize(self) -> int:
        return len(self._free)

    def put_nowait(self, item: Any) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():  # one that timed out or was cancelled is skipped
                waiter.set_result(item)
                return
        if self.full():
            raise Full()
        self._free.append(item)

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        # A pool never gives back more connections than it holds: a put never has to wait.
        self.put_nowait(item)

    def get_nowait(self) -> Any:
        if not self._free:
            raise Empty()
        return self._free.pop() if self.use_lifo else self._free.popleft()

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        if self._free or not block:  # a free connection means nobody is waiting: no one is overtaken
            return self.get_nowait()
        return await_(self._wait(timeout))

    async def _wait(self, seconds: float | None) -> Any:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Any] = loop.create_future()
        self._waiters.append(waiter)
        timer = loop.call_later(seconds, _time_out, waiter) if seconds is not None else None
        try:
            return await waiter
        except asyncio.CancelledError:
            # The request was cancelled: a connection handed to it just before goes to the next waiter.
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.put_nowait(waiter.result())
            raise
        finally:
            if timer is not None:
                timer.cancel()


def _time_out(waiter: asyncio.Future[Any]) -> None:
    if not waiter.done():
        waiter.set_exception(Empty())  # the pool turns it into its "QueuePool limit ... timed out" error


class FairQueuePool(AsyncAdaptedQueuePool):
    """`AsyncAdaptedQueuePool` with a `FairQueue`."""

    _queue_class = FairQueue
