"""Issue 13: the portal's picture stays true under lost events, restarts, empty storage, races
and reordering, on the real registry; and the events endpoint answers 2xx fast to anything."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import threading
import uuid
from pathlib import Path

import pytest
import requests
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditEvent
from repositories import maintenance, sync
from repositories.models import RegistryEvent, Repository, SyncRun, Tag
from repositories.oci_layout import write_image
from repositories.reconcile import SyncAlreadyRunning, reconcile
from repositories.registry import system_token
from repositories.registry.client import RegistryClient, RegistryNotFound
from tests import services
from tests.conftest import PASSWORD, worker_env
from tests.helpers import push

MEDIA = "application/vnd.docker.distribution.events.v1+json"
OCI = "application/vnd.oci.image.manifest.v1+json"


# --- a registry that sends nothing, and events delivered by hand --------------------------------


@pytest.fixture
def quiet(transactional_db, live_server, tmp_path, settings):
    registry = services.portal_registry(workdir=tmp_path / "quiet", realm=f"{live_server.url}/auth/token")
    settings.REGISTRY_URL = registry.url  # the portal's own client (deletes) talks to it
    yield registry
    registry.stop()


@pytest.fixture
def crawler(quiet):
    return RegistryClient(quiet.url, system_token, timeout=5)


def put(registry, tmp_path: Path, ref: str, content: str):
    tag = ref.rsplit(":", 1)[1]
    image = write_image(tmp_path / content, tag, content=content)
    result = push(tmp_path / content, tag, registry.host, ref, creds=f"alice:{PASSWORD}")
    assert result.returncode == 0, result.stderr
    return image.top.digest


def tags_of(name: str) -> dict[str, str]:
    return dict(Tag.objects.filter(repository__name=name).values_list("name", "manifest__digest"))


def event(action: str, repository: str, *, digest: str = "", tag: str = "", at=None, actor="alice", **extra) -> dict:
    at = at or timezone.now()
    target = {"mediaType": OCI, "repository": repository}
    target.update({"digest": digest} if digest else {})
    target.update({"tag": tag} if tag else {})
    return {
        "id": str(uuid.uuid4()),
        "timestamp": at.isoformat().replace("+00:00", "Z") if isinstance(at, dt.datetime) else at,
        "action": action,
        "target": target,
        "request": {"method": "PUT" if action == "push" else "GET"},
        "actor": {"name": actor},
        **extra,
    }


def deliver(*events, client=None) -> requests.Response | object:
    from django.test import Client

    return (client or Client()).post(
        "/api/v1/registry/events",
        json.dumps({"events": list(events)}),
        content_type=MEDIA,
        HTTP_AUTHORIZATION=f"Bearer {django_settings.REGISTRY_EVENTS_SECRET}",
    )


def process_all() -> list[str]:
    pending = RegistryEvent.objects.filter(status="pending").order_by("pk").values_list("pk", flat=True)
    return [sync.process_registry_event(pk) for pk in list(pending)]


# --- 1. deletes act on the registry's truth ------------------------------------------------------


def test_deleting_latest_after_lost_events_deletes_what_latest_is_now(quiet, crawler, alice, tmp_path):
    one = put(quiet, tmp_path, "alice/truth:1.0", "v1")
    put(quiet, tmp_path, "alice/truth:latest", "v1")  # the same image: latest and 1.0 share a digest
    reconcile(client=crawler)
    assert tags_of("truth") == {"1.0": one, "latest": one}
    newer = put(quiet, tmp_path, "alice/truth:latest", "v2")  # its event is lost: the portal still has v1
    assert tags_of("truth")["latest"] == one

    api = APIClient()
    api.force_authenticate(alice)
    response = api.delete("/api/v1/repositories/alice/truth/tags/latest/")  # no confirm: nothing shares v2
    assert response.status_code == 200, response.content
    assert response.json() == {"digest": newer, "deleted_tags": ["latest"]}
    assert crawler.head_manifest("alice/truth", "1.0").digest == one  # 1.0 was not taken with it
    with pytest.raises(RegistryNotFound):
        crawler.head_manifest("alice/truth", "latest")
    assert tags_of("truth") == {"1.0": one}


@pytest.mark.parametrize("what", ["tag", "repository"])
def test_the_registry_event_of_a_portal_delete_is_not_recorded_again(quiet, alice, tmp_path, monkeypatch, what):
    """A worker fast enough to apply the registry's delete event before the portal recorded its
    own delete used to record it a second time, as the registry's (an activity row by
    dockyard-system, a second tag_delete webhook): a README-only newcomer (helper-12) saw it
    after a retention run. The event now waits for the portal's record, and finds nothing left."""
    from django.db import connection

    from repositories import services as repository_services

    digest = put(quiet, tmp_path, "alice/raced:1.0", "raced")
    assert deliver(event("push", "alice/raced", digest=digest, tag="1.0")).status_code == 200
    process_all()
    repository = Repository.objects.get(namespace__name="alice", name="raced")
    original = RegistryClient.delete_manifest
    applier: dict = {}

    def apply_the_event():
        try:
            assert deliver(event("delete", "alice/raced", digest=digest, actor="dockyard-system")).status_code == 200
            applier["result"] = process_all()
        finally:
            connection.close()

    def lock_waiters() -> int:
        if connection.vendor != "postgresql":
            return 0
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
            return cursor.fetchone()[0]

    def delete_then_race(self, name, ref):
        original(self, name, ref)
        # The registry's event arrives and a worker applies it, while the portal has yet to
        # record the delete: the worker either finishes (before) or waits for the portal (now).
        thread = threading.Thread(target=apply_the_event)
        thread.start()
        applier["thread"] = thread
        services.wait_until(
            lambda: not thread.is_alive() or lock_waiters(), timeout=20, what="the event applied or held"
        )

    monkeypatch.setattr(RegistryClient, "delete_manifest", delete_then_race)
    if what == "tag":
        repository_services.tag_delete(repository=repository, tag_name="1.0", actor=alice, confirm=True)
    else:
        repository_services.repository_delete(repository=repository, actor=alice)
    applier["thread"].join(timeout=30)
    assert applier["result"] == ["processed"]
    recorded = AuditEvent.objects.filter(action__in=["tag.delete", "repository.delete"], namespace="alice")
    # Once, by the person who deleted it, and not again as the registry's.
    assert [(e.action, e.actor_id) for e in recorded] == [(f"{what}.delete", alice.pk)]
    assert tags_of("raced") == {}


