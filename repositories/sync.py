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

import contextlib
import datetime as dt
import hashlib
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DatabaseError, DataError, IntegrityError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts.models import Namespace
from audit.services import audit_record
from repositories import artifacts, selectors, storage, trust
from repositories.access import split_repository_name
from repositories.models import (
    ArtifactLink,
    DailyPulls,
    IndexEntry,
    Manifest,
    RegistryEvent,
    RegistryInstance,
    Repository,
    Tag,
    TagTombstone,
)
from repositories.registry import get_client
from repositories.registry.client import (
    INDEX_TYPES,
    ManifestDoc,
    RegistryClient,
    RegistryContentError,
    RegistryError,
    RegistryNotFound,
)
from repositories.registry.events import ParsedEvent
from repositories.services import repository_create, repository_fill_descriptions_from_image

log = logging.getLogger(__name__)

MANIFEST_MEDIA_TYPES = frozenset(
    INDEX_TYPES | {"application/vnd.docker.distribution.manifest.v2+json", "application/vnd.oci.image.manifest.v1+json"}
)
IMAGE_CONFIG_TYPES = frozenset(
    {"application/vnd.oci.image.config.v1+json", "application/vnd.docker.container.image.v1+json"}
)
# Manifests stored before the tag page existed lack its details (details_version 0): events and
# crawls read them again. Raise this when image_details learns something new.
DETAILS_VERSION = 1
Status = RegistryEvent.Status


class EventProcessingError(Exception):
    """The event is well-formed but cannot be applied; kept as failed with this message."""


class EventGone(EventProcessingError):
    """What the event is about is gone from the registry (deleted since): nothing to apply, and
    trying again cannot change that. Kept as ignored, with this message."""


# --- storing ---------------------------------------------------------------------------------

# Registry instance ids this process has already recorded: the steady state costs no query.
_known_instances: set[str] = set()


@dataclass
class Stored:
    new_ids: list[int] = field(default_factory=list)  # rows that need processing
    new_instance: bool = False  # a registry process never seen before sent these


def events_store(parsed: list[ParsedEvent], *, received_at: dt.datetime | None = None) -> Stored:
    """Store events once each (a duplicate id is a no-op). Called inside the endpoint's
    transaction; whatever one event holds, it is stored (quarantined if unusable) and never
    stops the others. Timestamps are clamped to the time received: a registry whose clock runs
    ahead must not pin a tag in the future."""
    received_at = received_at or timezone.now()
    stored = Stored()
    for event in parsed:
        if event.instance_id and event.instance_id not in _known_instances:
            stored.new_instance |= _record_instance(event)
        if is_own_read(event):
            continue  # nothing to learn, nothing to keep (see is_own_read)
        if event.timestamp is not None and event.timestamp > received_at:
            event.timestamp = received_at
        status = Status.QUARANTINED if event.problem else Status.PENDING
        if not event.problem and not _worth_processing(event):
            status = Status.IGNORED
        row, created = None, False
        try:
            # An INSERT that a duplicate id refuses: no SELECT first (the endpoint's latency is
            # the registry's throughput, and duplicates are rare).
            with transaction.atomic():
                row = RegistryEvent.objects.create(
                    event_id=event.event_id,
                    action=event.action,
                    repository=event.repository,
                    tag=event.tag,
                    digest=event.digest,
                    media_type=event.media_type,
                    actor=event.actor,
                    timestamp=event.timestamp,
                    payload=event.payload,
                    status=status,
                    error=event.problem,
                    received_at=received_at,
                )
                created = True
        except IntegrityError as exc:
            if not RegistryEvent.objects.filter(event_id=event.event_id).exists():
                created = _quarantine(event, f"could not be stored: {exc.__class__.__name__}: {exc}", received_at)
                status = Status.QUARANTINED
        except (DataError, ValueError, OverflowError) as exc:
            created = _quarantine(event, f"could not be stored: {exc.__class__.__name__}: {exc}", received_at)
            status = Status.QUARANTINED
        if created and status == Status.PENDING and row is not None:
            stored.new_ids.append(row.pk)
    return stored


def is_own_read(event: ParsedEvent) -> bool:
    """The registry reports every manifest the portal itself reads (each push's event
    processing fetches one or more; a crawl reads every tag). They are no one's pull and carry
    nothing to apply, and in a burst they were more than half of the registry's notifications,
    which it sends one at a time: they are acknowledged without being stored."""
    return event.action == "pull" and not event.problem and event.actor == settings.SYSTEM_IDENTITY


def needs_storing(parsed: list[ParsedEvent]) -> bool:
    """Whether an envelope holds anything to store (or a registry instance not seen yet): an
    envelope of the portal's own reads alone is answered without a database transaction."""
    return any(not is_own_read(e) or (e.instance_id and e.instance_id not in _known_instances) for e in parsed)


