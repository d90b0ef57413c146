"""Failed-login throttling, per username and per client address, in the cache (Redis).

A window of `AUTH_FAILURE_WINDOW` seconds allows `AUTH_FAILURES_PER_USERNAME` failures for a
username and `AUTH_FAILURES_PER_ADDRESS` from an address; past either, requests are refused
with a Retry-After before any credential is checked. If the cache is down, nothing is
throttled (logins keep working) and a warning is logged.
"""

from __future__ import annotations

import hashlib
import logging

from django.conf import settings
from django.core.cache import cache

log = logging.getLogger(__name__)


def _keys(username: str, address: str | None) -> list[tuple[str, int]]:
    keys = []
    if username:
        digest = hashlib.sha256(username.lower().encode()).hexdigest()[:32]
        keys.append((f"authfail:u:{digest}", settings.AUTH_FAILURES_PER_USERNAME))
    if address:
        keys.append((f"authfail:a:{address}", settings.AUTH_FAILURES_PER_ADDRESS))
    return keys


def retry_after(username: str, address: str | None) -> int | None:
    """Seconds to wait when this username or address has failed too often, else None."""
    try:
        counts = cache.get_many([key for key, _ in _keys(username, address)])
    except Exception:
        log.warning("auth throttle: cache unavailable", exc_info=True)
        return None
    for key, limit in _keys(username, address):
        if counts.get(key, 0) >= limit:
            return settings.AUTH_FAILURE_WINDOW
    return None


def record_failure(username: str, address: str | None) -> None:
    try:
        for key, _ in _keys(username, address):
            if not cache.add(key, 1, timeout=settings.AUTH_FAILURE_WINDOW):
                cache.incr(key)
    except Exception:
        log.warning("auth throttle: cache unavailable", exc_info=True)
