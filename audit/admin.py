from django.contrib import admin

from audit.admin_mixins import ReadOnlyAdmin
from audit.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    """Read-only: the audit log is written by services, never edited."""

    list_display = ("created_at", "actor_name", "action", "target_name", "namespace")
    list_filter = ("action",)
    search_fields = ("actor_name", "target_name", "namespace", "action")
    date_hierarchy = "created_at"
