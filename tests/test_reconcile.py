"""The reconcile crawl against a real registry that sends no notifications at all (so all it
holds was 'pushed while notifications were off'), sharing the portal's token service."""

import io
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from accounts.services import user_create
from repositories.models import Repository, SyncRun, Tag, UnclaimedRepository
from repositories.oci_layout import write_image, write_index
from repositories.reconcile import reconcile
from repositories.registry import system_token
from repositories.registry.client import RegistryClient
from repositories.services import repository_update
from tests import services
from tests.conftest import PASSWORD
from tests.helpers import push, system_token_for

pytestmark = [pytest.mark.registry]


def start_quiet_registry(live_server, workdir: Path, storage: Path | None = None) -> services.Registry:
    """A registry that sends no notifications at all."""
    return services.portal_registry(workdir=workdir, realm=f"{live_server.url}/auth/token", storage=storage)


@pytest.fixture
def quiet(transactional_db, live_server, tmp_path):
    registry = start_quiet_registry(live_server, tmp_path / "quiet")
    yield registry
    registry.stop()


@pytest.fixture
def client(quiet):
    return RegistryClient(quiet.url, system_token, timeout=5)


def put(quiet, tmp_path, ref: str, content: str, **kwargs):
    tag = ref.rsplit(":", 1)[1]
    image = write_image(tmp_path / content, tag, content=content, **kwargs)
    result = push(tmp_path / content, tag, quiet.host, ref, creds=f"alice:{PASSWORD}")
    assert result.returncode == 0, result.stderr
    return image


def tags_of(name: str) -> dict[str, str]:
    return dict(Tag.objects.filter(repository__name=name).values_list("name", "manifest__digest"))


def test_content_pushed_without_notifications_appears_after_sync(quiet, client, alice, tmp_path):
    one = put(quiet, tmp_path, "alice/quiet-app:1.0", "q1")
    multi = write_index(tmp_path / "multi", "2.0", content="q-multi")
    assert (
        push(
            tmp_path / "multi", "2.0", quiet.host, "alice/quiet-app:2.0", creds=f"alice:{PASSWORD}", all_platforms=True
        ).returncode
        == 0
    )
    assert tags_of("quiet-app") == {}

    client.counts.clear()
    run = reconcile(client=client)
    assert run.status == SyncRun.Status.OK, run.error
    assert tags_of("quiet-app") == {"1.0": one.top.digest, "2.0": multi.top.digest}
    # Tags new to the portal: one GET each answers digest and manifest, no HEAD first (issue 17);
    # the index's two platforms by digest.
    assert client.counts["HEAD manifest"] == 0
    assert client.counts["GET manifest"] == 2 + 2
    two = Tag.objects.get(repository__name="quiet-app", name="2.0")
    assert sorted(e.platform for e in two.manifest.entries.all()) == ["linux/amd64", "linux/arm64/v8"]
    assert run.created == 3  # the repository (a token request creates nothing) and two tags
    assert run.report["create_repositories"] == ["alice/quiet-app"]
    assert run.report["create_tags"] == ["alice/quiet-app:1.0", "alice/quiet-app:2.0"]


def test_a_second_crawl_with_nothing_changed_reads_no_manifest_and_writes_nothing(quiet, client, alice, tmp_path):
    put(quiet, tmp_path, "alice/steady:1.0", "s1")
    put(quiet, tmp_path, "alice/steady:1.1", "s2")
    reconcile(client=client)
    client.counts.clear()

    writes = []

    def count_writes(execute, sql, params, many, context):
        if sql.split(None, 1)[0].upper() in ("INSERT", "UPDATE", "DELETE") and "repositories_syncrun" not in sql:
            writes.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count_writes):
        run = reconcile(client=client, concurrency=1)
    assert run.status == SyncRun.Status.OK
    assert client.counts["GET manifest"] == 0
    assert client.counts["GET blob"] == 0
    assert client.counts["HEAD manifest"] == 2
    assert writes == []
    assert (run.created, run.changed, run.removed) == (0, 0, 0)


