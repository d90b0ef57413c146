"""Retention (issue 16, item 2) on the real registry: the dry run is exactly the run; a digest
goes only when every tag on it goes; immutable tags are protected; untagged manifests go when a
rule says so, but not signatures; what went is recorded with the space it held."""

from __future__ import annotations

import json

import pytest
from rest_framework.test import APIClient

from repositories.models import Tag
from repositories.registry import get_client
from repositories.registry.client import RegistryNotFound
from tests import oci_push as oci
from tests.conftest import PASSWORD
from tests.helpers import process_events

pytestmark = [pytest.mark.registry]


def test_a_dry_run_is_the_run_and_shared_digests_stay(registry, live_server, alice):
    pusher = oci.Pusher.login(
        portal_url=live_server.url,
        registry_url=registry.url,
        repository="alice/kept",
        username="alice",
        password=PASSWORD,
    )
    images = {}
    for name in ["v0", "1.0", "1.1", "stable", "1.2", "1.3"]:
        if name == "stable":  # the same image as 1.0, pushed later, under a tag no rule covers
            pusher.manifest(json.loads(pusher.pull("1.0")), "stable")
        else:
            images[name] = oci.image(pusher, layers=(f"layer of {name}".encode() * 500,), tag=name)
        process_events(registry)  # one at a time: each push is later than the one before
    loose = oci.image(pusher, layers=(b"pushed by digest only" * 400,))  # untagged
    signed_target = images["1.3"]
    key = oci.new_key("ecdsa")
    pusher.manifest(  # an OCI 1.1 signature: untagged too, but it goes with its image only
        oci.signature_manifest(
            pusher,
            [oci.cosign_signature(key, f"{registry.host}/alice/kept", signed_target["digest"])],
            subject={"mediaType": oci.OCI_MANIFEST, "digest": signed_target["digest"], "size": signed_target["size"]},
        )
    )
    process_events(registry)

    client = APIClient()
    client.force_login(alice)
    base = "/api/v1/namespaces/alice"
    assert client.post(f"{base}/immutable-tags/", {"pattern": "v*"}, format="json").status_code == 201
    made = client.post(
        f"{base}/retention-rules/",
        {"repository": "kept", "tag_pattern": "1.*", "keep_most_recent": 2, "untagged": True},
        format="json",
    )
    assert made.status_code == 201, made.content
    assert made.json()["protect_immutable"] and made.json()["protect_verified"]
    # v* tags: keep none, but they are immutable (and protected by default).
    assert (
        client.post(f"{base}/retention-rules/", {"tag_pattern": "v*", "keep_most_recent": 0}, format="json").status_code
        == 201
    )

    preview = client.post(f"{base}/retention-runs/", {"dry_run": True}, format="json").json()
    assert preview["dry_run"] is True
    assert preview["tags"] == ["kept:1.1"]
    assert preview["digests"] == sorted([f"kept@{images['1.1']['digest']}", f"kept@{loose['digest']}"])
    assert preview["bytes"] > 2 * 500 * len("layer of 1.1")  # the two images' own blobs (not shared)
    assert any("1.0 stay: the same image as kept stable" in line for line in preview["skipped"])
    assert get_client().head_manifest("alice/kept", "1.1")  # a preview removes nothing

    applied = client.post(f"{base}/retention-runs/", {"dry_run": False}, format="json").json()
    assert {k: applied[k] for k in ("tags", "digests", "bytes")} == {
        k: preview[k] for k in ("tags", "digests", "bytes")
    }
    registry_client = get_client()
    with pytest.raises(RegistryNotFound):
        registry_client.head_manifest("alice/kept", "1.1")
    with pytest.raises(RegistryNotFound):
        registry_client.head_manifest("alice/kept", loose["digest"])
    for name in ["v0", "1.0", "stable", "1.2", "1.3"]:
        assert registry_client.head_manifest("alice/kept", name).digest
    assert sorted(Tag.objects.filter(repository__name="kept", artifact="").values_list("name", flat=True)) == [
        "1.0",
        "1.2",
        "1.3",
        "stable",
        "v0",
    ]
    # The signature stays with its image, and the image stays verified once its key is trusted.
    assert (
        client.post(
            f"{base}/signing-keys/", {"name": "k", "public_key": oci.public_pem(key)}, format="json"
        ).status_code
        == 201
    )
    assert client.get("/api/v1/repositories/alice/kept/tags/1.3/").json()["signature"]["status"] == "verified"
    # Recorded and audited; a second run finds nothing more.
    runs = client.get(f"{base}/retention-runs/").json()
    assert [r["dry_run"] for r in runs] == [False, True]
    assert all(r["started_at"] <= r["finished_at"] for r in runs)  # a run ends after it starts
    from audit.models import AuditEvent

    assert AuditEvent.objects.filter(action="retention.run", namespace="alice").exists()
    again = client.post(f"{base}/retention-runs/", {"dry_run": False}, format="json").json()
    assert again["tags"] == [] and again["digests"] == []


