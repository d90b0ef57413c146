"""Keeping the portal's picture of the registry true: plain functions that Celery tasks wrap
and tests call directly (DESIGN.md section 5)."""

from __future__ import annotations

import datetime as dt
import logging

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts.models import Namespace
from repositories.access import split_repository_name
from repositories.models import IndexEntry, Manifest, RegistryEvent, Repository, Tag
from repositories.registry import get_client
from repositories.registry.client import INDEX_TYPES, ManifestDoc, RegistryClient, RegistryNotFound
from repositories.registry.events import ParsedEvent
from repositories.services import repository_create

log = logging.getLogger(__name__)

MANIFEST_MEDIA_TYPES = frozenset(
    INDEX_TYPES
    | {
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
    }
)


class EventProcessingError(Exception):
    """The event is well-formed but cannot be applied (e.g. its namespace does not exist)."""


def events_store(parsed: list[ParsedEvent]) -> list[int]:
    """Store events once each (a duplicate id is a no-op) and return the ids of new rows that
    need processing. Called inside the endpoint's transaction."""
    new_ids: list[int] = []
    for event in parsed:
        status = RegistryEvent.Status.QUARANTINED if event.problem else RegistryEvent.Status.PENDING
        if not event.problem and not _worth_processing(event):
            status = RegistryEvent.Status.IGNORED
        row, created = RegistryEvent.objects.get_or_create(
            event_id=event.event_id,
            defaults={
                "action": event.action,
                "repository": event.repository,
                "tag": event.tag,
                "digest": event.digest,
                "media_type": event.media_type,
                "actor": event.actor,
                "timestamp": event.timestamp,
                "payload": event.payload,
                "status": status,
                "error": event.problem,
            },
        )
        if created and status == RegistryEvent.Status.PENDING:
            new_ids.append(row.pk)
    return new_ids


def _worth_processing(event: ParsedEvent) -> bool:
    return event.action == "push" and event.media_type in MANIFEST_MEDIA_TYPES


def process_registry_event(event_pk: int, client: RegistryClient | None = None) -> str:
    """Apply one stored event. Idempotent: a processed event is left alone."""
    event = RegistryEvent.objects.filter(pk=event_pk).first()
    if event is None or event.status not in (RegistryEvent.Status.PENDING, RegistryEvent.Status.FAILED):
        return "skipped"
    RegistryEvent.objects.filter(pk=event_pk).update(attempts=F("attempts") + 1)
    try:
        if event.action == "push" and event.media_type in MANIFEST_MEDIA_TYPES:
            apply_manifest_push(
                repository_name=event.repository,
                digest=event.digest,
                tag=event.tag,
                pushed_by=event.actor,
                pushed_at=event.timestamp or timezone.now(),
                client=client or get_client(),
            )
            status, error = RegistryEvent.Status.PROCESSED, ""
        else:
            status, error = RegistryEvent.Status.IGNORED, ""
    except EventProcessingError as exc:
        status, error = RegistryEvent.Status.FAILED, str(exc)
    RegistryEvent.objects.filter(pk=event_pk).update(status=status, error=error, processed_at=timezone.now())
    return status


