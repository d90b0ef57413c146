"""What a black-box review of issue 16 tried against the front door and the policies (helper
report, kept as regression tests): path tricks over an immutable tag, deleting a platform
manifest or a blob of an immutable image, a delete by digest before the portal heard of the tag,
retention racing pushes the portal has not seen, out-of-range values, GC and indexes."""

from __future__ import annotations

import http.client
import json
import time

import pytest
import requests
from rest_framework.test import APIClient

from repositories.models import Tag
from repositories.registry import get_client
from tests import oci_push as oci
from tests.conftest import PASSWORD
from tests.helpers import process_events
from tests.test_front import pushed, registry_token

pytestmark = [pytest.mark.registry]


def raw(host, method, path, body=b"", headers=None, version11=True):
    h, p = host.split(":")
    conn = http.client.HTTPConnection(h, int(p), timeout=20)
    if not version11:
        conn._http_vsn = 10
        conn._http_vsn_str = "HTTP/1.0"
    conn.putrequest(method, path, skip_accept_encoding=True)
    for k, v in (headers or {}).items():
        conn.putheader(k, v)
    conn.putheader("Content-Length", str(len(body)))
    conn.endheaders(body)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, dict(r.getheaders()), data


def test_probe_immutable_paths(front, registry, live_server, alice, tmp_path):
    client = APIClient()
    client.force_login(alice)
    assert client.post("/api/v1/namespaces/alice/immutable-tags/", {"pattern": "v*"}, format="json").status_code == 201
    first, result = pushed(tmp_path, front, "alice/probe:v1.0", "first")
    assert result.returncode == 0, result.stderr
    process_events(registry)
    pusher = oci.Pusher.login(
        portal_url=live_server.url,
        registry_url=f"http://{front}",
        repository="alice/probe",
        username="alice",
        password=PASSWORD,
    )
    oci.image(pusher, layers=(b"other",), tag="other")
    body = pusher.pull("other")
    token = pusher.token
    hdr = {"Authorization": f"Bearer {token}", "Content-Type": oci.OCI_MANIFEST}
    results = {}
    for path in [
        "/v2/alice/probe/manifests/%76%31.0",
        "/v2/alice/probe/manifests/v1.0/",
        "/v2/alice//probe/manifests/v1.0",
        "//v2/alice/probe/manifests/v1.0",
        "/v2/alice/./probe/manifests/v1.0",
        "/v2/alice/x/../probe/manifests/v1.0",
        "/v2/alice/probe/manifests/v1.0?x=1",
        "/v2/alice%2Fprobe/manifests/v1.0",
        "/v2/alice/probe/manifests/v1.0%3F",
        "/v2/alice/probe/manifests/v1.0;x",
        "/v2/alice/probe/manifests/v1.0%20",
        "/v2/alice/probe/%6danifests/v1.0",
        "/v2/alice/probe/manifests//v1.0",
        "/v2/alice/probe/manifests/./v1.0",
        "/v2/alice/probe/manifests/x/../v1.0",
        "/v2/alice/probe/manifests/v1.0%00",
        "/v2/alice/probe/manifests/v1.0%2f",
    ]:
        st, h, data = raw(front, "PUT", path, body, hdr)
        now = get_client().head_manifest("alice/probe", "v1.0").digest
        results[path] = (st, h.get("Location"), data[:150], now != first.top.digest)
    st, h, data = raw(front, "PUT", "/v2/alice/probe/manifests/v1.0", body, hdr, version11=False)
    results["HTTP/1.0"] = (
        st,
        None,
        data[:150],
        get_client().head_manifest("alice/probe", "v1.0").digest != first.top.digest,
    )
    assert not any(v[3] for v in results.values()), results


def _pusher(live_server, host, repo):
    p = oci.Pusher.login(
        portal_url=live_server.url, registry_url=f"http://{host}", repository=repo, username="alice", password=PASSWORD
    )
    p.token = registry_token(live_server, f"repository:{repo}:pull,push,delete")
    return p


