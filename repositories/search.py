"""Repository search. On PostgreSQL: full text, weighted name > short description > full
description, OR-ed with a trigram-indexed substring match on the full name for partial names,
ranked. On SQLite: a plain substring match, names first."""

from __future__ import annotations

from django.db import connection
from django.db.models import BooleanField, Case, FloatField, Q, QuerySet, Value, When
from django.db.models.expressions import RawSQL

# A stored generated column on PostgreSQL (migrations/0006_search_vector_column.py):
# name (weight A) > short description (B) > full description (C), with a GIN index.
SEARCH_VECTOR = '"repositories_repository"."search_vector"'
MAX_QUERY_LENGTH = 100


def search_repositories(qs: QuerySet, query: str) -> QuerySet:
    """Filter `qs` to matches of `query` and annotate `rank` (higher is better)."""
    query = " ".join(query.replace("\x00", "").split())[:MAX_QUERY_LENGTH]
    if not query:
        return qs.annotate(rank=Value(0.0, output_field=FloatField()))
    if connection.vendor == "postgresql":
        tsquery = "plainto_tsquery('simple'::regconfig, %s)"
        # Names are lowercase by the grammar (a database constraint), so a case-sensitive test
        # against the lowercased query finds what ILIKE found, for less: LIKE is what the trigram
        # index rechecks on every candidate, and strpos() is cheaper again where no index helps.
        lowered = query.lower()
        like = "%" + lowered.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        matches = RawSQL(  # noqa: S611 - constant SQL; the user's query goes in as parameters
            f'(({SEARCH_VECTOR}) @@ {tsquery} OR "repositories_repository".full_name LIKE %s)',
            (query, like),
            output_field=BooleanField(),
        )
        # Where the name contains what was typed (a partial name: "gres" finds postgres), the
        # share of the name's trigrams that the query's can cover counts too: shorter names
        # first. It is pg_trgm's similarity() whenever every trigram of the query is in the name
        # (the query is whole words of it), and at most a little above it otherwise; the
        # name's count is stored (migration 0021), so this is a division, not a trigram set
        # per name. Description-only matches get 0.
        rank = RawSQL(  # noqa: S611 - as above
            f'ts_rank(({SEARCH_VECTOR}), {tsquery}) + CASE WHEN strpos("repositories_repository".full_name, %s) > 0 '
            'THEN least(1.0, cardinality(show_trgm(%s))::real / greatest(1, "repositories_repository".name_trigrams)) '
            "ELSE 0 END",
            (query, lowered, query),
            output_field=FloatField(),
        )
        return qs.filter(matches).annotate(rank=rank)
    terms = query.split()
    condition = Q()
    for term in terms:
        condition &= (
            Q(full_name__icontains=term) | Q(short_description__icontains=term) | Q(full_description__icontains=term)
        )
    name_hit = Q()
    for term in terms:
        name_hit &= Q(full_name__icontains=term)
    return qs.filter(condition).annotate(
        rank=Case(When(name_hit, then=Value(2.0)), default=Value(1.0), output_field=FloatField())
    )
