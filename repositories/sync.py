"""Keeping the portal's picture of the registry true from its notifications: plain functions
that Celery tasks wrap and tests call directly (DESIGN.md section 5). The crawl that repairs
what notifications missed lives in reconcile.py.

Exactly once: an event's registry reads happen outside any transaction; then one transaction
claims the event (a conditional UPDATE from pending/failed to processed) and applies it. A
crash rolls both back, and a duplicate delivery finds the claim taken and changes nothing.
Order: the registry may deliver events late or twice; a tag follows the push with the latest
event timestamp, and a push older than a delete of the same digest does not bring it back.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts.models import Namespace
from audit.services import audit_record
from repositories.access import split_repository_name
from repositories.models import DailyPulls, IndexEntry, Manifest, RegistryEvent, Repository, Tag
from repositories.registry import get_client
from repositories.registry.client import INDEX_TYPES, ManifestDoc, RegistryClient, RegistryNotFound
from repositories.registry.events import ParsedEvent
from repositories.services import repository_create, repository_fill_descriptions_from_image

log = logging.getLogger(__name__)

MANIFEST_MEDIA_TYPES = frozenset(
    INDEX_TYPES | {"application/vnd.docker.distribution.manifest.v2+json", "application/vnd.oci.image.manifest.v1+json"}
)
ARTIFACT_TAG_RE = re.compile(r"^sha256-([0-9a-f]{64})\.(sig|att|sbom)$")
Status = RegistryEvent.Status


class EventProcessingError(Exception):
    """The event is well-formed but cannot be applied; kept as failed with this message."""


# --- storing ---------------------------------------------------------------------------------


def events_store(parsed: list[ParsedEvent]) -> list[int]:
    """Store events once each (a duplicate id is a no-op) and return the ids of new rows that
    need processing. Called inside the endpoint's transaction."""
    new_ids: list[int] = []
    for event in parsed:
        status = Status.QUARANTINED if event.problem else Status.PENDING
        if not event.problem and not _worth_processing(event):
            status = Status.IGNORED
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
        if created and status == Status.PENDING:
            new_ids.append(row.pk)
    return new_ids


def _worth_processing(event: ParsedEvent) -> bool:
    if event.action == "delete":
        return bool(event.digest)
    if event.media_type not in MANIFEST_MEDIA_TYPES:
        return False  # blobs (the generated config already asks the registry not to send them)
    if event.action == "pull":
        # The portal's own reads (sync, event processing) are not pulls by anyone.
        return event.actor != settings.SYSTEM_IDENTITY
    return event.action == "push"


# --- processing ------------------------------------------------------------------------------


def process_registry_event(event_pk: int, client: RegistryClient | None = None) -> str:
    """Apply one stored event; returns its final status or 'skipped'."""
    event = RegistryEvent.objects.filter(pk=event_pk).first()
    if event is None or event.status not in (Status.PENDING, Status.FAILED):
        return "skipped"
    RegistryEvent.objects.filter(pk=event_pk).update(attempts=F("attempts") + 1)
    try:
        if event.action == "push":
            fetched = _prepare_push(event, client or get_client())
            with transaction.atomic():
                if not _claim(event_pk):
                    return "skipped"
                _apply_push(event, fetched)
        elif event.action == "pull":
            with transaction.atomic():
                if not _claim(event_pk):
                    return "skipped"
                _apply_pull(event)
        elif event.action == "delete":
            with transaction.atomic():
                if not _claim(event_pk):
                    return "skipped"
                _apply_delete(event)
        else:
            registry_event_mark(event_pk, status=Status.IGNORED)
            return Status.IGNORED
    except EventProcessingError as exc:
        registry_event_mark(event_pk, status=Status.FAILED, error=str(exc))
        return Status.FAILED
    return Status.PROCESSED


def _claim(event_pk: int) -> bool:
    claimed = RegistryEvent.objects.filter(pk=event_pk, status__in=[Status.PENDING, Status.FAILED]).update(
        status=Status.PROCESSED, error="", processed_at=timezone.now()
    )
    return claimed == 1


