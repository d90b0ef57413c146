"""Reconcile: crawl the registry and make the portal's picture match it (DESIGN.md section 5).

Notifications are lost when the registry restarts (its queue is in memory) or when the portal
was unreachable, so this runs on a schedule and on demand. It costs the minimum in registry
requests: catalog pages, tag-list pages, one HEAD per tag, and a manifest GET (plus config or
platform GETs) only for digests the portal has not seen.

Safety (DESIGN.md section 5: the registry is the truth, but a crawl sees it only once):
- a repository is changed only from a complete view of it (every tag page and every HEAD
  answered); tags of repositories missing from the catalog are removed only when the whole
  catalog was read. A crawl that fails or is cut short deletes nothing it did not fully see;
- tags pushed since the crawl started are neither changed nor removed: it saw them before;
- removals above a threshold (SYNC_REMOVAL_THRESHOLD_PERCENT of the portal's tags, at least
  SYNC_REMOVAL_THRESHOLD_MIN), and any removal when the catalog is empty, are held for an
  operator (`sync_registry --allow-removals`, or the admin's "apply held removals"): a registry
  pointed at empty or truncated storage must not wipe the portal;
- one crawl at a time, whoever starts it: SyncRun allows one row 'running'.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from django.conf import settings
from django.db import DatabaseError, IntegrityError, close_old_connections, connections, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import Namespace
from audit.services import audit_record
from repositories.access import split_repository_name
from repositories.models import Manifest, Repository, SyncRun, Tag, UnclaimedRepository
from repositories.registry import get_client
from repositories.registry.client import RegistryClient, RegistryError
from repositories.services import repository_fill_descriptions_from_image
from repositories.sync import (
    DETAILS_VERSION,
    Fetched,
    artifact_kind,
    fetch_manifest,
    refresh_artifact_flags,
    remove_unreferenced_manifests,
    repository_for_push,
    store_manifest,
    tag_tombstones_write,
    tag_upsert,
)

log = logging.getLogger(__name__)
SYNC_ACTOR = "registry sync"
# A 'running' crawl older than this died without saying so (a killed worker): it is closed as
# abandoned so the next one can start.


class _Heartbeat(threading.Thread):
    """Beats for a running crawl from a thread of its own: as long as the crawling process
    lives (however long one repository's reads take), its run stays the lock; once the process
    is gone, the beats stop and SYNC_RUN_STALE_SECONDS later the next crawl may start."""

    def __init__(self, run_pk: int) -> None:
        super().__init__(name=f"sync-heartbeat-{run_pk}", daemon=True)
        self.run_pk = run_pk
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopped.wait(settings.SYNC_HEARTBEAT_SECONDS):
                with contextlib.suppress(DatabaseError):
                    SyncRun.objects.filter(pk=self.run_pk, status=SyncRun.Status.RUNNING).update(
                        heartbeat_at=timezone.now()
                    )
        finally:
            connections.close_all()  # this thread's connection

    def stop(self) -> None:
        self.stopped.set()


class SyncAlreadyRunning(Exception):
    """Another crawl is running; this one did not start."""

    def __init__(self, run: SyncRun) -> None:
        super().__init__(f"a sync started at {run.started_at:%Y-%m-%d %H:%M:%S} UTC is still running")
        self.run = run


@dataclass
class RegistryView:
    """One repository as the registry showed it, complete or with the error that cut it short."""

    name: str
    tags: dict[str, str] = field(default_factory=dict)  # tag -> digest
    fetched: dict[str, Fetched] = field(default_factory=dict)  # digests new to the portal
    error: str = ""


def _give_way_to_pushes() -> None:
    """A crawl is background work. While push notifications are arriving (the events endpoint
    marks it for two seconds), each repository's reads wait SYNC_CRAWL_YIELD_MS at a time,
    at most ten times: the registry sends its notifications one at a time, and a crawl asking it
    for thousands of manifests meanwhile made pushes visible many seconds late."""
    from django.core.cache import cache

    from repositories.sync import EVENTS_FLOWING_KEY

    delay = settings.SYNC_CRAWL_YIELD_MS / 1000
    for _ in range(10 if delay else 0):
        try:
            if not cache.get(EVENTS_FLOWING_KEY):
                return
        except Exception:
            return  # no cache: no signal, no waiting
        time.sleep(delay)


def crawl_repository(client: RegistryClient, name: str) -> RegistryView:
    """Registry reads for one repository (runs in a worker thread; only reads the database)."""
    view = RegistryView(name)
    _give_way_to_pushes()
    try:
        ns_name, repo_name = split_repository_name(name)
        # A tag the portal knows is asked with a HEAD (its digest: has it moved?); a tag it does
        # not know with a GET, which answers the digest and the manifest in one request.
        known_tags = set(
            Tag.objects.filter(repository__namespace__name=ns_name, repository__name=repo_name).values_list(
                "name", flat=True
            )
        )
        docs = {}
        for tag in client.tags(name):
            if tag in known_tags:
                view.tags[tag] = client.head_manifest(name, tag).digest
            else:
                doc = client.get_manifest(name, tag)
                view.tags[tag] = doc.digest
                docs.setdefault(doc.digest, doc)
        known = set(
            Manifest.objects.filter(
                repository__namespace__name=ns_name,
                repository__name=repo_name,
                digest__in=set(view.tags.values()),
                details_version__gte=DETAILS_VERSION,  # older rows are read again for their details
            ).values_list("digest", flat=True)
        )
        for digest in sorted(set(view.tags.values()) - known):
            view.fetched[digest] = fetch_manifest(client, name, digest, doc=docs.get(digest))
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
    held_removals: list[str] = field(default_factory=list)
    unclaimed: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    held_reason: str = ""
    # Not reported: repository id -> tag names the crawl found gone.
    removals: dict[int, list[str]] = field(default_factory=dict)

    def as_report(self, limit: int = 500) -> dict:
        return {
            key: value[:limit] if isinstance(value, list) else value
            for key, value in self.__dict__.items()
            if key != "removals"
        }


def reconcile(
    *,
    client: RegistryClient | None = None,
    repository: str = "",
    dry_run: bool = False,
    concurrency: int | None = None,
    allow_removals: bool = False,
    trigger: str = SyncRun.Trigger.OPERATOR,
) -> SyncRun:
    """Crawl the registry (or one repository) and apply what differs; returns the SyncRun.
    Raises SyncAlreadyRunning when another crawl runs."""
    client = client or get_client()
    concurrency = concurrency or settings.SYNC_CONCURRENCY
    run = _start(repository=repository, dry_run=dry_run, allow_removals=allow_removals, trigger=trigger)
    heartbeat = _Heartbeat(run.pk)
    heartbeat.start()
    try:
        return _crawl(run, client, repository=repository, dry_run=dry_run, concurrency=concurrency)
    finally:
        heartbeat.stop()


def _crawl(run: SyncRun, client: RegistryClient, *, repository: str, dry_run: bool, concurrency: int) -> SyncRun:
    allow_removals = run.allow_removals
    requests_before = client.requests_made
    plan = Plan()
    catalog_complete = False
    try:
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
                _apply_view(view, plan, dry_run=dry_run, started_at=run.started_at)
        if catalog_complete:
            _plan_vanished(set(names), plan, started_at=run.started_at)
        plan.held_reason = _hold_reason(plan, catalog_empty=catalog_complete and not names, repository=repository)
        if plan.held_reason and not allow_removals:
            plan.held_removals, plan.remove_tags = plan.remove_tags, []
        elif not dry_run:
            _apply_removals(plan, started_at=run.started_at, client=client)

        run.repositories, run.tags, run.manifests_fetched = len(names), tags_seen, manifests_fetched
        status = SyncRun.Status.PARTIAL if plan.errors else SyncRun.Status.OK
        error = f"{len(plan.errors)} repositories could not be read" if plan.errors else ""
        if plan.held_removals:
            status = SyncRun.Status.HELD
            error = "; ".join(e for e in (plan.held_reason, error) if e)
        return _finish(run, client, requests_before, plan, status=status, error=error)
    except Exception as exc:
        _finish(
            run, client, requests_before, plan, status=SyncRun.Status.FAILED, error=f"{exc.__class__.__name__}: {exc}"
        )
        raise


def _start(*, repository: str, dry_run: bool, allow_removals: bool, trigger: str) -> SyncRun:
    """Record the run as 'running', which only one row may be: the lock. A run left 'running'
    by a crawl that died is closed as abandoned first."""
    fields = {"repository": repository, "dry_run": dry_run, "allow_removals": allow_removals, "trigger": trigger}
    for _ in range(2):
        try:
            with transaction.atomic():
                return SyncRun.objects.create(heartbeat_at=timezone.now(), **fields)
        except IntegrityError:
            running = SyncRun.objects.filter(status=SyncRun.Status.RUNNING).first()
            if running is None:
                continue  # it just finished
            last_sign_of_life = running.heartbeat_at or running.started_at
            if last_sign_of_life > timezone.now() - dt.timedelta(seconds=settings.SYNC_RUN_STALE_SECONDS):
                raise SyncAlreadyRunning(running) from None
            SyncRun.objects.filter(pk=running.pk, status=SyncRun.Status.RUNNING).update(
                status=SyncRun.Status.FAILED,
                finished_at=timezone.now(),
                error="abandoned: its process stopped reporting (killed or restarted mid-crawl)",
            )
    running = SyncRun.objects.filter(status=SyncRun.Status.RUNNING).first()
    raise SyncAlreadyRunning(running or SyncRun(started_at=timezone.now()))


def _hold_reason(plan: Plan, *, catalog_empty: bool, repository: str) -> str:
    """Why this crawl's removals wait for an operator, or '' when they may go ahead."""
    removals = len(plan.remove_tags)
    if not removals:
        return ""
    if catalog_empty:
        return f"the registry's catalog is empty, and the portal has {removals} tags: is its storage right?"
    known = Tag.objects.filter(repository__full_name=repository).count() if repository else Tag.objects.count()
    limit = max(settings.SYNC_REMOVAL_THRESHOLD_MIN, known * settings.SYNC_REMOVAL_THRESHOLD_PERCENT // 100)
    if removals > limit:
        return (
            f"{removals} of {known} tags are gone from the registry, more than the {limit} a crawl removes "
            "on its own (SYNC_REMOVAL_THRESHOLD_PERCENT, SYNC_REMOVAL_THRESHOLD_MIN)"
        )
    return ""


def _apply_removals(plan: Plan, *, started_at: dt.datetime, client: RegistryClient) -> None:
    """Remove the tags the registry no longer has, one repository per transaction, and only
    those still older than the crawl (a push since then wins)."""
    for repository_id, names in plan.removals.items():
        with transaction.atomic():
            repository = Repository.objects.select_related("namespace").filter(pk=repository_id).first()
            if repository is None:
                continue
            doomed = Tag.objects.filter(repository=repository, name__in=names).filter(_settled(started_at))
            gone = dict(doomed.values_list("name", "manifest__digest"))
            if not gone:
                continue
            doomed.delete()
            tag_tombstones_write(repository_name=repository.full_name, tags=gone, deleted_at=started_at)
            remove_unreferenced_manifests(repository, maybe_gone=set(gone.values()), client=client)
            refresh_artifact_flags(repository)
            audit_record(
                action="tag.delete",
                actor_name=SYNC_ACTOR,
                target_name=repository.full_name,
                namespace=repository.namespace.name,
                repository=repository.full_name,
                data={"tags": sorted(gone), "source": "reconcile: gone from the registry"},
            )


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
    run.held = len(plan.held_removals)
    run.report = plan.as_report()
    run.save()
    return run


def _apply_view(view: RegistryView, plan: Plan, *, dry_run: bool, started_at: dt.datetime) -> None:
    ns_name, name = split_repository_name(view.name)
    namespace = Namespace.objects.filter(name=ns_name).first() if ns_name else None
    if namespace is None:
        plan.unclaimed.append(view.name)
        if not dry_run:
            _record_unclaimed(view)
        return
    repository = Repository.objects.filter(namespace=namespace, name=name).first()
    current = (
        {
            tag: (digest, pushed_at)
            for tag, digest, pushed_at in Tag.objects.filter(repository=repository).values_list(
                "name", "manifest__digest", "pushed_at"
            )
        }
        if repository
        else {}
    )
    # Tags pushed since the crawl started are newer than what it saw: it leaves them alone. (A
    # push time in the future is a registry clock's error from before clamping: not newer.)
    now = timezone.now()
    settled = {tag for tag, (_, pushed_at) in current.items() if pushed_at < started_at or pushed_at > now}
    creates = sorted(t for t in view.tags if t not in current)
    changes = sorted(t for t in view.tags if t in settled and current[t][0] != view.tags[t])
    removals = sorted(t for t in settled if t not in view.tags)
    if repository is None and view.tags:
        plan.create_repositories.append(view.name)
    plan.create_tags += [f"{view.name}:{t}" for t in creates]
    plan.change_tags += [f"{view.name}:{t}" for t in changes]
    plan.remove_tags += [f"{view.name}:{t}" for t in removals]
    if removals:
        plan.removals[repository.pk] = removals
    if not dry_run:
        if repository is not None and repository.sync_error:
            Repository.objects.filter(pk=repository.pk).update(sync_error="", sync_error_at=timezone.now())
        if view.name in _unclaimed_names():
            UnclaimedRepository.objects.filter(name=view.name).delete()  # its namespace exists now
    if dry_run or not (creates or changes or view.fetched):
        return  # nothing to write here (removals are applied, or held, at the end)
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
            # Its push event, when it comes, fills in who (and announces the push once).
            tag_upsert(
                repository=repository,
                name=tag,
                manifest=manifest,
                pushed_at=now,
                pushed_by="",
                source=Tag.Source.CRAWL,
                unless_pushed_since=started_at,
            )
            if not artifact_kind(tag):
                newest = manifest
        if newest is not None:
            repository_fill_descriptions_from_image(repository=repository, manifest=newest)


def _plan_vanished(seen: set[str], plan: Plan, *, started_at: dt.datetime) -> None:
    """Repositories the portal has tags for but the (complete) catalog no longer lists: their
    tags are gone. The repositories stay: they carry descriptions and permissions."""
    with_tags = Repository.objects.filter(tags__isnull=False).select_related("namespace").distinct()
    for repository in with_tags:
        if repository.full_name in seen:
            continue
        names = sorted(
            Tag.objects.filter(repository=repository).filter(_settled(started_at)).values_list("name", flat=True)
        )
        if names:
            plan.remove_tags += [f"{repository.full_name}:{t}" for t in names]
            plan.removals[repository.pk] = names


def _settled(started_at: dt.datetime) -> Q:
    """Tags a crawl that started at `started_at` may change or remove: pushed before it began
    (or stamped in the future by a registry clock, before timestamps were clamped)."""
    return Q(pushed_at__lt=started_at) | Q(pushed_at__gt=timezone.now())


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