def _pull_all(pusher, ref):
    """Pull a manifest and, for an index, every child and every blob; return failures."""
    bad = []
    doc = json.loads(pusher.pull(ref))
    children = [m["digest"] for m in doc.get("manifests", [])] or [ref]
    for child in children:
        r = requests.get(
            f"{pusher.registry_url}/v2/{pusher.repository}/manifests/{child}",
            headers={**pusher.headers, "Accept": f"{oci.OCI_INDEX}, {oci.OCI_MANIFEST}"},
        )
        if r.status_code != 200:
            bad.append((child, r.status_code))
            continue
        m = r.json()
        for blob in [m["config"], *m["layers"]]:
            b = requests.get(
                f"{pusher.registry_url}/v2/{pusher.repository}/blobs/{blob['digest']}", headers=pusher.headers
            )
            if b.status_code != 200:
                bad.append((blob["digest"], b.status_code))
    return bad


def test_immutable_index_child_can_be_deleted_through_front(front, registry, live_server, alice):
    client = APIClient()
    client.force_login(alice)
    assert client.post("/api/v1/namespaces/alice/immutable-tags/", {"pattern": "v*"}, format="json").status_code == 201
    p = _pusher(live_server, front, "alice/multi-front")
    amd = oci.image(p, arch="amd64", layers=(b"amd layer",))
    arm = oci.image(p, arch="arm64", layers=(b"arm layer",))
    oci.index(
        p, [(amd, {"os": "linux", "architecture": "amd64"}), (arm, {"os": "linux", "architecture": "arm64"})], "v1.0"
    )
    process_events(registry)
    assert _pull_all(p, "v1.0") == []
    r = requests.delete(f"http://{front}/v2/alice/multi-front/manifests/{arm['digest']}", headers=p.headers)
    assert r.status_code == 403, "deleting a platform manifest of an immutable index went through"
    assert "tag v1.0 is immutable" in r.json()["errors"][0]["message"]
    assert _pull_all(p, "v1.0") == []
    # The portal's own delete of a tag on that platform manifest is refused too.
    p.manifest(json.loads(p.pull(arm["digest"])), "arm-only")
    process_events(registry)
    refused = client.delete("/api/v1/repositories/alice/multi-front/tags/arm-only/?confirm=true")
    assert refused.status_code == 403 and "immutable" in refused.json()["detail"]


def test_immutable_image_blob_can_be_deleted_through_front(front, registry, live_server, alice):
    client = APIClient()
    client.force_login(alice)
    assert client.post("/api/v1/namespaces/alice/immutable-tags/", {"pattern": "v*"}, format="json").status_code == 201
    p = _pusher(live_server, front, "alice/blobby")
    oci.image(p, layers=(b"precious layer",), tag="v1.0")
    process_events(registry)
    layer = json.loads(p.pull("v1.0"))["layers"][0]["digest"]
    r = requests.delete(f"http://{front}/v2/alice/blobby/blobs/{layer}", headers=p.headers)
    assert r.status_code == 403 and r.json()["errors"][0]["code"] == "DENIED"
    assert "garbage collection" in r.json()["errors"][0]["message"]
    assert _pull_all(p, "v1.0") == [], "immutable image no longer pulls"


def test_delete_by_digest_before_event_processed(front, registry, live_server, alice):
    client = APIClient()
    client.force_login(alice)
    assert client.post("/api/v1/namespaces/alice/immutable-tags/", {"pattern": "v*"}, format="json").status_code == 201
    p = _pusher(live_server, front, "alice/fresh")
    img = oci.image(p, layers=(b"fresh layer",), tag="v1.0")
    # no process_events: the portal has not heard of v1.0 yet
    assert not Tag.objects.filter(repository__name="fresh").exists()
    r = requests.delete(f"http://{front}/v2/alice/fresh/manifests/{img['digest']}", headers=p.headers)
    assert r.status_code == 403, "an immutable tag's digest was deleted before the portal heard of it"