def _quarantine(event: ParsedEvent, problem: str, received_at: dt.datetime) -> bool:
    """Keep what could not be stored as it came, with the reason, under a stable id."""
    raw = json.dumps(event.payload, default=str)[:4096]
    with transaction.atomic():
        _, created = RegistryEvent.objects.get_or_create(
            event_id=f"unstorable-{hashlib.sha256(raw.encode()).hexdigest()[:40]}",
            defaults={
                "payload": {"raw": raw},
                "status": Status.QUARANTINED,
                "error": problem[:2000],
                "received_at": received_at,
            },
        )
    return created


def _record_instance(event: ParsedEvent) -> bool:
    """Remember a registry instance; True when it was never seen before (a restart or a new
    replica: its predecessor's queued notifications may be lost, so the portal crawls)."""
    with transaction.atomic():
        _, created = RegistryInstance.objects.get_or_create(
            instance_id=event.instance_id, defaults={"address": event.source_addr}
        )
    _known_instances.add(event.instance_id)
    return created


def _worth_processing(event: ParsedEvent) -> bool:
    if event.action == "delete":
        return bool(event.digest or event.tag)  # by digest (2.8), or a tag deleted (untag, 3.x)
    if event.media_type not in MANIFEST_MEDIA_TYPES:
        return False  # blobs (the generated config already asks the registry not to send them)
    if event.action == "pull":
        # A HEAD only asks whether a manifest exists (clients do it before every GET, and for
        # each tag of a crawl); the portal's own reads (sync, event processing) are no one's.
        return event.method in ("GET", "") and event.actor != settings.SYSTEM_IDENTITY
    return event.action == "push"


# --- processing ------------------------------------------------------------------------------


def process_registry_event(event_pk: int, client: RegistryClient | None = None) -> str:
    """Apply one stored event; returns its final status or 'skipped'."""
    event = RegistryEvent.objects.filter(pk=event_pk).first()
    if event is None or event.status not in (Status.PENDING, Status.FAILED):
        return "skipped"
    return _process([event], client or get_client())[event.pk]


# Events applied by one task at most: a burst's backlog is taken in batches, whose registry reads
# run in parallel (the registry delivers notifications one at a time; a worker that took them
# one at a time, each waiting for two registry round trips, fell behind four pushing clients).
BACKLOG_BATCH = 50
FETCH_CONCURRENCY = 8


def process_backlog(event_pk: int, client: RegistryClient | None = None, *, limit: int = BACKLOG_BATCH) -> str:
    """Apply this event and, with it, up to `limit` - 1 others waiting longest. The others' own
    tasks then find them done (exactly once: each is claimed in its own transaction). Returns
    this event's status. Registry or database errors of this event propagate (the task retries
    it); the others' are left pending for their own tasks."""
    event = RegistryEvent.objects.filter(pk=event_pk).first()
    if event is None or event.status not in (Status.PENDING, Status.FAILED):
        return "skipped"
    others = list(
        RegistryEvent.objects.filter(status=Status.PENDING)
        .exclude(pk=event.pk)
        .order_by("received_at", "pk")[: max(0, limit - 1)]
    )
    return _process([event, *others], client or get_client())[event.pk]


def _process(events: list[RegistryEvent], client: RegistryClient, *, strict: bool = True) -> dict[int, str]:
    """Strict: the first event's registry or database errors propagate (its task retries it);
    the others' leave them pending. Otherwise registry errors leave each event pending (counted
    as a try; failed after MAX_ATTEMPTS), and database errors propagate."""
    first = events[0].pk if strict else None
    statuses: dict[int, str] = {}
    prepared: dict[int, PreparedPush | Exception] = {}
    pushes = []
    for event in events:
        if event.action != "push":
            continue
        try:
            prepared[event.pk] = _resolve_push(event)
            if prepared[event.pk].manifest is None or prepared[event.pk].tombstoned:
                pushes.append(event)
        except EventProcessingError as exc:
            prepared[event.pk] = exc
    # The registry reads run in parallel, and each event is applied, in order, as soon as its
    # own reads are done: the first of a batch no longer waits for the last one's.
    pool = ThreadPoolExecutor(max_workers=min(FETCH_CONCURRENCY, len(pushes))) if pushes else None
    fetching = {e.pk: pool.submit(_fetch_push, e, prepared[e.pk], client) for e in pushes} if pool else {}
    try:
        for event in events:
            if event.pk in fetching:
                prepared[event.pk] = fetching[event.pk].result()
            _let_the_endpoint_in()
            statuses[event.pk] = _apply_settled(event, prepared.get(event.pk), first=first, strict=strict)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    return statuses