def test_a_deleted_repository_stays_deleted_although_the_portal_missed_a_tag(quiet, crawler, alice, tmp_path):
    put(quiet, tmp_path, "alice/gone:1", "g1")
    reconcile(client=crawler)
    put(quiet, tmp_path, "alice/gone:2", "g2")  # never heard of by the portal
    api = APIClient()
    api.force_authenticate(alice)
    assert api.delete("/api/v1/repositories/alice/gone/").json()["deleted_tags"] == ["1", "2"]
    assert crawler.tags("alice/gone") == []
    reconcile(client=crawler)
    assert not Repository.objects.filter(name="gone").exists()


# --- 3. an empty or truncated catalog wipes nothing without an operator ---------------------------


def test_an_empty_registry_holds_every_removal_until_an_operator_allows_it(
    quiet, crawler, alice, tmp_path, live_server, settings
):
    put(quiet, tmp_path, "alice/kept:1", "k1")
    put(quiet, tmp_path, "alice/kept:2", "k2")
    reconcile(client=crawler)
    empty = services.portal_registry(workdir=tmp_path / "empty", realm=f"{live_server.url}/auth/token")
    try:
        settings.REGISTRY_URL = empty.url
        run = reconcile(client=RegistryClient(empty.url, system_token))
        assert run.status == SyncRun.Status.HELD
        assert (run.removed, run.held) == (0, 2)
        assert "catalog is empty" in run.error
        assert set(tags_of("kept")) == {"1", "2"}
        with pytest.raises(CommandError, match="--allow-removals"):
            call_command("sync_registry")
        call_command("sync_registry", "--allow-removals")
        assert tags_of("kept") == {}
        assert SyncRun.objects.filter(allow_removals=True, status=SyncRun.Status.OK).count() == 1
    finally:
        empty.stop()