@pytest.mark.parametrize(
    "body",
    [
        {"keep_pushed_within_days": 10**6},
        {"keep_pulled_within_days": 10**6},
        {"keep_pushed_within_days": 10**12},
        {"keep_most_recent": 2**63},
    ],
)
def test_retention_large_values(registry, live_server, alice, body):
    p = oci.Pusher.login(
        portal_url=live_server.url, registry_url=registry.url, repository="alice/r", username="alice", password=PASSWORD
    )
    oci.image(p, layers=(b"x",), tag="1.0")
    process_events(registry)
    client = APIClient()
    client.force_login(alice)
    made = client.post("/api/v1/namespaces/alice/retention-rules/", {"tag_pattern": "*", **body}, format="json")
    assert made.status_code == 400, made.content  # a clear refusal, not a rule that breaks every run
    run = client.post("/api/v1/namespaces/alice/retention-runs/", {"dry_run": True}, format="json")
    assert run.status_code == 200


def test_quota_huge(db, alice):
    client = APIClient()
    client.force_login(alice)
    r = client.put("/api/v1/namespaces/alice/storage/", {"quota_bytes": 2**70}, format="json")
    assert r.status_code == 400 and "quota_bytes" in r.json()


def test_untagged_retention_deletes_children_of_index_not_yet_synced(registry, live_server, alice):
    p = oci.Pusher.login(
        portal_url=live_server.url,
        registry_url=registry.url,
        repository="alice/multi-retained",
        username="alice",
        password=PASSWORD,
    )
    amd = oci.image(p, arch="amd64", layers=(b"amd layer",))
    arm = oci.image(p, arch="arm64", layers=(b"arm layer",))
    process_events(registry)  # buildx pushes the platform manifests first, by digest
    client = APIClient()
    client.force_login(alice)
    assert (
        client.post(
            "/api/v1/namespaces/alice/retention-rules/",
            {"tag_pattern": "pr-*", "keep_most_recent": 5, "untagged": True},
            format="json",
        ).status_code
        == 201
    )
    oci.index(
        p, [(amd, {"os": "linux", "architecture": "amd64"}), (arm, {"os": "linux", "architecture": "arm64"})], "1.0"
    )
    # the index's push event is on its way when the daily retention runs
    run = client.post("/api/v1/namespaces/alice/retention-runs/", {"dry_run": False}, format="json").json()
    assert run["digests"] == [] and any("tagged in the registry now (1.0)" in line for line in run["skipped"]), run
    process_events(registry)
    assert _pull_all(p, "1.0") == [], "retention deleted the platform manifests of a tagged index"


def test_untagged_retention_deletes_a_digest_just_tagged(registry, live_server, alice):
    p = oci.Pusher.login(
        portal_url=live_server.url,
        registry_url=registry.url,
        repository="alice/late-tagged",
        username="alice",
        password=PASSWORD,
    )
    img = oci.image(p, layers=(b"late layer",))
    process_events(registry)
    client = APIClient()
    client.force_login(alice)
    assert client.post("/api/v1/namespaces/alice/immutable-tags/", {"pattern": "v*"}, format="json").status_code == 201
    assert (
        client.post(
            "/api/v1/namespaces/alice/retention-rules/", {"tag_pattern": "pr-*", "untagged": True}, format="json"
        ).status_code
        == 201
    )
    p.manifest(json.loads(p.pull(img["digest"])), "v1.0")  # now tagged, immutable; event on its way
    run = client.post("/api/v1/namespaces/alice/retention-runs/", {"dry_run": False}, format="json").json()
    assert run["digests"] == [], run
    assert get_client().head_manifest("alice/late-tagged", "v1.0").digest == img["digest"]


