"""Celery tasks: thin wrappers over plain functions in sync.py and reconcile.py. They take ids,
tolerate the object being gone, and are enqueued on commit by their callers."""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import DatabaseError, DataError, IntegrityError

from repositories import maintenance, reconcile, sync
from repositories.models import GcRun, SyncRun
from repositories.registry.client import RegistryError

log = logging.getLogger(__name__)
RETRYABLE = (RegistryError, DatabaseError)
# Database errors that another try cannot fix: the event itself is bad.
UNUSABLE = (IntegrityError, DataError)


@shared_task(bind=True, max_retries=6, acks_late=True)
def process_registry_event(self, event_pk: int) -> str:
    """Retried with exponential backoff (1, 2, 4 … 32 s) while the registry or the database
    is unavailable; after the last try the event is kept as failed, with its error, for the
    admin to see and retry."""
    try:
        return sync.process_backlog(event_pk)
    except UNUSABLE as exc:
        log.warning("registry event %s cannot be applied: %s", event_pk, exc)
        sync.registry_event_mark(
            event_pk, status=sync.Status.QUARANTINED, error=f"cannot be stored: {exc.__class__.__name__}: {exc}"
        )
        return sync.Status.QUARANTINED
    except RETRYABLE as exc:
        if self.request.retries >= self.max_retries:
            sync.registry_event_mark(event_pk, status=sync.Status.FAILED, error=f"{exc.__class__.__name__}: {exc}")
            return sync.Status.FAILED
        sync.registry_event_tried(event_pk)
        raise self.retry(exc=exc, countdown=2**self.request.retries) from None
    except Exception as exc:  # a bug: keep the event visible instead of retrying forever
        log.exception("registry event %s failed", event_pk)
        sync.registry_event_mark(event_pk, status=sync.Status.FAILED, error=f"{exc.__class__.__name__}: {exc}")
        return sync.Status.FAILED


@shared_task(bind=True, acks_late=True, max_retries=None)
def drain_registry_events(self) -> int:
    """Apply every pending event (the endpoint asks for one drain per burst). While the
    database is down it is tried again, backing off up to a minute."""
    try:
        return sync.drain_pending()
    except DatabaseError as exc:
        raise self.retry(exc=exc, countdown=min(60, 2 ** min(self.request.retries, 6))) from None


@shared_task
def sweep_pending_events() -> int:
    return sync.sweep_pending_events()


@shared_task
def sync_tick() -> dict:
    return maintenance.sync_tick()


@shared_task
def prune() -> dict:
    return maintenance.prune()


@shared_task(bind=True, acks_late=True, max_retries=20)
def reconcile_registry(
    self,
    repository: str = "",
    dry_run: bool = False,
    allow_removals: bool = False,
    trigger: str = SyncRun.Trigger.OPERATOR,
) -> int | None:
    """One crawl at a time: while another runs, a scheduled crawl is skipped (the next tick
    starts it when due) and any other waits its turn."""
    try:
        run = reconcile.reconcile(
            repository=repository, dry_run=dry_run, allow_removals=allow_removals, trigger=trigger
        )
    except reconcile.SyncAlreadyRunning:
        if trigger == SyncRun.Trigger.SCHEDULE:
            return None
        raise self.retry(countdown=30) from None
    return run.pk


@shared_task(ignore_result=True)
def storage_refresh(namespace_id: int) -> None:
    """A namespace's storage usage, computed again after pushes or deletes."""
    from accounts.models import Namespace
    from repositories import storage

    namespace = Namespace.objects.filter(pk=namespace_id).first()
    if namespace is not None:
        storage.refresh(namespace)


@shared_task(ignore_result=True)
def storage_refresh_all() -> int:
    """Every namespace with repositories (hourly): catches what a missed refresh left behind."""
    from accounts.models import Namespace
    from repositories import storage

    count = 0
    for namespace in Namespace.objects.filter(repositories__isnull=False).distinct().iterator():
        storage.refresh(namespace)
        count += 1
    return count


@shared_task(ignore_result=True, acks_late=False)
def registry_gc(run_id: int | None = None) -> str:
    """A garbage collection (repositories/gc.py): the one the API or the admin started (its
    run), or a scheduled one."""
    from repositories import gc

    if run_id is None:
        try:
            run = gc.start(actor_name="schedule")
        except gc.GcAlreadyRunning:
            return "already running"
    else:
        run = GcRun.objects.filter(pk=run_id, status=GcRun.Status.HOLDING).first()
        if run is None:
            return "gone"
    return gc.collect(run).status


@shared_task(ignore_result=True)
def registry_gc_release_stale() -> int:
    from repositories import gc

    return gc.release_stale()


@shared_task(ignore_result=True)
def retention_run(namespace_id: int, actor_id: int | None) -> str:
    """One namespace's rules, applied, for a caller that did not wait (the API's wait=false)."""
    from accounts.models import Namespace, User
    from repositories import gc, retention

    namespace = Namespace.objects.filter(pk=namespace_id).first()
    if namespace is None:
        return "gone"
    actor = User.objects.filter(pk=actor_id).first() if actor_id else None
    try:
        return str(retention.run(namespace=namespace, dry_run=False, actor=actor).pk)
    except (gc.WritesHeld, retention.RunUnderWay) as exc:
        return str(exc)


@shared_task(ignore_result=True)
def retention_run_all() -> int:
    """Every namespace's retention rules, applied (daily)."""
    from repositories import retention

    return retention.run_all()
