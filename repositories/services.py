"""Writes for repositories: keyword-only functions, in a transaction, audited in it."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.models import Namespace, Visibility
from audit.services import audit_record
from repositories.models import Manifest, Repository

log = logging.getLogger(__name__)


@transaction.atomic
def repository_create(
    *,
    namespace: Namespace,
    name: str,
    actor_name: str,
    actor=None,
    visibility: str | None = None,
    short_description: str = "",
    full_description: str = "",
    reason: str = "",
    address: str | None = None,
) -> Repository:
    """Create a repository (the caller asked access.repository_creation_refusal, or this is the
    first push the registry reported). Its visibility is the namespace's default unless given."""
    if Repository.objects.filter(namespace=namespace, name=name).exists():
        raise ValidationError({"name": "A repository with this name exists."})
    repository = Repository(
        namespace=namespace,
        name=name,
        visibility=visibility or namespace.default_visibility or Visibility.PRIVATE,
        short_description=short_description,
        full_description=full_description,
    )
    try:
        repository.full_clean()
    except ValidationError as exc:
        raise ValidationError(exc.message_dict) from None
    repository.save()
    audit_record(
        action="repository.create",
        actor=actor,
        actor_name=actor_name,
        target=repository,
        target_name=repository.full_name,
        namespace=namespace.name,
        data={"visibility": repository.visibility, "reason": reason}
        if reason
        else {"visibility": repository.visibility},
        address=address,
    )
    _announce(repository, "repository_created", {"created_by": actor_name})
    return repository


# OCI annotation keys, with the label names some builders use instead.
DESCRIPTION_KEYS = ("org.opencontainers.image.description", "description")
TITLE_KEYS = ("org.opencontainers.image.title",)
SOURCE_KEYS = ("org.opencontainers.image.source", "org.label-schema.vcs-url")
DOCUMENTATION_KEYS = ("org.opencontainers.image.documentation", "org.label-schema.usage")


def _first(metadata: dict[str, str], keys: tuple[str, ...]) -> str:
    return next((metadata[k].strip() for k in keys if metadata.get(k, "").strip()), "")


def repository_fill_descriptions_from_image(*, repository: Repository, manifest: Manifest) -> bool:
    """When a repository has no descriptions (or only ones taken from an image before), take
    them from this image's OCI annotations or labels. Marked as from the image until a person
    edits them. Returns whether anything was written."""
    if not repository.description_from_image and (repository.short_description or repository.full_description):
        return False
    metadata: dict[str, str] = {}
    platform = manifest.children.order_by("pk").first() if manifest.is_index else None
    # Annotations win over labels, the image's own over the index's first platform's.
    sources = [manifest.labels, manifest.annotations]
    if platform is not None:
        sources = [platform.labels, manifest.labels, platform.annotations, manifest.annotations]
    for source in sources:
        metadata.update(source or {})
    description = _first(metadata, DESCRIPTION_KEYS)
    title = _first(metadata, TITLE_KEYS)
    source = _first(metadata, SOURCE_KEYS)
    documentation = _first(metadata, DOCUMENTATION_KEYS)
    if not (description or title or source or documentation):
        return False
    short = (description or title)[:100]
    lines = [f"# {title}" if title else "", description]
    if source:
        lines.append(f"Source: <{source}>")
    if documentation:
        lines.append(f"Documentation: <{documentation}>")
    full = "\n\n".join(line for line in lines if line)[:25000]
    if (repository.short_description, repository.full_description) == (short, full):
        return False
    Repository.objects.filter(pk=repository.pk).update(
        short_description=short, full_description=full, description_from_image=True
    )
    repository.short_description, repository.full_description, repository.description_from_image = short, full, True
    return True


@transaction.atomic
def repository_update(
    *,
    repository: Repository,
    actor,
    short_description: str | None = None,
    full_description: str | None = None,
    visibility: str | None = None,
) -> Repository:
    """A person's edit. Descriptions a person wrote are never overwritten from an image."""
    before = {
        "short_description": repository.short_description,
        "full_description": repository.full_description,
        "visibility": repository.visibility,
    }
    if short_description is not None:
        repository.short_description = short_description
        repository.description_from_image = False
    if full_description is not None:
        repository.full_description = full_description
        repository.description_from_image = False
    if visibility is not None:
        repository.visibility = visibility
    repository.full_clean()
    repository.save()
    after = {key: getattr(repository, key) for key in before}
    changed = {key: {"before": before[key], "after": after[key]} for key in before if before[key] != after[key]}
    if changed:
        audit_record(
            action="repository.update",
            actor=actor,
            target=repository,
            target_name=repository.full_name,
            namespace=repository.namespace.name,
            data=changed,
        )
    if before["visibility"] != repository.visibility:
        _announce(repository, "visibility_changed", {"before": before["visibility"], "after": repository.visibility})
    return repository


