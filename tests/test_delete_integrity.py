"""Deletes that must not remove or break what is kept (issue 16; found by a README-only attack,
helper-11): a delete by digest racing the push of an immutable tag onto that digest, a platform
manifest of an index that is kept but mutable, indexes inside indexes, and a retention preview
that listed what the run then kept. Real registry (and nginx, for the front's paths)."""

from __future__ import annotations

import json
import threading

import pytest
import requests
from rest_framework.test import APIClient

from repositories.registry import get_client
from repositories.registry.client import RegistryNotFound
from tests import oci_push as oci
from tests.conftest import PASSWORD
from tests.helpers import process_events
from tests.test_policies_attacks import _pull_all, _pusher

pytestmark = [pytest.mark.registry]
AMD = {"os": "linux", "architecture": "amd64"}
ARM = {"os": "linux", "architecture": "arm64"}


def _owner(alice) -> APIClient:
    client = APIClient()
    client.force_login(alice)
    return client


def _immutable(client, pattern: str) -> None:
    made = client.post("/api/v1/namespaces/alice/immutable-tags/", {"pattern": pattern}, format="json")
    assert made.status_code == 201, made.content


def _rule(client, **body) -> None:
    made = client.post("/api/v1/namespaces/alice/retention-rules/", body, format="json")
    assert made.status_code == 201, made.content


def _run(client, dry_run: bool) -> dict:
    answer = client.post("/api/v1/namespaces/alice/retention-runs/", {"dry_run": dry_run}, format="json")
    assert answer.status_code == 200, answer.content
    return answer.json()


def _direct(live_server, registry, repository: str) -> oci.Pusher:
    """alice pushing straight to the registry (not through the front)."""
    return oci.Pusher.login(
        portal_url=live_server.url,
        registry_url=registry.url,
        repository=repository,
        username="alice",
        password=PASSWORD,
    )


def _older_and_newer(p: oci.Pusher, registry, alice) -> APIClient:
    """t1, then t2, each heard of in turn; a rule keeping the newest: a run removes t1."""
    for n in (1, 2):
        oci.image(p, layers=(f"{p.repository} {n}".encode(),), tag=f"t{n}")
        process_events(registry)
    client = _owner(alice)
    _rule(client, tag_pattern="*", keep_most_recent=1)
    return client


def _front_decider(alice, repository: str):
    """`v*` immutable in alice's namespace; decide(method, reference) answers as the front does
    for a manifest request with alice's pull, push and delete token, asking the real registry."""
    from repositories import policies
    from repositories.registry import get_issuer

    policies.immutable_rule_create(namespace=alice.namespace, tag_pattern="v*", actor=alice)
    policies.FRONT_STATE.forget()
    grants = [{"type": "repository", "name": repository, "actions": ["pull", "push", "delete"]}]
    token = get_issuer().issue("alice", grants).token

    def decide(method: str, reference: str) -> str | None:
        request = policies.FrontRequest(method, f"/v2/{repository}/manifests/{reference}", token)
        return policies.front_decision(request, registry_has_tag=lambda *_: False, client_factory=get_client)

    return decide


def _exists(repository: str, reference: str) -> bool:
    try:
        get_client().head_manifest(repository, reference)
    except RegistryNotFound:
        return False
    return True


# --- 1. a delete by digest and the push of an immutable tag onto it, at once -------------------


