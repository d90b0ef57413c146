"""What a manifest is, read from its document, its config and (for signatures and attestations)
its small blobs: pure functions, no ORM, no network. The sync fetches, this reads, the models
keep the result.

- An image manifest: its layers with the config history's `created_by` line, entrypoint, cmd,
  exposed ports and the *names* of its environment variables (values may hold secrets).
- A cosign signature manifest (the `sha256-<hex>.sig` tag, or an OCI 1.1 referrer): one
  simple-signing payload per layer, its signature in the layer's annotation.
- A cosign attestation (`.att`, or a referrer): DSSE envelopes of in-toto statements; the
  predicate type, and for SLSA provenance the builder and the source repository.
- An SBOM (`.sbom`, or a referrer of SPDX or CycloneDX type): listed with its format.
"""

from __future__ import annotations

import base64
import binascii
import json
import re

from repositories.signing import CERTIFICATE_ANNOTATION, SIGNATURE_ANNOTATION, SIMPLE_SIGNING

DSSE = "application/vnd.dsse.envelope.v1+json"
IN_TOTO = "application/vnd.in-toto+json"
SBOM_TYPES = {
    "text/spdx+json": "SPDX (JSON)",
    "application/spdx+json": "SPDX (JSON)",
    "text/spdx": "SPDX (tag-value)",
    "text/spdx+xml": "SPDX (XML)",
    "application/vnd.cyclonedx+json": "CycloneDX (JSON)",
    "application/vnd.cyclonedx+xml": "CycloneDX (XML)",
    "application/vnd.cyclonedx": "CycloneDX",
    "application/vnd.syft+json": "Syft (JSON)",
}
SBOM_PREDICATES = {"https://spdx.dev/Document", "https://cyclonedx.org/bom"}
MAX_SIGNATURE_BLOB = 64 * 1024
MAX_ENVELOPE_BLOB = 2 * 1024 * 1024
# docker buildx puts provenance and SBOM attestations in the image index itself: a manifest of
# platform unknown/unknown whose index entry names the image (vnd.docker.reference.digest) and
# whose layers are in-toto statements.
BUILDX_REFERENCE = "vnd.docker.reference.digest"
BUILDX_PREDICATE = "in-toto.io/predicate-type"
READ_LIMITS = {SIMPLE_SIGNING: MAX_SIGNATURE_BLOB, DSSE: MAX_ENVELOPE_BLOB, IN_TOTO: MAX_ENVELOPE_BLOB}
MAX_LAYERS_READ = 32
DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


def _layers(doc: dict) -> list[dict]:
    return [
        layer
        for layer in doc.get("layers") or []
        if isinstance(layer, dict) and isinstance(layer.get("digest"), str) and DIGEST_RE.match(layer["digest"])
    ]


def _annotations(layer: dict) -> dict:
    value = layer.get("annotations")
    return value if isinstance(value, dict) else {}


def _size(layer: dict) -> int:
    try:
        return max(int(layer.get("size") or 0), 0)
    except (TypeError, ValueError):
        return 0


def blobs_to_read(doc: dict) -> list[str]:
    """The blobs of this manifest the portal reads: signature payloads and attestation
    envelopes, small ones only (an SBOM is listed, not read: it is downloaded on demand)."""
    wanted = []
    for layer in _layers(doc)[:MAX_LAYERS_READ]:
        limit = READ_LIMITS.get(layer.get("mediaType"))
        if limit is not None and _size(layer) <= limit:
            wanted.append(layer["digest"])
    return wanted


def buildx_subject(entry: dict) -> str:
    """The image an attestation manifest inside a buildx index is about, from its index entry."""
    annotations = entry.get("annotations") if isinstance(entry.get("annotations"), dict) else {}
    digest = annotations.get(BUILDX_REFERENCE)
    return digest if isinstance(digest, str) and DIGEST_RE.match(digest) else ""


def subject_of(doc: dict) -> str:
    """The digest an OCI 1.1 referrer points at (its `subject`), or ''."""
    subject = doc.get("subject")
    digest = subject.get("digest") if isinstance(subject, dict) else None
    return digest if isinstance(digest, str) and DIGEST_RE.match(digest) else ""


