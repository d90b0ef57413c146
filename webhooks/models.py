"""Webhooks: per repository or per organization (all its repositories), with every delivery
and every attempt kept."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts.models import Organization
from repositories.models import Repository


class Event(models.TextChoices):
    PUSH = "push", "Push"
    TAG_DELETE = "tag_delete", "Tag deleted"
    REPOSITORY_CREATED = "repository_created", "Repository created"
    REPOSITORY_DELETED = "repository_deleted", "Repository deleted"
    VISIBILITY_CHANGED = "visibility_changed", "Visibility changed"
    SIGNATURE = "signature", "Signature verdict changed"
    PING = "ping", "Test (ping)"


def _validate_tag_pattern(pattern: str) -> None:
    from repositories.access import validate_pattern  # the one matcher, shared with access rules

    validate_pattern(pattern)


class Webhook(models.Model):
    repository = models.ForeignKey(Repository, null=True, blank=True, on_delete=models.CASCADE, related_name="webhooks")
    organization = models.ForeignKey(
        Organization, null=True, blank=True, on_delete=models.CASCADE, related_name="webhooks"
    )
    name = models.CharField(max_length=100)
    url = models.URLField(max_length=500)
    events = models.JSONField(default=list, blank=True, help_text="event names; empty means all")
    secret = models.CharField(
        max_length=128, help_text="signs each delivery (Standard Webhooks: HMAC-SHA256 over id, timestamp and body)"
    )
    tag_pattern = models.CharField(
        max_length=100,
        blank=True,
        help_text="e.g. v* or release-*; empty: every tag",
        validators=[_validate_tag_pattern],
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(repository__isnull=False, organization__isnull=True)
                | Q(repository__isnull=True, organization__isnull=False),
                name="webhook_exactly_one_scope",
            )
        ]

    @property
    def host(self) -> str:
        """Where deliveries go, without the path and query: webhook URLs are often credentials
        (Slack, Discord, Teams put the secret in the path), so only the host is ever shown to
        anyone but the webhook's administrators, logged or audited."""
        return url_host(self.url)

    def __str__(self) -> str:
        return f"{self.name} → {self.host}"

    @property
    def recent_deliveries(self) -> list:
        """The last ten deliveries with their attempts, for the delivery log on settings pages."""
        return list(self.deliveries.prefetch_related("attempts").order_by("-created_at")[:10])


def url_host(url: str) -> str:
    try:
        parts = urlsplit(url)
        return parts.hostname + (f":{parts.port}" if parts.port else "") if parts.hostname else ""
    except ValueError:
        return ""


class Delivery(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    delivery_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    event = models.CharField(max_length=32, choices=Event.choices)
    payload = models.JSONField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(default=timezone.now)
    redelivery_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        verbose_name_plural = "deliveries"
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["webhook", "-created_at"], name="delivery_webhook_created")]

    def __str__(self) -> str:
        return f"{self.event} {self.delivery_id} ({self.status})"

    @property
    def last_attempt(self):
        attempts = list(self.attempts.all())
        return max(attempts, key=lambda a: a.number) if attempts else None


class Attempt(models.Model):
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveSmallIntegerField()
    started_at = models.DateTimeField(default=timezone.now)
    duration_ms = models.PositiveIntegerField(default=0)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    response_body = models.CharField(max_length=1024, blank=True, help_text="the start of the answer")

    class Meta:
        ordering = ["delivery", "number"]
        constraints = [models.UniqueConstraint(fields=["delivery", "number"], name="attempt_unique_number")]

    def __str__(self) -> str:
        return f"#{self.number} {self.status_code or self.error}"