def test_a_tag_deleted_behind_the_portals_back_disappears(quiet, client, alice, tmp_path):
    keep = put(quiet, tmp_path, "alice/shrinking:keep", "k")
    gone = put(quiet, tmp_path, "alice/shrinking:gone", "g")
    reconcile(client=client)
    assert set(tags_of("shrinking")) == {"keep", "gone"}
    client.delete_manifest("alice/shrinking", gone.top.digest)

    run = reconcile(client=client)
    assert tags_of("shrinking") == {"keep": keep.top.digest}
    assert run.report["remove_tags"] == ["alice/shrinking:gone"]


def test_a_retagged_image_follows_its_new_digest(quiet, client, alice, tmp_path):
    put(quiet, tmp_path, "alice/moving:latest", "m1")
    reconcile(client=client)
    second = put(quiet, tmp_path, "alice/moving:latest", "m2")
    run = reconcile(client=client)
    assert tags_of("moving") == {"latest": second.top.digest}
    assert run.changed == 1


def test_dry_run_lists_changes_and_makes_none(quiet, alice, tmp_path, settings):
    put(quiet, tmp_path, "alice/dry:1", "d1")
    Repository.objects.filter(name="dry").delete()  # as if the portal had never heard of it
    settings.REGISTRY_URL = quiet.url
    out = io.StringIO()
    call_command("sync_registry", "--dry-run", stdout=out)
    assert "would create 2" in out.getvalue()
    assert "create repositories: alice/dry" in out.getvalue()
    assert "create tags: alice/dry:1" in out.getvalue()
    assert not Repository.objects.filter(name="dry").exists()
    assert SyncRun.objects.get().dry_run


def test_registry_stopped_mid_crawl_deletes_nothing_and_says_why(live_server, quiet, alice, tmp_path):
    put(quiet, tmp_path, "alice/fragile-a:1", "fa1")
    put(quiet, tmp_path, "alice/fragile-a:2", "fa2")
    fb = put(quiet, tmp_path, "alice/fragile-b:1", "fb1")
    reconcile(client=RegistryClient(quiet.url, system_token, timeout=5))
    before = {"fragile-a": tags_of("fragile-a"), "fragile-b": tags_of("fragile-b")}
    RegistryClient(quiet.url, system_token).delete_manifest("alice/fragile-b", fb.top.digest)

    def stop_after_catalog(scopes):
        if any(scope.startswith("repository:") for scope in scopes) and quiet.process.alive():
            quiet.stop()  # the catalog was read; every repository read now fails
        return system_token(scopes)

    run = reconcile(client=RegistryClient(quiet.url, stop_after_catalog, timeout=1, retries=1, backoff=0.01))
    assert run.status == SyncRun.Status.PARTIAL
    assert "could not be read" in run.error
    assert set(run.report["errors"]) == {"alice/fragile-a", "alice/fragile-b"}
    assert {"fragile-a": tags_of("fragile-a"), "fragile-b": tags_of("fragile-b")} == before
    assert "RegistryUnavailable" in Repository.objects.get(name="fragile-b").sync_error

    again = start_quiet_registry(live_server, tmp_path / "again", storage=quiet.storage)
    try:
        run = reconcile(client=RegistryClient(again.url, system_token, timeout=5))
    finally:
        again.stop()
    assert run.status == SyncRun.Status.OK
    assert tags_of("fragile-b") == {}
    assert len(tags_of("fragile-a")) == 2
    assert Repository.objects.get(name="fragile-b").sync_error == ""


def test_a_registry_that_cannot_be_reached_fails_the_crawl_and_deletes_nothing(quiet, alice, tmp_path, settings):
    put(quiet, tmp_path, "alice/unreached:1", "u1")
    reconcile(client=RegistryClient(quiet.url, system_token, timeout=5))
    quiet.stop()
    settings.REGISTRY_URL = quiet.url
    with pytest.raises(CommandError, match="catalog"):
        call_command("sync_registry")
    run = SyncRun.objects.first()
    assert run.status == SyncRun.Status.FAILED
    assert "catalog" in run.error
    assert set(tags_of("unreached")) == {"1"}