def apply_manifest_push(
    *, repository_name: str, digest: str, tag: str, pushed_by: str, pushed_at: dt.datetime, client: RegistryClient
) -> Tag | None:
    ns_name, name = split_repository_name(repository_name)
    namespace = Namespace.objects.filter(name=ns_name).first()
    if namespace is None or not name:
        raise EventProcessingError(f"namespace of {repository_name!r} does not exist in the portal")
    # Registry reads happen before the transaction, so no lock is held across HTTP.
    repository = Repository.objects.filter(namespace=namespace, name=name).first()
    known = repository is not None and Manifest.objects.filter(repository=repository, digest=digest).exists()
    fetched = None if known else _fetch_manifest(client, repository_name, digest)

    with transaction.atomic():
        if repository is None:
            try:
                with transaction.atomic():
                    repository = repository_create(
                        namespace=namespace, name=name, actor_name=pushed_by, reason="created by push"
                    )
            except IntegrityError:  # created concurrently by another event
                repository = Repository.objects.get(namespace=namespace, name=name)
        manifest = (
            _store_manifest(repository, fetched)
            if fetched
            else Manifest.objects.get(repository=repository, digest=digest)
        )
        if repository.last_pushed_at is None or repository.last_pushed_at < pushed_at:
            Repository.objects.filter(pk=repository.pk).update(last_pushed_at=pushed_at, updated_at=timezone.now())
        if not tag:
            return None  # a push by digest (e.g. an index's child) carries no tag
        existing = Tag.objects.select_for_update().filter(repository=repository, name=tag).first()
        if existing is None:
            return Tag.objects.create(
                repository=repository, name=tag, manifest=manifest, pushed_at=pushed_at, pushed_by=pushed_by
            )
        if existing.pushed_at > pushed_at:
            return existing  # a later push already won; this event arrived out of order
        existing.manifest, existing.pushed_at, existing.pushed_by = manifest, pushed_at, pushed_by
        existing.save(update_fields=["manifest", "pushed_at", "pushed_by"])
        return existing


class _Fetched:
    def __init__(self, doc: ManifestDoc, config: dict, children: list[tuple[dict, _Fetched]]) -> None:
        self.doc, self.config, self.children = doc, config, children


def _fetch_manifest(client: RegistryClient, repository_name: str, digest: str) -> _Fetched:
    try:
        doc = client.get_manifest(repository_name, digest)
    except RegistryNotFound:
        raise EventProcessingError(f"{repository_name}@{digest} is no longer in the registry") from None
    if doc.is_index:
        children = []
        for entry in doc.data.get("manifests") or []:
            if isinstance(entry, dict) and isinstance(entry.get("digest"), str):
                children.append((entry, _fetch_manifest(client, repository_name, entry["digest"])))
        return _Fetched(doc, {}, children)
    config_digest = (doc.data.get("config") or {}).get("digest")
    config = client.get_config(repository_name, config_digest) if config_digest else {}
    return _Fetched(doc, config, [])


def _store_manifest(repository: Repository, fetched: _Fetched) -> Manifest:
    doc = fetched.doc
    existing = Manifest.objects.filter(repository=repository, digest=doc.digest).first()
    if existing is not None:
        return existing
    if doc.is_index:
        children = [(entry, _store_manifest(repository, child)) for entry, child in fetched.children]
        manifest = Manifest.objects.create(
            repository=repository,
            digest=doc.digest,
            media_type=doc.media_type,
            total_size=sum(child.total_size for _, child in children),
            annotations=doc.data.get("annotations") or {},
        )
        for entry, child in children:
            platform = entry.get("platform") or {}
            IndexEntry.objects.get_or_create(
                index=manifest,
                child=child,
                defaults={
                    "os": str(platform.get("os", ""))[:32],
                    "architecture": str(platform.get("architecture", ""))[:32],
                    "variant": str(platform.get("variant", ""))[:32],
                    "size": int(entry.get("size") or 0),
                },
            )
        return manifest
    config = fetched.config
    layers = [layer for layer in doc.data.get("layers") or [] if isinstance(layer, dict)]
    config_ref = doc.data.get("config") or {}
    inner = config.get("config") if isinstance(config.get("config"), dict) else {}
    created = parse_datetime(config["created"]) if isinstance(config.get("created"), str) else None
    return Manifest.objects.create(
        repository=repository,
        digest=doc.digest,
        media_type=doc.media_type,
        total_size=int(config_ref.get("size") or 0) + sum(int(layer.get("size") or 0) for layer in layers),
        config_digest=str(config_ref.get("digest", ""))[:150],
        os=str(config.get("os", ""))[:32],
        architecture=str(config.get("architecture", ""))[:32],
        variant=str(config.get("variant", ""))[:32],
        image_created_at=created,
        labels=inner.get("Labels") or {},
        annotations=doc.data.get("annotations") or {},
        layer_count=len(layers),
    )
