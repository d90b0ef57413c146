"""Housekeeping, as plain functions the beat's tasks wrap: the one-minute sync tick (sweep stored
events, start the crawl when one is due) and the daily prune of what would otherwise grow
forever (healthchecks prunes its pings the same way)."""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from repositories.models import RegistryEvent, SyncRun, TagTombstone

log = logging.getLogger(__name__)
BATCH = 5000  # rows per DELETE: short transactions, so SQLite's writers do not wait long


def crawl_due(now: dt.datetime | None = None) -> bool:
    """Whether the scheduled crawl should start: none running, and no full crawl started within
    SYNC_INTERVAL_SECONDS. Computed from the runs, so a crawl missed while Redis (and so beat's
    schedule) was down runs at the first tick after it is back."""
    if not settings.SYNC_INTERVAL_SECONDS:
        return False
    now = now or timezone.now()
    alive_since = now - dt.timedelta(seconds=settings.SYNC_RUN_STALE_SECONDS)
    running = SyncRun.objects.filter(status=SyncRun.Status.RUNNING)
    if running.filter(
        Q(heartbeat_at__gt=alive_since) | Q(heartbeat_at__isnull=True, started_at__gt=alive_since)
    ).exists():
        return False  # a crawl is running (one whose process stopped reporting is taken over)
    since = now - dt.timedelta(seconds=settings.SYNC_INTERVAL_SECONDS)
    return not SyncRun.objects.filter(repository="", dry_run=False, started_at__gt=since).exists()


def sync_tick() -> dict[str, int]:
    from repositories import sync
    from repositories.tasks import reconcile_registry

    swept = sync.sweep_pending_events()
    started = 0
    if crawl_due():
        reconcile_registry.delay(trigger=SyncRun.Trigger.SCHEDULE)
        started = 1
    return {"swept": swept, "crawls": started}


def _delete_in_batches(queryset) -> int:
    deleted = 0
    while True:
        pks = list(queryset.values_list("pk", flat=True)[:BATCH])
        if not pks:
            return deleted
        queryset.model.objects.filter(pk__in=pks).delete()
        deleted += len(pks)


def prune(now: dt.datetime | None = None) -> dict[str, int]:
    """Delete what is past its retention (README, configuration table); returns counts."""
    from audit.models import AuditEvent
    from webhooks.models import Delivery

    now = now or timezone.now()

    def before(days: int) -> dt.datetime:
        return now - dt.timedelta(days=days)

    counts = {
        # Pending events are work not done yet: never pruned.
        "registry_events": _delete_in_batches(
            RegistryEvent.objects.exclude(status=RegistryEvent.Status.PENDING).filter(
                received_at__lt=before(settings.RETENTION_EVENTS_DAYS)
            )
        ),
        "webhook_deliveries": _delete_in_batches(
            Delivery.objects.filter(created_at__lt=before(settings.RETENTION_DELIVERIES_DAYS))
        ),
        # The audit log is kept; rows of failed sign-ins are noise anyone can make, so they go.
        "failed_logins": _delete_in_batches(
            AuditEvent.objects.filter(
                Q(action="auth.failed") | Q(action="auth.password_refused"),
                created_at__lt=before(settings.RETENTION_FAILED_LOGINS_DAYS),
            )
        ),
        "sync_runs": _delete_in_batches(
            SyncRun.objects.exclude(status=SyncRun.Status.RUNNING).filter(
                started_at__lt=before(settings.RETENTION_SYNC_RUNS_DAYS)
            )
        ),
        "tombstones": _delete_in_batches(
            TagTombstone.objects.filter(deleted_at__lt=before(settings.SYNC_TOMBSTONE_DAYS))
        ),
    }
    log.info("pruned %s", counts)
    return counts
