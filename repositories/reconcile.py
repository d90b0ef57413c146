"""Reconcile: crawl the registry and make the portal's picture match it (DESIGN.md section 5).

Notifications are lost when the registry restarts (its queue is in memory) or when the portal
was unreachable, so this runs on a schedule and on demand. It costs the minimum in registry
requests: catalog pages, tag-list pages, one HEAD per tag, and a manifest GET (plus config or
platform GETs) only for digests the portal has not seen.

Safety: a repository is changed only from a complete view of it (every tag page and every HEAD
answered); tags of repositories missing from the catalog are removed only when the whole
catalog was read. A crawl that fails or is cut short deletes nothing it did not fully see.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from django.conf import settings
from django.db import close_old_connections, connections, transaction
from django.utils import timezone

from accounts.models import Namespace
from repositories.access import split_repository_name
from repositories.models import Manifest, Repository, SyncRun, Tag, UnclaimedRepository
from repositories.registry import get_client
from repositories.registry.client import RegistryClient, RegistryError
from repositories.services import repository_fill_descriptions_from_image
from repositories.sync import (
    Fetched,
    artifact_kind,
    fetch_manifest,
    refresh_artifact_flags,
    remove_unreferenced_manifests,
    repository_for_push,
    store_manifest,
    tag_upsert,
)

log = logging.getLogger(__name__)
SYNC_ACTOR = "registry sync"


@dataclass
class RegistryView:
    """One repository as the registry showed it, complete or with the error that cut it short."""

    name: str
    tags: dict[str, str] = field(default_factory=dict)  # tag -> digest
    fetched: dict[str, Fetched] = field(default_factory=dict)  # digests new to the portal
    error: str = ""


def crawl_repository(client: RegistryClient, name: str) -> RegistryView:
    """Registry reads for one repository (runs in a worker thread; only reads the database)."""
    view = RegistryView(name)
    try:
        for tag in client.tags(name):
            view.tags[tag] = client.head_manifest(name, tag).digest
        ns_name, repo_name = split_repository_name(name)
        known = set(
            Manifest.objects.filter(
                repository__namespace__name=ns_name, repository__name=repo_name, digest__in=set(view.tags.values())
            ).values_list("digest", flat=True)
        )
        for digest in sorted(set(view.tags.values()) - known):
            view.fetched[digest] = fetch_manifest(client, name, digest)
    except RegistryError as exc:
        view.error = f"{exc.__class__.__name__}: {exc}"
    finally:
        connections.close_all()  # this thread's connections; the pool's threads are reused
    return view


@dataclass
class Plan:
    create_repositories: list[str] = field(default_factory=list)
    create_tags: list[str] = field(default_factory=list)
    change_tags: list[str] = field(default_factory=list)
    remove_tags: list[str] = field(default_factory=list)
    unclaimed: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)

    def as_report(self, limit: int = 500) -> dict:
        return {key: value[:limit] if isinstance(value, list) else value for key, value in self.__dict__.items()}


def reconcile(
    *, client: RegistryClient | None = None, repository: str = "", dry_run: bool = False, concurrency: int | None = None
) -> SyncRun:
    """Crawl the registry (or one repository) and apply what differs; returns the SyncRun."""
    client = client or get_client()
    concurrency = concurrency or settings.SYNC_CONCURRENCY
    run = SyncRun.objects.create(repository=repository, dry_run=dry_run)
    requests_before = client.requests_made
    plan = Plan()
    catalog_complete = False
    try:
        if repository:
            names = [repository]
        else:
            names = list(client.catalog(page_size=settings.SYNC_PAGE_SIZE))
            catalog_complete = True
    except RegistryError as exc:
        return _finish(run, client, requests_before, plan, status=SyncRun.Status.FAILED, error=f"catalog: {exc}")

    manifests_fetched = tags_seen = 0
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for view in pool.map(lambda name: crawl_repository(client, name), names):
            close_old_connections()
            tags_seen += len(view.tags)
            manifests_fetched += _count_fetched(view.fetched.values())
            if view.error:
                plan.errors[view.name] = view.error
                if not dry_run:
                    _record_error(view.name, view.error)
                continue
            _apply_view(view, plan, dry_run=dry_run)
    if catalog_complete:
        _plan_vanished(set(names), plan, dry_run=dry_run)

    run.repositories, run.tags, run.manifests_fetched = len(names), tags_seen, manifests_fetched
    status = SyncRun.Status.PARTIAL if plan.errors else SyncRun.Status.OK
    error = f"{len(plan.errors)} repositories could not be read" if plan.errors else ""
    return _finish(run, client, requests_before, plan, status=status, error=error)


def _count_fetched(fetched) -> int:
    return sum(1 + _count_fetched(child for _, child in f.children) for f in fetched)


def _finish(
    run: SyncRun, client: RegistryClient, requests_before: int, plan: Plan, *, status: str, error: str
) -> SyncRun:
    run.status, run.error, run.finished_at = status, error, timezone.now()
    run.requests = client.requests_made - requests_before
    run.created = len(plan.create_repositories) + len(plan.create_tags)
    run.changed = len(plan.change_tags)
    run.removed = len(plan.remove_tags)
    run.report = plan.as_report()
    run.save()
    return run


def _apply_view(view: RegistryView, plan: Plan, *, dry_run: bool) -> None:
    ns_name, name = split_repository_name(view.name)
    namespace = Namespace.objects.filter(name=ns_name).first() if ns_name else None
    if namespace is None:
        plan.unclaimed.append(view.name)
        if not dry_run:
            _record_unclaimed(view)
        return
    repository = Repository.objects.filter(namespace=namespace, name=name).first()
    current = (
        dict(Tag.objects.filter(repository=repository).values_list("name", "manifest__digest")) if repository else {}
    )
    creates = sorted(t for t in view.tags if t not in current)
    changes = sorted(t for t in view.tags if t in current and current[t] != view.tags[t])
    removals = sorted(t for t in current if t not in view.tags)
    if repository is None and view.tags:
        plan.create_repositories.append(view.name)
    plan.create_tags += [f"{view.name}:{t}" for t in creates]
    plan.change_tags += [f"{view.name}:{t}" for t in changes]
    plan.remove_tags += [f"{view.name}:{t}" for t in removals]
    if not dry_run:
        if repository is not None and repository.sync_error:
            Repository.objects.filter(pk=repository.pk).update(sync_error="", sync_error_at=timezone.now())
        if view.name in _unclaimed_names():
            UnclaimedRepository.objects.filter(name=view.name).delete()  # its namespace exists now
    if dry_run or not (creates or changes or removals):
        return  # nothing changed: no writes at all
    with transaction.atomic():
        if repository is None:
            repository = repository_for_push(namespace=namespace, name=name, actor_name=SYNC_ACTOR)
        for fetched in view.fetched.values():
            store_manifest(repository, fetched)
        newest = None
        now = timezone.now()
        for tag in creates + changes:
            manifest = Manifest.objects.get(repository=repository, digest=view.tags[tag])
            # The registry does not say when or by whom a tag was pushed; the crawl saw it now.
            tag_upsert(repository=repository, name=tag, manifest=manifest, pushed_at=now, pushed_by="")
            if not artifact_kind(tag):
                newest = manifest
        if removals:
            Tag.objects.filter(repository=repository, name__in=removals).delete()
            remove_unreferenced_manifests(repository)
            refresh_artifact_flags(repository)
        if newest is not None:
            repository_fill_descriptions_from_image(repository=repository, manifest=newest)


def _plan_vanished(seen: set[str], plan: Plan, *, dry_run: bool) -> None:
    """Repositories the portal has tags for but the (complete) catalog no longer lists: their
    tags are gone. The repositories stay: they carry descriptions and permissions."""
    with_tags = Repository.objects.filter(tags__isnull=False).select_related("namespace").distinct()
    for repository in with_tags:
        if repository.full_name in seen:
            continue
        names = sorted(Tag.objects.filter(repository=repository).values_list("name", flat=True))
        plan.remove_tags += [f"{repository.full_name}:{t}" for t in names]
        if not dry_run:
            with transaction.atomic():
                Tag.objects.filter(repository=repository).delete()
                remove_unreferenced_manifests(repository)


def _unclaimed_names() -> set[str]:
    return set(UnclaimedRepository.objects.values_list("name", flat=True))


def _record_error(name: str, error: str) -> None:
    ns_name, repo_name = split_repository_name(name)
    Repository.objects.filter(namespace__name=ns_name, name=repo_name).exclude(sync_error=error).update(
        sync_error=error[:2000], sync_error_at=timezone.now()
    )


def _record_unclaimed(view: RegistryView) -> None:
    """Written only when new or changed, so a crawl that finds nothing new writes nothing."""
    now = timezone.now()
    existing = UnclaimedRepository.objects.filter(name=view.name).first()
    if existing is None:
        UnclaimedRepository.objects.create(
            name=view.name, tag_count=len(view.tags), first_seen_at=now, last_seen_at=now
        )
    elif existing.tag_count != len(view.tags):
        UnclaimedRepository.objects.filter(pk=existing.pk).update(tag_count=len(view.tags), last_seen_at=now)
