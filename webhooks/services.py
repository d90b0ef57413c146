"""Webhook writes and deliveries: plain functions; the Celery task in tasks.py wraps one."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from audit.services import audit_record
from repositories.access import pattern_matches
from repositories.models import Repository, Tag
from webhooks import client
from webhooks.models import Attempt, Delivery, Event, Webhook, url_host

USER_AGENT = "Dockyard-Webhook/1"


# --- payloads (Docker Hub's shape, plus digest and platforms) ---------------------------------


def repository_payload(repository: Repository) -> dict[str, Any]:
    namespace = repository.namespace.name
    return {
        "repo_name": repository.full_name,
        "namespace": namespace,
        "name": repository.name,
        "owner": namespace,
        "status": "Active",
        "is_private": not repository.is_public,
        "is_official": False,
        "is_trusted": False,
        "description": repository.short_description,
        "star_count": repository.star_count,
        "comment_count": 0,
        "date_created": int(repository.created_at.timestamp()),
        "repo_url": f"{settings.PORTAL_URL}/r/{repository.full_name}/",
    }


def push_payload(repository: Repository, tag: Tag) -> dict[str, Any]:
    manifest = tag.manifest
    if manifest.is_index:
        platforms = [e.platform for e in manifest.entries.order_by("os", "architecture")]
    else:
        platforms = ["/".join(p for p in (manifest.os, manifest.architecture, manifest.variant) if p)]
    return {
        "callback_url": None,
        "push_data": {
            "tag": tag.name,
            "pusher": tag.pushed_by,
            "pushed_at": int(tag.pushed_at.timestamp()),
            "digest": manifest.digest,
            "media_type": manifest.media_type,
            "platforms": [p for p in platforms if p and p != "unknown/unknown"],
            "images": [],
            "signature": {"status": manifest.signature_status, "key": manifest.signature_key or None},
        },
        "repository": repository_payload(repository),
    }


# --- dispatch ------------------------------------------------------------------------------


def matching_webhooks(*, repository: Repository, event: str, tags: list[str] | None = None) -> list[Webhook]:
    """Active webhooks of the repository or its organization that want this event (and, for
    tag events, one of these tags). One query."""
    hooks = Webhook.objects.filter(is_active=True).filter(
        Q(repository=repository) | Q(organization_id=repository.namespace.organization_id or 0)
    )
    chosen = []
    for hook in hooks:
        if hook.events and event not in hook.events:
            continue
        if hook.tag_pattern and tags is not None and not any(pattern_matches(hook.tag_pattern, t) for t in tags):
            continue
        chosen.append(hook)
    return chosen


def dispatch(
    *,
    event: str,
    repository: Repository,
    payload: dict | Callable[[], dict],
    tags: list[str] | None = None,
    organization_only: bool = False,
) -> list[int]:
    """Create one delivery per matching webhook and send them after the surrounding
    transaction commits. Call it inside the write's transaction. `payload` may be a function,
    called only when some webhook wants the event."""
    hooks = matching_webhooks(repository=repository, event=event, tags=tags)
    if organization_only:
        hooks = [hook for hook in hooks if hook.organization_id]  # repository hooks go with the repository
    if not hooks:
        return []
    body = payload() if callable(payload) else payload
    created = [Delivery.objects.create(webhook=hook, event=event, payload=body) for hook in hooks]
    for delivery in created:
        transaction.on_commit(lambda pk=delivery.pk: enqueue(pk))
    return [d.pk for d in created]


def enqueue(delivery_pk: int) -> None:
    from webhooks.tasks import deliver_webhook

    try:
        deliver_webhook.delay(delivery_pk)
    except Exception:
        import logging

        logging.getLogger(__name__).warning("could not enqueue webhook delivery %s", delivery_pk, exc_info=True)


# --- delivering ----------------------------------------------------------------------------


SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and base64 of 32 random bytes (the key)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def signing_key(secret: str) -> bytes:
    """The HMAC key: the bytes a `whsec_` secret encodes; for secrets made before the Standard
    Webhooks scheme (no prefix), the secret's own UTF-8 bytes."""
    if secret.startswith(SECRET_PREFIX):
        return base64.b64decode(secret[len(SECRET_PREFIX) :])
    return secret.encode()


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The Standard Webhooks signature (https://www.standardwebhooks.com/): HMAC-SHA256 over
    `{id}.{timestamp}.{body}`, base64, versioned `v1,`. Covering the id and the time lets a
    receiver refuse a replayed delivery (an old timestamp, or an id it has seen)."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(signing_key(secret), signed, hashlib.sha256).digest()).decode()


def signature_headers(secret: str, message_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, message_id, timestamp, body),
    }