def _apply_settled(event: RegistryEvent, prepared, *, first: int | None, strict: bool) -> str:
    """Apply one event and settle its status, whatever happens (see _process)."""
    try:
        return _apply_once_more_on_a_race(event, prepared)
    except (IntegrityError, DataError) as exc:
        # Twice refused by a constraint: the event itself cannot be stored, another try will
        # not change that.
        log.warning("registry event %s cannot be applied: %s", event.pk, exc)
        registry_event_mark(
            event.pk, status=Status.QUARANTINED, error=f"cannot be stored: {exc.__class__.__name__}: {exc}"
        )
        return Status.QUARANTINED
    except EventGone as exc:
        registry_event_mark(event.pk, status=Status.IGNORED, error=str(exc))
        return Status.IGNORED
    except EventProcessingError as exc:
        registry_event_mark(event.pk, status=Status.FAILED, error=str(exc))
        return Status.FAILED
    except (RegistryError, DatabaseError) as exc:
        if event.pk == first or (not strict and isinstance(exc, DatabaseError)):
            raise
        if not strict:
            _count_try(event, exc)
        return "left pending"
    except Exception as exc:
        # Anything else is about this event alone (what a pusher can put in a manifest is
        # endless): it is kept as failed, with the error, and the batch goes on. One bad push
        # must never stop everyone else's.
        log.exception("registry event %s failed", event.pk)
        registry_event_mark(event.pk, status=Status.FAILED, error=f"{exc.__class__.__name__}: {exc}"[:2000])
        return Status.FAILED


def _count_try(event: RegistryEvent, exc: Exception) -> None:
    if event.attempts + 1 >= MAX_ATTEMPTS:
        registry_event_mark(event.pk, status=Status.FAILED, error=f"{exc.__class__.__name__}: {exc}")
    else:
        RegistryEvent.objects.filter(pk=event.pk).update(
            status=Status.PENDING, attempts=F("attempts") + 1, error=f"{exc.__class__.__name__}: {exc}"[:2000]
        )


def _let_the_endpoint_in() -> None:
    """SQLite has one write lock and no queue for it: a worker that begins its next transaction
    the moment it commits the last one keeps the events endpoint (which the registry waits on)
    out for as long as it drains. A millisecond between events lets it in."""
    if connection.vendor == "sqlite":
        time.sleep(0.001)


def _apply_once_more_on_a_race(event: RegistryEvent, prepared) -> str:
    """Two workers applying events of the same image at once can both create its manifest or
    tag; the loser's transaction is refused by the unique constraint, and applying it again
    (now seeing the winner's rows) succeeds."""
    try:
        return _apply(event, prepared)
    except IntegrityError:
        if isinstance(prepared, PreparedPush):
            prepared = replace(
                _resolve_push(event),
                fetched=prepared.fetched,
                tombstoned=prepared.tombstoned,
                registry_digest=prepared.registry_digest,
                checked_at=prepared.checked_at,
            )
        return _apply(event, prepared)


def _apply(event: RegistryEvent, prepared) -> str:
    if isinstance(prepared, Exception):
        raise prepared
    if event.action not in ("push", "pull", "delete"):
        registry_event_mark(event.pk, status=Status.IGNORED)
        return Status.IGNORED
    with transaction.atomic():
        if not _claim(event.pk):
            return "skipped"
        if event.action == "push":
            _apply_push(event, prepared)
        elif event.action == "pull":
            _apply_pull(event)
        else:
            _apply_delete(event)
    return Status.PROCESSED


def _claim(event_pk: int) -> bool:
    claimable = [Status.PENDING, Status.FAILED, Status.PROCESSING]
    claimed = RegistryEvent.objects.filter(pk=event_pk, status__in=claimable).update(
        status=Status.PROCESSED, error="", processed_at=timezone.now(), attempts=F("attempts") + 1
    )
    return claimed == 1


def registry_event_mark(event_pk: int, *, status: str, error: str = "") -> None:
    """Settle an event that was tried and not applied (each such try counts as an attempt)."""
    RegistryEvent.objects.filter(pk=event_pk).update(
        status=status, error=error[:2000], processed_at=timezone.now(), attempts=F("attempts") + 1
    )


def registry_event_tried(event_pk: int) -> None:
    """Count a try that will be made again (the registry or the database was unavailable)."""
    RegistryEvent.objects.filter(pk=event_pk).update(attempts=F("attempts") + 1)


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
    or the worker died (its claims are released first). Returns how many were enqueued."""
    release_stale_claims()
    cutoff = timezone.now() - older_than
    pks = list(
        RegistryEvent.objects.filter(status=Status.PENDING, received_at__lt=cutoff)
        .order_by("received_at")
        .values_list("pk", flat=True)[:limit]
    )
    for pk in pks:
        enqueue_event(pk)
    return len(pks)


def enqueue_restart_crawl() -> None:
    """A registry instance never seen before: its predecessor's queue may be lost. Crawl now."""
    from repositories.tasks import reconcile_registry

    try:
        reconcile_registry.delay(trigger="restart")
    except Exception:
        log.warning("could not enqueue the crawl for a restarted registry; the next tick will", exc_info=True)


DRAIN_KEY = "dockyard:registry-events:drain-requested"
EVENTS_FLOWING_KEY = "registry-events-flowing"