def artifact_content(doc: dict, blobs: dict[str, bytes]) -> dict:
    """Signatures, attestations and SBOMs this manifest holds, as stored on the manifest
    (JSON-safe: payloads in base64). Empty lists for an ordinary image."""
    signatures, attached = [], []
    artifact_type = doc.get("artifactType") if isinstance(doc.get("artifactType"), str) else ""
    for layer in _layers(doc)[:MAX_LAYERS_READ]:
        media_type = layer.get("mediaType") if isinstance(layer.get("mediaType"), str) else ""
        annotations = _annotations(layer)
        digest, size = layer["digest"], _size(layer)
        if media_type == SIMPLE_SIGNING:
            payload = blobs.get(digest)
            signature = annotations.get(SIGNATURE_ANNOTATION)
            if payload is not None and isinstance(signature, str):
                certificate = annotations.get(CERTIFICATE_ANNOTATION)
                signatures.append(
                    {
                        "layer": digest,
                        "payload": base64.b64encode(payload).decode(),
                        "signature": signature[:4096],
                        "certificate": certificate[:16384] if isinstance(certificate, str) else "",
                    }
                )
        elif media_type == DSSE:
            statement = _statement(blobs.get(digest))
            attached.append(_attestation(digest, size, media_type, statement, annotations.get("predicateType")))
        elif media_type == IN_TOTO:
            statement = _json_object(blobs.get(digest))
            attached.append(_attestation(digest, size, media_type, statement, annotations.get(BUILDX_PREDICATE)))
        elif media_type in SBOM_TYPES or artifact_type in SBOM_TYPES:
            kind_type = media_type if media_type in SBOM_TYPES else artifact_type
            attached.append(
                {
                    "layer": digest,
                    "size": size,
                    "media_type": media_type,
                    "kind": "sbom",
                    "type": kind_type,
                    "format": SBOM_TYPES[kind_type],
                    "builder": "",
                    "source": "",
                }
            )
    return {"signatures": signatures, "attached": attached}


def _attestation(digest: str, size: int, media_type: str, statement: dict, annotated_type) -> dict:
    predicate_type = statement.get("predicateType") if isinstance(statement.get("predicateType"), str) else ""
    predicate_type = predicate_type or (annotated_type if isinstance(annotated_type, str) else "")
    predicate = statement.get("predicate") if isinstance(statement.get("predicate"), dict) else {}
    builder, source = provenance(predicate_type, predicate)
    is_sbom = predicate_type in SBOM_PREDICATES
    return {
        "layer": digest,
        "size": size,
        "media_type": media_type,
        "kind": "sbom" if is_sbom else "attestation",
        "type": predicate_type[:200],
        "format": ("SPDX" if "spdx" in predicate_type else "CycloneDX") + " (in-toto)" if is_sbom else "in-toto",
        "builder": builder[:300],
        "source": source[:300],
    }


def _json_object(data: bytes | None) -> dict:
    if not data:
        return {}
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


def _statement(envelope: bytes | None) -> dict:
    """The in-toto statement inside a DSSE envelope."""
    data = _json_object(envelope)
    if data.get("payloadType") != IN_TOTO or not isinstance(data.get("payload"), str):
        return {}
    try:
        return _json_object(base64.b64decode(data["payload"], validate=True))
    except (binascii.Error, ValueError):
        return {}


def _get(data, *path) -> str:
    for key in path:
        if isinstance(key, int):
            data = data[key] if isinstance(data, list) and len(data) > key else None
        else:
            data = data.get(key) if isinstance(data, dict) else None
    return data if isinstance(data, str) else ""


def provenance(predicate_type: str, predicate: dict) -> tuple[str, str]:
    """(builder id, source repository) of a SLSA provenance predicate (v0.2 or v1), else ('', '')."""
    if predicate_type.startswith("https://slsa.dev/provenance/v0."):
        builder = _get(predicate, "builder", "id")
        source = _get(predicate, "invocation", "configSource", "uri") or _get(predicate, "materials", 0, "uri")
        return builder, source
    if predicate_type.startswith("https://slsa.dev/provenance/v1"):
        builder = _get(predicate, "runDetails", "builder", "id")
        source = (
            _get(predicate, "buildDefinition", "externalParameters", "workflow", "repository")
            or _get(predicate, "buildDefinition", "externalParameters", "source")
            or _get(predicate, "buildDefinition", "resolvedDependencies", 0, "uri")
        )
        return builder, source
    return "", ""


def image_details(doc: dict, config: dict) -> dict:
    """What the tag page shows of an image manifest: its layers (digest, size, the history line
    that made it), entrypoint, cmd, exposed ports and environment variable names."""
    inner = config.get("config") if isinstance(config.get("config"), dict) else {}
    history = [h for h in config.get("history") or [] if isinstance(h, dict) and not h.get("empty_layer")]
    layers = []
    for i, layer in enumerate(_layers(doc)):
        created_by = history[i].get("created_by") if i < len(history) else ""
        layers.append(
            {
                "digest": layer["digest"],
                "size": _size(layer),
                "media_type": str(layer.get("mediaType", ""))[:100],
                "created_by": created_by[:1000] if isinstance(created_by, str) else "",
            }
        )
    env = inner.get("Env") if isinstance(inner.get("Env"), list) else []
    ports = inner.get("ExposedPorts") if isinstance(inner.get("ExposedPorts"), dict) else {}
    return {
        "layers": layers,
        "entrypoint": _strings(inner.get("Entrypoint")),
        "cmd": _strings(inner.get("Cmd")),
        "exposed_ports": sorted(str(p)[:32] for p in ports)[:100],
        "env_names": [str(e).split("=", 1)[0][:200] for e in env if isinstance(e, str)][:200],
    }


def _strings(value) -> list[str]:
    return [str(v)[:1000] for v in value][:100] if isinstance(value, list) else []
