"""The policy generation (issue 17): one number the database itself moves whenever something the
access policy reads changes, however it was changed (the ORM, QuerySet.update(), the shell, raw
SQL). The token server keeps its decisions in memory keyed on it (repositories/generation.py).

The table is not a Django model on purpose: the test runner's flush empties every model's table,
and the generation must only ever grow.

PostgreSQL: a deferred constraint trigger per table moves it once per transaction, at commit, so
the row lock is taken last and held only while committing (no waits, no deadlocks with the
sync's transactions); the new number and the change become visible together. TRUNCATE moves it
at once (statement trigger). SQLite (one writer at a time): row triggers.

Only the columns that feed the policy move it on UPDATE: `last_used_at`, pull counts and push
times change on every use and must not."""

from django.db import migrations

TABLE = "dockyard_policy_generation"

# table: columns whose UPDATE changes an answer (INSERT and DELETE always do)
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

PG_FUNCTIONS = f"""
CREATE OR REPLACE FUNCTION dockyard_policy_bump_once() RETURNS trigger AS $$
BEGIN
    IF current_setting('dockyard.policy_bumped', true) IS DISTINCT FROM txid_current()::text THEN
        UPDATE {TABLE} SET value = value + 1 WHERE id = 1;
        PERFORM set_config('dockyard.policy_bumped', txid_current()::text, true);
    END IF;
    RETURN NULL;
END $$ LANGUAGE plpgsql;
CREATE OR REPLACE FUNCTION dockyard_policy_bump() RETURNS trigger AS $$
BEGIN
    UPDATE {TABLE} SET value = value + 1 WHERE id = 1;
    RETURN NULL;
END $$ LANGUAGE plpgsql;
"""


def _pg(table: str, columns: list[str]) -> list[str]:
    cols = ", ".join(columns)
    return [
        f"CREATE CONSTRAINT TRIGGER dockyard_policy_{table}_w AFTER INSERT OR DELETE ON {table} "
        "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION dockyard_policy_bump_once()",
        f"CREATE CONSTRAINT TRIGGER dockyard_policy_{table}_u AFTER UPDATE OF {cols} ON {table} "
        "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION dockyard_policy_bump_once()",
        f"CREATE TRIGGER dockyard_policy_{table}_t AFTER TRUNCATE ON {table} "
        "FOR EACH STATEMENT EXECUTE FUNCTION dockyard_policy_bump()",
    ]


def _sqlite(table: str, columns: list[str]) -> list[str]:
    bump = f"BEGIN UPDATE {TABLE} SET value = value + 1 WHERE id = 1; END"
    return [
        f"CREATE TRIGGER dockyard_policy_{table}_i AFTER INSERT ON {table} {bump}",
        f"CREATE TRIGGER dockyard_policy_{table}_d AFTER DELETE ON {table} {bump}",
        f"CREATE TRIGGER dockyard_policy_{table}_u AFTER UPDATE OF {', '.join(columns)} ON {table} {bump}",
    ]


def create(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    schema_editor.execute(f"CREATE TABLE {TABLE} (id integer PRIMARY KEY, value bigint NOT NULL)")
    schema_editor.execute(f"INSERT INTO {TABLE} (id, value) VALUES (1, 1)")
    if vendor == "postgresql":
        schema_editor.execute(PG_FUNCTIONS)
        for table, columns in WATCHED.items():
            for statement in _pg(table, columns):
                schema_editor.execute(statement)
    elif vendor == "sqlite":
        for table, columns in WATCHED.items():
            for statement in _sqlite(table, columns):
                schema_editor.execute(statement)
    else:
        # Other databases: no triggers, so no row: the token server finds no generation and
        # keeps no decisions (repositories/generation.py).
        schema_editor.execute(f"DELETE FROM {TABLE}")


def drop(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for table in WATCHED:
        if vendor == "postgresql":
            for suffix in ("w", "u", "t"):
                schema_editor.execute(f"DROP TRIGGER IF EXISTS dockyard_policy_{table}_{suffix} ON {table}")
        elif vendor == "sqlite":
            for suffix in ("i", "d", "u"):
                schema_editor.execute(f"DROP TRIGGER IF EXISTS dockyard_policy_{table}_{suffix}")
    if vendor == "postgresql":
        schema_editor.execute("DROP FUNCTION IF EXISTS dockyard_policy_bump_once()")
        schema_editor.execute("DROP FUNCTION IF EXISTS dockyard_policy_bump()")
    schema_editor.execute(f"DROP TABLE IF EXISTS {TABLE}")


class Migration(migrations.Migration):
    dependencies = [
        ("repositories", "0019_repository_name_trigram"),
        ("accounts", "0004_user_bio"),
        ("mfa", "0003_authenticator_type_uniq"),
    ]

    operations = [migrations.RunPython(create, drop)]