def test_removals_above_the_threshold_are_held(quiet, crawler, alice, tmp_path, settings):
    settings.SYNC_REMOVAL_THRESHOLD_MIN, settings.SYNC_REMOVAL_THRESHOLD_PERCENT = 1, 10
    digests = [put(quiet, tmp_path, f"alice/many:{i}", f"m{i}") for i in range(3)]
    reconcile(client=crawler)
    for digest in digests[:2]:
        crawler.delete_manifest("alice/many", digest)
    run = reconcile(client=crawler)
    assert run.status == SyncRun.Status.HELD and run.held == 2
    assert "more than the 1" in run.error
    assert len(tags_of("many")) == 3
    settings.SYNC_REMOVAL_THRESHOLD_MIN = 2
    assert reconcile(client=crawler).status == SyncRun.Status.OK
    assert set(tags_of("many")) == {"2"}
    # The manifests the registry deleted are forgotten (asked of the crawl's registry); the rest stay.
    from repositories.models import Manifest

    kept = set(Manifest.objects.filter(repository__name="many").values_list("digest", flat=True))
    assert kept == {digests[2]}, kept


# --- 4. a crawl racing pushes -----------------------------------------------------------------------


class PushDuringCrawl(RegistryClient):
    """Between reading a repository's tag list and returning it, a push lands and its event is
    processed: the crawl's view is older than the portal's picture of that tag."""

    def __init__(self, *args, during, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.during = during

    def tags(self, name: str, page_size: int = 100) -> list[str]:
        listed = super().tags(name, page_size)
        if self.during is not None:
            hook, self.during = self.during, None
            hook()
        return listed


def test_a_tag_pushed_during_a_crawl_is_not_removed_and_its_event_names_the_pusher(quiet, alice, tmp_path, settings):
    from webhooks.models import Delivery
    from webhooks.services import webhook_create

    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    put(quiet, tmp_path, "alice/racy:base", "r0")
    reconcile(client=RegistryClient(quiet.url, system_token))
    repository = Repository.objects.get(name="racy")
    webhook_create(actor=alice, repository=repository, name="hook", url="http://127.0.0.1:9/hook", events=["push"])
    seen_by_crawl = put(quiet, tmp_path, "alice/racy:crawled", "r1")  # pushed; its event is slow

    def push_lands():
        digest = put(quiet, tmp_path, "alice/racy:during", "r2")
        deliver(event("push", "alice/racy", digest=digest, tag="during"))
        process_all()

    run = reconcile(client=PushDuringCrawl(quiet.url, system_token, during=push_lands))
    assert run.status == SyncRun.Status.OK
    assert set(tags_of("racy")) == {"base", "crawled", "during"}  # "during" was not in the crawl's view
    crawled = Tag.objects.get(repository=repository, name="crawled")
    assert (crawled.pushed_by, crawled.source) == ("", "crawl")

    # The slow event arrives: it names the pusher, and the push is announced once.
    deliver(event("push", "alice/racy", digest=seen_by_crawl, tag="crawled", actor="alice"))
    deliver(event("push", "alice/racy", digest=seen_by_crawl, tag="crawled", actor="alice"))  # twice
    process_all()
    crawled.refresh_from_db()
    assert (crawled.pushed_by, crawled.source) == ("alice", "event")
    assert AuditEvent.objects.filter(action="tag.push", target_name="alice/racy:crawled").count() == 1
    assert Delivery.objects.filter(event="push", payload__push_data__tag="crawled").count() == 1


# --- 5. ordering ----------------------------------------------------------------------------------


def test_a_late_push_does_not_revive_a_tag_the_registry_deleted(quiet, crawler, alice, tmp_path):
    digest = put(quiet, tmp_path, "alice/late:old", "l1")
    t0 = timezone.now() - dt.timedelta(minutes=5)
    deliver(event("push", "alice/late", digest=digest, tag="old", at=t0))
    process_all()
    crawler.delete_manifest("alice/late", digest)  # really gone from the registry
    # The registry's own tag-delete event (per tag, no digest), once stored as "ignored".
    deliver(event("delete", "alice/late", tag="old", at=t0 + dt.timedelta(minutes=1)))
    process_all()
    assert tags_of("late") == {}
    put(quiet, tmp_path, "alice/late:other", "l1")  # the same image under another tag: the digest is back
    deliver(event("push", "alice/late", digest=digest, tag="other"))
    process_all()
    deliver(event("push", "alice/late", digest=digest, tag="old", at=t0 + dt.timedelta(seconds=30)))  # late
    # Late, and stamped in the future by a registry whose clock runs ahead: clamping it to the
    # time received made it look newer than the delete; the registry says it is not there.
    deliver(event("push", "alice/late", digest=digest, tag="old", at=timezone.now() + dt.timedelta(days=200)))
    process_all()
    assert tags_of("late") == {"other": digest}
    put(quiet, tmp_path, "alice/late:old", "l1")  # pushed again, now: the same image
    deliver(event("push", "alice/late", digest=digest, tag="old"))
    process_all()
    assert tags_of("late") == {"old": digest, "other": digest}


def test_a_repush_of_the_same_image_outlives_an_older_delete_delivered_late(quiet, alice, tmp_path):
    """Pushed at R+1, deleted at R+2, pushed again at R+3 (same digest); delivered as push,
    push, delete: the delete is older than the last push, so the tag stays (the registry has it)."""
    digest = put(quiet, tmp_path, "alice/reorder:z", "z1")
    r = timezone.now() - dt.timedelta(minutes=1)
    deliver(event("push", "alice/reorder", digest=digest, tag="z", at=r + dt.timedelta(seconds=1)))
    deliver(event("push", "alice/reorder", digest=digest, tag="z", at=r + dt.timedelta(seconds=3)))
    process_all()
    deliver(event("delete", "alice/reorder", digest=digest, at=r + dt.timedelta(seconds=2)))
    process_all()
    assert tags_of("reorder") == {"z": digest}
    assert AuditEvent.objects.filter(action="tag.push", target_name="alice/reorder:z").count() == 1


def test_a_push_event_from_the_future_is_clamped_and_does_not_pin_the_tag(quiet, alice, tmp_path):
    first = put(quiet, tmp_path, "alice/clock:latest", "c1")
    deliver(event("push", "alice/clock", digest=first, tag="latest", at="2099-01-01T00:00:00Z"))
    process_all()
    assert Tag.objects.get(name="latest", repository__name="clock").pushed_at <= timezone.now()
    second = put(quiet, tmp_path, "alice/clock:latest", "c2")
    deliver(event("push", "alice/clock", digest=second, tag="latest"))
    process_all()
    assert tags_of("clock") == {"latest": second}


def test_the_crawl_sets_the_digest_it_saw_whatever_the_events_said(quiet, crawler, alice, tmp_path):
    put(quiet, tmp_path, "alice/pinned:latest", "p1")
    reconcile(client=crawler)
    # A row from before timestamps were clamped: pinned in 2099.
    Tag.objects.filter(repository__name="pinned").update(pushed_at=dt.datetime(2099, 1, 1, tzinfo=dt.UTC))
    now_there = put(quiet, tmp_path, "alice/pinned:latest", "p2")
    reconcile(client=crawler)
    assert tags_of("pinned") == {"latest": now_there}


# --- 2. a restarted registry loses its queue: the portal crawls at once -----------------------------


class Gate:
    """Between the registry and the portal's event endpoint: closed, it answers 503 (the registry
    keeps the events queued in memory); open, it forwards them."""

    def __init__(self, target: str) -> None:
        gate = self
        self.open = False

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if not gate.open:
                    self.send_response(503)
                    self.end_headers()
                    return
                answer = requests.post(
                    target,
                    data=body,
                    headers={k: v for k, v in self.headers.items() if k.lower() in ("authorization", "content-type")},
                    timeout=10,
                )
                self.send_response(answer.status_code)
                self.end_headers()
                self.wfile.write(answer.content)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/events"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.mark.registry
def test_a_restarted_registry_that_lost_its_queue_is_crawled_at_once(
    transactional_db, live_server, redis_server, service_dir, test_settings, alice, tmp_path, settings
):
    gate = Gate(f"{live_server.url}/api/v1/registry/events")
    config = dict(workdir=tmp_path / "r1", realm=f"{live_server.url}/auth/token", notifications_url=gate.url)
    first = services.portal_registry(**config)
    worker = None
    try:
        lost = [put(first, tmp_path, f"alice/restarted:{i}", f"lost{i}") for i in range(3)]
        assert first.pending_notifications() >= 3  # queued in the registry's memory
        first.stop()  # ... and gone
        second = services.portal_registry(**{**config, "workdir": tmp_path / "r2"}, storage=first.storage)
        settings.REGISTRY_URL = second.url
        env = worker_env(redis_url=redis_server.url, registry_url=second.url, data_dir=test_settings)
        worker = services.celery_worker(env=env, log_dir=service_dir, name="restart-worker")
        gate.open = True
        put(second, tmp_path, "alice/restarted:after", "after")  # the new instance's first event
        services.wait_until(
            lambda: set(tags_of("restarted")) == {"0", "1", "2", "after"}, timeout=60, what="the restart crawl"
        )
        assert tags_of("restarted")["0"] == lost[0]
        assert SyncRun.objects.filter(trigger=SyncRun.Trigger.REGISTRY_RESTART).exists()
        second.drain_notifications()
        second.stop()
    finally:
        gate.close()
        if worker is not None:
            worker.stop()


def test_a_crawl_missed_while_redis_was_down_runs_at_the_next_tick(db, settings):
    settings.SYNC_INTERVAL_SECONDS = 600
    assert maintenance.crawl_due()  # none ever ran
    SyncRun.objects.create(status=SyncRun.Status.OK, started_at=timezone.now() - dt.timedelta(minutes=30))
    assert maintenance.crawl_due()  # the last one is older than the interval: it was missed
    SyncRun.objects.create(status=SyncRun.Status.OK, started_at=timezone.now() - dt.timedelta(minutes=1))
    assert not maintenance.crawl_due()
    SyncRun.objects.create(status=SyncRun.Status.OK, repository="alice/one", started_at=timezone.now())
    settings.SYNC_INTERVAL_SECONDS = 0
    assert not maintenance.crawl_due()


# --- 6. the events endpoint always answers 2xx, fast ------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (
            json.dumps(
                {
                    "events": [
                        event("push", "alice/x", digest="sha256:" + "a" * 64, tag="1", at="0001-01-01T00:00:00+01:00")
                    ]
                }
            ),
            "no valid timestamp",
        ),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        (json.dumps({"events": [], "pad": "x" * (10 * 1024 * 1024)}), "larger than"),
        (
            json.dumps(
                {"events": [event("push", "alice/x", digest="sha256:" + "a" * 64, tag="sha256:baddigeststring")]}
            ),
            "invalid tag",
        ),
        ("not json", "not JSON"),
    ],
    ids=["year-one-timestamp", "deep-json", "ten-megabytes", "invalid-tag", "not-json"],
)
def test_anything_the_registry_sends_is_answered_2xx_and_kept(client, body, problem):
    response = client.post(
        "/api/v1/registry/events",
        body,
        content_type=MEDIA,
        HTTP_AUTHORIZATION=f"Bearer {django_settings.REGISTRY_EVENTS_SECRET}",
    )
    assert response.status_code == 200
    kept = RegistryEvent.objects.get()
    assert kept.status == RegistryEvent.Status.QUARANTINED
    assert problem in kept.error