def test_rules_are_checked(db, alice, bob):
    client = APIClient()
    client.force_login(alice)
    url = "/api/v1/namespaces/alice/retention-rules/"
    for bad in [
        {"tag_pattern": "v[1"},
        {"repository": "Bad Name"},
        {"keep_most_recent": -1},
        {"keep_pushed_within_days": "soon"},
        {},  # keeps nothing by accident: every tag would go at the next daily run
        {"tag_pattern": "pr-*", "untagged": False},
    ]:
        response = client.post(url, bad, format="json")
        assert response.status_code == 400, (bad, response.content)
    assert "Say what to keep" in client.post(url, {}, format="json").json()["keep_most_recent"][0]
    rule = client.post(url, {"tag_pattern": "pr-*", "keep_pushed_within_days": 14}, format="json").json()
    emptied = client.patch(f"{url}{rule['id']}/", {"keep_pushed_within_days": None}, format="json")
    assert emptied.status_code == 400, emptied.content
    changed = client.patch(f"{url}{rule['id']}/", {"keep_pushed_within_days": 7}, format="json")
    assert changed.status_code == 200 and changed.json()["keep_pushed_within_days"] == 7
    assert changed.json()["tag_pattern"] == "pr-*"
    others = APIClient()
    others.force_login(bob)
    assert others.get(url).status_code == 403
    assert others.post("/api/v1/namespaces/alice/retention-runs/", {"dry_run": True}, format="json").status_code == 403
    assert client.delete(f"{url}{rule['id']}/").status_code == 204


def test_a_rule_without_a_keep_criterion_removes_untagged_manifests_only(db, alice):
    """`{"untagged": true}` alone: untagged manifests go, every tag stays; `keep_most_recent: 0`
    is how a rule says that none of its tags are kept. Rules made before rules had to say what
    they keep meant keep none; migration 0022 says so for them."""
    import importlib

    from django.apps import apps as django_apps

    from repositories import retention
    from repositories.models import Manifest, Repository, RetentionRule

    repo = Repository.objects.create(namespace=alice.namespace, name="tidy")
    kinds = "application/vnd.oci.image.manifest.v1+json"
    for i, name in enumerate(["1.0", "2.0"]):
        Tag.objects.create(
            repository=repo,
            name=name,
            manifest=Manifest.objects.create(repository=repo, digest=f"sha256:{i + 1:064x}", media_type=kinds),
        )
    Manifest.objects.create(repository=repo, digest=f"sha256:{9:064x}", media_type=kinds)  # untagged
    rule = retention.rule_save(namespace=alice.namespace, actor=alice, untagged=True)
    plan = retention.plan(alice.namespace)
    assert dict(plan.remove_tags) == {} and dict(plan.untagged) == {"tidy": {f"sha256:{9:064x}"}}

    rule.untagged = False
    RetentionRule.objects.filter(pk=rule.pk).update(untagged=False)  # as a rule of before 0022
    migration = importlib.import_module("repositories.migrations.0022_retention_rules_say_what_they_keep")
    migration.keep_none_said(django_apps, None)
    rule.refresh_from_db()
    assert rule.keep_most_recent == 0
    assert retention.plan(alice.namespace).remove_tags == {"tidy": {"1.0", "2.0"}}