class ConfirmationRequired(Exception):
    """Deleting this tag deletes its digest, and with it these other tags (distribution 2.8
    deletes by digest only). The caller must confirm."""

    def __init__(self, digest: str, tags: list[str]) -> None:
        super().__init__(f"deleting {digest} also deletes {', '.join(tags)}")
        self.digest, self.tags = digest, tags


class UsedByIndex(Exception):
    """The tag's digest is a platform manifest of an index other tags point at (at any depth):
    deleting it would break their images. Delete those tags first."""

    def __init__(self, digest: str, tags: list[str]) -> None:
        super().__init__(
            f"{digest} is a platform of the image index tagged {', '.join(tags)}: deleting it would break "
            "that image; delete the index's tags first"
        )
        self.digest, self.tags = digest, tags


class TagNotInRegistry(Exception):
    """The registry has no such tag (any more): nothing was deleted there."""


class AttachmentNotFound(Exception):
    """No attestation or SBOM of this repository has these digests."""


def attachment_open(*, repository: Repository, artifact_digest: str, layer_digest: str):
    """An attestation or SBOM of the repository, to stream: (what it is, an iterator over its
    bytes from the registry, their length as the registry says or None). Raises
    AttachmentNotFound, or RegistryError."""
    from repositories import selectors
    from repositories.registry import get_client
    from repositories.registry.client import RegistryNotFound

    item = selectors.attachment(repository=repository, artifact_digest=artifact_digest, layer_digest=layer_digest)
    if item is None:
        raise AttachmentNotFound(layer_digest)
    try:
        response = get_client().open_blob(repository.full_name, layer_digest)
    except RegistryNotFound:
        raise AttachmentNotFound(layer_digest) from None

    def chunks():
        try:
            yield from response.iter_content(64 * 1024)
        finally:
            response.close()

    return item, chunks(), response.headers.get("Content-Length")


@dataclass(frozen=True)
class DeletePreview:
    digest: str  # what the tag points at now
    tags: list[str]  # every tag on that digest: deleting it deletes them all
    used_by: list[str]  # tags of indexes that list it (at any depth): they would break


def tag_delete_preview(*, repository: Repository, tag_name: str) -> DeletePreview:
    """What deleting this tag would delete, and break, as the registry says now. Raises
    TagNotInRegistry, or RegistryError when the registry cannot be reached."""
    from repositories import policies
    from repositories.registry import get_client
    from repositories.registry.client import RegistryNotFound

    client = get_client()
    try:
        digest = client.head_manifest(repository.full_name, tag_name).digest
    except RegistryNotFound:
        raise TagNotInRegistry(tag_name) from None
    graph = policies.registry_graph(client, repository.full_name, bounded=False)
    siblings = sorted({tag_name, *graph.on(digest)})
    return DeletePreview(digest, siblings, [tag for tag in graph.used_by(digest) if tag not in siblings])


def tag_delete_check(*, repository: Repository, preview: DeletePreview) -> None:
    """What no confirmation can allow: an immutable tag is never deleted, nor a digest that
    carries one, nor a platform manifest of an immutable index (policies.TagImmutable names the
    rule); nor one of any other index, whose image would break (UsedByIndex)."""
    from repositories import policies

    policies.check_delete(
        namespace_name=repository.namespace.name, repository_name=repository.name, tags=preview.tags + preview.used_by
    )
    if preview.used_by:
        raise UsedByIndex(preview.digest, preview.used_by)


