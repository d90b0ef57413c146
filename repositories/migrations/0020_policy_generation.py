"""The policy generation (issue 17): one number the database itself moves whenever something the
access policy reads changes, however it was changed (the ORM, QuerySet.update(), the shell, raw
SQL). The token server keeps its decisions in memory keyed on it (repositories/generation.py,
which also holds the list of watched tables and columns and creates the triggers, here and
again after every `migrate`).

The table is not a Django model on purpose: the test runner's flush empties every model's table,
and the generation must only ever grow."""

from django.db import migrations

TABLE = "dockyard_policy_generation"


def create(apps, schema_editor):
    from repositories.generation import install_triggers

    schema_editor.execute(f"CREATE TABLE {TABLE} (id integer PRIMARY KEY, value bigint NOT NULL)")
    if schema_editor.connection.vendor in ("postgresql", "sqlite"):
        schema_editor.execute(f"INSERT INTO {TABLE} (id, value) VALUES (1, 1)")
        install_triggers(schema_editor.connection)
    # Other databases: no triggers, so no row: the token server finds no generation and keeps
    # no decisions.


def drop(apps, schema_editor):
    from repositories.generation import PREFIX, WATCHED

    vendor = schema_editor.connection.vendor
    for table in WATCHED:
        for suffix in ("w", "u", "t", "i", "d"):
            if vendor == "postgresql":
                schema_editor.execute(f"DROP TRIGGER IF EXISTS {PREFIX}{table}_{suffix} ON {table}")
            elif vendor == "sqlite":
                schema_editor.execute(f"DROP TRIGGER IF EXISTS {PREFIX}{table}_{suffix}")
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
