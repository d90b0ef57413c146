"""The front door (issue 16) with real parts: Debian's nginx rendering the compose template, the
real registry behind it, the portal answering nginx's auth_request, skopeo pushing through it.
Immutable tags are refused by the registry path itself, with the registry's own error shape."""

from __future__ import annotations

import json

import pytest
import requests
from rest_framework.test import APIClient

from repositories.models import Tag
from repositories.oci_layout import write_image
from tests import services
from tests.conftest import PASSWORD
from tests.helpers import process_events, push

pytestmark = [pytest.mark.registry]


def pushed(tmp_path, front: str, ref: str, content: str, *, name: str = ""):
    layout = tmp_path / (name or content)
    image = write_image(layout, "t", content=content)
    return image, push(layout, "t", front, ref, creds=f"alice:{PASSWORD}")


def registry_token(live_server, scope: str) -> str:
    from django.conf import settings

    answer = requests.get(
        f"{live_server.url}/auth/token",
        params={"service": settings.REGISTRY_SERVICE, "scope": scope},
        auth=("alice", PASSWORD),
        timeout=10,
    )
    return answer.json()["token"]


def test_an_immutable_tag_cannot_be_pushed_again_or_deleted(front, registry, live_server, alice, tmp_path):
    client = APIClient()
    client.force_login(alice)
    made = client.post("/api/v1/namespaces/alice/immutable-tags/", {"pattern": "v*"}, format="json")
    assert made.status_code == 201, made.content
    assert made.json()["pattern"] == "v*" and made.json()["repository"] == "*"

    first, result = pushed(tmp_path, front, "alice/app:v1.0", "first")
    assert result.returncode == 0, result.stderr
    process_events(registry)
    assert Tag.objects.get(repository__name="app", name="v1.0").manifest.digest == first.top.digest

    # Pushed again: refused by the registry path itself, in the registry's words.
    _, again = pushed(tmp_path, front, "alice/app:v1.0", "second")
    assert again.returncode != 0
    assert "tag v1.0 is immutable (rule v*)" in again.stderr
    from repositories.registry import get_client

    assert get_client().head_manifest("alice/app", "v1.0").digest == first.top.digest

    # Tags no rule covers move as always; a tag the portal has not heard of yet is still
    # protected (the front asks the registry about tags a rule covers).
    for content in ("latest-1", "latest-2"):
        assert pushed(tmp_path, front, "alice/app:latest", content)[1].returncode == 0
    assert pushed(tmp_path, front, "alice/app:v2.0", "v2-first")[1].returncode == 0
    assert "tag v2.0 is immutable" in pushed(tmp_path, front, "alice/app:v2.0", "v2-second")[1].stderr
    process_events(registry)

    # A delete by digest through the front: refused with the registry's error shape.
    token = registry_token(live_server, "repository:alice/app:pull,push,delete")
    response = requests.delete(
        f"http://{front}/v2/alice/app/manifests/{first.top.digest}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert response.status_code == 403
    assert response.json() == {
        "errors": [{"code": "DENIED", "message": "tag v1.0 is immutable (rule v*)", "detail": None}]
    }
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    # … and through the portal's API and pages.
    refused = client.delete("/api/v1/repositories/alice/app/tags/v1.0/?confirm=true")
    assert refused.status_code == 403 and "immutable" in refused.json()["detail"]
    assert get_client().head_manifest("alice/app", "v1.0").digest == first.top.digest

    # Pulls go straight through; a request without a token gets the registry's own challenge.
    pulled = services.skopeo(
        "inspect", "--tls-verify=false", "--raw", "--creds", f"alice:{PASSWORD}", f"docker://{front}/alice/app:v1.0"
    )
    assert pulled.returncode == 0 and json.loads(pulled.stdout)["layers"]
    anonymous = requests.put(f"http://{front}/v2/alice/app/manifests/v1.0", data=b"{}", timeout=10)
    assert anonymous.status_code == 401 and "Bearer realm" in anonymous.headers["WWW-Authenticate"]
    # The portal's check is for nginx only.
    assert requests.get(f"http://{front}/-/front/check", timeout=10).status_code == 404

    # The page marks the tag; without the rule, the tag moves again.
    assert "immutable" in client.get("/r/alice/app/-/tags/").content.decode()
    rule = made.json()["id"]
    assert client.delete(f"/api/v1/namespaces/alice/immutable-tags/{rule}/").status_code == 204
    assert pushed(tmp_path, front, "alice/app:v1.0", "third")[1].returncode == 0
    from audit.models import AuditEvent

    rows = AuditEvent.objects.filter(action__startswith="immutable_rule.").order_by("pk")
    assert list(rows.values_list("action", flat=True)) == [
        "immutable_rule.add",
        "immutable_rule.delete",
    ]


def test_rules_are_checked_when_made(db, alice, bob):
    client = APIClient()
    client.force_login(alice)
    url = "/api/v1/namespaces/alice/immutable-tags/"
    for bad in [{"pattern": ""}, {"pattern": "v 1"}, {"pattern": "v[1"}, {"pattern": "x" * 200}, {}]:
        response = client.post(url, bad, format="json")
        assert response.status_code == 400, (bad, response.content)
    assert client.post(url, {"pattern": "v*", "repository": "api-*"}, format="json").status_code == 201
    duplicate = client.post(url, {"pattern": "v*", "repository": "api-*"}, format="json")
    assert duplicate.status_code == 400 and "exists already" in duplicate.content.decode()
    bobs = APIClient()
    bobs.force_login(bob)
    assert bobs.get(url).status_code == 403
    assert bobs.post(url, {"pattern": "x*"}, format="json").status_code == 403


def test_storage_counts_each_blob_once_and_a_quota_stops_uploads(front, registry, live_server, alice, tmp_path):
    from accounts.models import Namespace
    from repositories import storage

    image, result = pushed(tmp_path, front, "alice/one:1.0", "shared")
    assert result.returncode == 0, result.stderr
    assert push(tmp_path / "shared", "t", front, "alice/two:1.0", creds=f"alice:{PASSWORD}").returncode == 0
    process_events(registry)
    namespace = Namespace.objects.get(name="alice")
    storage.refresh(namespace)
    size = image.sizes["linux/amd64"]  # config + layers, compressed
    client = APIClient()
    client.force_login(alice)
    data = client.get("/api/v1/namespaces/alice/storage/").json()
    assert data["used_bytes"] == size  # the same blobs in two repositories: stored once
    assert {r["name"]: r["used_bytes"] for r in data["repositories"]} == {"one": size, "two": size}
    assert data["quota_bytes"] is None and not data["warning"]

    # A quota below what is stored: the next upload is refused at the front, naming it.
    answer = client.put("/api/v1/namespaces/alice/storage/", {"quota_bytes": size - 1}, format="json")
    assert answer.status_code == 200 and answer.json()["over_quota"] and answer.json()["warning"]
    _, refused = pushed(tmp_path, front, "alice/three:1.0", "new-content")
    assert refused.returncode != 0
    assert f"namespace alice is over its {size - 1} bytes quota" in refused.stderr
    assert storage.describe_bytes(50 * 1024**3) == "50 GiB" and storage.describe_bytes(1536) == "1.5 KiB"
    from repositories.registry import get_client
    from repositories.registry.client import RegistryNotFound

    with pytest.raises(RegistryNotFound):
        get_client().head_manifest("alice/three", "1.0")
    # Room again: uploads go through.
    assert client.put("/api/v1/namespaces/alice/storage/", {"quota_bytes": None}, format="json").status_code == 200
    assert pushed(tmp_path, front, "alice/three:1.0", "new-content")[1].returncode == 0
    for bad in [{"quota_bytes": -1}, {"quota_bytes": "lots"}, {}]:
        assert client.put("/api/v1/namespaces/alice/storage/", bad, format="json").status_code == 400, bad


def test_garbage_collection_holds_writes_loses_nothing_and_frees_what_was_deleted(
    front, registry, live_server, alice, tmp_path, settings
):
    import secrets
    import threading

    from repositories import gc
    from repositories.registry import get_client, read_registry_token
    from repositories.registry.client import RegistryNotFound

    settings.REGISTRY_CONFIG_FILE = registry.config_path
    settings.REGISTRY_STORAGE_DIR = registry.storage
    assert pushed(tmp_path, front, "alice/gc:keep", "kept through the collection")[1].returncode == 0
    doomed, result = pushed(tmp_path, front, "alice/gc:doomed", secrets.token_hex(200_000), name="doomed")
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "doomed" / "blobs" / "sha256" / doomed.top.digest[7:]).read_text())
    doomed_layer = manifest["layers"][0]
    process_events(registry)
    client = APIClient()
    client.force_login(alice)
    assert client.delete("/api/v1/repositories/alice/gc/tags/doomed/?confirm=true").status_code == 200
    assert client.get("/api/v1/admin/gc/").status_code == 403  # staff only

    # A client keeps pushing new images through the front the whole time.
    outcomes: list[tuple[str, bool, str]] = []
    stop = threading.Event()

    def keep_pushing() -> None:
        i = 0
        while not stop.is_set():
            ref = f"alice/gc:busy-{i}"
            _, done = pushed(tmp_path, front, ref, f"busy {i}")
            outcomes.append((ref, done.returncode == 0, done.stderr))
            i += 1

    pusher = threading.Thread(target=keep_pushing)
    pusher.start()
    try:
        run = gc.start(actor_name="test")
        # Held: the token server grants reads only, and the front answers writes with 503.
        token = registry_token(live_server, "repository:alice/gc:pull,push")
        assert read_registry_token(token)["access"] == [{"type": "repository", "name": "alice/gc", "actions": ["pull"]}]
        held = requests.put(
            f"http://{front}/v2/alice/gc/manifests/held",
            data=b"{}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert held.status_code == 503 and held.json()["errors"][0]["code"] == "UNAVAILABLE"

        # nginx may keep an upload start's "allow" from just before the hold for a second (the
        # registry still refuses this read-only token then): the 503 follows within it.
        answers: list[requests.Response] = []

        def upload_start() -> bool:
            answers.append(
                requests.post(
                    f"http://{front}/v2/alice/gc/blobs/uploads/",
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=10,
                )
            )
            return answers[-1].status_code == 503  # (a Response is falsy when it is an error)

        services.wait_until(upload_start, timeout=5, what="the upload start held")
        upload = answers[-1]
        assert "registry maintenance" in upload.json()["errors"][0]["message"]
        assert {answer.status_code for answer in answers} <= {401, 503}  # never let through
        # (skopeo, like docker, retries a 503: the busy client waits for the hold to end.)
        run = gc.collect(run, hold_seconds=3)
        assert run.status == "ok", run.output
        services.wait_until(lambda: sum(ok for _, ok, _ in outcomes) >= 2, timeout=90, what="pushes resuming")
    finally:
        stop.set()
        pusher.join(120)

    # Freed: at least the deleted image's layer, measured on the storage; that blob is gone.
    assert run.freed_bytes >= doomed_layer["size"] > 100_000
    with pytest.raises(RegistryNotFound):
        get_client().get_blob("alice/gc", doomed_layer["digest"])
    # Nothing lost: the kept image and every push that succeeded pull in full, blobs and all.
    succeeded = [ref for ref, ok, _ in outcomes if ok]
    assert succeeded, outcomes
    for ref in ["alice/gc:keep", *succeeded]:
        target = tmp_path / "pulled" / ref.replace("/", "_").replace(":", "_")
        target.mkdir(parents=True)
        copied = services.skopeo(
            "copy",
            "--src-tls-verify=false",
            "--src-creds",
            f"alice:{PASSWORD}",
            f"docker://{front}/{ref}",
            f"dir:{target}",
        )
        assert copied.returncode == 0, (ref, copied.stderr)


def test_nginx_keeps_upload_starts_it_may_and_no_credential(front, registry, live_server, alice, tmp_path):
    """nginx's proxy_cache on the check holds the upload starts' "allow" (X-Accel-Expires) so a
    push asks once per second rather than once per blob; its files name no credential."""
    _image, done = pushed(tmp_path, front, "alice/kept:1.0", "three layers", name="kept")
    assert done.returncode == 0, done.stderr
    cache = tmp_path / "front" / "front-cache"
    files = [path for path in cache.rglob("*") if path.is_file()]
    assert files, "nothing kept"
    for path in files:
        body = path.read_bytes()
        assert b"POST /v2/alice/kept/blobs/uploads/" in body  # the key: the method and the URI
        assert b"Bearer" not in body and b"Basic" not in body and b"Authorization" not in body
        assert b"X-Dockyard-Denied" not in body  # never a refusal


def test_a_repository_with_an_immutable_tag_cannot_be_deleted(front, registry, live_server, alice, tmp_path, client):
    """Found by a README-only attack (helper-8): deleting the whole repository removed its
    immutable tags, and the tag could then be pushed again with other content."""
    from repositories.registry import get_client

    api = APIClient()
    api.force_login(alice)
    assert api.post("/api/v1/namespaces/alice/immutable-tags/", {"pattern": "v*"}, format="json").status_code == 201
    image, done = pushed(tmp_path, front, "alice/keep:v1", "kept for ever", name="keep")
    assert done.returncode == 0, done.stderr
    process_events(registry)
    refused = api.delete("/api/v1/repositories/alice/keep/")
    assert refused.status_code == 403 and "immutable (rule v*)" in refused.json()["detail"]
    client.force_login(alice)
    page = client.post("/r/alice/keep/-/settings/", {"action": "delete", "confirm": "alice/keep"}, follow=True)
    assert b"Nothing was deleted" in page.content
    assert get_client().head_manifest("alice/keep", "v1").digest == image.top.digest  # still there
    assert Tag.objects.filter(repository__full_name="alice/keep", name="v1").exists()
