"""API rate limits per user and per address, failing open: when the cache (Redis) is down the
API keeps answering, unthrottled, and says so in the log, instead of answering 500."""

from __future__ import annotations

import logging

from rest_framework import throttling

from portal.net import client_address

log = logging.getLogger(__name__)


class _FailOpen:
    def get_ident(self, request) -> str:
        # The one reading of the client's address (portal.net), not DRF's own: behind nginx
        # every request would share nginx's address, and X-Forwarded-For would be a free pass.
        return client_address(request) or "unknown"

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
