"""Event processing, called directly: exactly once, in the right order, and failures kept."""

import datetime as dt
import json
import uuid

import pytest
from django.conf import settings

from repositories import sync, tasks
from repositories.models import DailyPulls, RegistryEvent, Repository, Tag
from repositories.oci_layout import write_image
from tests.conftest import PASSWORD
from tests.helpers import push
from tests.services import free_port

# In the past: timestamps in the future are clamped to the time received.
T0 = dt.datetime(2026, 11, 1, 10, 0, tzinfo=dt.UTC)


def event(action: str, repository: str, digest: str, *, tag: str = "", at: dt.datetime = T0, actor: str = "alice"):
    return {
        "id": str(uuid.uuid4()),
        "timestamp": at.isoformat().replace("+00:00", "Z"),
        "action": action,
        "target": {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest,
            "repository": repository,
            **({"tag": tag} if tag else {}),
        },
        "actor": {"name": actor},
    }


def deliver(client, *events):
    body = json.dumps({"events": list(events)})
    response = client.post(
        "/api/v1/registry/events",
        body,
        content_type="application/vnd.docker.distribution.events.v1+json",
        HTTP_AUTHORIZATION=f"Bearer {settings.REGISTRY_EVENTS_SECRET}",
    )
    assert response.status_code == 200


def process_all() -> list[str]:
    pending = RegistryEvent.objects.filter(status="pending").order_by("pk").values_list("pk", flat=True)
    return [sync.process_registry_event(pk) for pk in list(pending)]


@pytest.fixture
def two_images(registry, alice, tmp_path):
    """Two different images in alice/ordered (under tags a and b), pushed for real."""
    digests = {}
    for tag in ["a", "b"]:
        image = write_image(tmp_path / tag, tag, content=f"ordered-{tag}")
        result = push(tmp_path / tag, tag, registry.host, f"alice/ordered:{tag}", creds=f"alice:{PASSWORD}")
        assert result.returncode == 0, result.stderr
        digests[tag] = image.top.digest
    registry.drain_notifications()
    RegistryEvent.objects.all().delete()  # only the events each test crafts below
    Repository.objects.filter(name="ordered").delete()
    return digests


def tag_digest(repository: str, tag: str) -> str | None:
    found = Tag.objects.filter(repository__name=repository, name=tag).select_related("manifest").first()
    return found.manifest.digest if found else None


def test_the_same_envelope_twice_gives_one_set_of_rows(client, two_images):
    push_a = event("push", "alice/ordered", two_images["a"], tag="v1")
    pull_a = event("pull", "alice/ordered", two_images["a"])
    deliver(client, push_a, pull_a)
    deliver(client, push_a, pull_a)
    assert process_all() == ["processed", "processed"]
    assert process_all() == []
    assert Tag.objects.filter(repository__name="ordered").count() == 1
    assert Repository.objects.get(name="ordered").pull_count == 1
    assert RegistryEvent.objects.filter(event_id__in=[push_a["id"], pull_a["id"]]).count() == 2
    # Fetching the manifest made the registry report a pull by the portal itself: not kept.
    assert not RegistryEvent.objects.exclude(event_id__in=[push_a["id"], pull_a["id"]]).exists()


def test_processing_an_event_twice_applies_it_once(client, two_images):
    deliver(client, event("push", "alice/ordered", two_images["a"], tag="v1"))
    deliver(client, event("pull", "alice/ordered", two_images["a"]))
    pull = RegistryEvent.objects.get(action="pull")
    process_all()
    assert sync.process_registry_event(pull.pk) == "skipped"
    assert Repository.objects.get(name="ordered").pull_count == 1


def test_a_later_push_wins_whatever_the_arrival_order(client, two_images):
    later = event("push", "alice/ordered", two_images["b"], tag="v1", at=T0 + dt.timedelta(seconds=5))
    earlier = event("push", "alice/ordered", two_images["a"], tag="v1", at=T0)
    deliver(client, later)
    process_all()
    deliver(client, earlier)
    process_all()
    assert tag_digest("ordered", "v1") == two_images["b"]


def test_a_push_older_than_a_delete_of_its_digest_does_not_resurrect_the_tag(client, two_images):
    deliver(client, event("delete", "alice/ordered", two_images["a"], at=T0 + dt.timedelta(seconds=5)))
    process_all()
    deliver(client, event("push", "alice/ordered", two_images["a"], tag="v1", at=T0))
    process_all()
    assert tag_digest("ordered", "v1") is None


