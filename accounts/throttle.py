"""Failed-login throttling, per username and per client address, in the cache (Redis).

A window of AUTH_FAILURE_WINDOW seconds allows AUTH_FAILURES_PER_USERNAME failures for a
username and AUTH_FAILURES_PER_ADDRESS from an address; past either, requests are refused with
a Retry-After. The counters are read by the caller together with whatever else it needs from
the cache (one round trip). If the cache is down nothing is throttled: logins keep working.
"""

from __future__ import annotations

import hashlib
import logging

from django.conf import settings
from django.core.cache import cache

log = logging.getLogger(__name__)


def keys(username: str, address: str | None) -> dict[str, int]:
    """Cache key → limit, for this username and address."""
    result = {}
    if username:
        digest = hashlib.sha256(username.lower().encode()).hexdigest()[:32]
        result[f"authfail:u:{digest}"] = settings.AUTH_FAILURES_PER_USERNAME
    if address:
        result[f"authfail:a:{address}"] = settings.AUTH_FAILURES_PER_ADDRESS
    return result


def retry_after(limits: dict[str, int], counts: dict) -> int | None:
    """Seconds to wait when any counter is at its limit, else None."""
    if any(counts.get(key, 0) >= limit for key, limit in limits.items()):
        return settings.AUTH_FAILURE_WINDOW
    return None


def cache_get_many(keys_: list[str]) -> dict:
    try:
        return cache.get_many(keys_)
    except Exception:
        log.warning("cache unavailable: not throttling, not remembering passwords", exc_info=True)
        return {}


def record_failure(limits: dict[str, int]) -> None:
    try:
        for key in limits:
            if not cache.add(key, 1, timeout=settings.AUTH_FAILURE_WINDOW):
                cache.incr(key)
    except Exception:
        log.warning("auth throttle: cache unavailable", exc_info=True)
