"""Writes for repositories: keyword-only functions, in a transaction, audited in it."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from accounts.models import Namespace, Visibility
from audit.services import audit_record
from repositories.models import Repository


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