def test_delete_removes_every_tag_of_the_digest_but_not_a_later_repush(client, two_images):
    deliver(
        client,
        event("push", "alice/ordered", two_images["a"], tag="v1", at=T0),
        event("push", "alice/ordered", two_images["a"], tag="latest", at=T0),
        event("push", "alice/ordered", two_images["b"], tag="other", at=T0),
    )
    process_all()
    deliver(client, event("delete", "alice/ordered", two_images["a"], at=T0 + dt.timedelta(seconds=1)))
    process_all()
    assert sorted(Tag.objects.filter(repository__name="ordered").values_list("name", flat=True)) == ["other"]


def test_pulls_are_counted_per_day_and_the_portals_own_reads_are_not(client, two_images):
    deliver(client, event("push", "alice/ordered", two_images["a"], tag="v1"))
    deliver(
        client,
        event("pull", "alice/ordered", two_images["a"], at=T0),
        event("pull", "alice/ordered", two_images["a"], at=T0 + dt.timedelta(hours=1)),
        event("pull", "alice/ordered", two_images["a"], at=T0 + dt.timedelta(days=1)),
        event("pull", "alice/ordered", two_images["a"], actor=settings.SYSTEM_IDENTITY),
    )
    process_all()
    repository = Repository.objects.get(name="ordered")
    assert repository.pull_count == 3
    assert dict(DailyPulls.objects.filter(repository=repository).values_list("day", "count")) == {
        T0.date(): 2,
        (T0 + dt.timedelta(days=1)).date(): 1,
    }


def test_an_event_for_an_unknown_namespace_is_kept_as_failed_and_can_be_retried(db, client):
    deliver(client, event("push", "ghost/app", "sha256:" + "c" * 64, tag="1"))
    row = RegistryEvent.objects.get()
    assert sync.process_registry_event(row.pk) == "failed"
    row.refresh_from_db()
    assert row.status == "failed"
    assert "ghost/app" in row.error
    assert sync.registry_event_retry(event_pk=row.pk, actor_name="sam")
    row.refresh_from_db()
    assert row.status == "pending"


def test_registry_outage_is_retried_then_kept_as_failed(client, two_images, settings, monkeypatch):
    deliver(client, event("push", "alice/ordered", two_images["a"], tag="v1"))
    row = RegistryEvent.objects.get()
    settings.REGISTRY_URL = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setattr(tasks.process_registry_event, "max_retries", 1)
    result = tasks.process_registry_event.apply(args=[row.pk]).get()
    assert result == "failed"
    row.refresh_from_db()
    assert row.status == "failed"
    assert "RegistryUnavailable" in row.error
    assert row.attempts == 2  # the first try and one retry


def test_sweep_enqueues_only_old_pending_events(db, client, monkeypatch):
    enqueued = []
    monkeypatch.setattr(sync, "enqueue_event", enqueued.append)
    deliver(client, event("pull", "alice/x", "sha256:" + "d" * 64))
    old = RegistryEvent.objects.get()
    deliver(client, event("pull", "alice/x", "sha256:" + "e" * 64))
    RegistryEvent.objects.filter(pk=old.pk).update(received_at=T0)
    assert sync.sweep_pending_events() == 1
    assert enqueued == [old.pk]


def test_a_drain_that_the_registry_could_not_serve_asks_for_another_later(client, two_images, settings, redis_server):
    """Without this the event waited for the minute's sweep (and in a test, forever)."""
    import redis

    deliver(client, event("push", "alice/ordered", two_images["a"], tag="v1"))
    row = RegistryEvent.objects.get()
    queue = redis.Redis.from_url(redis_server.url)
    queue.delete("celery")  # the endpoint's own drain request: this test drains by hand
    settings.REGISTRY_URL = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    assert sync.drain_pending() == 0
    row.refresh_from_db()
    assert (row.status, row.attempts) == ("pending", 1)
    queued = [json.loads(message) for message in queue.lrange("celery", 0, -1)]
    drains = [m["headers"] for m in queued if m["headers"]["task"] == "repositories.tasks.drain_registry_events"]
    assert len(drains) == 1 and drains[0]["eta"], queued  # later, not at once
    eta = dt.datetime.fromisoformat(drains[0]["eta"])
    assert dt.timedelta(seconds=1) < eta - dt.datetime.now(dt.UTC) <= dt.timedelta(seconds=3)