def test_a_locked_sqlite_database_gets_a_quick_503_and_nothing_is_lost(tmp_path):
    """The embedded default under a writer that holds the lock: the endpoint gives up well
    inside the registry's timeout, the registry sends again, and the event is stored then."""
    import os
    import sqlite3
    import subprocess
    import sys
    import time

    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")}
    env.update(
        DOCKYARD_DATA_DIR=str(tmp_path),
        DJANGO_DEBUG="false",
        DJANGO_SECURE_SSL_REDIRECT="false",
        REGISTRY_EVENTS_SECRET="s3cret",
        REDIS_URL="redis://127.0.0.1:1/0",
    )
    migrated = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input"],
        cwd=services.ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert migrated.returncode == 0, migrated.stderr
    port = services.free_port()
    web = services.Process(
        "sqlite-gunicorn",
        [sys.executable, "-m", "gunicorn", "portal.wsgi", "-b", f"127.0.0.1:{port}", "-w", "2"],
        env=env,
        cwd=services.ROOT,
        log_dir=tmp_path,
    )
    url = f"http://127.0.0.1:{port}/api/v1/registry/events"
    body = json.dumps({"events": [event("push", "alice/x", digest="sha256:" + "a" * 64, tag="1")]})
    headers = {"Authorization": "Bearer s3cret", "Content-Type": MEDIA}
    try:
        services.wait_until(
            lambda: requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).ok,
            timeout=30,
            what="gunicorn on SQLite",
        )
        holder = sqlite3.connect(tmp_path / "dockyard.sqlite3", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # a writer that does not let go
        started = time.monotonic()
        refused = requests.post(url, data=body, headers=headers, timeout=10)
        took = time.monotonic() - started
        holder.execute("ROLLBACK")
        holder.close()
        assert refused.status_code == 503, refused.text
        assert took < 3.5, took  # the registry waits 5 s
        stored = requests.post(url, data=body, headers=headers, timeout=10)  # the registry's retry
        assert (stored.status_code, stored.json()) == (200, {"stored": 1})
    finally:
        web.stop()


# --- 7. a HEAD is not a pull ---------------------------------------------------------------------------


@pytest.mark.registry
def test_a_head_is_not_a_pull(registry, celery_worker, alice, tmp_path):
    digest = put(registry, tmp_path, "alice/headed:1", "headed")
    services.wait_until(lambda: tags_of("headed"), timeout=30, what="the push")
    token = requests.get(
        f"{django_settings.PORTAL_URL}/auth/token",
        params={"service": django_settings.REGISTRY_SERVICE, "scope": "repository:alice/headed:pull"},
        auth=("alice", PASSWORD),
        timeout=10,
    ).json()["token"]
    accept = "application/vnd.oci.image.manifest.v1+json"
    auth = {"Authorization": f"Bearer {token}", "Accept": accept}
    assert requests.head(f"{registry.url}/v2/alice/headed/manifests/1", headers=auth, timeout=5).ok
    assert requests.get(f"{registry.url}/v2/alice/headed/manifests/{digest}", headers=auth, timeout=5).ok
    registry.drain_notifications()
    services.wait_until(lambda: Repository.objects.get(name="headed").pull_count == 1, timeout=30, what="one pull")
    assert RegistryEvent.objects.filter(action="pull", repository="alice/headed", status="ignored").exists()


# --- 10. one crawl at a time; what grows is pruned ------------------------------------------------------


@pytest.mark.django_db
def test_one_crawl_at_a_time(settings):
    running = SyncRun.objects.create(status=SyncRun.Status.RUNNING)
    with pytest.raises(SyncAlreadyRunning):
        reconcile(client=RegistryClient("http://127.0.0.1:9", system_token, retries=0))
    with pytest.raises(CommandError, match="one sync runs at a time"):
        call_command("sync_registry")
    # A run left 'running' by a crawl that died is closed, and the next one starts.
    SyncRun.objects.filter(pk=running.pk).update(started_at=timezone.now() - dt.timedelta(hours=3))
    run = reconcile(client=RegistryClient("http://127.0.0.1:9", system_token, retries=0, timeout=1))
    assert run.status == SyncRun.Status.FAILED  # nothing listens on port 9: but it ran
    running.refresh_from_db()
    assert running.status == SyncRun.Status.FAILED and "abandoned" in running.error


@pytest.mark.django_db
def test_prune_deletes_what_is_past_its_retention(alice):
    from audit.services import audit_record
    from repositories.models import TagTombstone

    long_ago = timezone.now() - dt.timedelta(days=400)
    for status in ("processed", "ignored", "quarantined", "pending"):
        RegistryEvent.objects.create(event_id=f"old-{status}", status=status, received_at=long_ago)
    RegistryEvent.objects.create(event_id="fresh", status="processed")
    audit_record(action="auth.failed", actor_name="mallory")
    audit_record(action="repository.create", actor_name="alice")
    from audit.models import AuditEvent as Audit

    Audit.objects.update(created_at=long_ago)
    SyncRun.objects.create(status=SyncRun.Status.OK, started_at=long_ago)
    TagTombstone.objects.create(repository="alice/x", tag="1", deleted_at=long_ago)
    counts = maintenance.prune()
    assert counts == {
        "registry_events": 3,
        "webhook_deliveries": 0,
        "failed_logins": 1,
        "sync_runs": 1,
        "tombstones": 1,
    }
    assert set(RegistryEvent.objects.values_list("event_id", flat=True)) == {"old-pending", "fresh"}
    kept = set(Audit.objects.values_list("action", flat=True))
    assert "auth.failed" not in kept and "repository.create" in kept  # the log itself stays


@pytest.mark.django_db
def test_a_webhook_can_be_created_inactive(alice):
    from accounts.models import Namespace
    from repositories.services import repository_create

    repository_create(namespace=Namespace.objects.get(name="alice"), name="quiet-hooks", actor_name="alice")
    api = APIClient()
    api.force_authenticate(alice)
    response = api.post(
        "/api/v1/repositories/alice/quiet-hooks/webhooks/",
        {"name": "later", "url": "https://hooks.example.org/x", "is_active": False},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["is_active"] is False