def test_a_delete_by_digest_racing_an_immutable_push_onto_it_never_removes_the_new_tag(
    front, registry, live_server, alice
):
    """helper-11's steps: images pushed as mutable m1..mN; for each, at once through the front,
    PUT of the same bytes as immutable v-tocN and DELETE of mN's digest. Before the fix 3-4 of 8
    trials answered PUT 201, DELETE 202, and the immutable tag was gone."""
    _immutable(_owner(alice), "v*")
    p = _pusher(live_server, front, "alice/toctou")
    trials = 10
    images = [oci.image(p, layers=(f"toctou {n}".encode(),), tag=f"m{n}") for n in range(trials)]
    bodies = [p.pull(image["digest"]) for image in images]
    outcomes = []
    for n, (image, body) in enumerate(zip(images, bodies, strict=True)):
        barrier = threading.Barrier(2)
        answers: dict[str, int] = {}

        def put(n=n, body=body, barrier=barrier, answers=answers) -> None:
            barrier.wait()
            answers["put"] = requests.put(
                f"http://{front}/v2/alice/toctou/manifests/v-toc{n}",
                data=body,
                headers={**p.headers, "Content-Type": oci.OCI_MANIFEST},
                timeout=30,
            ).status_code

        def delete(image=image, barrier=barrier, answers=answers) -> None:
            barrier.wait()
            answers["delete"] = requests.delete(
                f"http://{front}/v2/alice/toctou/manifests/{image['digest']}", headers=p.headers, timeout=30
            ).status_code

        threads = [threading.Thread(target=put), threading.Thread(target=delete)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        outcomes.append((answers.get("put"), answers.get("delete"), _exists("alice/toctou", f"v-toc{n}")))
    lost = [(n, outcome) for n, outcome in enumerate(outcomes) if outcome[0] == 201 and not outcome[2]]
    assert lost == [], f"an immutable tag was pushed (201) and then deleted: {outcomes}"
    assert all(put in (201, 403) and delete in (202, 403) for put, delete, _ in outcomes), outcomes
    assert any(put == 201 for put, _, _ in outcomes), outcomes  # the guard does not refuse every push


def test_each_side_of_the_race_sees_the_other_at_the_decision(registry, live_server, alice):
    """The same race made deterministic at the front's decision, with the real registry: a push
    checked while a delete's digest is still in the registry is refused, and so is a delete
    checked while an immutable push the registry does not show yet is on its way; once each has
    happened, the other is let through (the marks are not a lock on the repository)."""
    p = _direct(live_server, registry, "alice/sides")
    first = oci.image(p, layers=(b"side one",), tag="m1")
    second = oci.image(p, layers=(b"side two",), tag="m2")
    decide = _front_decider(alice, "alice/sides")

    # A delete checked (its digest still in the registry): a push of a new immutable tag waits.
    assert decide("DELETE", first["digest"]) is None
    refused = decide("PUT", "v1")
    assert refused is not None and "a delete in alice/sides is under way, push tag v1 again" in refused
    get_client().delete_manifest("alice/sides", first["digest"])  # the delete happens
    assert decide("PUT", "v1") is None  # its digest is gone: the push goes (and is marked)
    # The push of v1 is on its way (not in the registry yet): a delete by digest waits.
    refused = decide("DELETE", second["digest"])
    assert refused is not None and "tag v1 is being pushed to alice/sides (immutable), try the delete" in refused
    p.manifest(json.loads(p.pull(second["digest"])), "v1")  # the push lands, on m2's digest
    refused = decide("DELETE", second["digest"])
    assert refused is not None and "tag v1 is immutable (rule v*)" in refused
    third = oci.image(p, layers=(b"side three",), tag="m3")
    assert decide("DELETE", third["digest"]) is None  # landed elsewhere: other deletes go


# --- 2. a platform manifest of a kept, mutable index -------------------------------------------


def test_retention_keeps_a_platform_manifest_that_a_kept_mutable_index_lists(registry, live_server, alice):
    """helper-11: index keep-idx lists t5's image; a rule t* keep 1 removed t5's digest and
    keep-idx no longer pulled. An image goes only when every tag that reaches it goes."""
    p = _direct(live_server, registry, "alice/kept-idx")
    images = [oci.image(p, layers=(f"t layer {n}".encode(),), tag=f"t{n}") for n in range(1, 6)]
    other = oci.image(p, arch="arm64", layers=(b"arm t",))
    oci.index(p, [(images[-1], AMD), (other, ARM)], "keep-idx")
    newest = oci.image(p, layers=(b"t layer 6",), tag="t6")
    process_events(registry)
    client = _owner(alice)
    _rule(client, tag_pattern="t*", keep_most_recent=1)
    preview = _run(client, dry_run=True)
    assert "kept-idx:t5" not in preview["tags"], preview
    assert f"kept-idx@{images[-1]['digest']}" not in preview["digests"], preview
    assert any("t5 stay: a platform of the kept index keep-idx" in line for line in preview["skipped"]), preview
    done = _run(client, dry_run=False)
    assert (done["tags"], done["digests"], done["bytes"]) == (preview["tags"], preview["digests"], preview["bytes"])
    assert sorted(done["tags"]) == ["kept-idx:t1", "kept-idx:t2", "kept-idx:t3", "kept-idx:t4"]
    assert _pull_all(p, "keep-idx") == [], "retention broke a kept index"
    assert _exists("alice/kept-idx", "t5") and _exists("alice/kept-idx", newest["digest"])


def test_the_api_refuses_to_delete_a_tag_whose_image_an_index_lists(registry, live_server, alice):
    """helper-11: DELETE …/tags/plain/ (plain on a platform manifest of the index multi) answered
    200 and broke multi. Now 409 naming the index's tags, confirmed or not; nothing deleted."""
    p = _direct(live_server, registry, "alice/multi")
    amd = oci.image(p, layers=(b"multi amd",), tag="plain")
    arm = oci.image(p, arch="arm64", layers=(b"multi arm",))
    oci.index(p, [(amd, AMD), (arm, ARM)], "multi")
    process_events(registry)
    client = _owner(alice)
    for query in ("", "?confirm=true", f"?confirm=true&digest={amd['digest']}"):
        refused = client.delete(f"/api/v1/repositories/alice/multi/tags/plain/{query}")
        assert refused.status_code == 409, refused.content
        assert refused.json()["used_by"] == ["multi"] and refused.json()["digest"] == amd["digest"]
        assert "would break" in refused.json()["detail"]
    assert _pull_all(p, "multi") == [] and _exists("alice/multi", "plain")
    # The page says so too, and deletes nothing.
    page = client.get("/r/alice/multi/-/tags/plain/delete/", follow=True)
    assert page.status_code == 200 and b"would break" in page.content
    assert _exists("alice/multi", "plain")
    # Once the index is gone, the tag can go.
    gone = client.delete("/api/v1/repositories/alice/multi/tags/multi/")
    assert gone.status_code == 200, gone.content
    assert client.delete("/api/v1/repositories/alice/multi/tags/plain/").status_code == 200


# --- 3. indexes inside indexes -----------------------------------------------------------------


def _nested(p) -> tuple[dict, dict, dict]:
    """leaf (tagged `leaf`) in an untagged inner index, in the outer index tagged v1."""
    leaf = oci.image(p, layers=(b"nested leaf",), tag="leaf")
    arm = oci.image(p, arch="arm64", layers=(b"nested arm",))
    inner = p.manifest(
        {
            "schemaVersion": 2,
            "mediaType": oci.OCI_INDEX,
            "manifests": [{**leaf, "platform": AMD}, {**arm, "platform": ARM}],
        }
    )
    outer = p.manifest({"schemaVersion": 2, "mediaType": oci.OCI_INDEX, "manifests": [inner]}, "v1")
    return leaf, inner, outer


def test_a_manifest_deep_in_an_immutable_index_cannot_be_deleted(front, registry, live_server, alice):
    """helper-11: the check covered one level, so a leaf under an untagged inner index under an
    immutable outer index went, through the front and through the API."""
    client = _owner(alice)
    _immutable(client, "v*")
    p = _pusher(live_server, front, "alice/nested")
    leaf, inner, _outer = _nested(p)
    # Before the portal heard of it (the registry's picture) and after (the portal's).
    for heard in (False, True):
        if heard:
            process_events(registry)
        for digest in (leaf["digest"], inner["digest"]):
            refused = requests.delete(f"http://{front}/v2/alice/nested/manifests/{digest}", headers=p.headers)
            assert refused.status_code == 403, (heard, digest, refused.text)
            assert "tag v1 is immutable (rule v*)" in refused.json()["errors"][0]["message"]
    api = client.delete("/api/v1/repositories/alice/nested/tags/leaf/?confirm=true")
    assert api.status_code == 403 and "tag v1 is immutable" in api.json()["detail"], api.content
    assert _exists("alice/nested", leaf["digest"]) and _exists("alice/nested", inner["digest"])


def test_retention_keeps_what_an_immutable_index_lists_at_any_depth_and_the_preview_says_so(
    registry, live_server, alice
):
    """helper-11: retention's preview listed the child of an immutable index, which the run then
    kept (TagImmutable). The preview is the run: neither lists it."""
    p = _direct(live_server, registry, "alice/deep")
    leaf, _inner, _outer = _nested(p)
    child = oci.image(p, layers=(b"flat child",), tag="child")
    oci.index(p, [(child, AMD)], "v2")
    process_events(registry)
    client = _owner(alice)
    _immutable(client, "v*")
    _rule(client, tag_pattern="*", keep_most_recent=0)
    preview = _run(client, dry_run=True)
    assert preview["tags"] == [] and preview["digests"] == [], preview
    done = _run(client, dry_run=False)
    assert (done["tags"], done["digests"], done["skipped"]) == (preview["tags"], preview["digests"], preview["skipped"])
    assert _pull_all(p, "v2") == [] and _exists("alice/deep", leaf["digest"]) and _exists("alice/deep", "child")


def test_retention_removes_an_index_before_the_images_it_lists(registry, live_server, alice):
    """When an index and the tagged images it lists all go, the index goes first (while it is in
    the registry its images are in use), and the run removes everything the preview listed."""
    p = _direct(live_server, registry, "alice/all-go")
    leaf, inner, outer = _nested(p)
    process_events(registry)
    client = _owner(alice)
    _rule(client, tag_pattern="*", keep_most_recent=0)
    preview = _run(client, dry_run=True)
    assert preview["tags"] == ["all-go:leaf", "all-go:v1"], preview
    arm_doc = json.loads(p.pull(inner["digest"]))  # read before the run removes it
    done = _run(client, dry_run=False)
    assert (done["tags"], done["digests"]) == (preview["tags"], preview["digests"]), done
    # The untagged inner index and its untagged platform go with the index that lists them
    # (nothing would list them again: the helper-13 attack found them left for ever).
    arm = next(m["digest"] for m in arm_doc["manifests"] if m["digest"] != leaf["digest"])
    every = sorted(f"all-go@{d}" for d in (outer["digest"], leaf["digest"], inner["digest"], arm))
    assert preview["digests"] == every and done["digests"] == every, done
    for digest in (outer["digest"], leaf["digest"], inner["digest"], arm):
        assert not _exists("alice/all-go", digest)


# --- accessories go with their image -----------------------------------------------------------


def test_retention_removes_a_removed_images_signatures_and_referrers_with_it(registry, live_server, alice):
    """The README: signatures, attestations and SBOMs go with their image. A run removed the
    image and left its cosign sha256-<hex>.sig tag and its OCI 1.1 referrers behind, orphans in
    the tag list for ever (helper-11 noticed the .sig tag)."""
    p = _direct(live_server, registry, "alice/signed")
    key = oci.new_key("ecdsa")
    old = oci.image(p, layers=(b"old signed",), tag="old")
    process_events(registry)
    new = oci.image(p, layers=(b"new signed",), tag="new")
    accessories = {}
    for image in (old, new):
        signature = oci.signature_manifest(
            p, [oci.cosign_signature(key, f"{registry.host}/alice/signed", image["digest"])]
        )
        accessories[image["digest"]] = (
            p.manifest(signature, oci.cosign_tag(image["digest"], "sig")),
            p.manifest(oci.sbom_referrer(p, b'{"bomFormat": "CycloneDX"}', image)),
        )
    process_events(registry)
    client = _owner(alice)
    _rule(client, tag_pattern="*", keep_most_recent=1)
    preview = _run(client, dry_run=True)
    sig, sbom = accessories[old["digest"]]
    assert preview["tags"] == sorted(["signed:old", f"signed:{oci.cosign_tag(old['digest'], 'sig')}"]), preview
    assert preview["digests"] == sorted(f"signed@{d}" for d in (old["digest"], sig["digest"], sbom["digest"])), preview
    done = _run(client, dry_run=False)
    assert (done["tags"], done["digests"], done["bytes"]) == (preview["tags"], preview["digests"], preview["bytes"])
    for digest in (old["digest"], sig["digest"], sbom["digest"]):
        assert not _exists("alice/signed", digest)
    kept_sig, kept_sbom = accessories[new["digest"]]
    assert _exists("alice/signed", oci.cosign_tag(new["digest"], "sig")) and _exists(
        "alice/signed", kept_sbom["digest"]
    )
    assert _exists("alice/signed", "new") and kept_sig["digest"]


# --- a garbage collection holds the portal's own deletes too -----------------------------------


def test_the_portals_own_deletes_wait_for_a_garbage_collection_as_the_fronts_do(registry, live_server, alice):
    """The README: a collection holds writes. The front and the token server held pushes and
    deletes, but the API's and the pages' tag and repository deletes and an applied retention run
    went straight to the registry during the hold (helper-11 noted it)."""
    from repositories import gc
    from repositories.models import GcRun

    p = _direct(live_server, registry, "alice/held")
    oci.image(p, layers=(b"held one",), tag="one")
    oci.image(p, layers=(b"held two",), tag="two")
    process_events(registry)
    client = _owner(alice)
    _rule(client, tag_pattern="*", keep_most_recent=1)
    run = gc.start(actor_name="test")
    try:
        for answer in (
            client.delete("/api/v1/repositories/alice/held/tags/one/"),
            client.delete("/api/v1/repositories/alice/held/"),
            client.post("/api/v1/namespaces/alice/retention-runs/", {"dry_run": False}, format="json"),
        ):
            assert answer.status_code == 503, answer.content
            assert "registry maintenance (garbage collection)" in answer.json()["detail"]
        assert _run(client, dry_run=True)["tags"] == ["held:one"]  # a preview writes nothing: allowed
        page = client.post("/r/alice/held/-/tags/one/delete/", follow=True)
        assert b"registry maintenance" in page.content
        page = client.post("/settings/policies/retention/run/", {"apply": "yes"}, follow=True)
        assert b"Nothing was removed: registry maintenance" in page.content
        assert _exists("alice/held", "one") and _exists("alice/held", "two")
    finally:
        GcRun.objects.filter(pk=run.pk).update(status=GcRun.Status.OK)
    assert client.delete("/api/v1/repositories/alice/held/tags/one/").status_code == 200  # released: it goes


def test_retention_keeps_an_image_tagged_in_the_registry_since_the_plan(registry, live_server, alice):
    """The run reads the registry's tags itself (not the portal's picture): a tag the portal has
    not heard of on an image the plan removes keeps the image."""
    p = _direct(live_server, registry, "alice/late")
    first = oci.image(p, layers=(b"late one",), tag="t1")
    process_events(registry)
    oci.image(p, layers=(b"late two",), tag="t2")
    process_events(registry)
    client = _owner(alice)
    _rule(client, tag_pattern="t*", keep_most_recent=1)
    assert _run(client, dry_run=True)["tags"] == ["late:t1"]
    p.manifest(json.loads(p.pull("t1")), "release")  # the portal has not heard of it yet
    done = _run(client, dry_run=False)
    assert done["tags"] == [] and done["digests"] == [], done
    assert any("changed in the registry since it was planned" in line for line in done["skipped"]), done
    assert get_client().head_manifest("alice/late", "release").digest == first["digest"]


def test_retention_removes_untagged_manifests_of_a_repository_with_many_tags(registry, live_server, alice, monkeypatch):
    """The untagged part of a run was skipped in every repository with more tags than the front
    reads in a request (1,000; here 2), with a message about protected tags."""
    from repositories import policies

    monkeypatch.setattr(policies, "MAX_TAGS_CHECKED", 2)
    p = _direct(live_server, registry, "alice/crowded")
    for n in range(3):
        oci.image(p, layers=(f"crowded {n}".encode(),), tag=f"t{n}")
    loose = oci.image(p, layers=(b"crowded loose",))
    process_events(registry)
    client = _owner(alice)
    _rule(client, untagged=True)
    done = _run(client, dry_run=False)
    assert done["digests"] == [f"crowded@{loose['digest']}"], done
    assert not _exists("alice/crowded", loose["digest"]) and all(_exists("alice/crowded", f"t{n}") for n in range(3))


def test_an_untagged_index_goes_with_its_platforms_and_a_shared_platform_stays(registry, live_server, alice):
    """helper-13: an untagged index removed by an `untagged` rule left its platform manifest in
    the registry for ever. Its platforms go with it; one that a kept index also lists stays."""
    p = _direct(live_server, registry, "alice/loose-idx")
    own = oci.image(p, layers=(b"own platform",))
    shared = oci.image(p, arch="arm64", layers=(b"shared platform",))
    loose = p.manifest(
        {
            "schemaVersion": 2,
            "mediaType": oci.OCI_INDEX,
            "manifests": [{**own, "platform": AMD}, {**shared, "platform": ARM}],
        }
    )
    oci.index(p, [(shared, ARM)], "kept")
    process_events(registry)
    client = _owner(alice)
    _rule(client, untagged=True)
    preview = _run(client, dry_run=True)
    assert preview["digests"] == sorted(f"loose-idx@{d}" for d in (loose["digest"], own["digest"])), preview
    done = _run(client, dry_run=False)
    assert (done["digests"], done["bytes"]) == (preview["digests"], preview["bytes"])
    assert not _exists("alice/loose-idx", loose["digest"]) and not _exists("alice/loose-idx", own["digest"])
    assert _pull_all(p, "kept") == []


def test_an_index_listed_under_another_media_type_is_still_followed(front, registry, live_server, alice):
    """helper-13: an outer index naming the inner index with a media type other than an index's
    (here application/octet-stream) was not followed by the registry-side check, so the leaf went
    before the portal had heard of the push."""
    _immutable(_owner(alice), "v*")
    p = _pusher(live_server, front, "alice/mislabeled")
    leaf = oci.image(p, layers=(b"mislabeled leaf",))
    inner = p.manifest({"schemaVersion": 2, "mediaType": oci.OCI_INDEX, "manifests": [{**leaf, "platform": AMD}]})
    entry = {**inner, "mediaType": "application/octet-stream"}
    p.manifest({"schemaVersion": 2, "mediaType": oci.OCI_INDEX, "manifests": [entry]}, "v7")
    refused = requests.delete(f"http://{front}/v2/alice/mislabeled/manifests/{leaf['digest']}", headers=p.headers)
    assert refused.status_code == 403 and "tag v7 is immutable" in refused.json()["errors"][0]["message"]
    assert _exists("alice/mislabeled", leaf["digest"])


def test_a_delete_the_registry_reports_done_no_longer_holds_back_an_immutable_push(registry, live_server, alice):
    """helper-13: pushing an immutable tag onto content that was deleted a moment before and
    pushed again was refused as racing the delete for the mark's whole 10 s. The registry's
    delete notification ends the mark."""
    p = _direct(live_server, registry, "alice/again")
    image = oci.image(p, layers=(b"again",), tag="m1")
    body = json.loads(p.pull(image["digest"]))
    decide = _front_decider(alice, "alice/again")

    assert decide("DELETE", image["digest"]) is None
    get_client().delete_manifest("alice/again", image["digest"])
    registry.drain_notifications()  # the registry's "delete" event reaches the portal
    p.manifest(body)  # the same content, pushed again by digest
    assert decide("PUT", "v1") is None


# --- long runs ---------------------------------------------------------------------------------


def test_one_applied_retention_run_of_a_namespace_at_a_time(registry, live_server, alice):
    """helper-13: a long run answered 504 at the front after a minute and went on; asking again
    started a second run on top of the first. A run under way refuses another (409; the
    settings page says so), and previews still answer."""
    from django.core.cache import cache

    p = _direct(live_server, registry, "alice/once")
    client = _older_and_newer(p, registry, alice)
    key = f"retention-run:{alice.namespace.pk}"
    assert cache.add(key, 1, timeout=60)  # a run is under way (another process)
    busy = client.post("/api/v1/namespaces/alice/retention-runs/", {"dry_run": False}, format="json")
    assert busy.status_code == 409 and "a retention run of alice is under way" in busy.json()["detail"]
    page = client.post("/settings/policies/retention/run/", {"apply": "yes"}, follow=True)
    assert b"a retention run of alice is under way" in page.content
    assert _run(client, dry_run=True)["tags"] == ["once:t1"]
    assert _exists("alice/once", "t1")
    cache.delete(key)  # it finished
    assert _run(client, dry_run=False)["tags"] == ["once:t1"]
    assert cache.get(key) is None  # and a run lets go when it is done


def test_an_applied_run_can_go_on_in_the_background(registry, live_server, alice, celery_worker):
    p = _direct(live_server, registry, "alice/later")
    client = _older_and_newer(p, registry, alice)
    started = client.post("/api/v1/namespaces/alice/retention-runs/", {"dry_run": False, "wait": False}, format="json")
    assert started.status_code == 202 and started.json()["status"] == "started", started.content
    from tests.services import wait_until

    def applied():
        runs = client.get("/api/v1/namespaces/alice/retention-runs/").json()
        return next((run for run in runs if not run["dry_run"]), None)

    run = wait_until(applied, timeout=60, what="the background run to be listed")
    assert run["tags"] == ["later:t1"] and run["requested_by"] == "alice", run
    assert not _exists("alice/later", "t1") and _exists("alice/later", "t2")


def test_the_front_gives_retention_runs_a_long_timeout_on_every_path_that_starts_one():
    """nginx's one-minute answer timeout, raised for the three paths that apply a run (the API,
    an organization's settings, your own): the location's pattern must keep matching them."""
    import re
    from pathlib import Path

    from django.urls import reverse

    template = (Path(__file__).resolve().parent.parent / "deploy/nginx/default.conf.template").read_text()
    pattern = re.search(r"location ~ (\^/\(api/v1/namespaces/.*retention.*\)\$) \{\n(?P<body>[^}]*)\}", template)
    assert pattern is not None and "proxy_read_timeout 900s;" in pattern.group("body")
    paths = [
        reverse("api-retention-runs", kwargs={"namespace": "acme"}),
        reverse("org-retention-run", kwargs={"name": "acme"}),
        reverse("account-policies-retention-run"),
    ]
    assert all(re.match(pattern.group(1), path) for path in paths), paths
    assert not re.match(pattern.group(1), reverse("api-retention-rules", kwargs={"namespace": "acme"}))


# --- the portal does not forget what the registry still holds ----------------------------------


def test_a_tag_delete_does_not_make_the_portal_forget_untagged_manifests(registry, live_server, alice):
    """helper-14: after any tag delete in a repository the portal dropped every manifest no tag
    pointed at, though the registry kept them: an `untagged` rule never found them again, and
    they left the storage count (a repository admin over the quota deleted a tag, came back
    under it, and pushed again)."""
    from repositories import storage

    p = _direct(live_server, registry, "alice/keeps-untagged")
    for name in ("a", "b"):
        oci.image(p, layers=(f"tagged {name}".encode(),), tag=name)
    loose = oci.image(p, layers=(b"untagged and large" * 2000,))
    platform = oci.image(p, layers=(b"a platform",))
    oci.index(p, [(platform, AMD)], "idx")
    process_events(registry)
    client = _owner(alice)
    _rule(client, untagged=True)
    storage.refresh(alice.namespace)
    used = client.get("/api/v1/namespaces/alice/storage/").json()["used_bytes"]
    assert _run(client, dry_run=True)["digests"] == [f"keeps-untagged@{loose['digest']}"]
    assert client.delete("/api/v1/repositories/alice/keeps-untagged/tags/b/").status_code == 200
    assert _run(client, dry_run=True)["digests"] == [f"keeps-untagged@{loose['digest']}"]
    storage.refresh(alice.namespace)
    after = client.get("/api/v1/namespaces/alice/storage/").json()["used_bytes"]
    assert used - after < len(b"untagged and large" * 2000), (used, after)  # only b's own blobs went
    # The index goes; its platform manifest stays in the registry, untagged: the rule finds it.
    assert client.delete("/api/v1/repositories/alice/keeps-untagged/tags/idx/").status_code == 200
    process_events(registry)
    expected = sorted(f"keeps-untagged@{d}" for d in (loose["digest"], platform["digest"]))
    assert _run(client, dry_run=True)["digests"] == expected
    assert _run(client, dry_run=False)["digests"] == expected
    assert not _exists("alice/keeps-untagged", loose["digest"]) and not _exists(
        "alice/keeps-untagged", platform["digest"]
    )
    assert _exists("alice/keeps-untagged", "a")


def test_an_accessory_that_is_immutable_or_listed_by_a_kept_index_stays_and_the_preview_says_so(
    registry, live_server, alice
):
    """helper-14: a removed image's attestation that a kept index lists was in the preview and
    then kept by the run (UsedByIndex); an immutable signature tag stayed without a word."""
    p = _direct(live_server, registry, "alice/app")
    key = oci.new_key("ecdsa")
    attested = oci.image(p, layers=(b"attested",), tag="pr-1")
    signed = oci.image(p, layers=(b"signed",), tag="pr-2")
    process_events(registry)
    signature = oci.signature_manifest(p, [oci.cosign_signature(key, f"{registry.host}/alice/app", attested["digest"])])
    listed = p.manifest(signature, oci.cosign_tag(attested["digest"], "att"))
    oci.index(p, [(listed, AMD)], "bundle")
    other = oci.signature_manifest(p, [oci.cosign_signature(key, f"{registry.host}/alice/app", signed["digest"])])
    immutable_sig = oci.cosign_tag(signed["digest"], "sig")
    p.manifest(other, immutable_sig)
    process_events(registry)
    client = _owner(alice)
    _immutable(client, "sha256-*.sig")
    _rule(client, tag_pattern="pr-*", keep_most_recent=0)
    preview = _run(client, dry_run=True)
    assert preview["tags"] == ["app:pr-1", "app:pr-2"], preview
    assert any(
        f"{oci.cosign_tag(attested['digest'], 'att')} stays: an index that stays lists it" in line
        for line in preview["skipped"]
    )
    assert any(f"{immutable_sig} stays: immutable" in line for line in preview["skipped"]), preview
    done = _run(client, dry_run=False)
    assert (done["tags"], done["digests"], done["bytes"], done["skipped"]) == (
        preview["tags"],
        preview["digests"],
        preview["bytes"],
        preview["skipped"],
    )
    assert _pull_all(p, "bundle") == [] and _exists("alice/app", immutable_sig)


def test_a_background_run_is_refused_as_a_waiting_one_is(registry, live_server, alice):
    """helper-14: {"wait": false} answered 202 while a run was under way and during a GC hold;
    the worker then dropped it without a word. Now the same 409 and 503 as a waiting run."""
    from django.core.cache import cache

    from repositories import gc
    from repositories.models import GcRun

    client = _older_and_newer(_direct(live_server, registry, "alice/refused"), registry, alice)
    body = {"dry_run": False, "wait": False}
    key = f"retention-run:{alice.namespace.pk}"
    assert cache.add(key, 1, timeout=60)
    busy = client.post("/api/v1/namespaces/alice/retention-runs/", body, format="json")
    assert busy.status_code == 409 and "under way" in busy.json()["detail"]
    cache.delete(key)
    run = gc.start(actor_name="test")
    try:
        held = client.post("/api/v1/namespaces/alice/retention-runs/", body, format="json")
        assert held.status_code == 503 and "registry maintenance" in held.json()["detail"]
    finally:
        GcRun.objects.filter(pk=run.pk).update(status=GcRun.Status.OK)
