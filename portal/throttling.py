"""API rate limits per user and per address, failing open: when the cache (Redis) is down the
API keeps answering, unthrottled, and says so in the log, instead of answering 500."""

from __future__ import annotations

import logging

from rest_framework import throttling

log = logging.getLogger(__name__)


class _FailOpen:
    def allow_request(self, request, view) -> bool:
        try:
            return super().allow_request(request, view)
        except Exception:
            log.warning("API throttle: cache unavailable, not throttling", exc_info=True)
            return True


class AnonThrottle(_FailOpen, throttling.AnonRateThrottle):
    pass


class UserThrottle(_FailOpen, throttling.UserRateThrottle):
    pass
