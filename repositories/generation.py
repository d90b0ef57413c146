"""The policy generation and the token server's memory of its decisions (issue 17).

The database moves the generation whenever anything the access policy reads changes, by
triggers (migration 0020), so a write through the ORM, QuerySet.update(), the shell or raw SQL
all count, and `last_used_at` and other per-use columns do not. A token request then reads that
one number and, when a request with the same credential and scopes was decided under the same
number, answers from this process's memory: no credential lookup, no policy queries. Revocation
still bites on the next request, since revoking moves the number.

What is kept: the actor's name and the grants (after the GC hold, which moves the number too),
never the secret (the key is an HMAC of it). An entry also ends at its credential's own expiry,
after PASSWORD_CACHE_SECONDS for a password, and after TOKEN_DECISION_CACHE_SECONDS in any case
(0 turns the memory off). Only successes are kept: a wrong secret always takes the full path,
with its throttle and audit."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection

TABLE = "dockyard_policy_generation"


def current() -> int | None:
    """The generation, or None when this database has none (no triggers: keep nothing)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT value FROM {TABLE} WHERE id = 1")  # noqa: S608 (a constant)
        row = cursor.fetchone()
    return int(row[0]) if row else None


@dataclass
class Decision:
    actor_name: str
    grants: list[dict]
    until: float  # monotonic
    touch: tuple[type, int] | None = None  # the credential row whose last_used_at to keep current
    touched: float = field(default_factory=time.monotonic)


class Decisions:
    """Decisions of this process under one generation; a new generation forgets them all."""

    MAX_ENTRIES = 50_000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._generation: int | None = None
        self._entries: dict[tuple, Decision] = {}
        self.hits = 0

    @staticmethod
    def enabled() -> bool:
        return settings.TOKEN_DECISION_CACHE_SECONDS > 0

    @staticmethod
    def key(kind: str, username: str, secret: str, scopes: tuple) -> tuple:
        mac = hmac.new(settings.SECRET_KEY.encode(), f"{kind}\0{username}\0{secret}".encode(), hashlib.sha256)
        return (mac.digest(), scopes)

    def get(self, generation: int | None, key: tuple) -> Decision | None:
        if generation is None:
            return None
        if generation != self._generation:
            with self._lock:
                if generation != self._generation:
                    self._entries = {}
                    self._generation = generation
            return None
        decision = self._entries.get(key)
        if decision is None or decision.until <= time.monotonic():
            return None
        self.hits += 1
        return decision

    def put(self, generation: int | None, key: tuple, decision: Decision) -> None:
        """Keep a decision made under `generation` (read before the decision was made: a change
        committed in between moves the number, and this entry is then never read)."""
        if generation is None:
            return
        with self._lock:
            if generation != self._generation:
                if self._generation is not None and generation < self._generation:
                    return  # decided under an older number than the one now kept
                self._entries = {}
                self._generation = generation
            if len(self._entries) >= self.MAX_ENTRIES:
                self._entries = {}
            self._entries[key] = decision

    def forget(self) -> None:
        with self._lock:
            self._entries = {}
            self._generation = None


DECISIONS = Decisions()