def request_drain() -> None:
    """Ask a worker to apply every pending event, unless one was asked already and has not
    started: one task (and one broker round trip) for a burst of notifications, not one each.
    The drain clears the request when it starts, so an event stored after that asks again."""
    from django.core.cache import cache

    from repositories.tasks import drain_registry_events

    try:
        # Pushes are arriving: a crawl running now gives them way (reconcile.crawl_repository).
        cache.set(EVENTS_FLOWING_KEY, 1, timeout=2)
        # Short-lived: a request whose drain never starts (its worker died) stops holding the
        # next ones back after a few seconds.
        if not cache.add(DRAIN_KEY, 1, timeout=2):
            return
    except Exception:
        # Redis (the cache and, by default, the broker) is down or hung: publishing would wait
        # on it too. The event is stored; the minute's sweep enqueues it.
        log.warning("cache unavailable: the stored events wait for the sweep")
        return
    try:
        drain_registry_events.delay()
    except Exception:
        log.warning("could not enqueue the drain; the events stay pending for the sweep", exc_info=True)
        with contextlib.suppress(Exception):
            cache.delete(DRAIN_KEY)


MAX_ATTEMPTS = 7


def drain_pending(client: RegistryClient | None = None, *, batch: int = BACKLOG_BATCH) -> int:
    """Apply pending events, oldest first, in batches, until none is left. Each batch is taken
    (pending -> processing) in one short transaction that skips rows another drain holds, so
    two workers draining at once share the backlog instead of both doing all of it. An event
    the registry cannot serve now goes back to pending, counted as a try (failed after
    MAX_ATTEMPTS), for the sweep; a database outage propagates. Returns how many were applied."""
    from django.core.cache import cache

    with contextlib.suppress(Exception):
        cache.delete(DRAIN_KEY)
    client = client or get_client()
    applied, held_back = 0, set()
    while True:
        events = _take_batch(batch, exclude=held_back)
        if not events:
            if held_back:
                _drain_again_later(held_back)
            return applied
        for pk, status in _process(events, client, strict=False).items():
            if status == "left pending":
                held_back.add(pk)
            elif status == Status.PROCESSED:
                applied += 1


def _drain_again_later(held_back: set[int]) -> None:
    """Events the registry could not serve just now are tried again by a later drain, backing
    off with their tries (2, 4 … 60 s), instead of waiting for the minute's sweep; after
    MAX_ATTEMPTS tries they are kept as failed."""
    from repositories.tasks import drain_registry_events

    tries = max(RegistryEvent.objects.filter(pk__in=held_back).values_list("attempts", flat=True), default=1)
    try:
        drain_registry_events.apply_async(countdown=min(60, 2 ** max(1, tries)))
    except Exception:
        log.warning("could not enqueue a later drain; the events stay pending for the sweep", exc_info=True)


def _take_batch(size: int, *, exclude: set[int]) -> list[RegistryEvent]:
    with transaction.atomic():
        pks = list(
            RegistryEvent.objects.select_for_update(skip_locked=True)
            .filter(status=Status.PENDING)
            .exclude(pk__in=exclude)
            .order_by("received_at", "pk")
            .values_list("pk", flat=True)[:size]
        )
        if not pks:
            return []
        RegistryEvent.objects.filter(pk__in=pks, status=Status.PENDING).update(
            status=Status.PROCESSING, claimed_at=timezone.now()
        )
    return list(RegistryEvent.objects.filter(pk__in=pks, status=Status.PROCESSING).order_by("received_at", "pk"))


def release_stale_claims(*, older_than: dt.timedelta = dt.timedelta(minutes=2)) -> int:
    """Events a drain took and never settled (its worker died): pending again."""
    return RegistryEvent.objects.filter(status=Status.PROCESSING, claimed_at__lt=timezone.now() - older_than).update(
        status=Status.PENDING
    )


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
    blobs: dict[str, bytes] = field(default_factory=dict)  # signature payloads, attestation envelopes


def _namespace_and_name(repository_name: str) -> tuple[Namespace, str]:
    ns_name, name = split_repository_name(repository_name)
    namespace = Namespace.objects.filter(name=ns_name).first() if ns_name else None
    if namespace is None or not name:
        raise EventProcessingError(f"the namespace of {repository_name!r} does not exist in the portal")
    return namespace, name


@dataclass
class PreparedPush:
    """What a push event needs, read before its transaction: the repository (None until its
    first push creates it), its namespace, and the manifest, known or fetched from the registry."""

    namespace: Namespace
    name: str
    repository: Repository | None
    manifest: Manifest | None
    fetched: Fetched | None
    # The tag (or its digest) was deleted once: whether this push still stands is asked of the
    # registry (where the tag points now, and when that was asked), not of clocks.
    tombstoned: bool = False
    registry_digest: str | None = None
    checked_at: dt.datetime | None = None


