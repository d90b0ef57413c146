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
import json
import logging
import threading
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.db import DatabaseError, connection

log = logging.getLogger(__name__)

TABLE = "dockyard_policy_generation"
PREFIX = "dockyard_policy_"

# table: columns whose UPDATE changes an answer (INSERT and DELETE always do). Per-use columns
# (last_used_at, last_login, pull counts, push times) are left out on purpose.
WATCHED = {
    "accounts_user": ["username", "password", "is_active", "is_staff", "is_superuser"],
    "accounts_organization": ["name"],
    "accounts_namespace": ["name", "kind", "user_id", "organization_id"],
    "accounts_membership": ["organization_id", "user_id", "role"],
    "accounts_team": ["organization_id"],
    "accounts_teammembership": ["team_id", "user_id"],
    "accounts_robot": ["organization_id", "name", "secret_prefix", "secret_hash", "is_active"],
    "accounts_personalaccesstoken": ["user_id", "prefix", "token_hash", "scope", "expires_at", "revoked_at", "limits"],
    "repositories_repository": ["namespace_id", "name", "full_name", "visibility"],
    "repositories_repositorygrant": ["repository_id", "team_id", "user_id", "robot_id", "level"],
    "repositories_accessrule": ["organization_id", "team_id", "robot_id", "pattern", "level"],
    "repositories_gcrun": ["status"],  # the write hold
    "mfa_authenticator": ["user_id", "type"],  # a password stops working at the registry with 2FA
}

_PG_FUNCTIONS = """
CREATE OR REPLACE FUNCTION dockyard_policy_bump_once() RETURNS trigger AS $$
BEGIN
    IF current_setting('dockyard.policy_bumped', true) IS DISTINCT FROM txid_current()::text THEN
        UPDATE dockyard_policy_generation SET value = value + 1 WHERE id = 1;
        PERFORM set_config('dockyard.policy_bumped', txid_current()::text, true);
    END IF;
    RETURN NULL;
END $$ LANGUAGE plpgsql;
CREATE OR REPLACE FUNCTION dockyard_policy_bump() RETURNS trigger AS $$
BEGIN
    UPDATE dockyard_policy_generation SET value = value + 1 WHERE id = 1;
    RETURN NULL;
END $$ LANGUAGE plpgsql;
"""


def _trigger_sql(vendor: str, table: str, columns: list[str]) -> list[tuple[str, str]]:
    """(name, CREATE statement) of a watched table's triggers. PostgreSQL: deferred constraint
    triggers that move the number once per transaction, at commit (the change and the new
    number become visible together, and the row lock is taken last, held only while
    committing), and a statement trigger for TRUNCATE. SQLite (one writer at a time): row
    triggers."""
    cols = ", ".join(columns)
    if vendor == "postgresql":
        once = "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION dockyard_policy_bump_once()"
        return [
            (f"{PREFIX}{table}_w", f"CREATE CONSTRAINT TRIGGER {{name}} AFTER INSERT OR DELETE ON {table} {once}"),
            (f"{PREFIX}{table}_u", f"CREATE CONSTRAINT TRIGGER {{name}} AFTER UPDATE OF {cols} ON {table} {once}"),
            (
                f"{PREFIX}{table}_t",
                f"CREATE TRIGGER {{name}} AFTER TRUNCATE ON {table} FOR EACH STATEMENT "
                "EXECUTE FUNCTION dockyard_policy_bump()",
            ),
        ]
    bump = f"BEGIN UPDATE {TABLE} SET value = value + 1 WHERE id = 1; END"  # noqa: S608 (a constant)
    return [
        (f"{PREFIX}{table}_i", f"CREATE TRIGGER {{name}} AFTER INSERT ON {table} {bump}"),
        (f"{PREFIX}{table}_d", f"CREATE TRIGGER {{name}} AFTER DELETE ON {table} {bump}"),
        (f"{PREFIX}{table}_u", f"CREATE TRIGGER {{name}} AFTER UPDATE OF {cols} ON {table} {bump}"),
    ]


def _watched(conn) -> dict[str, list[str]]:
    """WATCHED as this database has it: tables that exist, columns that exist."""
    with conn.cursor() as cursor:
        tables = set(conn.introspection.table_names(cursor))
        found = {}
        for table, columns in WATCHED.items():
            if table not in tables:
                continue
            present = {column.name for column in conn.introspection.get_table_description(cursor, table)}
            missing = [column for column in columns if column not in present]
            if missing:
                log.error("policy generation: %s has no column %s; update WATCHED", table, ", ".join(missing))
            found[table] = [column for column in columns if column in present]
    return found


