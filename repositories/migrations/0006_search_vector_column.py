"""PostgreSQL: keep the weighted search document as a stored generated column.

Ranking (ts_rank) needs the document itself, which a GIN expression index cannot give back, so
PostgreSQL recomputed to_tsvector over every matching row's full description per query. A
generated column is computed once per write. The Django model does not declare it (SQLite has
no tsvector); queries reach it through repositories.search."""

from django.db import migrations

DOCUMENT = (
    "setweight(to_tsvector('simple'::regconfig, translate(full_name, '/-_.', '    ')), 'A') || "
    "setweight(to_tsvector('simple'::regconfig, short_description), 'B') || "
    "setweight(to_tsvector('simple'::regconfig, full_description), 'C')"
)


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("DROP INDEX IF EXISTS repository_search_gin")
    schema_editor.execute(
        f"ALTER TABLE repositories_repository ADD COLUMN search_vector tsvector GENERATED ALWAYS AS ({DOCUMENT}) STORED"
    )
    schema_editor.execute(
        "CREATE INDEX repository_search_vector_gin ON repositories_repository USING gin (search_vector)"
    )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("ALTER TABLE repositories_repository DROP COLUMN IF EXISTS search_vector")


class Migration(migrations.Migration):
    dependencies = [("repositories", "0005_repository_name_validator")]
    operations = [migrations.RunPython(create, drop)]
