"""The web process's Redis client, with a connection pool that hands out connections without a queue.

redis-py 5.3's asyncio pool holds one `asyncio.Lock` while it checks that the connection it hands
out is ready to send, and with hiredis that check reads the socket with a zero timeout: it waits a
turn of the event loop. Under load every Redis command of a worker queued behind all the others,
each holding the lock for a turn of a busy loop (redis/redis-py#3692): at 64 concurrent shoppers a
Redis round trip took 65 ms where a PostgreSQL one took 4, and placing an order makes four.

Handing out a connection needs no lock in one event loop: taking it from the free list is
synchronous, so no other task can take the same one, and its check can then wait its turn without
holding anyone else up (redis-py's own BlockingConnectionPool checks outside its lock too). The
arq worker keeps arq's own pool: it runs a few jobs at a time, not a request per shopper.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.connection import AbstractConnection


class UnqueuedConnectionPool(ConnectionPool):
    async def get_connection(self, command_name: Any = None, *keys: Any, **options: Any) -> AbstractConnection:
        connection = self.get_available_connection()  # synchronous: no other task runs meanwhile
        try:
            await self.ensure_connection(connection)
        except BaseException:
            await self.release(connection)
            raise
        return connection


def connect_redis(url: str, **options: Any) -> Redis:
    """`Redis.from_url(url, **options)` on an `UnqueuedConnectionPool`."""
    return Redis.from_pool(UnqueuedConnectionPool.from_url(url, **options))  # closing it closes the pool
