"""Reads that cross relations, with their joins spelled out, so pages run a fixed number of
queries whatever the data size."""

from __future__ import annotations

from django.db.models import Count, Prefetch, QuerySet

from repositories.access import Actor, visible_repositories
from repositories.models import IndexEntry, Repository, Tag


def repository_list(*, actor: Actor, limit: int = 25) -> QuerySet[Repository]:
    return (
        visible_repositories(actor)
        .select_related("namespace")
        .annotate(tag_count=Count("tags", distinct=True))
        .order_by("-last_pushed_at", "namespace__name", "name")[:limit]
    )


def repository_tags(*, repository: Repository) -> QuerySet[Tag]:
    return (
        Tag.objects.filter(repository=repository)
        .select_related("manifest")
        .prefetch_related(Prefetch("manifest__entries", queryset=IndexEntry.objects.order_by("os", "architecture")))
        .order_by("-pushed_at", "name")
    )