def _resolve_push(event: RegistryEvent) -> PreparedPush:
    """The database side of a push, before its transaction: one query in the common case."""
    ns_name, name = split_repository_name(event.repository)
    repository = (
        Repository.objects.select_related("namespace").filter(namespace__name=ns_name, name=name).first()
        if ns_name and name
        else None
    )
    tombstoned = bool(event.tag) and _has_tombstone(event.repository, event.tag, event.digest)
    if repository is None:
        namespace, name = _namespace_and_name(event.repository)
        return PreparedPush(namespace, name, None, None, None, tombstoned)
    manifest = Manifest.objects.filter(
        repository=repository, digest=event.digest, details_version__gte=DETAILS_VERSION
    ).first()
    return PreparedPush(repository.namespace, name, repository, manifest, None, tombstoned)


def _has_tombstone(repository_name: str, tag: str, digest: str) -> bool:
    return (
        TagTombstone.objects.filter(repository=repository_name)
        .filter(Q(tag=tag, digest__in=[digest, ""]) | Q(tag="", digest=digest))
        .exists()
    )


def _fetch_push(event: RegistryEvent, prepared: PreparedPush, client: RegistryClient) -> PreparedPush | Exception:
    """The registry side (runs in a thread; no database): the manifest, its config, its
    platforms, when the portal lacks them; where the tag points now, when it was deleted once.
    Errors are returned, to be raised where the event is applied."""
    try:
        if prepared.tombstoned:
            checked_at = timezone.now()
            try:
                registry_digest = client.head_manifest(event.repository, event.tag).digest
            except RegistryNotFound:
                registry_digest = None
            prepared = replace(prepared, registry_digest=registry_digest, checked_at=checked_at)
            if registry_digest != event.digest:
                return prepared  # the push will not be applied: nothing to fetch
        if prepared.manifest is None:
            prepared = replace(prepared, fetched=fetch_manifest(client, event.repository, event.digest))
        return prepared
    except RegistryNotFound:
        return EventGone(f"{event.repository}@{event.digest} was no longer in the registry when processed")
    except RegistryContentError as exc:
        return EventProcessingError(f"{event.repository}@{event.digest} cannot be read: {exc}")
    except Exception as exc:
        return exc


def _apply_push(event: RegistryEvent, prepared: PreparedPush) -> None:
    if event.tag and prepared.tombstoned and prepared.registry_digest != event.digest:
        return  # deleted once, and the registry no longer has this tag at this digest: history
    pushed_at = event.timestamp or timezone.now()
    repository = prepared.repository or repository_for_push(
        namespace=prepared.namespace, name=prepared.name, actor_name=event.actor
    )
    manifest = prepared.manifest or store_manifest(repository, prepared.fetched)
    if repository.last_pushed_at is None or repository.last_pushed_at < pushed_at:
        Repository.objects.filter(pk=repository.pk).filter(
            Q(last_pushed_at__isnull=True) | Q(last_pushed_at__lt=pushed_at)
        ).update(last_pushed_at=pushed_at, updated_at=timezone.now())
    if not event.tag:
        return  # a push by digest (an index's platform manifest) carries no tag
    # A delete processed after this push was made (or, when the registry was asked, after it was
    # asked) wins: a late event must not revive the tag.
    since = prepared.checked_at if prepared.tombstoned else pushed_at
    if tag_tombstoned(repository_name=event.repository, tag=event.tag, digest=event.digest, at=since):
        return
    result = tag_upsert(
        repository=repository,
        name=event.tag,
        manifest=manifest,
        pushed_at=pushed_at,
        pushed_by=event.actor,
        source=Tag.Source.EVENT,
    )
    repository_fill_descriptions_from_image(repository=repository, manifest=manifest)
    if result in ("created", "changed", "claimed"):
        announce_push(repository=repository, tag_name=event.tag)


def tag_tombstoned(*, repository_name: str, tag: str, digest: str, at: dt.datetime) -> bool:
    """Whether this tag at this digest was deleted at or after `at`: the tag itself, or its
    digest with every tag on it (tag '')."""
    return (
        TagTombstone.objects.filter(repository=repository_name, deleted_at__gte=at)
        .filter(Q(tag=tag, digest__in=[digest, ""]) | Q(tag="", digest=digest))
        .exists()
    )


def tag_tombstones_write(
    *,
    repository_name: str,
    tags: dict[str, str],
    digests: set[str] = frozenset(),
    deleted_at: dt.datetime | None = None,
) -> None:
    """Remember deleted tags (name -> digest), and deleted digests with every tag on them, so
    late push events do not bring them back."""
    when = deleted_at or timezone.now()
    rows = [*tags.items(), *(("", digest) for digest in sorted(digests))]
    TagTombstone.objects.bulk_create(
        TagTombstone(repository=repository_name, tag=name, digest=digest, deleted_at=when) for name, digest in rows
    )


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
    dispatch(event="push", repository=repository, payload=lambda: push_payload(repository, tag), tags=[tag.name])


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


