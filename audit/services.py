from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model

from audit.models import AuditEvent


def audit_record(
    *,
    action: str,
    actor=None,
    actor_name: str = "",
    target=None,
    target_name: str = "",
    namespace: str = "",
    data: dict[str, Any] | None = None,
    address: str | None = None,
    repository: str = "",
) -> AuditEvent:
    """Write one audit row. Call it inside the transaction of the write it describes."""
    user = actor if isinstance(actor, get_user_model()) else None
    if user is not None and not actor_name:
        actor_name = user.get_username()
    if not repository and target is not None and target.__class__.__name__ == "Repository":
        repository = target.full_name
    return AuditEvent.objects.create(
        repository=repository,
        action=action,
        actor=user,
        actor_name=actor_name,
        target_type=target.__class__.__name__.lower() if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        target_name=target_name or (str(target) if target is not None else ""),
        namespace=namespace,
        data=data or {},
        address=address,
    )
