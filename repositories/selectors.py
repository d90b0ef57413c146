"""Reads that cross relations, with their joins spelled out, so pages run a fixed number of
queries whatever the data size."""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from dataclasses import dataclass

from django.db.models import Count, Exists, F, OuterRef, Prefetch, Q, QuerySet

from repositories.access import Actor, visible_repositories
from repositories.models import (
    ArtifactLink,
    DailyPulls,
    IndexEntry,
    Manifest,
    Repository,
    RepositoryGrant,
    Star,
    Tag,
)


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


TAG_ORDERINGS = {
    "newest": ["-pushed_at", "name"],
    "oldest": ["pushed_at", "name"],
    "name": ["name"],
    "version": ["version_key", "name"],  # repositories/versions.py, stored on each tag
}
PLATFORM_RE = re.compile(r"^([a-z0-9._-]{1,32})/([a-z0-9._-]{1,32})(?:/([a-z0-9._-]{1,32}))?$")


def _with_platforms(qs: QuerySet[Tag]) -> QuerySet[Tag]:
    return qs.select_related("manifest").prefetch_related(
        Prefetch(
            "manifest__entries",
            queryset=IndexEntry.objects.select_related("child").order_by("os", "architecture", "variant"),
        )
    )


def tag_list(
    *,
    repository: Repository,
    ordering: str = "newest",
    name_filter: str = "",
    artifacts: bool = False,
    platform: str = "",
) -> QuerySet[Tag]:
    """A repository's tags in list order, with manifests and platforms, for a paginator: every
    ordering is served by an index, so a page costs the same at 100 tags or 100,000. `platform`
    (os/arch[/variant], any case) keeps the tags with an image for it; another form keeps none."""
    qs = Tag.objects.filter(repository=repository)
    if not artifacts:
        qs = qs.filter(artifact="")
    if name_filter:
        qs = qs.filter(name__icontains=name_filter)
    platform = (platform or "").lower()
    match = PLATFORM_RE.match(platform)
    if platform and not match:
        return qs.none()  # a filter that names no platform matches no tag (the API answers 400)
    if match:
        os_name, arch, variant = match.group(1), match.group(2), match.group(3) or ""
        # Walking the ordering's index, each tag is tested until the page is full: the page is
        # cheap at any size; its count (the paginator's) is a scan of the repository's tags.
        single = Q(manifest__os=os_name, manifest__architecture=arch)
        entry = IndexEntry.objects.filter(index_id=OuterRef("manifest_id"), os=os_name, architecture=arch)
        if variant:
            single &= Q(manifest__variant=variant)
            entry = entry.filter(variant=variant)
        qs = qs.filter(single | Exists(entry))
    return _with_platforms(qs.order_by(*TAG_ORDERINGS.get(ordering, TAG_ORDERINGS["newest"])))


PLATFORMS_CACHE_SECONDS = 600


def _platforms_key(repository_id: int) -> str:
    return f"repository-platforms:{repository_id}"


def repository_platforms(*, repository: Repository) -> list[str]:
    """The platforms the repository's images are built for (the tag list's platform picker).
    Two DISTINCT scans cost ~80 ms at 100,000 tags, so the answer is cached; the sync forgets it
    when it stores or removes manifests (forget_platforms), and it expires after ten minutes."""
    from django.core.cache import cache

    key = _platforms_key(repository.pk)
    try:
        cached = cache.get(key)
    except Exception:  # the cache is down: answer from the database
        cached = None
    if cached is not None:
        return cached
    singles = Manifest.objects.filter(repository=repository).exclude(os="").values_list("os", "architecture", "variant")
    entries = IndexEntry.objects.filter(index__repository=repository).values_list("os", "architecture", "variant")
    found = set(singles.distinct()) | set(entries.distinct())
    platforms = sorted(
        "/".join(p for p in parts if p) for parts in found if parts[0] and parts[1] and parts[0] != "unknown"
    )
    with contextlib.suppress(Exception):  # a cache that is down caches nothing
        cache.set(key, platforms, PLATFORMS_CACHE_SECONDS)
    return platforms


def forget_platforms(repository_id: int) -> None:
    """The repository's manifests changed: its platform list is computed again when next asked
    (once the change is committed, so that no reader caches the old list in between)."""
    from django.core.cache import cache
    from django.db import transaction

    def forget() -> None:
        with contextlib.suppress(Exception):  # the cache is down: the entry expires on its own
            cache.delete(_platforms_key(repository_id))

    transaction.on_commit(forget)


def tags_by_name(*, repository: Repository, names: list[str]) -> list[Tag]:
    """The tags named, in the order given, with manifests and platforms: three queries."""
    rows = {tag.name: tag for tag in _with_platforms(Tag.objects.filter(repository=repository, name__in=names))}
    return [rows[name] for name in names if name in rows]