def attempt_delivery(delivery_pk: int) -> tuple[client.WebhookResult | None, int]:
    """Make one attempt, record it, and settle the delivery when it succeeded or cannot
    succeed by retrying. Returns (result, attempts so far); (None, 0) if the delivery is gone
    or settled."""
    delivery = Delivery.objects.select_related("webhook").filter(pk=delivery_pk).first()
    if delivery is None or delivery.status != Delivery.Status.PENDING:
        return None, 0
    hook = delivery.webhook
    body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Dockyard-Event": delivery.event,
        "X-Dockyard-Delivery": str(delivery.delivery_id),
        # The same id on every attempt of a delivery (receivers deduplicate on it); a fresh
        # timestamp and signature on each attempt.
        **signature_headers(hook.secret, str(delivery.delivery_id), body),
    }
    result = client.deliver(
        hook.url,
        body,
        headers,
        timeout=settings.WEBHOOK_TIMEOUT,
        allow_private=settings.WEBHOOK_ALLOW_PRIVATE_TARGETS,
    )
    number = delivery.attempts.count() + 1
    Attempt.objects.create(
        delivery=delivery,
        number=number,
        duration_ms=result.duration_ms,
        status_code=result.status_code,
        error=result.error[:500],
        response_body=result.body[:1024],
    )
    if result.ok:
        Delivery.objects.filter(pk=delivery.pk).update(status=Delivery.Status.DELIVERED)
    elif not result.retryable or number >= settings.WEBHOOK_MAX_ATTEMPTS or result.error.startswith("refused"):
        Delivery.objects.filter(pk=delivery.pk).update(status=Delivery.Status.FAILED)
    return result, number


@transaction.atomic
def redeliver(*, delivery: Delivery, actor) -> Delivery:
    again = Delivery.objects.create(
        webhook=delivery.webhook, event=delivery.event, payload=delivery.payload, redelivery_of=delivery
    )
    audit_record(
        action="webhook.redeliver", actor=actor, target=delivery.webhook, data={"of": str(delivery.delivery_id)}
    )
    transaction.on_commit(lambda: enqueue(again.pk))
    return again


@transaction.atomic
def send_test(*, webhook: Webhook, actor) -> Delivery:
    payload: dict[str, Any] = {"event": "ping", "webhook": webhook.name, "sent_at": int(timezone.now().timestamp())}
    if webhook.repository_id:
        payload["repository"] = repository_payload(webhook.repository)
    delivery = Delivery.objects.create(webhook=webhook, event=Event.PING, payload=payload)
    transaction.on_commit(lambda: enqueue(delivery.pk))
    return delivery


# --- managing ------------------------------------------------------------------------------


def _scope_name(webhook: Webhook) -> tuple[str, str]:
    if webhook.repository_id:
        return webhook.repository.namespace.name, webhook.repository.full_name
    return webhook.organization.name, ""


@transaction.atomic
def webhook_create(
    *,
    actor,
    name: str,
    url: str,
    repository=None,
    organization=None,
    events=None,
    tag_pattern: str = "",
    is_active: bool = True,
    secret: str | None = None,
) -> Webhook:
    unknown = set(events or []) - set(Event.values)
    if unknown:
        raise ValidationError({"events": f"Unknown events: {', '.join(sorted(unknown))}."})
    _check_url(url)
    webhook = Webhook(
        repository=repository,
        organization=organization,
        name=name,
        url=url,
        events=list(events or []),
        tag_pattern=tag_pattern,
        is_active=is_active,
        secret=secret or new_secret(),
    )
    webhook.full_clean()
    webhook.save()
    namespace, repo = _scope_name(webhook)
    audit_record(
        action="webhook.create",
        actor=actor,
        target=webhook,
        namespace=namespace,
        repository=repo,
        # Never the URL: it is often a credential. Its host says enough.
        data={"host": webhook.host, "events": webhook.events},
    )
    return webhook


def _auditable(changes: dict) -> dict:
    data = {k: v for k, v in changes.items() if k not in ("secret", "url")}
    if "url" in changes:
        data["host"] = url_host(changes["url"])
    return data


def _check_url(url: str) -> None:
    try:
        client.check_url(url, allow_private=settings.WEBHOOK_ALLOW_PRIVATE_TARGETS)
    except client.WebhookTargetRefused as exc:
        raise ValidationError({"url": str(exc)}) from None


@transaction.atomic
def webhook_update(*, webhook: Webhook, actor, **changes) -> Webhook:
    if "url" in changes:
        _check_url(changes["url"])
    for key, value in changes.items():
        setattr(webhook, key, value)
    webhook.full_clean()
    webhook.save()
    namespace, repo = _scope_name(webhook)
    audit_record(
        action="webhook.update",
        actor=actor,
        target=webhook,
        namespace=namespace,
        repository=repo,
        data=_auditable(changes),
    )
    return webhook


@transaction.atomic
def webhook_delete(*, webhook: Webhook, actor) -> None:
    namespace, repo = _scope_name(webhook)
    audit_record(action="webhook.delete", actor=actor, target=webhook, namespace=namespace, repository=repo)
    webhook.delete()
