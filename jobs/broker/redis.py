"""kombu's Redis transport, with one Redis client per channel rather than one per command.

kombu's ``Channel.conn_or_acquire`` builds a new ``redis.Redis`` around the channel's connection
pool for every publish, acknowledgement and unacked-index update. Since redis-py 6 building one
costs more CPU than the command it sends; a client is only a handle on the pool and is safe to
share, so the channel keeps one for as long as it keeps that pool.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kombu.transport import redis


class Channel(redis.Channel):
    _shared_client: Any = None
    _shared_client_pool: Any = None

    @contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        if client:
            yield client
            return
        pool = self.pool
        if self._shared_client_pool is not pool:  # the pools are replaced after a disconnect
            self._shared_client = self._create_client()
            self._shared_client_pool = pool
        yield self._shared_client


class Transport(redis.Transport):
    Channel = Channel
