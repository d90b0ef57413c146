"""Faults a black-box run found (issue 13, second pass), each on real services: a crawl whose
worker is killed gives way to the next; a hung Redis (stopped, not gone) does not slow the
events endpoint or the token endpoint past the registry's patience; events that can never be
applied are quarantined or ignored at once, not retried (an oversized body: tests/test_make_run.py,
which needs gunicorn)."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import time
import uuid

import pytest
import requests
from django.conf import settings as django_settings
from django.utils import timezone

from repositories import sync
from repositories.models import RegistryEvent, SyncRun
from repositories.reconcile import SyncAlreadyRunning, reconcile
from repositories.registry.events import parse_event
from repositories.tasks import reconcile_registry
from tests import services
from tests.conftest import PASSWORD

MEDIA = "application/vnd.docker.distribution.events.v1+json"
OCI = "application/vnd.oci.image.manifest.v1+json"


def envelope(*events) -> bytes:
    return json.dumps({"events": list(events)}).encode()


def push_event(repository: str, digest: str, tag: str = "1") -> dict:
    return {
        "id": str(uuid.uuid4()),
        "timestamp": timezone.now().isoformat().replace("+00:00", "Z"),
        "action": "push",
        "target": {"mediaType": OCI, "repository": repository, "digest": digest, "tag": tag},
        "request": {"method": "PUT"},
        "actor": {"name": "alice"},
    }


def post_events(base: str, body: bytes) -> tuple[int, float]:
    started = time.monotonic()
    response = requests.post(
        f"{base}/api/v1/registry/events",
        data=body,
        headers={"Content-Type": MEDIA, "Authorization": f"Bearer {django_settings.REGISTRY_EVENTS_SECRET}"},
        timeout=30,
    )
    return response.status_code, time.monotonic() - started


def test_a_crawl_whose_worker_is_killed_gives_way_to_the_next(registry, start_worker, settings, alice):
    settings.SYNC_RUN_STALE_SECONDS = 10
    # A "registry" that accepts connections and never answers: the crawl hangs on its catalog.
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(64)
    try:
        worker = start_worker(
            env={"REGISTRY_URL": f"http://127.0.0.1:{hung.getsockname()[1]}", "SYNC_RUN_STALE_SECONDS": "10"}
        )
        reconcile_registry.delay()
        run = services.wait_until(
            lambda: SyncRun.objects.filter(status=SyncRun.Status.RUNNING).first(), timeout=30, what="the crawl"
        )
        first_beat = run.heartbeat_at
        # Alive, though stuck on one request: it keeps reporting, and keeps the lock.
        services.wait_until(
            lambda: SyncRun.objects.get(pk=run.pk).heartbeat_at > first_beat, timeout=15, what="a heartbeat"
        )
        with pytest.raises(SyncAlreadyRunning):
            reconcile()
        worker.stop(signal.SIGKILL)
        # Killed: no more beats. Within SYNC_RUN_STALE_SECONDS the next crawl starts and finishes.
        started = time.monotonic()
        later = services.wait_until(lambda: _try_reconcile(), timeout=40, what="the next crawl")
        assert later.status == SyncRun.Status.OK
        assert time.monotonic() - started < 30
        run.refresh_from_db()
        assert run.status == SyncRun.Status.FAILED and "abandoned" in run.error
    finally:
        hung.close()


def _try_reconcile():
    try:
        return reconcile()
    except SyncAlreadyRunning:
        return None


def test_a_hung_redis_slows_neither_the_events_endpoint_nor_the_token_endpoint(live_server, redis_server, alice):
    pid = redis_server.process.proc.pid
    os.kill(pid, signal.SIGSTOP)  # stopped, not gone: connections are accepted and never answered
    try:
        timings = []
        for i in range(5):
            status, took = post_events(live_server.url, envelope(push_event("alice/hung", f"sha256:{i:064x}")))
            assert status == 200
            timings.append(took)
        assert max(timings) < 1.5, timings  # the registry waits 5 s, then retries forever
        started = time.monotonic()
        token = requests.get(
            f"{live_server.url}/auth/token",
            params={"service": django_settings.REGISTRY_SERVICE, "scope": "repository:alice/hung:pull,push"},
            auth=("alice", PASSWORD),
            timeout=30,
        )
        assert token.status_code == 200 and time.monotonic() - started < 2.5
    finally:
        os.kill(pid, signal.SIGCONT)
    # Nothing was lost: the events wait in the database for the sweep.
    assert RegistryEvent.objects.filter(repository="alice/hung", status="pending").count() == 5


@pytest.mark.django_db
def test_events_that_can_never_apply_are_quarantined_at_once(client):
    bad_digest = push_event("alice/app", "sha256:zz")
    long_name = push_event("alice/" + "x" * 3000, "sha256:" + "a" * 64)
    bad_name = push_event("Alice/App", "sha256:" + "b" * 64)
    response = client.post(
        "/api/v1/registry/events",
        envelope(bad_digest, long_name, bad_name),
        content_type=MEDIA,
        HTTP_AUTHORIZATION=f"Bearer {django_settings.REGISTRY_EVENTS_SECRET}",
    )
    assert response.status_code == 200
    rows = RegistryEvent.objects.filter(event_id__in=[bad_digest["id"], long_name["id"], bad_name["id"]])
    assert {row.status for row in rows} == {"quarantined"}
    assert {row.error.split(" ")[1] for row in rows} == {"digest", "repository"}


def test_a_push_whose_image_is_gone_is_ignored_not_failed(registry, alice, tmp_path):
    from repositories.oci_layout import write_image
    from repositories.registry import get_client
    from tests.helpers import push

    image = write_image(tmp_path / "img", "1", content="gone")
    assert push(tmp_path / "img", "1", registry.host, "alice/gone:1", creds=f"alice:{PASSWORD}").returncode == 0
    registry.drain_notifications()
    get_client().delete_manifest("alice/gone", image.top.digest)
    registry.drain_notifications()
    event = push_event("alice/gone", image.top.digest)
    sync.events_store([parse_event(event)])
    row = RegistryEvent.objects.get(event_id=event["id"])
    assert sync.process_registry_event(row.pk) == "ignored"
    row.refresh_from_db()
    assert row.status == "ignored" and "no longer in the registry" in row.error and row.attempts <= 1


@pytest.mark.django_db
def test_the_scheduled_crawl_is_due_again_once_a_dead_crawl_stops_reporting(settings):
    from repositories import maintenance

    settings.SYNC_INTERVAL_SECONDS = 600
    settings.SYNC_RUN_STALE_SECONDS = 90
    now = timezone.now()
    dead = SyncRun.objects.create(status=SyncRun.Status.RUNNING, started_at=now - dt.timedelta(minutes=20))
    SyncRun.objects.filter(pk=dead.pk).update(heartbeat_at=now - dt.timedelta(minutes=5))
    assert maintenance.crawl_due(now)
    SyncRun.objects.filter(pk=dead.pk).update(heartbeat_at=now - dt.timedelta(seconds=5))
    assert not maintenance.crawl_due(now)