def tag_upsert(
    *,
    repository: Repository,
    name: str,
    manifest: Manifest,
    pushed_at: dt.datetime,
    pushed_by: str,
    source: str = Tag.Source.EVENT,
    unless_pushed_since: dt.datetime | None = None,
) -> str:
    """Point tag `name` at `manifest`. Returns 'created', 'changed', 'claimed' or 'unchanged',
    and writes nothing when nothing changes.

    A push event wins over an older one (a later push already moved the tag: unchanged), and
    claims a tag a crawl saw first at the same digest: the pusher and the push time are filled
    in and the push is announced once. A crawl sets what the registry showed it, whatever the
    events' timestamps said, except on tags pushed since it started (`unless_pushed_since`): it
    saw them before they changed."""
    artifact = artifact_kind(name)
    existing = (
        Tag.objects.select_for_update().select_related("manifest").filter(repository=repository, name=name).first()
    )
    previous = existing.manifest if existing is not None else None
    if existing is None:
        Tag.objects.create(
            repository=repository,
            name=name,
            manifest=manifest,
            pushed_at=pushed_at,
            pushed_by=pushed_by,
            artifact=artifact,
            source=source,
        )
        result = "created"
    elif unless_pushed_since is not None and unless_pushed_since <= existing.pushed_at <= timezone.now():
        return "unchanged"  # pushed since the crawl started (a time in the future is no push: bogus)
    elif existing.manifest_id == manifest.pk:
        if source == Tag.Source.EVENT and existing.source == Tag.Source.CRAWL:
            existing.pushed_at, existing.pushed_by, existing.source = pushed_at, pushed_by, source
            existing.save(update_fields=["pushed_at", "pushed_by", "source"])
            return "claimed"
        if source == Tag.Source.EVENT and pushed_at > existing.pushed_at:
            # Pushed again, same image: the tag's time moves on (so an older delete of the
            # digest, delivered late, does not take it), and nothing is announced twice.
            existing.pushed_at, existing.pushed_by = pushed_at, pushed_by or existing.pushed_by
            existing.save(update_fields=["pushed_at", "pushed_by"])
        return "unchanged"
    elif source == Tag.Source.EVENT and existing.source == Tag.Source.EVENT and existing.pushed_at > pushed_at:
        return "unchanged"
    else:
        existing.manifest, existing.pushed_at, existing.pushed_by = manifest, pushed_at, pushed_by
        existing.source = source
        existing.save(update_fields=["manifest", "pushed_at", "pushed_by", "source"])
        result = "changed"
    if artifact:
        trust.link_tag(repository=repository, tag_name=name, manifest=manifest, previous=previous)
    return result


def artifact_kind(tag_name: str) -> str:
    """'sig', 'att' or 'sbom' for cosign's tags, 'ref' for the OCI referrers tag, else ''."""
    match = trust.ARTIFACT_TAG_RE.match(tag_name)
    return (match.group(2) or "ref") if match else ""


def refresh_artifact_flags(repository: Repository) -> None:
    """After tags went: what a removed cosign tag brought to its image goes too, and those
    images are judged again (what went with removed manifests, remove_unreferenced_manifests
    already handled)."""
    trust.refresh(repository=repository, digests=trust.prune_tag_links(repository))


def fetch_manifest(client: RegistryClient, repository_name: str, digest: str, *, doc=None) -> Fetched:
    """The manifest `digest` with what the portal reads from it (an index's platforms, an image's
    config, an artifact's small blobs). `doc`: the manifest itself when already fetched (by tag)."""
    if doc is None or doc.digest != digest:
        doc = client.get_manifest(repository_name, digest)
    if doc.is_index:
        children = [
            (entry, fetch_manifest(client, repository_name, entry["digest"]))
            for entry in doc.data.get("manifests") or []
            if isinstance(entry, dict) and isinstance(entry.get("digest"), str)
        ]
        return Fetched(doc, {}, children)
    config_ref = doc.data.get("config") if isinstance(doc.data.get("config"), dict) else {}
    config_digest = config_ref.get("digest")
    # An artifact's config may be anything (OCI 1.1): only image configs are read, as JSON.
    is_image_config = config_ref.get("mediaType") in IMAGE_CONFIG_TYPES
    config = client.get_config(repository_name, config_digest) if config_digest and is_image_config else {}
    blobs = {digest: client.get_blob(repository_name, digest) for digest in artifacts.blobs_to_read(doc.data)}
    return Fetched(doc, config, [], blobs)


