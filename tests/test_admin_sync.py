"""Sync controls in the admin: status pages render, "sync now" runs a real crawl, failed
events can be retried."""

import pytest

from accounts.services import user_create
from repositories.models import RegistryEvent, SyncRun
from tests.conftest import PASSWORD
from tests.services import wait_until

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(db):
    return user_create(username="sam", password=PASSWORD, is_staff=True, is_superuser=True)


@pytest.mark.parametrize(
    "page", ["syncrun", "unclaimedrepository", "dailypulls", "registryevent", "repository", "tag", "manifest"]
)
def test_sync_pages_render_for_staff(client, staff, page):
    client.force_login(staff)
    assert client.get(f"/admin/repositories/{page}/").status_code == 200


def test_non_staff_are_sent_to_the_login_page(client, alice):
    client.force_login(alice)
    response = client.get("/admin/repositories/syncrun/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


@pytest.mark.registry
def test_sync_all_runs_a_crawl_in_the_worker(registry, celery_worker, client, staff):
    client.force_login(staff)
    response = client.post("/admin/repositories/syncrun/", {"sync_all": "1"}, follow=True)
    assert b"A sync of the whole registry is queued" in response.content
    run = wait_until(
        lambda: SyncRun.objects.exclude(status=SyncRun.Status.RUNNING).first(), timeout=30, what="the crawl"
    )
    assert run.status in (SyncRun.Status.OK, SyncRun.Status.PARTIAL)
    assert run.requests >= 1


def test_retry_puts_failed_events_back(client, staff):
    failed = RegistryEvent.objects.create(event_id="e1", action="push", status=RegistryEvent.Status.FAILED, error="x")
    done = RegistryEvent.objects.create(event_id="e2", action="push", status=RegistryEvent.Status.PROCESSED)
    client.force_login(staff)
    client.post(
        "/admin/repositories/registryevent/",
        {"action": "retry", "_selected_action": [failed.pk, done.pk]},
    )
    failed.refresh_from_db()
    done.refresh_from_db()
    assert failed.status == RegistryEvent.Status.PENDING
    assert done.status == RegistryEvent.Status.PROCESSED


def test_last_sync_time_comes_from_the_runs(alice):
    from django.utils import timezone

    from accounts.models import Namespace
    from repositories.models import Repository
    from repositories.selectors import last_sync_of

    repository = Repository.objects.create(namespace=Namespace.objects.get(name="alice"), name="app")
    assert last_sync_of(repository) == (None, "")
    finished = timezone.now()
    SyncRun.objects.create(status=SyncRun.Status.OK, finished_at=finished)
    assert last_sync_of(repository)[0] == finished
    SyncRun.objects.create(
        status=SyncRun.Status.PARTIAL, finished_at=timezone.now(), report={"errors": {"alice/app": "down"}}
    )
    assert last_sync_of(repository)[0] == finished  # the newer run could not read it