def tag_delete(
    *,
    repository: Repository,
    tag_name: str,
    actor,
    confirm: bool = False,
    expected_digest: str = "",
    preview: DeletePreview | None = None,
) -> tuple[str, list[str]]:
    """Delete a tag the only way the registry can: by its manifest's digest, which removes
    every tag pointing at it. The digest and the tags sharing it are read from the registry
    (DESIGN.md section 5: the registry is the truth), never from the portal's picture, which a
    lost event can leave stale: deleting "latest" must delete what "latest" is now.

    Returns (digest, every tag removed). Raises policies.TagImmutable when one of them is
    immutable (or an index that lists the digest has an immutable tag); UsedByIndex when an
    index other tags point at lists the digest; ConfirmationRequired when other tags would go
    too and `confirm` is false, or when the tag no longer points at `expected_digest` (what the
    person confirmed); TagNotInRegistry when the registry has no such tag (the portal forgets
    it); RegistryError when the registry cannot be reached (then nothing changed).

    `preview`: what the caller read from the registry a moment ago (retention, deleting many
    digests, reads every tag once every few seconds rather than once per digest)."""
    from repositories import gc, policies
    from repositories.models import Tag
    from repositories.registry import get_client
    from repositories.registry.client import RegistryNotFound
    from repositories.sync import (
        announce_tag_delete,
        hold_deletes,
        refresh_artifact_flags,
        remove_unreferenced_manifests,
        tag_tombstones_write,
    )

    gc.refuse_during_hold()  # garbage collection holds every write
    try:
        preview = preview or tag_delete_preview(repository=repository, tag_name=tag_name)
    except TagNotInRegistry:
        _forget_tags(repository=repository, names=[tag_name], actor=actor, reason="gone from the registry")
        raise
    digest, siblings = preview.digest, preview.tags
    tag_delete_check(repository=repository, preview=preview)
    others = [name for name in siblings if name != tag_name]
    if (others and not confirm) or (expected_digest and expected_digest != digest):
        raise ConfirmationRequired(digest, siblings)
    client = get_client()
    # Nor a digest an immutable tag may be being pushed onto right now.
    policies.guard_delete(client, repository.full_name, [digest])
    deleted_at = timezone.now()
    with transaction.atomic():
        # The registry's event for this delete waits until it is recorded here (sync.hold_deletes).
        hold_deletes(repository.full_name)
        with contextlib.suppress(RegistryNotFound):  # deleted meanwhile: the portal agrees below
            client.delete_manifest(repository.full_name, digest)
        # What the registry deleted: the digest's tags there, whatever digest the portal thought
        # they had. (A portal row on that digest for a tag the registry has elsewhere is stale,
        # not deleted: the next event or crawl corrects it.)
        Tag.objects.filter(repository=repository, name__in=siblings).delete()
        removed = siblings
        tag_tombstones_write(
            repository_name=repository.full_name,
            tags=dict.fromkeys(removed, digest),
            digests={digest},
            deleted_at=deleted_at,
        )
        remove_unreferenced_manifests(repository, deleted_digests={digest})
        refresh_artifact_flags(repository)
        audit_record(
            action="tag.delete",
            actor=actor,
            target=repository,
            target_name=f"{repository.full_name}@{digest}",
            namespace=repository.namespace.name,
            data={"tags": removed},
        )
        announce_tag_delete(
            repository=repository, digest=digest, tags=removed, actor_name=getattr(actor, "username", "")
        )
    return digest, removed


def _forget_tags(*, repository: Repository, names: list[str], actor, reason: str) -> None:
    from repositories.models import Tag
    from repositories.registry import get_client
    from repositories.sync import refresh_artifact_flags, remove_unreferenced_manifests

    with transaction.atomic():
        gone = sorted(Tag.objects.filter(repository=repository, name__in=names).values_list("name", flat=True))
        if not gone:
            return
        digests = set(
            Tag.objects.filter(repository=repository, name__in=gone).values_list("manifest__digest", flat=True)
        )
        Tag.objects.filter(repository=repository, name__in=gone).delete()
        remove_unreferenced_manifests(repository, maybe_gone=digests, client=get_client())
        refresh_artifact_flags(repository)
        audit_record(
            action="tag.delete",
            actor=actor,
            target=repository,
            target_name=repository.full_name,
            namespace=repository.namespace.name,
            data={"tags": gone, "source": reason},
        )