def store_manifest(repository: Repository, fetched: Fetched) -> Manifest:
    doc = fetched.doc
    existing = Manifest.objects.filter(repository=repository, digest=doc.digest).first()
    if existing is not None:
        if existing.details_version < DETAILS_VERSION:
            _fill_details(repository, existing, fetched)
        return existing
    if doc.is_index:
        children = [(entry, store_manifest(repository, child)) for entry, child in fetched.children]
        manifest = Manifest.objects.create(
            repository=repository,
            digest=doc.digest,
            media_type=doc.media_type,
            total_size=sum(child.total_size for _, child in children),
            annotations=_str_dict(doc.data.get("annotations")),
            details_version=DETAILS_VERSION,
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
                    "size": _int(entry.get("size")),
                },
            )
            subject = artifacts.buildx_subject(entry)  # buildx provenance/SBOM inside the index
            if subject and trust.link(
                repository=repository, artifact=child, subject_digest=subject, via=ArtifactLink.Via.SUBJECT
            ):
                trust.refresh(repository=repository, digests={subject})
        _judge_new(repository, manifest)
        selectors.forget_platforms(repository.pk)
        return manifest
    config = fetched.config
    layers = [layer for layer in doc.data.get("layers") or [] if isinstance(layer, dict)]
    config_ref = doc.data.get("config") if isinstance(doc.data.get("config"), dict) else {}
    inner = config.get("config") if isinstance(config.get("config"), dict) else {}
    created = _parse_time(config.get("created"))
    manifest = Manifest.objects.create(
        repository=repository,
        digest=doc.digest,
        media_type=doc.media_type,
        total_size=_int(config_ref.get("size")) + sum(_int(layer.get("size")) for layer in layers),
        config_digest=str(config_ref.get("digest", ""))[:150],
        os=str(config.get("os", ""))[:32],
        architecture=str(config.get("architecture", ""))[:32],
        variant=str(config.get("variant", ""))[:32],
        image_created_at=created,
        labels=_str_dict(inner.get("Labels")),
        annotations=_str_dict(doc.data.get("annotations")),
        layer_count=len(layers),
        details=artifacts.image_details(doc.data, config),
        details_version=DETAILS_VERSION,
        artifact=artifacts.artifact_content(doc.data, fetched.blobs),
    )
    _link_subject(repository, manifest, doc)
    _judge_new(repository, manifest)
    if manifest.os:
        selectors.forget_platforms(repository.pk)
    storage.refresh_soon(repository.namespace_id)  # new blobs, perhaps
    return manifest


def _fill_details(repository: Repository, manifest: Manifest, fetched: Fetched) -> None:
    """A manifest stored before the tag page's details were read: read them now."""
    doc = fetched.doc
    if doc.is_index:
        for _, child in fetched.children:
            store_manifest(repository, child)
        values = {"details_version": DETAILS_VERSION}
    else:
        values = {
            "details": artifacts.image_details(doc.data, fetched.config),
            "artifact": artifacts.artifact_content(doc.data, fetched.blobs),
            "details_version": DETAILS_VERSION,
        }
    Manifest.objects.filter(pk=manifest.pk).update(**values)
    for key, value in values.items():
        setattr(manifest, key, value)
    _link_subject(repository, manifest, doc)
    for name in (
        Tag.objects.filter(repository=repository, manifest=manifest).exclude(artifact="").values_list("name", flat=True)
    ):
        trust.link_tag(repository=repository, tag_name=name, manifest=manifest, previous=None)


def _link_subject(repository: Repository, manifest: Manifest, doc: ManifestDoc) -> None:
    """An OCI 1.1 referrer (a signature, attestation or SBOM with a `subject`): its image gets it."""
    subject = artifacts.subject_of(doc.data)
    if subject and trust.link(
        repository=repository, artifact=manifest, subject_digest=subject, via=ArtifactLink.Via.SUBJECT
    ):
        trust.refresh(repository=repository, digests={subject})


def _judge_new(repository: Repository, manifest: Manifest) -> None:
    """An image whose signatures arrived before it did (a crawl's order, or events out of order)."""
    if ArtifactLink.objects.filter(repository=repository, subject_digest=manifest.digest).exists():
        trust.refresh(repository=repository, digests={manifest.digest})


def _int(value) -> int:
    try:
        return max(int(value or 0), 0)
    except (TypeError, ValueError):
        return 0


def _parse_time(value) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return parse_datetime(value)
    except (ValueError, OverflowError):
        return None


def _str_dict(value) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


# --- pull and delete -------------------------------------------------------------------------


def _apply_pull(event: RegistryEvent) -> None:
    ns_name, name = split_repository_name(event.repository)
    repository = Repository.objects.filter(namespace__name=ns_name, name=name).first()
    if repository is None:
        return  # pulls of repositories the portal does not know are not counted
    Repository.objects.filter(pk=repository.pk).update(pull_count=F("pull_count") + 1)
    if event.digest:
        pulled_at = min(event.timestamp or timezone.now(), timezone.now())
        Manifest.objects.filter(repository=repository, digest=event.digest).filter(
            Q(last_pulled_at__isnull=True) | Q(last_pulled_at__lt=pulled_at)
        ).update(last_pulled_at=pulled_at)
    day = (event.timestamp or timezone.now()).astimezone(dt.UTC).date()
    if not DailyPulls.objects.filter(repository=repository, day=day).update(count=F("count") + 1):
        try:
            with transaction.atomic():
                DailyPulls.objects.create(repository=repository, day=day, count=1)
        except IntegrityError:  # another pull created the day's row first
            DailyPulls.objects.filter(repository=repository, day=day).update(count=F("count") + 1)


