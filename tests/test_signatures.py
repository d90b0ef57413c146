"""Every image fully described (issue 15), on the real registry: images, cosign signatures,
attestations, SBOMs and OCI 1.1 referrers pushed over the registry's HTTP API exactly as the
tools push them, the registry's own notifications processed by the sync, and the answers read
through the API and the pages.

Signatures are checked, not detected: a signature counts only if its payload names the image's
digest and it verifies with a key the namespace trusts."""

from __future__ import annotations

import json
from pathlib import Path

import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from rest_framework.test import APIClient

from accounts.models import User
from repositories import signing, sync
from repositories.models import Manifest, RegistryEvent, Tag
from tests import oci_push as oci
from tests.conftest import PASSWORD
from tests.helpers import process_events
from webhooks.models import Delivery
from webhooks.services import webhook_create

DATA = Path(__file__).parent / "data" / "cosign"


def login(registry, live_server, repository: str) -> oci.Pusher:
    """A pusher for `repository` of alice's. Each test pushes to its own repository: the
    registry (and its storage) lives for the whole session."""
    return oci.Pusher.login(
        portal_url=live_server.url,
        registry_url=registry.url,
        repository=repository,
        username="alice",
        password=PASSWORD,
    )


def api(user: User | None = None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_login(user)
    return client


def tag_api(client: APIClient, tag: str, repository: str) -> dict:
    response = client.get(f"/api/v1/repositories/{repository}/tags/{tag}/")
    assert response.status_code == 200, response.content
    return response.json()


# --- the tag page's data ---------------------------------------------------------------------

HISTORY = [
    {"created": "2026-10-01T12:00:00Z", "created_by": "ENV API_TOKEN=hunter2", "empty_layer": True},
    {"created": "2026-10-01T12:00:00Z", "created_by": "ADD alpine-minirootfs.tar.gz /"},
    {"created": "2026-10-01T12:00:00Z", "created_by": "RUN apk add --no-cache curl"},
]
CONFIG = {
    "Env": ["PATH=/usr/local/bin:/usr/bin", "API_TOKEN=hunter2"],
    "Entrypoint": ["/usr/bin/app"],
    "Cmd": ["serve", "--port", "8080"],
    "ExposedPorts": {"8080/tcp": {}},
    "Labels": {"org.opencontainers.image.source": "https://git.example.org/alice/app"},
}


def test_an_index_is_described_platform_by_platform(registry, live_server, alice):
    pusher = login(registry, live_server, "alice/described")
    amd = oci.image(pusher, arch="amd64", layers=(b"amd-root", b"amd-curl"), history=HISTORY, config=CONFIG)
    arm = oci.image(
        pusher, arch="arm64", variant="v8", layers=(b"arm-root" * 10, b"arm-curl"), history=HISTORY, config=CONFIG
    )
    top = oci.index(
        pusher,
        [
            (amd, {"os": "linux", "architecture": "amd64"}),
            (arm, {"os": "linux", "architecture": "arm64", "variant": "v8"}),
        ],
        "1.0",
    )
    pusher.manifest(json.loads(pusher.pull("1.0")), "latest")
    oci.image(pusher, arch="amd64", layers=(b"only-amd",), tag="amd-only")
    process_events(registry)
    pusher.pull(top["digest"])  # a pull, recorded as the tag's last pull
    process_events(registry)

    data = tag_api(api(alice), "1.0", pusher.repository)
    assert data["digest"] == top["digest"] and data["media_type"] == oci.OCI_INDEX
    assert data["tags_sharing_digest"] == ["latest"]
    assert data["pushed_by"] == "alice" and data["last_pulled_at"] is not None
    assert data["pull_commands"]["tag"] == f"docker pull {registry.host}/alice/described:1.0"
    assert data["pull_commands"]["digest"] == f"docker pull {registry.host}/alice/described@{top['digest']}"
    by_platform = {(p["os"], p["architecture"], p["variant"]): p for p in data["platforms"]}
    assert set(by_platform) == {("linux", "amd64", ""), ("linux", "arm64", "v8")}
    arm_data = by_platform[("linux", "arm64", "v8")]
    assert arm_data["digest"] == arm["digest"]
    arm_manifest = json.loads(pusher.pull(arm["digest"]))
    assert arm_data["size"] == arm_manifest["config"]["size"] + sum(layer["size"] for layer in arm_manifest["layers"])
    assert arm_data["created"].startswith("2026-10-01T12:00:00")
    # The history's empty layers are skipped: each layer gets the line that made it.
    assert [(layer["size"], layer["created_by"]) for layer in arm_data["layers"]] == [
        (80, "ADD alpine-minirootfs.tar.gz /"),
        (8, "RUN apk add --no-cache curl"),
    ]
    assert arm_data["entrypoint"] == ["/usr/bin/app"] and arm_data["cmd"] == ["serve", "--port", "8080"]
    assert arm_data["exposed_ports"] == ["8080/tcp"]
    assert arm_data["labels"] == CONFIG["Labels"]
    assert arm_data["env_names"] == ["PATH", "API_TOKEN"]
    assert data["signature"] == {"status": "unsigned", "key": None}

    # Environment values may be secrets: neither the API nor the page shows them.
    client = api(alice)
    page = client.get("/r/alice/described/-/tags/1.0/").content.decode()
    assert "hunter2" not in page and "hunter2" not in json.dumps(data).replace("ENV API_TOKEN=hunter2", "")
    for text in ["linux/arm64/v8", "RUN apk add --no-cache curl", "API_TOKEN", "8080/tcp", f"@{top['digest']}"]:
        assert text in page, text
    # The old address of a tag page leads to it.
    assert client.get("/r/alice/described/tags/1.0/").headers["Location"] == "/r/alice/described/-/tags/1.0/"

    # The tag list: a row per platform and a platform filter, as Hub's picker.
    rows = client.get("/api/v1/repositories/alice/described/tags/").json()["results"]
    assert {row["name"] for row in rows} == {"1.0", "latest", "amd-only"}
    arm_only = client.get("/api/v1/repositories/alice/described/tags/", {"platform": "linux/arm64/v8"}).json()[
        "results"
    ]
    assert {row["name"] for row in arm_only} == {"1.0", "latest"}
    tags_page = client.get("/r/alice/described/-/tags/").content.decode()
    assert "/r/alice/described/-/tags/1.0/" in tags_page and "linux/arm64/v8" in tags_page


# --- signatures ------------------------------------------------------------------------------


def add_key(client: APIClient, name: str, private_key, namespace: str = "alice") -> dict:
    response = client.post(
        f"/api/v1/namespaces/{namespace}/signing-keys/",
        {"name": name, "public_key": oci.public_pem(private_key)},
        format="json",
    )
    assert response.status_code == 201, response.content
    return response.json()


def sign_tag(pusher: oci.Pusher, registry, digest: str, *signatures: oci.Signature) -> None:
    pusher.manifest(oci.signature_manifest(pusher, list(signatures)), oci.cosign_tag(digest, "sig"))


def test_only_a_trusted_key_verifies(registry, live_server, alice, bob, settings):
    pusher = login(registry, live_server, "alice/keys")
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    keys = {kind: oci.new_key(kind) for kind in ["ecdsa", "ecdsa-p384", "rsa", "ed25519"]}
    reference = f"{registry.host}/alice/keys"
    images = {
        name: oci.image(pusher, layers=(name.encode(),), tag=name)
        for name in [
            "ecdsa",
            "ecdsa-p384",
            "rsa",
            "ed25519",
            "plain",
            "copied",
            "tampered",
            "keyless-tampered",
            "stranger",
        ]
    }
    for kind in keys:
        sign_tag(
            pusher,
            registry,
            images[kind]["digest"],
            oci.cosign_signature(keys[kind], reference, images[kind]["digest"]),
        )
    # A valid signature of another image, copied next to this one: counterfeit.
    sign_tag(
        pusher,
        registry,
        images["copied"]["digest"],
        oci.cosign_signature(keys["ecdsa"], reference, images["ecdsa"]["digest"]),
    )
    # A payload changed after signing (it still names the image).
    original = oci.cosign_signature(keys["ecdsa"], reference, images["tampered"]["digest"])
    changed = original.payload.replace(b"alice/keys", b"alice/keysq")
    sign_tag(pusher, registry, images["tampered"]["digest"], oci.Signature(changed, original.signature))
    # The same with a keyless signature: it fails against the certificate it carries.
    keyless = oci.cosign_signature(keys["ecdsa"], reference, images["keyless-tampered"]["digest"], certificate=True)
    sign_tag(
        pusher,
        registry,
        images["keyless-tampered"]["digest"],
        oci.Signature(keyless.payload.replace(b"alice/keys", b"alice/keysq"), keyless.signature, keyless.certificate),
    )
    # Signed properly, by a key nobody trusts.
    sign_tag(
        pusher,
        registry,
        images["stranger"]["digest"],
        oci.cosign_signature(oci.new_key("ecdsa"), reference, images["stranger"]["digest"]),
    )
    process_events(registry)
    webhook_create(
        actor=alice, name="sigs", url="http://127.0.0.1:9/hook", repository=pusher_repository(), events=["signature"]
    )

    client = api(alice)

    def statuses() -> dict[str, tuple[str, str | None]]:
        return {name: tuple(tag_api(client, name, pusher.repository)["signature"].values()) for name in images}

    nobody_trusted = {name: ("untrusted", None) for name in ["ecdsa", "ecdsa-p384", "rsa", "ed25519", "stranger"]}
    assert statuses() == {
        **nobody_trusted,
        "tampered": ("untrusted", None),
        "plain": ("unsigned", None),
        "copied": ("invalid", None),
        "keyless-tampered": ("invalid", None),
    }

    for kind, key in keys.items():
        assert add_key(client, f"release-{kind}", key)["algorithm"].split()[0] in ("ECDSA", "RSA", "Ed25519")
    verified = {kind: ("verified", f"release-{kind}") for kind in keys}
    assert statuses() == {
        **verified,
        "stranger": ("untrusted", None),
        "tampered": ("untrusted", None),
        "plain": ("unsigned", None),
        "copied": ("invalid", None),
        "keyless-tampered": ("invalid", None),
    }
    # The tag list carries the verdict, and the page says it in words.
    rows = {row["name"]: row for row in client.get("/api/v1/repositories/alice/keys/tags/").json()["results"]}
    assert rows["rsa"]["signature"] == {"status": "verified", "key": "release-rsa"}
    assert "verified by release-rsa" in client.get("/r/alice/keys/-/tags/rsa/").content.decode()
    assert "signature invalid" in client.get("/r/alice/keys/-/tags/copied/").content.decode()
    # Signature tags stay out of ordinary tag lists.
    assert not any(name.startswith("sha256-") for name in rows)

    # Removing a key judges again, and each change of verdict is announced.
    key_id = client.get("/api/v1/namespaces/alice/signing-keys/").json()[0]["id"]
    assert client.delete(f"/api/v1/namespaces/alice/signing-keys/{key_id}/").status_code == 204
    assert tag_api(client, "ecdsa", pusher.repository)["signature"] == {"status": "untrusted", "key": None}
    announced = [d.payload["signature_data"] for d in Delivery.objects.filter(event="signature").order_by("pk")]
    rsa_digest = images["rsa"]["digest"]
    assert {"digest": rsa_digest, "tags": ["rsa"], "status": "verified", "key": "release-rsa"} in announced
    assert announced[-1] == {"digest": images["ecdsa"]["digest"], "tags": ["ecdsa"], "status": "untrusted", "key": None}

    # Keys are checked when added: clear 400s, never a 500.
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    for bad in ["not a key", oci.public_pem(oci.new_key("ecdsa"))[:80], oci.public_pem(weak)]:
        response = client.post(
            "/api/v1/namespaces/alice/signing-keys/", {"name": "bad", "public_key": bad}, format="json"
        )
        assert response.status_code == 400 and "public_key" in response.json(), response.content
    duplicate = client.post(
        "/api/v1/namespaces/alice/signing-keys/",
        {"name": "again", "public_key": oci.public_pem(keys["rsa"])},
        format="json",
    )
    assert duplicate.status_code == 400 and "already trusted, as release-rsa" in duplicate.content.decode()
    # Keys are the namespace's admins' business; the audit log records each change.
    assert api(bob).get("/api/v1/namespaces/alice/signing-keys/").status_code == 403
    from audit.models import AuditEvent

    assert AuditEvent.objects.filter(action="signing_key.add").count() == 4
    assert AuditEvent.objects.filter(action="signing_key.delete").count() == 1


def pusher_repository():
    from repositories.models import Repository

    return Repository.objects.get(namespace__name="alice", name="keys")


def test_a_signature_pushed_before_its_key_or_image_is_judged_when_they_come(registry, live_server, alice):
    """Order does not matter: signature first, then the key, then a second signature by a
    trusted key on a tag that was untrusted."""
    pusher = login(registry, live_server, "alice/late")
    key, other = oci.new_key("ed25519"), oci.new_key("ecdsa")
    reference = f"{registry.host}/alice/late"
    target = oci.image(pusher, layers=(b"late",))  # pushed by digest only: no tag yet
    sign_tag(pusher, registry, target["digest"], oci.cosign_signature(other, reference, target["digest"]))
    process_events(registry)
    add_key(api(alice), "ci", key)
    pusher.manifest(json.loads(pusher.pull(target["digest"])), "v2")
    process_events(registry)
    assert tag_api(api(alice), "v2", pusher.repository)["signature"] == {"status": "untrusted", "key": None}
    # cosign appends: the .sig manifest is replaced by one with both signatures.
    sign_tag(
        pusher,
        registry,
        target["digest"],
        oci.cosign_signature(other, reference, target["digest"]),
        oci.cosign_signature(key, reference, target["digest"]),
    )
    process_events(registry)
    assert tag_api(api(alice), "v2", pusher.repository)["signature"] == {"status": "verified", "key": "ci"}
    # The signature tag deleted in the registry (by digest, as cosign clean does): unsigned again.
    sig_digest = Tag.objects.get(name=oci.cosign_tag(target["digest"], "sig")).manifest.digest
    from repositories.registry import get_client

    get_client().delete_manifest("alice/late", sig_digest)
    process_events(registry)
    assert tag_api(api(alice), "v2", pusher.repository)["signature"] == {"status": "unsigned", "key": None}


# --- referrers, attestations, SBOMs ----------------------------------------------------------


def test_referrers_attestations_and_sboms(registry, live_server, alice, bob):
    pusher = login(registry, live_server, "alice/referred")
    key = oci.new_key("ecdsa")
    add_key(api(alice), "release", key)
    reference = f"{registry.host}/alice/referred"
    target = oci.image(pusher, layers=(b"app",), tag="2.0")
    subject = {"mediaType": target["mediaType"], "digest": target["digest"], "size": target["size"]}
    # OCI 1.1: a signature and a CycloneDX SBOM with `subject`, pushed by digest, and the
    # referrers tag schema's index for registries without the referrers API (this one, 2.8).
    sig = pusher.manifest(
        oci.signature_manifest(pusher, [oci.cosign_signature(key, reference, target["digest"])], subject=subject)
    )
    sbom_bytes = json.dumps({"bomFormat": "CycloneDX", "specVersion": "1.5", "components": []}).encode()
    sbom = pusher.manifest(oci.sbom_referrer(pusher, sbom_bytes, subject))
    pusher.manifest(
        oci.referrers_index([(sig, oci.COSIGN_SIGNATURE_ARTIFACT), (sbom, "application/vnd.cyclonedx+json")]),
        "sha256-" + target["digest"].removeprefix("sha256:"),
    )
    # cosign attest: an in-toto SLSA provenance statement in a DSSE envelope under .att.
    statement = oci.slsa_v1_statement(
        target["digest"], builder="https://github.com/actions/runner", source="https://github.com/alice/referred"
    )
    envelope = oci.dsse_envelope(statement, key)
    pusher.manifest(
        oci.attestation_manifest(pusher, [(envelope, "https://slsa.dev/provenance/v1")]),
        oci.cosign_tag(target["digest"], "att"),
    )
    process_events(registry)

    client = api(alice)
    data = tag_api(client, "2.0", pusher.repository)
    assert data["signature"] == {"status": "verified", "key": "release"}
    attached = {item["kind"]: item for item in data["attestations"]}
    provenance = attached["attestation"]
    assert provenance["type"] == "https://slsa.dev/provenance/v1"
    assert provenance["builder"] == "https://github.com/actions/runner"
    assert provenance["source_repository"] == "https://github.com/alice/referred"
    assert attached["sbom"]["format"] == "CycloneDX (JSON)"
    manifest = Manifest.objects.get(digest=target["digest"])
    assert manifest.is_signed and manifest.has_sbom and manifest.has_attestation

    # Downloads go through the portal, by the repository's policy.
    for item, expected in [(attached["sbom"], sbom_bytes), (provenance, envelope)]:
        url = item["download_url"]
        response = client.get(url)
        assert response.status_code == 200 and b"".join(response.streaming_content) == expected
        assert api(bob).get(url).status_code == 404  # alice/referred is private
        assert APIClient().get(url).status_code in (401, 404)
    page = client.get("/r/alice/referred/-/tags/2.0/").content.decode()
    for text in [
        "https://slsa.dev/provenance/v1",
        "https://github.com/actions/runner",
        "CycloneDX (JSON)",
        "verified by release",
    ]:
        assert text in page, text
    page_download = client.get(f"/r/alice/referred/-/attachments/{sbom['digest']}/{attached['sbom']['digest']}/")
    assert page_download.status_code == 200
    assert (
        api(bob).get(f"/r/alice/referred/-/attachments/{sbom['digest']}/{attached['sbom']['digest']}/").status_code
        == 404
    )
    # A layer that is not an attestation of this repository is not served.
    layer = json.loads(pusher.pull("2.0"))["layers"][0]["digest"]
    assert client.get(f"/api/v1/repositories/alice/referred/attachments/{target['digest']}/{layer}/").status_code == 404
    # Artifact tags (the referrers index, .att) stay out of the tag list.
    assert [row["name"] for row in client.get("/api/v1/repositories/alice/referred/tags/").json()["results"]] == ["2.0"]


# --- interoperability with cosign itself -----------------------------------------------------


def test_a_signature_made_by_cosign_verifies():
    """A real cosign signature (from containers/image's test fixtures, see data/cosign/README):
    its payload's exact bytes, its signature, the public key of the certificate it was made with."""
    payload = (DATA / "payload.json").read_bytes()
    found = [signing.FoundSignature(payload, (DATA / "signature.b64").read_text().strip())]
    key = signing.load_public_key((DATA / "key.pem").read_text())
    digest = "sha256:fa93b01658e3a5a1686dc3ae55f170d8de487006fb53a28efcd12ab0710a2e5f"
    assert key.algorithm == "ECDSA P-256"
    assert signing.decide(digest, found, [("fulcio", key)]) == ("verified", "fulcio")
    assert signing.decide(digest, found, []) == ("untrusted", "")
    assert signing.decide("sha256:" + "0" * 64, found, [("fulcio", key)]) == ("invalid", "")
    flipped = [signing.FoundSignature(payload.replace(b"alpine", b"alpinf"), found[0].signature)]
    assert signing.decide(digest, flipped, [("fulcio", key)]) == ("untrusted", "")


# --- what a hostile pusher can put in a manifest (found by a black-box review) ---------------


def deep_manifest(pusher: oci.Pusher, tag: str) -> str:
    """A manifest with an unknown field nested 5,000 deep: the registry (Go) stores it; Python's
    parser stops near 1,000 levels."""
    config = pusher.blob(json.dumps({"architecture": "amd64", "os": "linux"}).encode(), oci.OCI_CONFIG)
    doc = {"schemaVersion": 2, "mediaType": oci.OCI_MANIFEST, "config": config, "layers": [pusher.blob(b"p")]}
    body = json.dumps(doc)[:-1] + ', "x": ' + "[" * 5000 + "]" * 5000 + "}"
    response = requests.put(
        f"{pusher.registry_url}/v2/{pusher.repository}/manifests/{tag}",
        data=body.encode(),
        headers={**pusher.headers, "Content-Type": oci.OCI_MANIFEST},
    )
    assert response.status_code == 201, response.text
    return response.headers["Docker-Content-Digest"]


def test_a_poisoned_push_is_set_aside_and_everyone_elses_goes_on(registry, live_server, alice, bob):
    mallory = login(registry, live_server, "alice/poison")
    deep = deep_manifest(mallory, "deep")
    try:
        _poisoned_push_set_aside(registry, live_server, mallory, alice)
    finally:
        # The registry outlives the test: crawls in later tests would meet the unreadable
        # manifest (and say so: the run is partial, with the repository's error).
        from repositories.registry import get_client

        get_client().delete_manifest("alice/poison", deep)
        registry.drain_notifications()


def _poisoned_push_set_aside(registry, live_server, mallory, alice):
    target = oci.image(mallory, layers=(b"victim",), tag="fine")
    deep_payload = ("[" * 20000 + "]" * 20000).encode()
    sign_tag(mallory, registry, target["digest"], oci.Signature(deep_payload, "AAAA"))
    bobs = oci.Pusher.login(
        portal_url=live_server.url, registry_url=registry.url, repository="bob/web", username="bob", password=PASSWORD
    )
    oci.image(bobs, layers=(b"bob",), tag="1.0")
    registry.drain_notifications()

    sync.drain_pending()  # as the worker drains: nothing escapes, nothing is left behind
    assert Tag.objects.filter(repository__full_name="bob/web", name="1.0").exists()
    assert Tag.objects.filter(repository__full_name="alice/poison", name="fine").exists()
    poisoned = RegistryEvent.objects.get(repository="alice/poison", tag="deep")
    assert poisoned.status == "failed" and "cannot be read" in poisoned.error
    assert not RegistryEvent.objects.filter(status__in=["pending", "processing"]).exists()
    assert tag_api(api(alice), "fine", "alice/poison")["signature"] == {"status": "invalid", "key": None}


def test_attachments_are_served_as_the_registry_has_them_not_as_the_pusher_claims(registry, live_server, alice):
    pusher = login(registry, live_server, "alice/claims")
    target = oci.image(pusher, layers=(b"claimed",), tag="1.0")
    subject = {"mediaType": target["mediaType"], "digest": target["digest"], "size": target["size"]}
    body = b'{"bomFormat":"CycloneDX"}'
    layer = {**pusher.blob(body), "mediaType": "text/html\r\nX-Injected: yes", "size": 10**12}
    artifact = {
        "schemaVersion": 2,
        "mediaType": oci.OCI_MANIFEST,
        "artifactType": "application/vnd.cyclonedx+json",
        "config": pusher.blob(b"{}", oci.OCI_EMPTY),
        "layers": [layer],
        "subject": subject,
    }
    pushed = pusher.manifest(artifact)
    pusher.manifest(
        oci.referrers_index([(pushed, "application/vnd.cyclonedx+json")]),
        "sha256-" + target["digest"].removeprefix("sha256:"),
    )
    process_events(registry)
    client = api(alice)
    [sbom] = tag_api(client, "1.0", pusher.repository)["attestations"]
    for url in [sbom["download_url"], f"/r/alice/claims/-/attachments/{pushed['digest']}/{layer['digest']}/"]:
        response = client.get(url)
        assert response.status_code == 200
        assert response["Content-Type"] == "application/octet-stream"  # not the pusher's text/html
        assert "X-Injected" not in str(response.headers)
        assert response["Content-Length"] == str(len(body))  # the registry's length, not 10**12
        assert b"".join(response.streaming_content) == body


def test_a_platform_filter_that_names_no_platform(registry, live_server, alice):
    pusher = login(registry, live_server, "alice/platforms")
    oci.image(pusher, arch="arm64", layers=(b"arm",), tag="arm")
    oci.image(pusher, arch="amd64", layers=(b"amd",), tag="amd")
    process_events(registry)
    client = api(alice)
    url = "/api/v1/repositories/alice/platforms/tags/"
    for garbage in ["garbage", "linux/amd64/", "linux//amd64", "linux/amd64/v8/x"]:
        response = client.get(url, {"platform": garbage})
        assert response.status_code == 400 and "os/architecture" in response.json()["platform"], garbage
    assert [row["name"] for row in client.get(url, {"platform": "LINUX/ARM64"}).json()["results"]] == ["arm"]
    page = client.get("/r/alice/platforms/-/tags/", {"platform": "garbage"}).content.decode()
    assert "/-/tags/arm/" not in page and "/-/tags/amd/" not in page
