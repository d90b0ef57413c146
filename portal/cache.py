"""Django's Redis cache with a breaker: a Redis that hangs (a stopped process still accepts
connections) must not make every request wait for a socket timeout. After a connection error
or a timeout, calls fail at once for BREAK_SECONDS, then Redis is tried again. Every caller of
the cache already copes with it failing (throttles and lockouts fail open, the events endpoint
leaves its events to the sweep); this makes that failure immediate."""

from __future__ import annotations

import threading
import time

import redis
from django.core.cache.backends.redis import RedisCache, RedisCacheClient

BREAK_SECONDS = 2.0
FAILURES = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


class CacheUnavailable(redis.exceptions.ConnectionError):
    """The breaker is open: Redis failed a moment ago and is not asked again yet."""


class _Breaker:
    def __init__(self) -> None:
        self.open_until = 0.0
        self.lock = threading.Lock()

    def check(self) -> None:
        if time.monotonic() < self.open_until:
            raise CacheUnavailable("the cache failed a moment ago; not asking it again yet")

    def trip(self) -> None:
        with self.lock:
            self.open_until = time.monotonic() + BREAK_SECONDS


BREAKER = _Breaker()


class _GuardedClient(RedisCacheClient):
    """Every operation of Django's client, behind the breaker."""

    def __getattribute__(self, name: str):
        attribute = super().__getattribute__(name)
        if name.startswith("_") or not callable(attribute):
            return attribute

        def guarded(*args, **kwargs):
            BREAKER.check()
            try:
                return attribute(*args, **kwargs)
            except FAILURES:
                BREAKER.trip()
                raise

        return guarded


class BreakerRedisCache(RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = _GuardedClient