def install_triggers(conn=None, **_signal) -> None:
    """(Re)create every trigger. Run by migration 0020 and after every `migrate`
    (post_migrate): a later migration that rebuilds a table (SQLite copies it and drops the
    original) or drops a column (PostgreSQL, CASCADE) takes the table's triggers with it."""
    conn = conn or connection
    if conn.vendor not in ("postgresql", "sqlite"):
        return
    with conn.cursor() as cursor:
        if TABLE not in conn.introspection.table_names(cursor):
            return  # before migration 0020
        if conn.vendor == "postgresql":
            cursor.execute(_PG_FUNCTIONS)
        for table, columns in _watched(conn).items():
            for name, create in _trigger_sql(conn.vendor, table, columns):
                if conn.vendor == "postgresql":
                    cursor.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
                else:
                    cursor.execute(f"DROP TRIGGER IF EXISTS {name}")
                cursor.execute(create.format(name=name))
    _VERIFIED.clear()


def missing_triggers(conn=None) -> list[str]:
    """Names of the triggers this database should have and does not."""
    conn = conn or connection
    with conn.cursor() as cursor:
        tables = set(conn.introspection.table_names(cursor))
    expected = {
        name
        for table, columns in WATCHED.items()
        if table in tables
        for name, _ in _trigger_sql(conn.vendor, table, columns)
    }
    with conn.cursor() as cursor:
        if conn.vendor == "postgresql":
            cursor.execute("SELECT tgname FROM pg_trigger WHERE tgname LIKE %s", [PREFIX + "%"])
        else:
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE %s", [PREFIX + "%"])
        present = {row[0] for row in cursor.fetchall()}
    return sorted(expected - present)


VERIFY_SECONDS = 30.0
_VERIFIED: dict[str, float] = {}  # connection alias: until when its triggers are known complete


def _triggers_complete() -> bool:
    """Checked every VERIFY_SECONDS per process: without every trigger, nothing is remembered."""
    now = time.monotonic()
    if _VERIFIED.get(connection.alias, 0.0) > now:
        return True
    missing = missing_triggers(connection) if connection.vendor in ("postgresql", "sqlite") else ["(unsupported)"]
    if missing:
        log.error("policy generation: triggers missing (%s); token decisions are not remembered", ", ".join(missing))
        return False
    _VERIFIED[connection.alias] = now + VERIFY_SECONDS
    return True


def current() -> int | None:
    """The generation, or None: no generation on this database, a trigger missing, or the
    table not migrated yet (then nothing is remembered and every request is decided afresh)."""
    try:
        if not _triggers_complete():
            return None
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT value FROM {TABLE} WHERE id = 1")  # noqa: S608 (a constant)
            row = cursor.fetchone()
    except DatabaseError:
        log.warning("policy generation unreadable; token decisions are not remembered", exc_info=True)
        return None
    return int(row[0]) if row else None


@dataclass
class Decision:
    actor_name: str
    grants: list[dict]
    until: float  # monotonic
    touch: tuple[type, int] | None = None  # the credential row whose last_used_at to keep current
    touched: float = field(default_factory=time.monotonic)


class Decisions:
    """Decisions of this process under one generation; another generation forgets them all. The
    number and its entries are swapped together, so a reader of one number never sees entries
    kept under another."""

    MAX_ENTRIES = 5_000
    MAX_SCOPES = 4  # requests asking for more are decided afresh (bounds an entry's size)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state: tuple[int | None, dict[tuple, Decision]] = (None, {})
        self.hits = 0

    @staticmethod
    def enabled() -> bool:
        return settings.TOKEN_DECISION_CACHE_SECONDS > 0

    @staticmethod
    def key(kind: str, username: str, secret: str, scopes: tuple) -> tuple:
        message = json.dumps([kind, username, secret]).encode()  # unambiguous, whatever the bytes
        return (hmac.new(settings.SECRET_KEY.encode(), message, hashlib.sha256).digest(), scopes)

    def _at(self, generation: int) -> dict[tuple, Decision]:
        """The entries kept under `generation`; any other number (newer, or older: a reader that
        started before a change, or a database restored from a backup) starts afresh."""
        kept, entries = self._state
        if kept == generation:
            return entries
        with self._lock:
            kept, entries = self._state
            if kept != generation:
                entries = {}
                self._state = (generation, entries)
            return entries

    def get(self, generation: int | None, key: tuple) -> Decision | None:
        if generation is None:
            return None
        decision = self._at(generation).get(key)
        if decision is None or decision.until <= time.monotonic():
            return None
        self.hits += 1
        return decision

    def put(self, generation: int | None, key: tuple, decision: Decision) -> None:
        """Keep a decision made under `generation` (read before the decision was made: a change
        committed in between moves the number, and this entry is then never read)."""
        if generation is None or len(key[1]) > self.MAX_SCOPES:
            return
        entries = self._at(generation)
        with self._lock:
            if len(entries) >= self.MAX_ENTRIES:
                now = time.monotonic()
                for stale in [k for k, d in entries.items() if d.until <= now]:
                    del entries[stale]
                if len(entries) >= self.MAX_ENTRIES:
                    entries.clear()
            entries[key] = decision

    @property
    def _entries(self) -> dict[tuple, Decision]:
        return self._state[1]

    def forget(self) -> None:
        with self._lock:
            self._state = (None, {})


DECISIONS = Decisions()
