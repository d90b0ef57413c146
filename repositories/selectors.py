"""Reads that cross relations, with their joins spelled out, so pages run a fixed number of
queries whatever the data size."""

from __future__ import annotations

import datetime as dt
import re

from django.db.models import Count, Exists, F, OuterRef, Prefetch, Q, QuerySet

from repositories.access import Actor, visible_repositories
from repositories.models import DailyPulls, IndexEntry, Manifest, Repository, RepositoryGrant, Star, Tag


def visible_repository_exists(*, actor: Actor, full_name: str) -> bool:
    return visible_repositories(actor).filter(full_name=full_name).exists()


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


REPOSITORY_ORDERINGS = {
    "relevance": ["-rank", "-pull_count", "full_name"],
    "pulls": ["-pull_count", "full_name"],
    "stars": ["-star_count", "full_name"],
    "updated": [F("last_pushed_at").desc(nulls_last=True), "full_name"],
    "name": ["full_name"],
}


def repository_search(
    *,
    actor: Actor,
    q: str = "",
    namespace: str = "",
    visibility: str = "",
    starred_by=None,
    architecture: str = "",
    ordering: str = "",
) -> QuerySet[Repository]:
    """Visible repositories matching the filters, ranked or ordered. One query for the page
    (plus one for the count), whatever the page size."""
    from repositories.search import search_repositories

    qs = visible_repositories(actor).select_related("namespace")
    if namespace:
        qs = qs.filter(namespace__name=namespace)
    if visibility in ("public", "private"):
        qs = qs.filter(visibility=visibility)
    if starred_by is not None:
        qs = qs.filter(pk__in=Star.objects.filter(user=starred_by).values("repository_id"))
    if architecture:
        with_arch = Manifest.objects.filter(
            Q(architecture=architecture) | Q(entries__architecture=architecture), tags__isnull=False
        ).values("repository_id")
        qs = qs.filter(pk__in=with_arch)
    qs = search_repositories(qs, q)
    if actor.user is not None:
        qs = qs.annotate(is_starred=Exists(Star.objects.filter(user=actor.user, repository=OuterRef("pk"))))
    order = ordering or ("relevance" if q.strip() else "updated")
    return qs.order_by(*REPOSITORY_ORDERINGS.get(order, REPOSITORY_ORDERINGS["updated"]))


def repository_suggestion(*, actor: Actor, q: str) -> str:
    """For a search that found nothing: the visible repository name closest to what was typed
    ("did you mean acme/postgres?"), by trigram similarity on PostgreSQL (its index is already
    there for search), by difflib over a bounded set of names elsewhere. '' when none is close."""
    from django.db import connection
    from django.db.models import FloatField
    from django.db.models.expressions import RawSQL

    q = " ".join(q.split())[:100]
    if len(q) < 3:
        return ""
    visible = visible_repositories(actor)
    if connection.vendor == "postgresql":
        similarity = RawSQL('similarity("repositories_repository".full_name, %s)', (q,), output_field=FloatField())
        best = (
            visible.annotate(similarity=similarity)
            .filter(similarity__gt=0.25)
            .order_by("-similarity", "-pull_count")
            .values_list("full_name", flat=True)
            .first()
        )
        return best or ""
    import difflib

    names = list(visible.order_by("-pull_count").values_list("full_name", flat=True)[:5000])
    candidates = {name.split("/", 1)[-1]: name for name in names} | {name: name for name in names}
    close = difflib.get_close_matches(q.lower(), list(candidates), n=1, cutoff=0.6)
    return candidates[close[0]] if close else ""


def version_key(name: str) -> tuple:
    """Natural order: 1.9 < 1.10 < 1.10.1; numbers before words within a position."""
    parts = re.split(r"(\d+)", name)
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts if p)


TAG_ORDERINGS = {"newest": ["-pushed_at", "name"], "oldest": ["pushed_at", "name"], "name": ["name"]}


def tag_page_names(
    *, repository: Repository, ordering: str, name_filter: str = "", artifacts: bool = False
) -> list[str]:
    """Tag names in list order. Version order is computed here (databases cannot sort 1.10
    after 1.9); it reads only names, so a page still costs a fixed number of queries."""
    qs = Tag.objects.filter(repository=repository)
    if not artifacts:
        qs = qs.filter(artifact="")
    if name_filter:
        qs = qs.filter(name__icontains=name_filter)
    if ordering == "version":
        return sorted(qs.values_list("name", flat=True), key=version_key, reverse=True)
    return list(qs.order_by(*TAG_ORDERINGS.get(ordering, TAG_ORDERINGS["newest"])).values_list("name", flat=True))


def tags_by_name(*, repository: Repository, names: list[str]) -> list[Tag]:
    """The tags named, in the order given, with manifests and platforms: three queries."""
    rows = {
        tag.name: tag
        for tag in Tag.objects.filter(repository=repository, name__in=names)
        .select_related("manifest")
        .prefetch_related(
            Prefetch(
                "manifest__entries", queryset=IndexEntry.objects.select_related("child").order_by("os", "architecture")
            )
        )
    }
    return [rows[name] for name in names if name in rows]


def tag_siblings(*, tag: Tag) -> list[str]:
    """Every tag of the repository that points at this tag's manifest (itself included)."""
    return sorted(
        Tag.objects.filter(repository_id=tag.repository_id, manifest_id=tag.manifest_id).values_list("name", flat=True)
    )


def repository_grants(*, repository: Repository) -> QuerySet[RepositoryGrant]:
    return RepositoryGrant.objects.filter(repository=repository).select_related("team", "user", "robot__organization")


def daily_pulls(*, repository: Repository, days: int = 30):
    from django.utils import timezone

    since = timezone.now().date() - dt.timedelta(days=days - 1)
    return DailyPulls.objects.filter(repository=repository, day__gte=since).order_by("day")
