"""Push hand-made manifests to the real registry over its HTTP API, as cosign, oras and buildx
do: images with a chosen config, cosign signatures (`sha256-<hex>.sig`), in-toto attestations
(`.att`), OCI 1.1 referrers (`subject`) and the referrers tag schema (`sha256-<hex>`). The keys
and signatures are made here with `cryptography`, in cosign's formats."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from dataclasses import dataclass

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import NameOID

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
DSSE = "application/vnd.dsse.envelope.v1+json"
COSIGN_SIGNATURE_ARTIFACT = "application/vnd.dev.cosign.artifact.sig.v1+json"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Pusher:
    """One repository of the registry, with a bearer token from the portal's token endpoint."""

    registry_url: str
    repository: str
    token: str

    @classmethod
    def login(cls, *, portal_url: str, registry_url: str, repository: str, username: str, password: str):
        from django.conf import settings

        response = requests.get(
            f"{portal_url}/auth/token",
            params={"service": settings.REGISTRY_SERVICE, "scope": f"repository:{repository}:pull,push"},
            auth=(username, password),
            timeout=10,
        )
        response.raise_for_status()
        return cls(registry_url, repository, response.json()["token"])

    @property
    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"}

    def blob(self, data: bytes, media_type: str = OCI_LAYER) -> dict:
        digest = sha256(data)
        start = requests.post(f"{self.registry_url}/v2/{self.repository}/blobs/uploads/", headers=self.headers)
        assert start.status_code == 202, start.text
        location = start.headers["Location"]
        if location.startswith("/"):
            location = self.registry_url + location
        put = requests.put(
            location + ("&" if "?" in location else "?") + f"digest={digest}",
            data=data,
            headers={**self.headers, "Content-Type": "application/octet-stream"},
        )
        assert put.status_code == 201, put.text
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    def manifest(self, doc: dict, reference: str = "") -> dict:
        """PUT the manifest under `reference` (a tag), or by its own digest."""
        body = json.dumps(doc).encode()
        digest = sha256(body)
        response = requests.put(
            f"{self.registry_url}/v2/{self.repository}/manifests/{reference or digest}",
            data=body,
            headers={**self.headers, "Content-Type": doc["mediaType"]},
        )
        assert response.status_code == 201, response.text
        assert response.headers["Docker-Content-Digest"] == digest
        return {"mediaType": doc["mediaType"], "digest": digest, "size": len(body)}

    def pull(self, reference: str) -> bytes:
        response = requests.get(
            f"{self.registry_url}/v2/{self.repository}/manifests/{reference}",
            headers={**self.headers, "Accept": f"{OCI_INDEX}, {OCI_MANIFEST}"},
        )
        assert response.status_code == 200, response.text
        return response.content


# --- images -----------------------------------------------------------------------------------


def image(
    pusher: Pusher,
    *,
    arch: str = "amd64",
    variant: str = "",
    layers: tuple[bytes, ...] = (b"rootfs",),
    history: list[dict] | None = None,
    config: dict | None = None,
    created: str = "2026-10-01T12:00:00Z",
    tag: str = "",
) -> dict:
    """An image manifest with the given layers (bytes pushed as they are) and config."""
    pushed = [pusher.blob(data) for data in layers]
    document = {
        "created": created,
        "architecture": arch,
        "os": "linux",
        "config": config or {},
        "rootfs": {"type": "layers", "diff_ids": [layer["digest"] for layer in pushed]},
        "history": history if history is not None else [{"created": created, "created_by": "ADD rootfs"}],
    }
    if variant:
        document["variant"] = variant
    config_desc = pusher.blob(json.dumps(document).encode(), OCI_CONFIG)
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config_desc, "layers": pushed}
    return pusher.manifest(manifest, tag)


def index(pusher: Pusher, entries: list[tuple[dict, dict]], tag: str) -> dict:
    """An image index over (descriptor, platform) pairs."""
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{**desc, "platform": platform} for desc, platform in entries],
    }
    return pusher.manifest(doc, tag)


# --- keys and cosign signatures ---------------------------------------------------------------


def new_key(kind: str):
    if kind == "ecdsa":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "ecdsa-p384":
        return ec.generate_private_key(ec.SECP384R1())
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=3072)
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(kind)