def registry_event_mark(event_pk: int, *, status: str, error: str = "") -> None:
    RegistryEvent.objects.filter(pk=event_pk).update(status=status, error=error[:2000], processed_at=timezone.now())


def registry_event_retry(*, event_pk: int, actor_name: str) -> bool:
    """Put a failed event back in the queue (the admin's "retry")."""
    with transaction.atomic():
        updated = RegistryEvent.objects.filter(pk=event_pk, status=Status.FAILED).update(status=Status.PENDING)
        if updated:
            audit_record(action="registry_event.retry", actor_name=actor_name, target_name=str(event_pk))
            transaction.on_commit(lambda: enqueue_event(event_pk))
    return bool(updated)


def sweep_pending_events(*, older_than: dt.timedelta = dt.timedelta(seconds=30), limit: int = 1000) -> int:
    """Enqueue stored events that were never processed: the broker was down when they came,
    or the worker died. Returns how many were enqueued."""
    cutoff = timezone.now() - older_than
    pks = list(
        RegistryEvent.objects.filter(status=Status.PENDING, received_at__lt=cutoff)
        .order_by("received_at")
        .values_list("pk", flat=True)[:limit]
    )
    for pk in pks:
        enqueue_event(pk)
    return len(pks)


def enqueue_event(event_pk: int) -> None:
    from repositories.tasks import process_registry_event as task

    try:
        task.delay(event_pk)
    except Exception:
        log.warning("could not enqueue registry event %s; it stays pending", event_pk, exc_info=True)


# --- push ------------------------------------------------------------------------------------


@dataclass
class Fetched:
    """A manifest as read from the registry, with its config and, for an index, its children."""

    doc: ManifestDoc
    config: dict = field(default_factory=dict)
    children: list[tuple[dict, Fetched]] = field(default_factory=list)


def _namespace_and_name(repository_name: str) -> tuple[Namespace, str]:
    ns_name, name = split_repository_name(repository_name)
    namespace = Namespace.objects.filter(name=ns_name).first() if ns_name else None
    if namespace is None or not name:
        raise EventProcessingError(f"the namespace of {repository_name!r} does not exist in the portal")
    return namespace, name


def _prepare_push(event: RegistryEvent, client: RegistryClient) -> Fetched | None:
    namespace, name = _namespace_and_name(event.repository)
    if Manifest.objects.filter(repository__namespace=namespace, repository__name=name, digest=event.digest).exists():
        return None
    try:
        return fetch_manifest(client, event.repository, event.digest)
    except RegistryNotFound:
        raise EventProcessingError(f"{event.repository}@{event.digest} is no longer in the registry") from None


def _apply_push(event: RegistryEvent, fetched: Fetched | None) -> None:
    namespace, name = _namespace_and_name(event.repository)
    pushed_at = event.timestamp or timezone.now()
    repository = repository_for_push(namespace=namespace, name=name, actor_name=event.actor)
    manifest = (
        store_manifest(repository, fetched)
        if fetched
        else Manifest.objects.get(repository=repository, digest=event.digest)
    )
    if repository.last_pushed_at is None or repository.last_pushed_at < pushed_at:
        Repository.objects.filter(pk=repository.pk).update(last_pushed_at=pushed_at, updated_at=timezone.now())
    if not event.tag:
        return  # a push by digest (an index's platform manifest) carries no tag
    deleted_later = RegistryEvent.objects.filter(
        action="delete",
        repository=event.repository,
        digest=event.digest,
        status=Status.PROCESSED,
        timestamp__gt=pushed_at,
    ).exists()
    if deleted_later:
        return  # this push arrived after a later delete of the same digest
    result = tag_upsert(
        repository=repository, name=event.tag, manifest=manifest, pushed_at=pushed_at, pushed_by=event.actor
    )
    repository_fill_descriptions_from_image(repository=repository, manifest=manifest)
    if result != "unchanged":
        announce_push(repository=repository, tag_name=event.tag)