def repository_delete(*, repository: Repository, actor) -> list[str]:
    """Delete every manifest a tag points at in the registry, then the repository and all it
    holds in the portal. The digests come from the registry itself (a tag the portal never
    heard of is deleted too, so the repository does not come back at the next crawl). Returns
    the tags removed. Distribution has no API to drop the name itself: it stays in the catalog,
    empty, until garbage collection. Raises policies.TagImmutable, deleting nothing, when the
    repository holds an immutable tag (the registry's or the portal's)."""
    from repositories import gc, policies
    from repositories.models import Tag
    from repositories.registry import get_client
    from repositories.registry.client import RegistryNotFound
    from repositories.sync import hold_deletes, tag_tombstones_write

    gc.refuse_during_hold()  # garbage collection holds every write
    client = get_client()
    in_registry = client.tag_digests(repository.full_name)
    # An immutable tag is never deleted, by a tag delete or with its whole repository.
    known = set(Tag.objects.filter(repository=repository).values_list("name", flat=True))
    policies.check_delete(
        namespace_name=repository.namespace.name, repository_name=repository.name, tags=sorted(known | set(in_registry))
    )
    # … nor one being pushed right now.
    policies.guard_delete(client, repository.full_name, sorted(set(in_registry.values())))
    tags = sorted(known | set(in_registry))
    with transaction.atomic():
        # The registry's events for these deletes wait until they are recorded here, as one.
        hold_deletes(repository.full_name)
        for digest in sorted(set(in_registry.values())):
            with contextlib.suppress(RegistryNotFound):
                client.delete_manifest(repository.full_name, digest)
        deleted_at = timezone.now()
        audit_record(
            action="repository.delete",
            actor=actor,
            target=repository,
            target_name=repository.full_name,
            namespace=repository.namespace.name,
            data={"tags": tags},
        )
        _announce(repository, "repository_deleted", {"tags": tags}, organization_only=True)
        tag_tombstones_write(
            repository_name=repository.full_name,
            tags=in_registry,
            digests=set(in_registry.values()),
            deleted_at=deleted_at,
        )
        Tag.objects.filter(repository=repository).delete()  # tags protect their manifests
        repository.delete()
    return tags


@transaction.atomic
def grant_set(*, repository: Repository, level: int, actor, team=None, user=None, robot=None):
    from repositories.models import RepositoryGrant

    holder = {"team": team} if team else {"user": user} if user else {"robot": robot}
    grant = RepositoryGrant.objects.filter(repository=repository, **holder).first()
    created = grant is None
    if grant is None:
        grant = RepositoryGrant(repository=repository, **holder)
    grant.level = level
    grant.full_clean(validate_unique=False)  # a team or robot of this repository's organization only
    grant.save()
    audit_record(
        action="grant.set",
        actor=actor,
        target=repository,
        target_name=repository.full_name,
        namespace=repository.namespace.name,
        data={"holder": str(team or user or robot), "level": grant.get_level_display(), "created": created},
    )
    return grant


@transaction.atomic
def grant_delete(*, grant, actor) -> None:
    repository = grant.repository
    audit_record(
        action="grant.delete",
        actor=actor,
        target=repository,
        target_name=repository.full_name,
        namespace=repository.namespace.name,
        data={"holder": str(grant.holder), "level": grant.get_level_display()},
    )
    grant.delete()


@transaction.atomic
def star_set(*, repository: Repository, user, starred: bool) -> bool:
    from django.db.models import F

    from repositories.models import Star

    if starred:
        _, created = Star.objects.get_or_create(user=user, repository=repository)
        if created:
            Repository.objects.filter(pk=repository.pk).update(star_count=F("star_count") + 1)
        return created
    deleted, _ = Star.objects.filter(user=user, repository=repository).delete()
    if deleted:
        Repository.objects.filter(pk=repository.pk).update(star_count=F("star_count") - 1)
    return bool(deleted)


@transaction.atomic
def access_rule_create(*, organization, pattern: str, level: int, actor, team=None, robot=None):
    from repositories.models import AccessRule

    rule = AccessRule(organization=organization, team=team, robot=robot, pattern=pattern, level=level)
    rule.full_clean()
    rule.save()
    audit_record(
        action="access_rule.create",
        actor=actor,
        target=rule,
        namespace=organization.name,
        data={"pattern": pattern, "level": rule.get_level_display(), "holder": str(team or robot)},
    )
    return rule


@transaction.atomic
def access_rule_delete(*, rule, actor) -> None:
    audit_record(
        action="access_rule.delete",
        actor=actor,
        target=rule,
        namespace=rule.organization.name,
        data={"pattern": rule.pattern, "level": rule.get_level_display(), "holder": str(rule.team or rule.robot)},
    )
    rule.delete()


def _announce(repository: Repository, event: str, data: dict, *, organization_only: bool = False) -> None:
    from webhooks.services import dispatch, repository_payload

    payload = {"callback_url": None, "event_data": data, "repository": repository_payload(repository)}
    dispatch(event=event, repository=repository, payload=payload, organization_only=organization_only)
