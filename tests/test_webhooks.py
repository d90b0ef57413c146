"""Webhooks: signed deliveries of real pushes, retries, safety, redelivery, and the activity feed."""

import base64
import hashlib
import hmac
import json
import time

import pytest
from django.core.exceptions import ValidationError
from rest_framework.test import APIClient

from accounts.models import Namespace, Visibility
from audit.models import AuditEvent
from repositories.models import RegistryEvent, Repository
from repositories.oci_layout import write_image
from repositories.services import repository_create, repository_update
from tests.conftest import PASSWORD
from tests.helpers import push
from tests.receiver import Receiver
from tests.services import wait_until
from webhooks import client, services, tasks
from webhooks.models import Delivery, Webhook


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def repo(db, alice):
    return repository_create(namespace=Namespace.objects.get(name="alice"), name="hooked", actor_name="alice")


def hook_for(repo, url: str, **kwargs) -> Webhook:
    return services.webhook_create(actor=None, name="ci", url=url, repository=repo, **kwargs)


def verify(received, secret: str) -> dict:
    """What docs/webhooks.md tells a receiver to do (the Standard Webhooks check)."""
    assert secret.startswith("whsec_")
    key = base64.b64decode(secret.removeprefix("whsec_"))
    message_id, timestamp = received.headers["webhook-id"], received.headers["webhook-timestamp"]
    assert abs(time.time() - int(timestamp)) < 300
    signed = f"{message_id}.{timestamp}.".encode() + received.body
    expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert any(hmac.compare_digest(expected, sig) for sig in received.headers["webhook-signature"].split())
    return json.loads(received.body)


