"""The registry client against the real registry: pagination, manifests of every kind, config
blobs, delete by digest, and named errors."""

import pytest

from repositories.oci_layout import OCI_INDEX, OCI_MANIFEST, write_image, write_index
from repositories.registry import system_token
from repositories.registry.client import RegistryClient, RegistryNotFound, RegistryUnavailable
from tests.conftest import PASSWORD
from tests.helpers import push
from tests.services import free_port

pytestmark = [pytest.mark.registry]


@pytest.fixture
def pushed(transactional_db, registry, alice, tmp_path):
    """alice/cli-one:1.0 and :2.0, alice/cli-two:1.0, alice/cli-multi:1.0 (two platforms)."""
    creds = f"alice:{PASSWORD}"
    images = {}
    for repo, tag, content in [("cli-one", "1.0", "a"), ("cli-one", "2.0", "b"), ("cli-two", "1.0", "c")]:
        images[(repo, tag)] = write_image(tmp_path / f"{repo}-{tag}", tag, content=content)
        result = push(tmp_path / f"{repo}-{tag}", tag, registry.host, f"alice/{repo}:{tag}", creds=creds)
        assert result.returncode == 0, result.stderr
    images[("cli-multi", "1.0")] = write_index(tmp_path / "multi", "1.0", content="m")
    result = push(tmp_path / "multi", "1.0", registry.host, "alice/cli-multi:1.0", creds=creds, all_platforms=True)
    assert result.returncode == 0, result.stderr
    return images


@pytest.fixture
def client(registry):
    return RegistryClient(registry.url, system_token, timeout=5)


def test_catalog_follows_link_headers_page_by_page(pushed, client):
    names = list(client.catalog(page_size=1))
    assert {"alice/cli-one", "alice/cli-two", "alice/cli-multi"} <= set(names)
    assert len(names) == len(set(names))
    # One request per page: the pages really were of one name each.
    assert client.requests_made >= len(names)


def test_tags_are_listed_completely(pushed, client):
    assert sorted(client.tags("alice/cli-one", page_size=1)) == ["1.0", "2.0"]


def test_head_manifest_gives_digest_and_media_type(pushed, client):
    ref = client.head_manifest("alice/cli-one", "1.0")
    assert ref.digest == pushed[("cli-one", "1.0")].top.digest
    assert ref.media_type == OCI_MANIFEST
    assert ref.size == pushed[("cli-one", "1.0")].top.size


def test_get_manifest_and_config(pushed, client):
    doc = client.get_manifest("alice/cli-two", "1.0")
    assert doc.digest == pushed[("cli-two", "1.0")].top.digest
    assert not doc.is_index
    config = client.get_config("alice/cli-two", doc.data["config"]["digest"])
    assert (config["os"], config["architecture"]) == ("linux", "amd64")


def test_image_index_with_two_platforms(pushed, client):
    doc = client.get_manifest("alice/cli-multi", "1.0")
    assert doc.media_type == OCI_INDEX
    assert doc.is_index
    platforms = {(m["platform"]["architecture"], m["platform"].get("variant")) for m in doc.data["manifests"]}
    assert platforms == {("amd64", None), ("arm64", "v8")}
    child = client.get_manifest("alice/cli-multi", doc.data["manifests"][1]["digest"])
    assert child.media_type == OCI_MANIFEST


def test_delete_by_digest_removes_the_tag(pushed, client):
    digest = pushed[("cli-one", "1.0")].top.digest
    client.delete_manifest("alice/cli-one", digest)
    with pytest.raises(RegistryNotFound):
        client.head_manifest("alice/cli-one", digest)
    assert client.tags("alice/cli-one") == ["2.0"]


def test_missing_things_raise_not_found(registry, client):
    with pytest.raises(RegistryNotFound):
        client.head_manifest("alice/never-pushed", "latest")


def test_unreachable_registry_raises_unavailable_after_retries():
    client = RegistryClient(f"http://127.0.0.1:{free_port()}", None, timeout=1, retries=2, backoff=0.01)
    with pytest.raises(RegistryUnavailable):
        client.ping()
    assert client.requests_made == 3
