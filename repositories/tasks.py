"""Celery tasks: thin wrappers over plain functions in sync.py and reconcile.py. They take ids,
tolerate the object being gone, and are enqueued on commit by their callers."""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import DatabaseError

from repositories import reconcile, sync
from repositories.registry.client import RegistryError

log = logging.getLogger(__name__)
RETRYABLE = (RegistryError, DatabaseError)


@shared_task(bind=True, max_retries=6, acks_late=True)
def process_registry_event(self, event_pk: int) -> str:
    """Retried with exponential backoff (1, 2, 4 … 32 s) while the registry or the database
    is unavailable; after the last try the event is kept as failed, with its error, for the
    admin to see and retry."""
    try:
        return sync.process_registry_event(event_pk)
    except RETRYABLE as exc:
        if self.request.retries >= self.max_retries:
            sync.registry_event_mark(event_pk, status=sync.Status.FAILED, error=f"{exc.__class__.__name__}: {exc}")
            return sync.Status.FAILED
        raise self.retry(exc=exc, countdown=2**self.request.retries) from None
    except Exception as exc:  # a bug: keep the event visible instead of retrying forever
        log.exception("registry event %s failed", event_pk)
        sync.registry_event_mark(event_pk, status=sync.Status.FAILED, error=f"{exc.__class__.__name__}: {exc}")
        return sync.Status.FAILED


@shared_task
def sweep_pending_events() -> int:
    return sync.sweep_pending_events()


@shared_task(acks_late=True)
def reconcile_registry(repository: str = "", dry_run: bool = False) -> int:
    return reconcile.reconcile(repository=repository, dry_run=dry_run).pk