@pytest.mark.registry
def test_a_real_push_yields_one_signed_delivery(registry, celery_worker, alice, receiver, tmp_path, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True  # the receiver is on loopback (as for the worker)
    repository = repository_create(
        namespace=Namespace.objects.get(name="alice"), name="hooked-push", actor_name="alice"
    )
    hook = hook_for(repository, receiver.url, events=["push"])
    image = write_image(tmp_path / "img", "v1.2", content="hooked", arch="arm64")
    result = push(tmp_path / "img", "v1.2", registry.host, "alice/hooked-push:v1.2", creds=f"alice:{PASSWORD}")
    assert result.returncode == 0, result.stderr

    wait_until(lambda: receiver.requests, timeout=30, what="the webhook delivery")
    registry.drain_notifications()
    wait_until(lambda: not RegistryEvent.objects.filter(status="pending").exists(), timeout=30, what="events processed")
    assert len(receiver.requests) == 1
    received = receiver.requests[0]
    assert received.headers["X-Dockyard-Event"] == "push"
    delivery = Delivery.objects.get(webhook=hook)
    assert received.headers["X-Dockyard-Delivery"] == str(delivery.delivery_id)
    body = verify(received, hook.secret)
    assert body["push_data"]["tag"] == "v1.2"
    assert body["push_data"]["pusher"] == "alice"
    assert body["push_data"]["digest"] == image.top.digest
    assert body["push_data"]["platforms"] == ["linux/arm64"]
    assert body["repository"]["repo_name"] == "alice/hooked-push"
    assert body["repository"]["namespace"] == "alice"
    assert body["repository"]["is_private"] is True
    assert body["repository"]["repo_url"].endswith("/r/alice/hooked-push/")
    wait_until(lambda: Delivery.objects.get(pk=delivery.pk).status == "delivered", timeout=10, what="delivered")
    # The push is in the repository's activity feed.
    feed = APIClient()
    feed.force_authenticate(alice)
    actions = [e["action"] for e in feed.get("/api/v1/repositories/alice/hooked-push/activity/").json()["results"]]
    assert "tag.push" in actions and "repository.create" in actions


def test_a_receiver_failing_twice_then_succeeding_gets_three_attempts(repo, receiver, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    receiver.statuses = [500, 503, 200]
    hook = hook_for(repo, receiver.url)
    delivery = services.send_test(webhook=hook, actor=None)
    assert tasks.deliver_webhook.apply(args=[delivery.pk]).get() == "delivered"  # eager: retries run inline
    delivery.refresh_from_db()
    assert delivery.status == "delivered"
    assert [a.status_code for a in delivery.attempts.all()] == [500, 503, 200]
    assert len(receiver.requests) == 3
    assert len({r.headers["X-Dockyard-Delivery"] for r in receiver.requests}) == 1  # the same delivery


def test_gives_up_after_the_last_attempt(repo, receiver, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    settings.WEBHOOK_MAX_ATTEMPTS = 2
    receiver.statuses = [500]
    delivery = services.send_test(webhook=hook_for(repo, receiver.url), actor=None)
    assert tasks.deliver_webhook.apply(args=[delivery.pk]).get() == "failed"
    assert Delivery.objects.get(pk=delivery.pk).attempts.count() == 2


def test_private_targets_are_refused_with_the_setting_off(repo, receiver, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    # An address written as such is refused when the webhook is saved ...
    with pytest.raises(ValidationError, match="not a public address"):
        hook_for(repo, receiver.url)
    # ... a name is checked at every delivery (DNS answers change): localhost is 127.0.0.1.
    named = receiver.url.replace("127.0.0.1", "localhost")
    delivery = services.send_test(webhook=hook_for(repo, named), actor=None)
    tasks.deliver_webhook.apply(args=[delivery.pk])
    delivery.refresh_from_db()
    assert delivery.status == "failed"
    assert delivery.attempts.get().error.startswith("refused: localhost resolves to an internal address")
    assert receiver.requests == []  # nothing was sent


def test_a_name_that_does_not_resolve_is_retried_like_a_connection_error(repo, settings):
    """DNS failing is a connection error (docs/webhooks.md: retried), not a refusal: a
    README-only newcomer (helper-12) saw such a delivery fail after one attempt. `.invalid`
    never resolves (RFC 6761)."""
    settings.WEBHOOK_MAX_ATTEMPTS = 3
    delivery = services.send_test(webhook=hook_for(repo, "https://hooks.example.invalid/x"), actor=None)
    result, number = services.attempt_delivery(delivery.pk)
    assert number == 1 and result.retryable and result.error.startswith("cannot resolve hooks.example.invalid")
    assert Delivery.objects.get(pk=delivery.pk).status == "pending"  # another try comes
    services.attempt_delivery(delivery.pk)
    services.attempt_delivery(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.status == "failed" and delivery.attempts.count() == 3


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.1.10:8080/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/",
        "http://0.0.0.0/",
        "ftp://example.org/",
        "http://user:pass@example.org/",
    ],
)
def test_internal_and_odd_targets_are_refused_before_any_connection(url):
    with pytest.raises(client.WebhookTargetRefused):
        client.resolve_target(url, allow_private=False)


def test_redirects_are_not_followed_and_answers_are_capped(repo, receiver, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    receiver.statuses = [302]
    receiver.answer = b"x" * 5000
    delivery = services.send_test(webhook=hook_for(repo, receiver.url), actor=None)
    tasks.deliver_webhook.apply(args=[delivery.pk])
    attempt = Delivery.objects.get(pk=delivery.pk).attempts.get()
    assert attempt.status_code == 302
    assert len(attempt.response_body) == 1024
    assert [r.path for r in receiver.requests] == ["/hook"]  # /redirected was never asked for
    assert Delivery.objects.get(pk=delivery.pk).status == "failed"


def test_redeliver_sends_the_same_payload_again(repo, receiver, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    receiver.statuses = [400, 200]
    hook = hook_for(repo, receiver.url)
    first = services.send_test(webhook=hook, actor=None)
    tasks.deliver_webhook.apply(args=[first.pk])
    assert Delivery.objects.get(pk=first.pk).status == "failed"  # a 4xx is not retried
    again = services.redeliver(delivery=Delivery.objects.get(pk=first.pk), actor=None)
    tasks.deliver_webhook.apply(args=[again.pk])
    assert Delivery.objects.get(pk=again.pk).status == "delivered"
    assert receiver.requests[0].body == receiver.requests[1].body
    assert receiver.requests[0].headers["X-Dockyard-Delivery"] != receiver.requests[1].headers["X-Dockyard-Delivery"]


def test_events_and_tag_patterns_choose_the_webhooks(repo, alice):
    only_releases = hook_for(repo, "https://ci.example.org/a", events=["push"], tag_pattern="v*")
    everything = hook_for(repo, "https://ci.example.org/b")
    chosen = set(services.matching_webhooks(repository=repo, event="push", tags=["latest"]))
    assert chosen == {everything}
    chosen = set(services.matching_webhooks(repository=repo, event="push", tags=["v1.0"]))
    assert chosen == {only_releases, everything}
    assert set(services.matching_webhooks(repository=repo, event="visibility_changed")) == {everything}


def test_organization_webhooks_hear_every_repository_and_visibility_changes(db, alice):
    from accounts.services import organization_create

    acme = organization_create(name="acme", owner=alice)
    org_hook = services.webhook_create(actor=alice, name="all", url="https://chat.example.org/", organization=acme)
    repository = repository_create(namespace=Namespace.objects.get(name="acme"), name="api", actor_name="alice")
    repository_update(repository=repository, actor=alice, visibility=Visibility.PUBLIC)
    events = list(Delivery.objects.filter(webhook=org_hook).order_by("pk").values_list("event", flat=True))
    assert events == ["repository_created", "visibility_changed"]
    changed = Delivery.objects.get(webhook=org_hook, event="visibility_changed").payload
    assert changed["event_data"] == {"before": "private", "after": "public"}


def test_webhooks_through_the_api(repo, alice, bob):
    owner = APIClient()
    owner.force_authenticate(alice)
    created = owner.post(
        "/api/v1/repositories/alice/hooked/webhooks/",
        {"name": "jenkins", "url": "https://ci.example.org/hook", "events": ["push"], "tag_pattern": "v*"},
        format="json",
    )
    assert created.status_code == 201
    assert len(created.json()["secret"]) > 20
    hook_id = created.json()["id"]
    assert "secret" not in owner.get(f"/api/v1/repositories/alice/hooked/webhooks/{hook_id}/").json()
    assert (
        owner.post(
            "/api/v1/repositories/alice/hooked/webhooks/",
            {"name": "x", "url": "https://x/", "events": ["nope"]},
            format="json",
        ).status_code
        == 400
    )
    assert owner.post(f"/api/v1/repositories/alice/hooked/webhooks/{hook_id}/test/").status_code == 202
    assert owner.get(f"/api/v1/repositories/alice/hooked/webhooks/{hook_id}/deliveries/").json()["count"] == 1
    outsider = APIClient()
    outsider.force_authenticate(bob)
    assert outsider.get("/api/v1/repositories/alice/hooked/webhooks/").status_code == 404
    assert not any(
        "secret" in str(e.data) and "https" in str(e.data.get("secret", "")) for e in AuditEvent.objects.all()
    )


def test_activity_feeds_respect_privacy(repo, alice, bob):
    public = repository_create(
        namespace=Namespace.objects.get(name="alice"),
        name="open",
        actor_name="alice",
        actor=alice,
        visibility=Visibility.PUBLIC,
    )
    repository_update(repository=public, actor=alice, short_description="hello")
    repository_update(repository=repo, actor=alice, short_description="secret plans")
    viewer = APIClient()
    viewer.force_authenticate(bob)
    feed = viewer.get("/api/v1/users/alice/activity/").json()["results"]
    assert {e["repository"] for e in feed} == {"alice/open"}
    assert viewer.get("/api/v1/repositories/alice/hooked/activity/").status_code == 404
    own = APIClient()
    own.force_authenticate(alice)
    assert {e["repository"] for e in own.get("/api/v1/users/alice/activity/").json()["results"]} == {
        "alice/open",
        "alice/hooked",
    }
    assert Repository.objects.count() == 2
