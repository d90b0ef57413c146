"""Tag and repository deletion through the API really delete in the registry."""

import pytest
from rest_framework.test import APIClient

from repositories.models import Repository, Tag
from repositories.oci_layout import write_image
from repositories.registry import system_token
from repositories.registry.client import RegistryClient, RegistryNotFound
from tests.conftest import PASSWORD
from tests.helpers import push
from tests.services import wait_until

pytestmark = [pytest.mark.registry]


@pytest.fixture
def pushed(registry, celery_worker, alice, tmp_path):
    shared = write_image(tmp_path / "a", "1.0", content="api-shared")
    other = write_image(tmp_path / "b", "2.0", content="api-other")
    for source, tags in ((tmp_path / "a", ["1.0", "latest"]), (tmp_path / "b", ["2.0"])):
        for tag in tags:
            src_tag = "1.0" if source.name == "a" else "2.0"
            result = push(source, src_tag, registry.host, f"alice/api-del:{tag}", creds=f"alice:{PASSWORD}")
            assert result.returncode == 0, result.stderr
    wait_until(lambda: Tag.objects.filter(repository__name="api-del").count() == 3, timeout=30, what="three tags")
    client = APIClient()
    client.force_authenticate(alice)
    return client, shared, other


def test_deleting_a_tag_that_shares_its_digest_needs_confirmation(registry, pushed):
    client, shared, _ = pushed
    refused = client.delete("/api/v1/repositories/alice/api-del/tags/latest/")
    assert refused.status_code == 409
    assert refused.json()["tags"] == ["1.0", "latest"]
    assert Tag.objects.filter(repository__name="api-del").count() == 3

    done = client.delete("/api/v1/repositories/alice/api-del/tags/latest/?confirm=true")
    assert done.status_code == 200
    assert done.json() == {"digest": shared.top.digest, "deleted_tags": ["1.0", "latest"]}
    registry_client = RegistryClient(registry.url, system_token)
    with pytest.raises(RegistryNotFound):
        registry_client.head_manifest("alice/api-del", shared.top.digest)
    assert registry_client.tags("alice/api-del") == ["2.0"]
    assert list(Tag.objects.filter(repository__name="api-del").values_list("name", flat=True)) == ["2.0"]


def test_deleting_a_repository_removes_its_images(registry, pushed):
    client = pushed[0]
    response = client.delete("/api/v1/repositories/alice/api-del/")
    assert response.status_code == 200
    assert response.json()["deleted_tags"] == ["1.0", "2.0", "latest"]
    assert not Repository.objects.filter(name="api-del").exists()
    assert RegistryClient(registry.url, system_token).tags("alice/api-del") == []
