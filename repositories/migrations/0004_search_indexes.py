"""PostgreSQL search indexes: full text over name > short description > full description,
and trigrams on the full name for partial names. Nothing on SQLite, which searches plainly.

The expression must stay identical to repositories.search.SEARCH_VECTOR for the planner to use
the index."""

from django.db import migrations

SEARCH_VECTOR = (
    "setweight(to_tsvector('simple'::regconfig, translate(full_name, '/-_.', '    ')), 'A') || "
    "setweight(to_tsvector('simple'::regconfig, short_description), 'B') || "
    "setweight(to_tsvector('simple'::regconfig, full_description), 'C')"
)


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    schema_editor.execute(
        f"CREATE INDEX IF NOT EXISTS repository_search_gin ON repositories_repository USING gin (({SEARCH_VECTOR}))"
    )
    schema_editor.execute(
        "CREATE INDEX IF NOT EXISTS repository_full_name_trgm ON repositories_repository "
        "USING gin (full_name gin_trgm_ops)"
    )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("DROP INDEX IF EXISTS repository_search_gin")
    schema_editor.execute("DROP INDEX IF EXISTS repository_full_name_trgm")


class Migration(migrations.Migration):
    dependencies = [("repositories", "0003_full_name_star_count")]
    operations = [migrations.RunPython(create, drop)]
