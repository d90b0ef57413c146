"""Writes for repositories: keyword-only functions, in a transaction, audited in it."""

from __future__ import annotations

import logging

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from accounts.models import Namespace, Visibility
from audit.services import audit_record
from repositories import access
from repositories.models import Manifest, Repository
from repositories.registry.token import Scope

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
    reason: str = "",
    address: str | None = None,
) -> Repository:
    repository = Repository(
        namespace=namespace,
        name=name,
        visibility=visibility or namespace.default_visibility or Visibility.PRIVATE,
        short_description=short_description,
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
    )
    return repository


def registry_access_grant(*, actor: access.Actor, scopes: list[Scope], address: str | None = None) -> list[dict]:
    """What a registry token grants: for each requested scope the subset of its actions the
    policy allows (DESIGN.md section 4). Never an error for a scope: what is not allowed is
    simply left out. A push to a repository that does not exist yet creates it when the actor
    may write in its namespace."""
    grants = []
    for scope in scopes:
        if scope.type == "registry":
            actions = ["*"] if access.may_list_catalog(actor) else []
        else:
            actions = _repository_actions(actor, scope, address)
        grants.append({"type": scope.type, "name": scope.name, "actions": actions})
    return grants


def _repository_actions(actor: access.Actor, scope: Scope, address: str | None) -> list[str]:
    decision, namespace, repository = access.decide_by_name(actor, scope.name)
    allowed = [a for a in scope.actions if decision.allows(access.ACTION_LEVEL[a])]
    if repository is None and namespace is not None and ("push" in allowed or "*" in allowed):
        _, name = access.split_repository_name(scope.name)
        try:
            with transaction.atomic():
                repository_create(
                    namespace=namespace,
                    name=name,
                    actor=actor.user,
                    actor_name=actor.name,
                    reason=f"created by push ({decision.reason})",
                    address=address,
                )
        except IntegrityError:
            pass  # created by a concurrent request: fine, it exists now
        except ValidationError as exc:
            log.info("refusing push to %s: %s", scope.name, exc)
            return [a for a in allowed if a == "pull"]
    return allowed


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
    return repository
