from __future__ import annotations

from django.http import QueryDict


def query_param(params: QueryDict, name: str, limit: int = 100, default: str = "") -> str:
    """A query parameter fit for a database query: NUL bytes (which PostgreSQL refuses) dropped,
    length bounded. Pages and the API read their filters through it."""
    return params.get(name, default).replace("\x00", "")[:limit]