def tag_siblings(*, tag: Tag) -> list[str]:
    """Every tag of the repository that points at this tag's manifest (itself included)."""
    return sorted(
        Tag.objects.filter(repository_id=tag.repository_id, manifest_id=tag.manifest_id).values_list("name", flat=True)
    )


ATTESTATION_ENTRY = "attestation-manifest"  # docker buildx: provenance inside the index


def is_attestation_entry(entry: IndexEntry) -> bool:
    return entry.os == "unknown" and entry.architecture == "unknown"


@dataclass
class TagDetail:
    """Everything the tag page and GET …/tags/{tag}/ show of one tag."""

    tag: Tag
    manifest: Manifest
    platforms: list[dict]
    sharing: list[str]  # the other tags on this digest
    attachments: list[dict]  # attestations and SBOMs about this image or its platforms
    last_pulled_at: dt.datetime | None


def _platform(manifest: Manifest, os_name: str, arch: str, variant: str) -> dict:
    details = manifest.details or {}
    return {
        "os": os_name,
        "architecture": arch,
        "variant": variant,
        "platform": "/".join(p for p in (os_name, arch, variant) if p),
        "digest": manifest.digest,
        "media_type": manifest.media_type,
        "size": manifest.total_size,
        "created": manifest.image_created_at,
        "layers": details.get("layers", []),
        "labels": manifest.labels,
        "entrypoint": details.get("entrypoint", []),
        "cmd": details.get("cmd", []),
        "exposed_ports": details.get("exposed_ports", []),
        "env_names": details.get("env_names", []),
        "details_known": manifest.details_version > 0,
        "signature_status": manifest.signature_status,
        "signature_key": manifest.signature_key,
    }


def tag_detail(*, repository: Repository, tag_name: str) -> TagDetail | None:
    """One tag, fully described: a fixed number of queries whatever the repository's size."""
    tag = Tag.objects.filter(repository=repository, name=tag_name).select_related("manifest").first()
    if tag is None:
        return None
    manifest = tag.manifest
    entries = []
    if manifest.is_index:
        entries = list(
            IndexEntry.objects.filter(index=manifest).select_related("child").order_by("os", "architecture", "variant")
        )
        platforms = [
            _platform(e.child, e.os, e.architecture, e.variant) for e in entries if not is_attestation_entry(e)
        ]
    else:
        platforms = [_platform(manifest, manifest.os, manifest.architecture, manifest.variant)]
    digests = {manifest.digest} | {e.child.digest for e in entries}
    by_subject: dict[str, list[dict]] = {}
    for link in ArtifactLink.objects.filter(repository=repository, subject_digest__in=digests).select_related(
        "artifact"
    ):
        for item in link.artifact.artifact.get("attached") or []:
            by_subject.setdefault(link.subject_digest, []).append(
                {**item, "artifact": link.artifact.digest, "subject": link.subject_digest}
            )
    platform_of = {e.child.digest: e.platform for e in entries}
    attachments = []
    for digest in [manifest.digest, *sorted(digests - {manifest.digest})]:
        for item in by_subject.get(digest, []):
            attachments.append({**item, "platform": platform_of.get(digest, "")})
    sharing = sorted(
        Tag.objects.filter(repository=repository, manifest=manifest).exclude(pk=tag.pk).values_list("name", flat=True)
    )
    pulled = [m for m in [manifest, *[e.child for e in entries]] if m.last_pulled_at]
    return TagDetail(
        tag=tag,
        manifest=manifest,
        platforms=platforms,
        sharing=sharing,
        attachments=attachments,
        last_pulled_at=max((m.last_pulled_at for m in pulled), default=None),
    )


def attachment(*, repository: Repository, artifact_digest: str, layer_digest: str) -> dict | None:
    """An attestation or SBOM of this repository, by its manifest and blob digests (for the
    download), if the portal has it linked to an image."""
    manifest = Manifest.objects.filter(repository=repository, digest=artifact_digest).first()
    if manifest is None or not ArtifactLink.objects.filter(artifact=manifest).exists():
        return None
    for item in manifest.artifact.get("attached") or []:
        if item.get("layer") == layer_digest:
            return item
    return None


def repository_grants(*, repository: Repository) -> QuerySet[RepositoryGrant]:
    return RepositoryGrant.objects.filter(repository=repository).select_related("team", "user", "robot__organization")


def daily_pulls(*, repository: Repository, days: int = 30):
    from django.utils import timezone

    since = timezone.now().date() - dt.timedelta(days=days - 1)
    return DailyPulls.objects.filter(repository=repository, day__gte=since).order_by("day")
