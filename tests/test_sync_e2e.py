"""The event path end to end: skopeo -> registry -> notification -> stored event -> Celery
worker -> database, including a stopped worker and a stopped broker."""

import datetime as dt

import pytest

from repositories import sync
from repositories.models import DailyPulls, RegistryEvent, Repository, Tag
from repositories.oci_layout import write_image
from repositories.registry import system_token
from repositories.registry.client import RegistryClient
from tests.conftest import PASSWORD
from tests.helpers import inspect, push
from tests.services import wait_until

pytestmark = [pytest.mark.registry]
CREDS = f"alice:{PASSWORD}"


def digest_of(name: str, tag: str) -> str | None:
    found = Tag.objects.filter(repository__name=name, name=tag).select_related("manifest").first()
    return found.manifest.digest if found else None


def put(registry, tmp_path, ref: str, content: str):
    tag = ref.rsplit(":", 1)[1]
    image = write_image(tmp_path / content, tag, content=content)
    result = push(tmp_path / content, tag, registry.host, ref, creds=CREDS)
    assert result.returncode == 0, result.stderr
    return image


def test_a_repushed_tag_follows_the_new_digest(registry, celery_worker, alice, tmp_path):
    first = put(registry, tmp_path, "alice/e2e-moving:latest", "first")
    wait_until(lambda: digest_of("e2e-moving", "latest") == first.top.digest, timeout=30, what="first push")
    second = put(registry, tmp_path, "alice/e2e-moving:latest", "second")
    wait_until(lambda: digest_of("e2e-moving", "latest") == second.top.digest, timeout=30, what="the re-push")


def test_a_delete_through_the_registry_api_removes_the_tag(registry, celery_worker, alice, tmp_path):
    image = put(registry, tmp_path, "alice/e2e-deleted:1", "doomed")
    wait_until(lambda: digest_of("e2e-deleted", "1"), timeout=30, what="the push")
    RegistryClient(registry.url, system_token).delete_manifest("alice/e2e-deleted", image.top.digest)
    wait_until(lambda: digest_of("e2e-deleted", "1") is None, timeout=30, what="the delete")
    assert Repository.objects.filter(name="e2e-deleted").exists()  # the repository stays


def test_pulls_are_counted(registry, celery_worker, alice, tmp_path):
    put(registry, tmp_path, "alice/e2e-pulled:1", "pulled")
    wait_until(lambda: digest_of("e2e-pulled", "1"), timeout=30, what="the push")
    for _ in range(2):
        assert inspect(registry.host, "alice/e2e-pulled:1", creds=CREDS).returncode == 0
    wait_until(lambda: Repository.objects.get(name="e2e-pulled").pull_count == 2, timeout=30, what="two pulls")
    assert DailyPulls.objects.get(repository__name="e2e-pulled").count == 2


def test_events_wait_in_the_database_while_no_worker_runs(registry, start_worker, alice, tmp_path):
    image = put(registry, tmp_path, "alice/e2e-waiting:1", "waiting")
    registry.drain_notifications()
    stored = RegistryEvent.objects.get(repository="alice/e2e-waiting", action="push")
    assert stored.status == "pending"
    assert digest_of("e2e-waiting", "1") is None

    start_worker(purge=False)  # the task is still queued in redis
    wait_until(lambda: digest_of("e2e-waiting", "1") == image.top.digest, timeout=30, what="the queued event")


def test_events_posted_while_the_broker_is_down_are_stored_then_swept(
    registry, redis_server, start_worker, alice, tmp_path
):
    redis_server.stop()
    try:
        image = put(registry, tmp_path, "alice/e2e-swept:1", "swept")
        registry.drain_notifications()  # the portal answered 200 although it could not enqueue
        assert RegistryEvent.objects.get(repository="alice/e2e-swept", action="push").status == "pending"
    finally:
        redis_server.restart()
    start_worker()
    assert sync.sweep_pending_events(older_than=dt.timedelta(0)) >= 1
    wait_until(lambda: digest_of("e2e-swept", "1") == image.top.digest, timeout=30, what="the swept event")
