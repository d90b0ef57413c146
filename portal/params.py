from __future__ import annotations

from django.http import QueryDict


def query_param(params: QueryDict, name: str, limit: int = 100, default: str = "") -> str:
    """A query parameter fit for a database query: NUL bytes (which PostgreSQL refuses) dropped,
    length bounded. Pages and the API read their filters through it."""
    return params.get(name, default).replace("\x00", "")[:limit]


def id_param(value: str | None) -> int:
    """A row id from a form or query string, or 0 (which no row has) for anything else: a
    hand-edited `token=abc` finds nothing instead of raising a 500."""
    value = (value or "").strip()
    return int(value) if value.isdigit() and len(value) <= 18 else 0
