from django.contrib import admin, messages

from audit.admin_mixins import AuditedAdmin
from webhooks import services
from webhooks.models import Attempt, Delivery, Webhook


class DeliveryInline(admin.TabularInline):
    model = Delivery
    fields = ("delivery_id", "event", "status", "created_at")
    readonly_fields = fields
    extra = 0
    max_num = 0
    show_change_link = True
    ordering = ("-created_at",)


@admin.register(Webhook)
class WebhookAdmin(AuditedAdmin, admin.ModelAdmin):
    list_display = ("name", "url", "repository", "organization", "events", "tag_pattern", "is_active")
    list_filter = ("is_active", "organization")
    list_select_related = ("repository", "organization")
    search_fields = ("name", "url", "repository__full_name", "organization__name")
    raw_id_fields = ("repository",)
    actions = ["send_test"]

    @admin.action(description="Send a test (ping) delivery")
    def send_test(self, request, queryset) -> None:
        for hook in queryset.select_related("repository__namespace"):
            services.send_test(webhook=hook, actor=request.user)
        self.message_user(request, "Test deliveries queued; see Deliveries.", messages.SUCCESS)


class AttemptInline(admin.TabularInline):
    model = Attempt
    fields = ("number", "started_at", "duration_ms", "status_code", "error", "response_body")
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ("created_at", "webhook", "event", "status", "delivery_id")
    list_filter = ("status", "event")
    list_select_related = ("webhook",)
    search_fields = ("delivery_id", "webhook__name", "webhook__url")
    fields = ("webhook", "delivery_id", "event", "status", "created_at", "redelivery_of", "payload")
    readonly_fields = fields
    inlines = [AttemptInline]
    actions = ["redeliver"]
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Redeliver")
    def redeliver(self, request, queryset) -> None:
        for delivery in queryset.select_related("webhook"):
            services.redeliver(delivery=delivery, actor=request.user)
        self.message_user(request, "Redeliveries queued.", messages.SUCCESS)