def announce_push(*, repository: Repository, tag_name: str) -> None:
    """A tag now points at new content: the activity feed and the webhooks hear of it."""
    from webhooks.services import dispatch, push_payload

    tag = Tag.objects.select_related("manifest").get(repository=repository, name=tag_name)
    audit_record(
        action="tag.push",
        actor_name=tag.pushed_by or "registry",
        target_name=f"{repository.full_name}:{tag.name}",
        namespace=repository.namespace.name,
        repository=repository.full_name,
        data={"digest": tag.manifest.digest},
    )
    dispatch(event="push", repository=repository, payload=push_payload(repository, tag), tags=[tag.name])


def repository_for_push(*, namespace: Namespace, name: str, actor_name: str) -> Repository:
    """The repository a push went to, created on its first push (the token server only decided
    that the pusher may: a token request writes nothing). It gets the namespace's default
    visibility, and the pusher (the token's subject) as its creator."""
    repository = Repository.objects.filter(namespace=namespace, name=name).first()
    if repository is not None:
        return repository
    from accounts.models import User

    pusher = User.objects.filter(username=actor_name).first() if actor_name and "+" not in actor_name else None
    try:
        with transaction.atomic():
            return repository_create(
                namespace=namespace, name=name, actor=pusher, actor_name=actor_name, reason="created by push"
            )
    except (IntegrityError, ValidationError) as exc:
        found = Repository.objects.filter(namespace=namespace, name=name).first()
        if found is None:  # not a concurrent creation: a name the portal cannot hold
            raise EventProcessingError(f"cannot create {namespace.name}/{name}: {exc}") from None
        return found


def tag_upsert(*, repository: Repository, name: str, manifest: Manifest, pushed_at: dt.datetime, pushed_by: str) -> str:
    """Point tag `name` at `manifest` unless a later push already moved it. Returns
    'created', 'changed' or 'unchanged'; writes nothing when nothing changes."""
    artifact = artifact_kind(name)
    existing = Tag.objects.select_for_update().filter(repository=repository, name=name).first()
    if existing is None:
        Tag.objects.create(
            repository=repository,
            name=name,
            manifest=manifest,
            pushed_at=pushed_at,
            pushed_by=pushed_by,
            artifact=artifact,
        )
        result = "created"
    elif existing.manifest_id == manifest.pk or existing.pushed_at > pushed_at:
        return "unchanged"
    else:
        existing.manifest, existing.pushed_at, existing.pushed_by = manifest, pushed_at, pushed_by
        existing.save(update_fields=["manifest", "pushed_at", "pushed_by"])
        result = "changed"
    if artifact:
        refresh_artifact_flags(repository)
    return result


def artifact_kind(tag_name: str) -> str:
    match = ARTIFACT_TAG_RE.match(tag_name)
    return match.group(2) if match else ""


def refresh_artifact_flags(repository: Repository) -> None:
    """Mark the manifests that cosign signature/attestation/SBOM tags refer to."""
    kinds: dict[str, set[str]] = {}
    for name in Tag.objects.filter(repository=repository).exclude(artifact="").values_list("name", flat=True):
        match = ARTIFACT_TAG_RE.match(name)
        if match:
            kinds.setdefault(f"sha256:{match.group(1)}", set()).add(match.group(2))
    for manifest in Manifest.objects.filter(repository=repository):
        found = kinds.get(manifest.digest, set())
        flags = {"is_signed": "sig" in found, "has_attestation": "att" in found, "has_sbom": "sbom" in found}
        if any(getattr(manifest, key) != value for key, value in flags.items()):
            Manifest.objects.filter(pk=manifest.pk).update(**flags)


