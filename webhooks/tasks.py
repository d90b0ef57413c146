from __future__ import annotations

from celery import shared_task

from webhooks import services


@shared_task(bind=True, max_retries=10, acks_late=True)
def deliver_webhook(self, delivery_pk: int) -> str:
    """One attempt per run; a connection error, timeout or 5xx is tried again after 2, 4, 8 …
    seconds until WEBHOOK_MAX_ATTEMPTS, then the delivery is marked failed."""
    result, attempts = services.attempt_delivery(delivery_pk)
    if result is None:
        return "skipped"
    if result.ok:
        return "delivered"
    from webhooks.models import Delivery

    if Delivery.objects.filter(pk=delivery_pk, status=Delivery.Status.PENDING).exists():
        raise self.retry(countdown=2**attempts)
    return "failed"