def test_a_repository_without_a_portal_namespace_is_kept_for_staff_then_imported(quiet, client, tmp_path):
    write_image(tmp_path / "ghost", "1", content="ghost")
    token = system_token_for("ghost/app")
    assert push(tmp_path / "ghost", "1", quiet.host, "ghost/app:1", token=token).returncode == 0
    reconcile(client=client)
    unclaimed = UnclaimedRepository.objects.get(name="ghost/app")
    assert unclaimed.tag_count == 1
    assert not Repository.objects.filter(name="app", namespace__name="ghost").exists()

    user_create(username="ghost", password=PASSWORD)
    reconcile(client=client)
    assert set(tags_of("app")) == {"1"}
    assert not UnclaimedRepository.objects.filter(name="ghost/app").exists()


def test_descriptions_come_from_image_labels_until_a_person_edits_them(quiet, client, alice, tmp_path):
    labels = {
        "org.opencontainers.image.title": "Labelled",
        "org.opencontainers.image.description": "An image that describes itself",
        "org.opencontainers.image.source": "https://git.example.org/labelled",
    }
    put(quiet, tmp_path, "alice/labelled:1", "l1", labels=labels)
    reconcile(client=client)
    repository = Repository.objects.get(name="labelled")
    assert repository.short_description == "An image that describes itself"
    assert "# Labelled" in repository.full_description
    assert "https://git.example.org/labelled" in repository.full_description
    assert repository.description_from_image

    repository_update(repository=repository, actor=alice, short_description="Written by alice")
    put(quiet, tmp_path, "alice/labelled:2", "l2", labels={"org.opencontainers.image.description": "newer"})
    reconcile(client=client)
    repository.refresh_from_db()
    assert repository.short_description == "Written by alice"
    assert not repository.description_from_image


def test_a_signature_tag_that_holds_no_signature_signs_nothing_and_is_hidden(quiet, client, alice, tmp_path):
    """A tag named like cosign's (sha256-<hex>.sig) but holding an ordinary image: the tag is an
    artifact (hidden from lists), and the image is not signed (tests/test_signatures.py pushes
    real cosign signatures)."""
    image = put(quiet, tmp_path, "alice/signed:1.0", "signed")
    signature_tag = image.top.digest.replace("sha256:", "sha256-") + ".sig"
    put(quiet, tmp_path, f"alice/signed:{signature_tag}", "signature-payload")
    reconcile(client=client)
    signed = Tag.objects.select_related("manifest").get(repository__name="signed", name="1.0")
    assert not signed.manifest.is_signed
    assert signed.manifest.signature_status == "unsigned"
    assert signed.artifact == ""
    assert Tag.objects.get(repository__name="signed", name=signature_tag).artifact == "sig"


def test_a_crawl_gives_way_while_push_notifications_arrive(db, settings):
    """The events endpoint marks that notifications are arriving; a crawl then waits before each
    repository (at most ten times SYNC_CRAWL_YIELD_MS), so pushes become visible first (issue 17:
    a crawl made the registry's notifications ~12 s late)."""
    import time

    from django.core.cache import cache

    from repositories import reconcile as crawl
    from repositories import sync

    settings.SYNC_CRAWL_YIELD_MS = 20
    started = time.monotonic()
    crawl._give_way_to_pushes()
    assert time.monotonic() - started < 0.02  # nothing arriving: no wait
    sync.request_drain()  # what the events endpoint does for every notification
    assert cache.get(sync.EVENTS_FLOWING_KEY)
    started = time.monotonic()
    crawl._give_way_to_pushes()
    assert 0.2 <= time.monotonic() - started < 5  # ten waits, then the crawl goes on anyway
    settings.SYNC_CRAWL_YIELD_MS = 0
    started = time.monotonic()
    crawl._give_way_to_pushes()
    assert time.monotonic() - started < 0.02