def fetch_manifest(client: RegistryClient, repository_name: str, digest: str) -> Fetched:
    doc = client.get_manifest(repository_name, digest)
    if doc.is_index:
        children = [
            (entry, fetch_manifest(client, repository_name, entry["digest"]))
            for entry in doc.data.get("manifests") or []
            if isinstance(entry, dict) and isinstance(entry.get("digest"), str)
        ]
        return Fetched(doc, {}, children)
    config_digest = (doc.data.get("config") or {}).get("digest")
    config = client.get_config(repository_name, config_digest) if config_digest else {}
    return Fetched(doc, config, [])


def store_manifest(repository: Repository, fetched: Fetched) -> Manifest:
    doc = fetched.doc
    existing = Manifest.objects.filter(repository=repository, digest=doc.digest).first()
    if existing is not None:
        return existing
    if doc.is_index:
        children = [(entry, store_manifest(repository, child)) for entry, child in fetched.children]
        manifest = Manifest.objects.create(
            repository=repository,
            digest=doc.digest,
            media_type=doc.media_type,
            total_size=sum(child.total_size for _, child in children),
            annotations=_str_dict(doc.data.get("annotations")),
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
        labels=_str_dict(inner.get("Labels")),
        annotations=_str_dict(doc.data.get("annotations")),
        layer_count=len(layers),
    )


def _str_dict(value) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


# --- pull and delete -------------------------------------------------------------------------


def _apply_pull(event: RegistryEvent) -> None:
    ns_name, name = split_repository_name(event.repository)
    repository = Repository.objects.filter(namespace__name=ns_name, name=name).first()
    if repository is None:
        return  # pulls of repositories the portal does not know are not counted
    Repository.objects.filter(pk=repository.pk).update(pull_count=F("pull_count") + 1)
    day = (event.timestamp or timezone.now()).astimezone(dt.UTC).date()
    if not DailyPulls.objects.filter(repository=repository, day=day).update(count=F("count") + 1):
        try:
            with transaction.atomic():
                DailyPulls.objects.create(repository=repository, day=day, count=1)
        except IntegrityError:  # another pull created the day's row first
            DailyPulls.objects.filter(repository=repository, day=day).update(count=F("count") + 1)


def _apply_delete(event: RegistryEvent) -> None:
    """A manifest deleted by digest: every tag that pointed at it is gone, unless the tag was
    pushed again after the delete (its push event may have been processed first)."""
    ns_name, name = split_repository_name(event.repository)
    repository = Repository.objects.filter(namespace__name=ns_name, name=name).first()
    if repository is None:
        return
    deleted_at = event.timestamp or timezone.now()
    doomed = Tag.objects.filter(repository=repository, manifest__digest=event.digest, pushed_at__lte=deleted_at)
    names = sorted(doomed.values_list("name", flat=True))
    if names:
        doomed.delete()
        audit_record(
            action="tag.delete",
            actor_name=event.actor or "registry",
            target_name=f"{event.repository}@{event.digest}",
            namespace=ns_name,
            repository=repository.full_name,
            data={"tags": names, "source": "registry event"},
        )
        announce_tag_delete(repository=repository, digest=event.digest, tags=names, actor_name=event.actor)
    remove_unreferenced_manifests(repository)
    refresh_artifact_flags(repository)


def announce_tag_delete(*, repository: Repository, digest: str, tags: list[str], actor_name: str) -> None:
    from webhooks.services import dispatch, repository_payload

    payload = {
        "callback_url": None,
        "delete_data": {"tags": tags, "digest": digest, "deleter": actor_name},
        "repository": repository_payload(repository),
    }
    dispatch(event="tag_delete", repository=repository, payload=payload, tags=tags)


def remove_unreferenced_manifests(repository: Repository) -> int:
    """Drop manifests no tag and no index of this repository refers to any more (an index's
    platform manifests become unreferenced when the index goes, hence the loop)."""
    removed = 0
    for _ in range(3):  # manifest -> index -> platform manifests: three levels at most
        batch = list(Manifest.objects.filter(repository=repository, tags__isnull=True, index_entries__isnull=True))
        if not batch:
            break
        Manifest.objects.filter(pk__in=[m.pk for m in batch]).delete()
        removed += len(batch)
    return removed
