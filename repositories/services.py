"""Writes for repositories: keyword-only functions, in a transaction, audited in it."""

from __future__ import annotations

import logging

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from accounts.models import Namespace, Visibility
from audit.services import audit_record
from repositories import access
from repositories.models import Repository
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
