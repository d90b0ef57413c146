"""Reads that cross relations, with their joins spelled out, so pages run a fixed number of
queries whatever the data size."""

from __future__ import annotations

from django.db.models import Count, Prefetch, Q, QuerySet

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


def last_sync_of(repository: Repository) -> tuple[object, str]:
    """(when the repository was last crawled cleanly, its current sync error). Derived from the
    runs, so a crawl that finds nothing new needs no write per repository."""
    from repositories.models import SyncRun

    run = (
        SyncRun.objects.filter(
            status__in=[SyncRun.Status.OK, SyncRun.Status.PARTIAL],
            dry_run=False,
            repository__in=["", repository.full_name],
        )
        # A run without an errors entry had none (a NULL key lookup must not exclude it).
        .filter(Q(report__errors__isnull=True) | ~Q(report__errors__has_key=repository.full_name))
        .order_by("-finished_at")
        .first()
    )
    return (run.finished_at if run else None), repository.sync_error
