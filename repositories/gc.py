"""Garbage collection that is safe with pushes (issue 16, item 4).

Deleting a manifest frees no disk: the registry's garbage collector removes the blobs no
manifest references any more, and a collection racing a push can remove a blob the push is
about to reference (its manifest comes after its blobs). So a run:

1. puts the registry in a write hold: the token server grants no push or delete, and the front
   refuses manifest PUTs, DELETEs and upload starts with 503 (registry maintenance);
2. waits until every token issued before the hold has expired (`TOKEN_LIFETIME`, or
   `REGISTRY_GC_HOLD_SECONDS`), so no push that began before can still complete;
3. runs the registry's own `garbage-collect` with the portal-generated configuration (never
   `--delete-untagged`, which in 2.8 deletes the platform manifests of multi-platform images);
4. releases the hold and records the space freed (the storage directory before and after, for
   filesystem storage).
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.services import audit_record
from repositories.models import GcRun
from repositories.registry.client import RegistryError

log = logging.getLogger(__name__)
MAINTENANCE_MESSAGE = "registry maintenance (garbage collection): pushes and deletes resume in a few minutes"


class GcAlreadyRunning(Exception):
    pass


class WritesHeld(RegistryError):
    """A garbage collection holds the registry's writes: the portal's own deletes (tag and
    repository deletes, an applied retention run) wait too, as pushes and deletes through the
    front do. A RegistryError: every caller already says nothing was changed."""

    maintenance = True  # portal/pagination.py: the API's 503 says why

    def __init__(self) -> None:
        super().__init__(MAINTENANCE_MESSAGE)


def refuse_during_hold() -> None:
    """Raise WritesHeld while a collection holds writes."""
    if hold_active():
        raise WritesHeld()


def hold_active() -> bool:
    """Whether a collection holds writes now (one indexed query; asked only for writes)."""
    return GcRun.objects.filter(status__in=GcRun.HOLD_STATUSES).exists()


def directory_bytes(path: Path) -> int | None:
    if not path.is_dir():
        return None
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


def start(*, actor_name: str) -> GcRun:
    """Begin a run: the hold starts now. Raises GcAlreadyRunning."""
    with transaction.atomic():
        if GcRun.objects.select_for_update().filter(status__in=GcRun.HOLD_STATUSES).exists():
            raise GcAlreadyRunning("a garbage collection is running")
        run = GcRun.objects.create(requested_by=actor_name[:150])
        audit_record(action="registry.gc", actor_name=actor_name, target_name=f"gc run {run.pk}")
    _forget()
    return run


def _forget() -> None:
    from repositories.policies import FRONT_STATE

    FRONT_STATE.forget()


def collect(run: GcRun, *, hold_seconds: float | None = None, sleep=time.sleep) -> GcRun:
    """Wait out the hold, collect, release. The hold is released whatever happens."""
    wait = settings.REGISTRY_GC_HOLD_SECONDS if hold_seconds is None else hold_seconds
    try:
        remaining = wait - (timezone.now() - run.started_at).total_seconds()
        if remaining > 0:
            sleep(remaining)
        GcRun.objects.filter(pk=run.pk).update(status=GcRun.Status.COLLECTING, collect_started_at=timezone.now())
        storage_dir = Path(settings.REGISTRY_STORAGE_DIR)
        before = directory_bytes(storage_dir)
        result = subprocess.run(
            [settings.REGISTRY_BINARY, "garbage-collect", str(settings.REGISTRY_CONFIG_FILE)],
            capture_output=True,
            text=True,
            timeout=settings.REGISTRY_GC_TIMEOUT_SECONDS,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},  # no REGISTRY_* overrides
        )
        after = directory_bytes(storage_dir)
        output = (result.stdout + result.stderr)[-4000:]
        freed = before - after if before is not None and after is not None else None
        status = GcRun.Status.OK if result.returncode == 0 else GcRun.Status.FAILED
        GcRun.objects.filter(pk=run.pk).update(
            status=status, freed_bytes=freed, output=output, finished_at=timezone.now()
        )
    except Exception as exc:
        log.exception("garbage collection %s failed", run.pk)
        GcRun.objects.filter(pk=run.pk).update(
            status=GcRun.Status.FAILED, output=f"{exc.__class__.__name__}: {exc}"[:4000], finished_at=timezone.now()
        )
    run.refresh_from_db()
    _forget()
    if run.status == GcRun.Status.OK:
        from repositories.tasks import storage_refresh_all

        try:
            storage_refresh_all.delay()  # usage is what is left now
        except Exception:
            log.warning("storage refresh after GC not queued")
    return run


def run_now(*, actor_name: str, hold_seconds: float | None = None) -> GcRun:
    """`manage.py registry_gc`: the whole run in this process."""
    return collect(start(actor_name=actor_name), hold_seconds=hold_seconds)


def release_stale(*, older_than_seconds: float | None = None) -> int:
    """A run whose process died mid-way would hold writes for ever: runs holding longer than the
    hold plus the collector's timeout are marked failed (the hourly task)."""
    limit = older_than_seconds or (settings.REGISTRY_GC_HOLD_SECONDS + settings.REGISTRY_GC_TIMEOUT_SECONDS + 60)
    cutoff = timezone.now() - timezone.timedelta(seconds=limit)
    return GcRun.objects.filter(status__in=GcRun.HOLD_STATUSES, started_at__lt=cutoff).update(
        status=GcRun.Status.FAILED, output="abandoned: the process running it stopped", finished_at=timezone.now()
    )
