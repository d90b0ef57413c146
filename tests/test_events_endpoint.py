"""The notification receiver: authenticates the registry, stores each event once, answers 2xx
to anything the registry sends (a 4xx would stall the registry's queue)."""

import json
import uuid

import pytest
from django.conf import settings

from repositories.models import RegistryEvent

pytestmark = pytest.mark.django_db
MEDIA_TYPE = "application/vnd.docker.distribution.events.v1+json"


def envelope(*events) -> bytes:
    return json.dumps({"events": list(events)}).encode()


def push_event(event_id=None, tag="1.0") -> dict:
    return {
        "id": event_id or str(uuid.uuid4()),
        "timestamp": "2026-11-27T10:00:00.000000000Z",
        "action": "push",
        "target": {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": "sha256:" + "b" * 64,
            "size": 400,
            "repository": "alice/app",
            "tag": tag,
        },
        "request": {"addr": "127.0.0.1", "method": "PUT", "useragent": "skopeo"},
        "actor": {"name": "alice"},
    }


def post(client, body: bytes, secret: str | None = None):
    headers = {}
    if secret is not False:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {secret or settings.REGISTRY_EVENTS_SECRET}"
    return client.post("/api/v1/registry/events", body, content_type=MEDIA_TYPE, **headers)


def test_wrong_or_missing_secret_gets_401(client):
    assert post(client, envelope(push_event()), secret="wrong").status_code == 401
    assert post(client, envelope(push_event()), secret=False).status_code == 401
    assert RegistryEvent.objects.count() == 0


def test_push_event_is_stored_once(client):
    event = push_event()
    first = post(client, envelope(event))
    assert first.status_code == 200
    assert first.json() == {"stored": 1}
    again = post(client, envelope(event))
    assert again.status_code == 200
    assert again.json() == {"stored": 0}
    row = RegistryEvent.objects.get()
    assert (row.event_id, row.action, row.repository, row.tag, row.actor) == (
        event["id"],
        "push",
        "alice/app",
        "1.0",
        "alice",
    )


def test_malformed_envelope_is_quarantined_with_200(client):
    response = post(client, b"{not json")
    assert response.status_code == 200
    row = RegistryEvent.objects.get()
    assert row.status == RegistryEvent.Status.QUARANTINED
    assert "not JSON" in row.error


def test_event_without_id_or_with_unknown_action_is_quarantined(client):
    no_id = push_event()
    del no_id["id"]
    odd = push_event()
    odd["action"] = "teleport"
    assert post(client, envelope(no_id, odd, "a string")).status_code == 200
    rows = RegistryEvent.objects.all()
    assert len(rows) == 3
    assert {r.status for r in rows} == {RegistryEvent.Status.QUARANTINED}


def pull_event(method: str = "GET") -> dict:
    pull = push_event()
    pull["action"] = "pull"
    pull["request"]["method"] = method
    return pull


def test_pulls_are_queued_but_heads_blobs_and_the_portals_own_reads_are_not(client, settings):
    pull, head = pull_event("GET"), pull_event("HEAD")  # docker pull sends both: one pull
    own_read = pull_event()
    own_read["actor"] = {"name": settings.SYSTEM_IDENTITY}
    blob = push_event()
    blob["target"]["mediaType"] = "application/octet-stream"
    response = post(client, envelope(pull, head, own_read, blob))
    assert response.json() == {"stored": 1}
    statuses = dict(RegistryEvent.objects.values_list("event_id", "status"))
    assert statuses == {  # the portal's own read is acknowledged and not even stored
        pull["id"]: RegistryEvent.Status.PENDING,
        head["id"]: RegistryEvent.Status.IGNORED,
        blob["id"]: RegistryEvent.Status.IGNORED,
    }


def test_an_envelope_of_the_portals_own_reads_is_answered_without_the_database(client, settings):
    """Each push's processing makes the registry report the manifests the portal read; in a
    burst they were most of the notifications the registry sends one at a time."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    reads = [pull_event() for _ in range(3)]
    for read in reads:
        read["actor"] = {"name": settings.SYSTEM_IDENTITY}
    post(client, envelope(pull_event()))  # the registry instance is known from here on
    with CaptureQueriesContext(connection) as queries:
        response = post(client, envelope(*reads))
    assert response.status_code == 200 and response.json() == {"stored": 0}
    assert len(queries) == 0, [q["sql"] for q in queries]
    assert not RegistryEvent.objects.filter(event_id__in=[r["id"] for r in reads]).exists()
