"""Celery tasks: thin wrappers over plain functions in sync.py. They take ids, tolerate the
object being gone, and are enqueued on commit by their callers."""

from __future__ import annotations

from celery import shared_task

from repositories import sync
from repositories.registry.client import RegistryUnavailable


@shared_task(autoretry_for=(RegistryUnavailable,), retry_backoff=1, retry_backoff_max=60, max_retries=8)
def process_registry_event(event_pk: int) -> str:
    return sync.process_registry_event(event_pk)