def test_gc_keeps_index_children(registry, live_server, alice, settings, tmp_path):
    from repositories import gc

    settings.REGISTRY_CONFIG_FILE = registry.config_path
    settings.REGISTRY_STORAGE_DIR = registry.storage
    p = oci.Pusher.login(
        portal_url=live_server.url,
        registry_url=registry.url,
        repository="alice/gcidx",
        username="alice",
        password=PASSWORD,
    )
    amd = oci.image(p, arch="amd64", layers=(b"amd gc layer",))
    arm = oci.image(p, arch="arm64", layers=(b"arm gc layer",))
    oci.index(
        p, [(amd, {"os": "linux", "architecture": "amd64"}), (arm, {"os": "linux", "architecture": "arm64"})], "1.0"
    )
    process_events(registry)
    run = gc.collect(gc.start(actor_name="t"), hold_seconds=0)
    assert run.status == "ok", run.output
    assert _pull_all(p, "1.0") == []
    from tests import services

    for arch in ("amd64", "arm64"):
        out = services.skopeo(
            "copy",
            "--src-tls-verify=false",
            "--override-arch",
            arch,
            "--src-creds",
            f"alice:{PASSWORD}",
            f"docker://{registry.host}/alice/gcidx:1.0",
            f"dir:{tmp_path / arch}",
        )
        assert out.returncode == 0, out.stderr


@pytest.mark.parametrize(
    "uri",
    ["/v2/%ff%fe/manifests/v1", "/v2/a/manifests/%ZZ", "http://[::1/v2/a/b/manifests/v1", "/v2//manifests/x", "\x00"],
)
def test_front_check_malformed(db, alice, client, uri):
    r = client.get("/-/front/check", HTTP_X_ORIGINAL_METHOD="PUT", HTTP_X_ORIGINAL_URI=uri)
    assert r.status_code == 204  # nothing a policy covers: the registry answers it


def test_a_front_decision_reads_nothing_in_the_common_case(db, alice, django_assert_num_queries):
    """A manifest PUT or an upload start in a namespace with no rule and no quota: once the
    namespace's state is known (cached for a second per process), a decision reads nothing."""
    from repositories import policies

    policies.FRONT_STATE.forget()
    put = policies.FrontRequest("PUT", "/v2/alice/app/manifests/1.0", "")
    upload = policies.FrontRequest("POST", "/v2/alice/app/blobs/uploads/", "")
    assert policies.front_decision(put) is None  # reads the hold, the rules and the quota
    with django_assert_num_queries(0):
        for _ in range(10):
            assert policies.front_decision(put) is None
            assert policies.front_decision(upload) is None


def test_front_state_is_read_again_in_the_background_and_never_older_than_its_limit(
    transactional_db, alice, django_assert_num_queries
):
    """Another process's change (here a write that does not tell this process: no forget) is
    seen within TTL + STALE_LIMIT, and a busy front's checks do not read the database for it:
    the background thread does."""
    from repositories import policies
    from repositories.models import ImmutableTagRule
    from tests import services

    state = policies.FrontState()
    state.TTL = 0.05
    assert state.namespace("alice").rules == ()  # the first check reads it
    ImmutableTagRule.objects.create(namespace=alice.namespace, tag_pattern="v*")
    with django_assert_num_queries(0):  # the checks' own thread reads nothing: kept warm
        services.wait_until(lambda: state.namespace("alice").rules, timeout=10, what="the rule, read behind")
    # Not asked for a while (KEEP_WARM): an entry past TTL is answered from memory, once, and read behind.
    state.KEEP_WARM = 0.0
    ImmutableTagRule.objects.all().delete()
    services.wait_until(lambda: state._namespaces["alice"][0] < time.monotonic(), timeout=5, what="the entry old")
    with django_assert_num_queries(0):
        assert state.namespace("alice").rules == (policies.Rule("*", "v*"),)  # from memory
        services.wait_until(lambda: not state.namespace("alice").rules, timeout=10, what="the delete, read behind")
    # Past TTL + STALE_LIMIT (an idle front): the check reads it itself.
    state.STALE_LIMIT = 0.0
    ImmutableTagRule.objects.create(namespace=alice.namespace, tag_pattern="release-*")
    services.wait_until(lambda: state._namespaces["alice"][0] < time.monotonic(), timeout=5, what="the entry old")
    with django_assert_num_queries(2):  # the rules, the quota
        assert state.namespace("alice").rules == (policies.Rule("*", "release-*"),)
    # Nothing warm: the thread lets its database connection go.
    state.forget()
    services.wait_until(lambda: not state.connected, timeout=10, what="the thread's connection closed")