def public_pem(private_key) -> str:
    return (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def sign(private_key, data: bytes) -> str:
    """The base64 signature cosign would store: ECDSA over SHA-256 (DER), RSA PKCS#1 v1.5 over
    SHA-256, Ed25519 over the bytes."""
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        raw = private_key.sign(data, ec.ECDSA(hashes.SHA256()))
    elif isinstance(private_key, rsa.RSAPrivateKey):
        raw = private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    else:
        raw = private_key.sign(data)
    return base64.b64encode(raw).decode()


def certificate_pem(private_key) -> str:
    """A self-signed certificate of the key, as keyless signing carries one (Fulcio's)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sigstore-intermediate")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(minutes=10))
        .sign(private_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def simple_signing_payload(reference: str, digest: str) -> bytes:
    """cosign's payload: the image's manifest digest under critical.image."""
    return json.dumps(
        {
            "critical": {
                "identity": {"docker-reference": reference},
                "image": {"docker-manifest-digest": digest},
                "type": "cosign container image signature",
            },
            "optional": None,
        },
        separators=(",", ":"),
    ).encode()


@dataclass(frozen=True)
class Signature:
    payload: bytes
    signature: str
    certificate: str = ""


def cosign_signature(private_key, reference: str, digest: str, *, certificate: bool = False) -> Signature:
    payload = simple_signing_payload(reference, digest)
    return Signature(payload, sign(private_key, payload), certificate_pem(private_key) if certificate else "")


def signature_manifest(pusher: Pusher, signatures: list[Signature], *, subject: dict | None = None) -> dict:
    """The manifest cosign pushes: one simple-signing layer per signature, the signature (and a
    keyless signature's certificate) in the layer's annotations. With `subject`, an OCI 1.1
    referrer; without, the caller tags it sha256-<hex>.sig."""
    layers = []
    for item in signatures:
        layer = pusher.blob(item.payload, SIMPLE_SIGNING)
        annotations = {"dev.cosignproject.cosign/signature": item.signature}
        if item.certificate:
            annotations["dev.sigstore.cosign/certificate"] = item.certificate
        layers.append({**layer, "annotations": annotations})
    if subject is None:
        config = json.dumps(
            {
                "architecture": "",
                "config": {},
                "created": "0001-01-01T00:00:00Z",
                "history": [{"created": "0001-01-01T00:00:00Z"}],
                "os": "",
                "rootfs": {"type": "layers", "diff_ids": [layer["digest"] for layer in layers]},
            }
        ).encode()
        return {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": pusher.blob(config, OCI_CONFIG),
            "layers": layers,
        }
    return {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": COSIGN_SIGNATURE_ARTIFACT,
        "config": pusher.blob(b"{}", OCI_EMPTY),
        "layers": layers,
        "subject": subject,
    }


def cosign_tag(digest: str, suffix: str) -> str:
    return f"sha256-{digest.removeprefix('sha256:')}.{suffix}"


def dsse_envelope(statement: dict, private_key) -> bytes:
    """An in-toto statement in a DSSE envelope, signed over the DSSE pre-authentication encoding."""
    payload = json.dumps(statement).encode()
    payload_type = "application/vnd.in-toto+json"
    pae = b"DSSEv1 %d %s %d %s" % (len(payload_type), payload_type.encode(), len(payload), payload)
    return json.dumps(
        {
            "payloadType": payload_type,
            "payload": base64.b64encode(payload).decode(),
            "signatures": [{"keyid": "", "sig": sign(private_key, pae)}],
        }
    ).encode()


def slsa_v1_statement(subject_digest: str, *, builder: str, source: str) -> dict:
    return {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "image", "digest": {"sha256": subject_digest.removeprefix("sha256:")}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {
            "buildDefinition": {
                "buildType": "https://actions.github.io/buildtypes/workflow/v1",
                "externalParameters": {"workflow": {"repository": source, "path": ".github/workflows/release.yml"}},
            },
            "runDetails": {"builder": {"id": builder}},
        },
    }


def attestation_manifest(pusher: Pusher, envelopes: list[tuple[bytes, str]]) -> dict:
    """The manifest cosign pushes under sha256-<hex>.att: one DSSE layer per envelope."""
    layers = [
        {**pusher.blob(envelope, DSSE), "annotations": {"predicateType": predicate_type}}
        for envelope, predicate_type in envelopes
    ]
    config = json.dumps({"architecture": "", "config": {}, "os": "", "rootfs": {"type": "layers"}}).encode()
    return {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": pusher.blob(config, OCI_CONFIG), "layers": layers}


def sbom_referrer(pusher: Pusher, sbom: bytes, subject: dict, media_type: str = "application/vnd.cyclonedx+json"):
    """An SBOM attached as oras attaches one: an OCI 1.1 artifact whose subject is the image."""
    return {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": media_type,
        "config": pusher.blob(b"{}", OCI_EMPTY),
        "layers": [pusher.blob(sbom, media_type)],
        "subject": subject,
    }


def referrers_index(referrers: list[tuple[dict, str]]) -> dict:
    """The referrers tag schema's index (sha256-<hex>) for registries without the referrers API."""
    return {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{**desc, "artifactType": artifact_type} for desc, artifact_type in referrers],
    }
