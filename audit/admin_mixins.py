"""Every change made through the admin is audited: who, what, before and after, when, in the
same transaction as the change (the admin wraps each save in one)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db import models
from django.forms.models import model_to_dict

from audit.services import audit_record
from portal.net import client_address

# Never copied into the audit log, whatever the model.
SECRET_FIELDS = {"password", "token_hash", "secret_hash", "secret_prefix", "prefix", "secret"}
# Copied as their host only: webhook URLs are often credentials (a Slack or Teams hook's path).
URL_FIELDS = {"url"}


def _redact(key: str, value: Any) -> Any:
    if key in URL_FIELDS and value:
        from webhooks.models import url_host

        return url_host(str(value))
    return value


def _snapshot(obj: models.Model) -> dict[str, Any]:
    if obj.pk is None:
        return {}
    data = model_to_dict(obj)
    return {
        key: (
            [str(v) for v in value]
            if isinstance(value, list | tuple | set)
            else str(_redact(key, value))
            if value is not None
            else None
        )
        for key, value in data.items()
        if key not in SECRET_FIELDS
    }


def _namespace_of(obj: models.Model) -> str:
    for path in (
        "namespace.name",
        "organization.name",
        "repository.namespace.name",
        "team.organization.name",
        "user.username",
    ):
        value: Any = obj
        for part in path.split("."):
            value = getattr(value, part, None)
            if value is None:
                break
        if isinstance(value, str):
            return value
    return ""


def audit_admin_change(request, obj: models.Model, before: dict, *, action: str) -> None:
    after = _snapshot(obj) if action != "delete" else {}
    changed = {key for key in set(before) | set(after) if before.get(key) != after.get(key)}
    if action == "change" and not changed:
        return
    audit_record(
        action=f"admin.{obj._meta.model_name}.{action}",
        actor=request.user,
        target=obj,
        target_name=str(obj),
        namespace=_namespace_of(obj),
        data={
            "before": {k: before.get(k) for k in sorted(changed)},
            "after": {k: after.get(k) for k in sorted(changed)},
        },
        address=client_address(request),
    )


class AuditedAdmin:
    """Mix into a ModelAdmin (before admin.ModelAdmin) to audit saves, deletes and inline edits."""

    def save_model(self, request, obj, form, change) -> None:
        before = _snapshot(type(obj).objects.get(pk=obj.pk)) if change else {}
        super().save_model(request, obj, form, change)
        audit_admin_change(request, obj, before, action="change" if change else "add")

    def delete_model(self, request, obj) -> None:
        before = _snapshot(obj)
        audit_admin_change(request, obj, before, action="delete")
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset) -> None:
        for obj in queryset:
            audit_admin_change(request, obj, _snapshot(obj), action="delete")
        super().delete_queryset(request, queryset)

    def save_formset(self, request, form, formset, change) -> None:
        befores = {obj.pk: _snapshot(type(obj).objects.get(pk=obj.pk)) for obj in formset.queryset if obj.pk}
        deleted = [(f.instance, _snapshot(f.instance)) for f in formset.deleted_forms if f.instance.pk]
        super().save_formset(request, form, formset, change)
        for obj, snapshot in deleted:
            audit_admin_change(request, obj, snapshot, action="delete")
        for obj in formset.new_objects:
            audit_admin_change(request, obj, {}, action="add")
        for obj, _fields in formset.changed_objects:
            audit_admin_change(request, obj, befores.get(obj.pk, {}), action="change")


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records that are kept as they were written (the audit log, what the registry said, the
    content the registry owns): seen and searched here, never added, edited or deleted."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