def hold_deletes(repository_name: str) -> None:
    """Within a transaction: wait for, then hold until it ends, a repository's delete lock.
    The portal's own deletes take it before asking the registry, and the delete events take it
    before applying: the registry's event for a delete the portal made is then applied after
    the portal has recorded it, finds nothing left and records nothing again (without it, a
    fast worker recorded the delete a second time, as the registry's, with a second webhook).
    PostgreSQL: an advisory lock, which nothing else takes (so no cycle with pushes' row locks).
    SQLite: a write, which holds every other writer until commit."""
    if connection.vendor != "postgresql":
        Repository.objects.filter(pk=-1).update(id=F("id"))  # a write that changes nothing
        return
    key = int.from_bytes(hashlib.sha256(f"delete:{repository_name}".encode()).digest()[:8], "big", signed=True)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])


def _apply_delete(event: RegistryEvent) -> None:
    """A manifest deleted by digest: every tag that pointed at it is gone. A tag deleted (3.x's
    untag, or 2.8's per-tag delete event): that tag is gone. Either way, unless the tag was
    pushed again after the delete (its push event may have been processed first). The deleted
    tags are remembered, so a push event delivered late cannot bring them back."""
    hold_deletes(event.repository)  # a delete the portal is making is recorded first, by it
    ns_name, name = split_repository_name(event.repository)
    repository = Repository.objects.filter(namespace__name=ns_name, name=name).first()
    deleted_at = event.timestamp or timezone.now()
    doomed = Tag.objects.filter(repository=repository, pushed_at__lte=deleted_at)
    doomed = doomed.filter(manifest__digest=event.digest) if event.digest else doomed.filter(name=event.tag)
    gone = dict(doomed.values_list("name", "manifest__digest")) if repository is not None else {}
    # Tombstones for what the delete took, and for the delete itself (a digest with every tag on
    # it, or the tag), even when the portal never saw the push: it may yet come, late.
    tag_tombstones_write(
        repository_name=event.repository,
        tags=gone if event.digest else {event.tag: "", **gone},
        digests={event.digest} if event.digest else set(),
        deleted_at=deleted_at,
    )
    if repository is None:
        return
    names = sorted(gone)
    if names:
        doomed.delete()
        digest = event.digest or next(iter(gone.values()))
        audit_record(
            action="tag.delete",
            actor_name=event.actor or "registry",
            target_name=f"{event.repository}@{digest}",
            namespace=ns_name,
            repository=repository.full_name,
            data={"tags": names, "source": "registry event"},
        )
        announce_tag_delete(repository=repository, digest=digest, tags=names, actor_name=event.actor)
    if event.digest:
        remove_unreferenced_manifests(repository, deleted_digests={event.digest})
    else:  # a tag went, not its manifest (which may have other tags, or none and stay)
        remove_unreferenced_manifests(repository, maybe_gone=set(gone.values()), client=get_client())
    refresh_artifact_flags(repository)


def announce_tag_delete(*, repository: Repository, digest: str, tags: list[str], actor_name: str) -> None:
    from webhooks.services import dispatch, repository_payload

    payload = {
        "callback_url": None,
        "delete_data": {"tags": tags, "digest": digest, "deleter": actor_name},
        "repository": repository_payload(repository),
    }
    dispatch(event="tag_delete", repository=repository, payload=payload, tags=tags)


def remove_unreferenced_manifests(
    repository: Repository, *, deleted_digests: set[str] = frozenset(), maybe_gone=frozenset(), client=None
) -> int:
    """Forget the manifests the registry no longer has: `deleted_digests` (deleted by digest),
    and of `maybe_gone` (the digests of tags that went some other way: untagged, or found gone by
    a crawl) those no tag points at any more that the registry answers 404 for (asked with
    `client`). A manifest no tag points at that the registry still has stays, whatever took its
    last tag: an index's platform manifests when the index goes, an image pushed by digest, the
    image a tag moved away from. It is the registry's content, counted in storage and quota, and
    an `untagged` retention rule finds it (forgotten, nothing would ever list it again: found by a
    README-only attack, helper-14, as storage leaking and a way round the quota)."""
    from repositories.registry.client import RegistryError, RegistryNotFound

    gone = set(deleted_digests)
    untagged = Manifest.objects.filter(repository=repository, tags__isnull=True)
    if maybe_gone and client is not None:
        for digest in untagged.filter(digest__in=list(maybe_gone)[:1000]).values_list("digest", flat=True):
            try:
                client.head_manifest(repository.full_name, digest)
            except RegistryNotFound:
                gone.add(digest)
            except RegistryError:
                continue  # kept: the next crawl asks again
    batch = list(untagged.filter(digest__in=gone)) if gone else []
    if not batch:
        return 0
    judged_again = trust.subjects_of(batch)  # signatures and attachments going with them
    Manifest.objects.filter(pk__in=[m.pk for m in batch]).delete()
    selectors.forget_platforms(repository.pk)
    storage.refresh_soon(repository.namespace_id)
    trust.refresh(repository=repository, digests=judged_again)
    return len(batch)
