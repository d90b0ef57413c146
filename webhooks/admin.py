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
    """The signing secret is shown once, when it is made (on add, or by "rotate"), never in the
    form: a secret on a page is a secret in every browser history and screenshot."""

    list_display = ("name", "url", "repository", "organization", "events", "tag_pattern", "is_active")
    list_filter = ("is_active", "organization")
    list_select_related = ("repository", "organization")
    search_fields = ("name", "url", "repository__full_name", "organization__name")
    raw_id_fields = ("repository",)
    fields = ("name", "url", "repository", "organization", "events", "tag_pattern", "is_active", "created_at")
    readonly_fields = ("created_at",)
    actions = ["send_test", "rotate_secret"]

    def save_model(self, request, obj, form, change) -> None:
        secret = None
        if not change:
            secret = obj.secret = services.new_secret()
        super().save_model(request, obj, form, change)
        if secret:
            self.message_user(
                request, f"Signing secret for {obj.name} (shown once, copy it now): {secret}", messages.WARNING
            )

    @admin.action(description="Rotate the signing secret (deliveries are signed with the new one at once)")
    def rotate_secret(self, request, queryset) -> None:
        for hook in queryset.select_related("repository__namespace", "organization"):
            secret = services.new_secret()
            services.webhook_update(webhook=hook, actor=request.user, secret=secret)
            self.message_user(request, f"New secret for {hook.name} (shown once): {secret}", messages.WARNING)

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