def test_only_an_upload_start_that_holds_for_everyone_may_be_kept_by_nginx(db, alice, client, live_server):
    """X-Accel-Expires tells nginx's proxy_cache how long it may keep an answer: an upload start
    into a namespace under its quota, no hold (1 s); never a manifest check, never a refusal,
    never an answer that depended on the caller's token."""
    from repositories import policies, storage
    from repositories.models import NamespaceStorage

    def check(method, uri, token=""):
        policies.FRONT_STATE.forget()
        headers = {"HTTP_X_ORIGINAL_METHOD": method, "HTTP_X_ORIGINAL_URI": uri}
        if token:
            headers["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        return client.get("/-/front/check", **headers)

    upload = check("POST", "/v2/alice/app/blobs/uploads/")
    assert upload.status_code == 204 and upload["X-Accel-Expires"] == "1"
    mount = check("POST", "/v2/alice/app/blobs/uploads/?mount=sha256:" + "a" * 64 + "&from=bob/x")
    assert mount.status_code == 204 and mount["X-Accel-Expires"] == "1"
    manifest = check("PUT", "/v2/alice/app/manifests/1.0")
    assert manifest.status_code == 204 and manifest["X-Accel-Expires"] == "0"
    assert check("POST", "/v2//blobs/uploads/")["X-Accel-Expires"] == "0"
    # Over its quota: a caller without push is let through (the registry refuses it), but that
    # answer is that caller's only; a pusher is refused, and that is not kept either.
    storage.quota_set(namespace=alice.namespace, quota_bytes=10, actor=alice)
    NamespaceStorage.objects.filter(namespace=alice.namespace).update(used_bytes=11)
    anonymous = check("POST", "/v2/alice/app/blobs/uploads/")
    assert anonymous.status_code == 204 and anonymous["X-Accel-Expires"] == "0"
    token = registry_token(live_server, "repository:alice/app:pull,push")
    refused = check("POST", "/v2/alice/app/blobs/uploads/", token)
    assert refused.status_code == 403 and "quota" in refused["X-Dockyard-Denied"]
    assert refused.get("X-Accel-Expires") in (None, "0")


def test_names_nobody_has_are_not_kept_warm_and_a_fork_starts_afresh(transactional_db, alice):
    """The front's checks read a namespace by the name in the request, before any token: names
    that exist nowhere are answered but not read again in the background, and the warm set is
    capped. A forked child (gunicorn's workers) has its own lock and thread."""
    from repositories import policies
    from tests import services

    state = policies.FrontState()
    state.TTL = 0.05
    for i in range(5):
        assert state.namespace(f"nobody-{i}").exists is False
    assert state.namespace("alice").exists is True
    services.wait_until(lambda: set(state._used) == {"alice"}, timeout=10, what="only existing namespaces kept warm")
    state.forget()  # (this "fork" keeps the parent's thread running: let it close its connection)
    services.wait_until(lambda: not state.connected, timeout=10, what="the thread's connection closed")
    lock, thread = state._lock, state._thread
    state._after_fork()
    assert state._lock is not lock and state._thread is None and state._used == {}
    state.namespace("alice")
    assert state._thread is not None and state._thread is not thread
    state.forget()
    services.wait_until(lambda: not state.connected, timeout=10, what="the thread's connection closed")


def test_the_first_push_of_a_new_immutable_tag_holds_it_briefly(db, alice):
    """Two checks for the same new immutable tag before either push is stored: the first is let
    through and holds the tag for a few seconds; the second is refused, saying why."""
    from repositories import policies
    from repositories.registry import get_issuer

    policies.immutable_rule_create(namespace=alice.namespace, tag_pattern="v*", actor=alice)
    policies.FRONT_STATE.forget()
    grants = [{"type": "repository", "name": "alice/race", "actions": ["pull", "push"]}]
    token = get_issuer().issue("alice", grants).token
    put = policies.FrontRequest("PUT", "/v2/alice/race/manifests/v9", token)
    assert policies.front_decision(put, registry_has_tag=lambda *_: False) is None
    second = policies.front_decision(put, registry_has_tag=lambda *_: False)
    assert second is not None and "immutable (rule v*)" in second and "under way" in second
    other = policies.FrontRequest("PUT", "/v2/alice/race/manifests/v10", token)
    assert policies.front_decision(other, registry_has_tag=lambda *_: False) is None  # per tag
    mutable = policies.FrontRequest("PUT", "/v2/alice/race/manifests/latest", token)
    for _ in range(2):
        assert policies.front_decision(mutable, registry_has_tag=lambda *_: False) is None  # no rule: no hold


def test_two_first_pushes_of_one_immutable_tag_through_the_front_one_wins(front, registry, live_server, alice):
    import threading

    client = APIClient()
    client.force_login(alice)
    assert client.post("/api/v1/namespaces/alice/immutable-tags/", {"pattern": "v*"}, format="json").status_code == 201
    pusher = _pusher(live_server, front, "alice/race")
    bodies = [pusher.pull(oci.image(pusher, layers=(content,))["digest"]) for content in (b"first", b"second")]
    barrier = threading.Barrier(2)
    answers: list[int] = []

    def put(body: bytes) -> None:
        barrier.wait()
        answers.append(
            requests.put(
                f"http://{front}/v2/alice/race/manifests/v9",
                data=body,
                headers={**pusher.headers, "Content-Type": oci.OCI_MANIFEST},
                timeout=30,
            ).status_code
        )

    threads = [threading.Thread(target=put, args=(body,)) for body in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(answers) == [201, 403]  # never both: the tag has one content, the first push's


def test_a_token_for_every_action_meets_the_same_rules_at_the_front(front, registry, live_server, alice):
    """A registry token asked for with the `*` action (what `skopeo delete` asks for; the owner
    gets it) allows every action at the registry, so the front's rules hold for it as for
    push and delete: found by a README-only newcomer (helper-12), who deleted immutable tags,
    pushed over one and started an upload over quota with such a token."""
    client = APIClient()
    client.force_login(alice)
    assert client.post("/api/v1/namespaces/alice/immutable-tags/", {"pattern": "v*"}, format="json").status_code == 201
    p = _pusher(live_server, front, "alice/starred")
    img = oci.image(p, layers=(b"kept layer",), tag="v1.0")
    process_events(registry)
    star = {"Authorization": "Bearer " + registry_token(live_server, "repository:alice/starred:*")}
    deleted = requests.delete(f"http://{front}/v2/alice/starred/manifests/{img['digest']}", headers=star)
    assert deleted.status_code == 403 and "tag v1.0 is immutable (rule v*)" in deleted.json()["errors"][0]["message"]
    by_tag = requests.delete(f"http://{front}/v2/alice/starred/manifests/v1.0", headers=star)
    assert by_tag.status_code == 403
    manifest = p.pull("v1.0")
    pushed_again = requests.put(
        f"http://{front}/v2/alice/starred/manifests/v1.0",
        data=manifest,
        headers={**star, "Content-Type": oci.OCI_MANIFEST},
    )
    assert pushed_again.status_code == 403 and "immutable" in pushed_again.json()["errors"][0]["message"]
    from accounts.models import Namespace
    from repositories import storage

    storage.refresh(Namespace.objects.get(name="alice"))
    over = client.put("/api/v1/namespaces/alice/storage/", {"quota_bytes": 1}, format="json")
    assert over.status_code == 200 and over.json()["over_quota"]
    # (another repository: nginx may keep the push's own upload starts' allow for a second)
    star = {"Authorization": "Bearer " + registry_token(live_server, "repository:alice/starred-too:*")}
    started = requests.post(f"http://{front}/v2/alice/starred-too/blobs/uploads/", headers=star)
    assert started.status_code == 403 and "quota" in started.json()["errors"][0]["message"]
    assert _pull_all(p, "v1.0") == []
