"""The walking skeleton, end to end: skopeo pushes with a user's password, the registry asks the
portal for a token and notifies it, a real Celery worker applies the event."""

import pytest

from audit.models import AuditEvent
from repositories.models import RegistryEvent, Tag
from repositories.oci_layout import write_image, write_index
from tests.conftest import PASSWORD
from tests.helpers import push
from tests.services import wait_until

pytestmark = [pytest.mark.registry]


def test_pushed_tag_appears_with_digest_size_platform_and_pusher(
    transactional_db, registry, celery_worker, alice, tmp_path
):
    image = write_image(tmp_path / "img", "1.0", content="e2e", arch="arm64")
    result = push(tmp_path / "img", "1.0", registry.host, "alice/e2e-app:1.0", creds=f"alice:{PASSWORD}")
    assert result.returncode == 0, result.stderr

    tag = wait_until(
        lambda: (
            Tag.objects.select_related("manifest", "repository__namespace")
            .filter(repository__namespace__name="alice", repository__name="e2e-app", name="1.0")
            .first()
        ),
        timeout=30,
        what=f"the pushed tag to appear (worker log: {celery_worker.log_path})",
    )
    assert tag.manifest.digest == image.top.digest
    assert tag.manifest.total_size == image.sizes["linux/arm64"]
    assert (tag.manifest.os, tag.manifest.architecture) == ("linux", "arm64")
    assert tag.manifest.layer_count == 1
    assert tag.pushed_by == "alice"
    assert tag.repository.visibility == "private"
    assert RegistryEvent.objects.filter(repository="alice/e2e-app", status="processed").count() == 1
    created = AuditEvent.objects.get(action="repository.create", target_name="alice/e2e-app")
    assert created.actor_name == "alice"


def test_multi_platform_push_gives_one_tag_with_two_platforms(
    transactional_db, registry, celery_worker, alice, tmp_path
):
    image = write_index(tmp_path / "multi", "2.0", content="e2e-multi")
    result = push(
        tmp_path / "multi", "2.0", registry.host, "alice/e2e-multi:2.0", creds=f"alice:{PASSWORD}", all_platforms=True
    )
    assert result.returncode == 0, result.stderr

    tag = wait_until(
        lambda: Tag.objects.filter(repository__name="e2e-multi", name="2.0").select_related("manifest").first(),
        timeout=30,
        what="the pushed index tag",
    )
    assert tag.manifest.digest == image.top.digest
    platforms = sorted(e.platform for e in tag.manifest.entries.all())
    assert platforms == ["linux/amd64", "linux/arm64/v8"]
    assert tag.manifest.total_size == sum(image.sizes.values())


def test_push_to_someone_elses_namespace_is_refused(transactional_db, registry, alice, bob, tmp_path):
    write_image(tmp_path / "img", "1.0", content="intruder")
    result = push(tmp_path / "img", "1.0", registry.host, "alice/e2e-intruded:1.0", creds=f"bob:{PASSWORD}")
    assert result.returncode != 0
    assert "denied" in result.stderr.lower() or "unauthorized" in result.stderr.lower()
