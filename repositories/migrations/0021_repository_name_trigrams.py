"""PostgreSQL: the number of distinct trigrams of each repository's full name, kept as a stored
generated column (like search_vector, not declared on the model).

Search ranks a name that contains the query by how much of the name the query covers. It was
pg_trgm's similarity(), computed per query for every matching name: a broad query's ~4,000
names cost ~8 ms of a ~25 ms ranking. With the name's count stored, the same figure is
trigrams(query) / trigrams(name), one division (repositories/search.py)."""

from django.db import migrations


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        "ALTER TABLE repositories_repository ADD COLUMN IF NOT EXISTS name_trigrams smallint "
        "GENERATED ALWAYS AS (cardinality(show_trgm(full_name))) STORED"
    )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("ALTER TABLE repositories_repository DROP COLUMN IF EXISTS name_trigrams")


class Migration(migrations.Migration):
    dependencies = [("repositories", "0020_policy_generation")]
    operations = [migrations.RunPython(create, drop)]
