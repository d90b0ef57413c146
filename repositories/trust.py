"""Signatures, attestations and SBOMs attached to images, and the keys a namespace trusts:
linking what the sync found to the image it is about, and keeping each image's verdict
(repositories/signing.py decides) true when signatures arrive or go and when keys change."""

from __future__ import annotations

import base64
import binascii
import re

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q

from accounts.models import Namespace
from audit.services import audit_record
from repositories import signing
from repositories.models import ArtifactLink, Manifest, Repository, SigningKey, Tag

ARTIFACT_TAG_RE = re.compile(r"^sha256-([0-9a-f]{64})(?:\.(sig|att|sbom))?$")
MAX_KEYS_PER_NAMESPACE = 50


def tag_subject(tag_name: str) -> str:
    """The image digest a cosign tag (sha256-<hex>.sig/.att/.sbom) or an OCI referrers tag
    (sha256-<hex>) is about, or ''."""
    match = ARTIFACT_TAG_RE.match(tag_name)
    return f"sha256:{match.group(1)}" if match else ""


def link(*, repository: Repository, artifact: Manifest, subject_digest: str, via: str) -> bool:
    """Record that `artifact` (a manifest holding signatures or attachments) is about
    `subject_digest`. True if the link is new."""
    content = artifact.artifact or {}
    if not (content.get("signatures") or content.get("attached")) or artifact.digest == subject_digest:
        return False
    try:
        with transaction.atomic():
            _, created = ArtifactLink.objects.get_or_create(
                artifact=artifact, subject_digest=subject_digest, defaults={"repository": repository, "via": via}
            )
    except IntegrityError:
        return False
    return created


def link_tag(*, repository: Repository, tag_name: str, manifest: Manifest, previous: Manifest | None) -> None:
    """A cosign tag (sha256-<hex>.sig/.att/.sbom) now points at `manifest` (before: `previous`):
    the image it names gets this manifest's signatures and attachments instead of the previous
    one's. (The referrers tag, sha256-<hex>, is an index whose artifacts name their image in
    their own `subject`; they were linked when stored.)"""
    subject = tag_subject(tag_name)
    if not subject:
        return
    if previous is not None and previous.pk != manifest.pk:
        ArtifactLink.objects.filter(artifact=previous, subject_digest=subject, via=ArtifactLink.Via.TAG).delete()
    if not manifest.is_index:
        link(repository=repository, artifact=manifest, subject_digest=subject, via=ArtifactLink.Via.TAG)
    refresh(repository=repository, digests={subject})


def prune_tag_links(repository: Repository) -> set[str]:
    """Links made by cosign tags that no longer exist (deleted, or moved elsewhere). Returns the
    images they were about."""
    standing = {
        (manifest_id, tag_subject(name))
        for name, manifest_id in Tag.objects.filter(repository=repository)
        .exclude(artifact="")
        .values_list("name", "manifest_id")
    }
    stale, subjects = [], set()
    for pk, artifact_id, subject in ArtifactLink.objects.filter(
        repository=repository, via=ArtifactLink.Via.TAG
    ).values_list("pk", "artifact_id", "subject_digest"):
        if (artifact_id, subject) not in standing:
            stale.append(pk)
            subjects.add(subject)
    if stale:
        ArtifactLink.objects.filter(pk__in=stale).delete()
    return subjects


def subjects_of(artifacts) -> set[str]:
    """The images these artifact manifests are about (to refresh once they are gone)."""
    return set(ArtifactLink.objects.filter(artifact__in=artifacts).values_list("subject_digest", flat=True))


def found_signatures(*, repository: Repository, digest: str) -> list[signing.FoundSignature]:
    found = []
    links = ArtifactLink.objects.filter(repository=repository, subject_digest=digest).select_related("artifact")
    for item in links:
        for sig in item.artifact.artifact.get("signatures") or []:
            try:
                payload = base64.b64decode(sig.get("payload", ""), validate=True)
            except (binascii.Error, ValueError):
                continue
            found.append(signing.FoundSignature(payload, sig.get("signature", ""), sig.get("certificate", "")))
    return found


def trusted_keys(namespace_id: int) -> list[tuple[str, signing.PublicKey]]:
    keys = []
    for key in SigningKey.objects.filter(namespace_id=namespace_id).order_by("name"):
        try:
            keys.append((key.name, signing.load_public_key(key.public_key)))
        except signing.InvalidKey:
            continue  # checked when added; a key the library no longer accepts verifies nothing
    return keys


def refresh(*, repository: Repository, digests: set[str], keys=None) -> list[Manifest]:
    """Recompute the flags and the signature verdict of these images (those the portal holds).
    Returns the manifests whose verdict changed; each change is announced to webhooks."""
    digests = {d for d in digests if d}
    if not digests:
        return []
    manifests = list(Manifest.objects.filter(repository=repository, digest__in=digests))
    if not manifests:
        return []
    keys = trusted_keys(repository.namespace_id) if keys is None else keys
    attached: dict[str, list[dict]] = {}
    for item in ArtifactLink.objects.filter(repository=repository, subject_digest__in=digests).select_related(
        "artifact"
    ):
        attached.setdefault(item.subject_digest, []).extend(item.artifact.artifact.get("attached") or [])
    changed = []
    for manifest in manifests:
        found = found_signatures(repository=repository, digest=manifest.digest)
        status, key_name = signing.decide(manifest.digest, found, keys)
        kinds = {a.get("kind") for a in attached.get(manifest.digest, [])}
        values = {
            "is_signed": bool(found),
            "has_attestation": "attestation" in kinds,
            "has_sbom": "sbom" in kinds,
            "signature_status": status,
            "signature_key": key_name[:100],
        }
        if any(getattr(manifest, field) != value for field, value in values.items()):
            verdict_changed = (manifest.signature_status, manifest.signature_key) != (status, key_name[:100])
            Manifest.objects.filter(pk=manifest.pk).update(**values)
            for field, value in values.items():
                setattr(manifest, field, value)
            if verdict_changed:
                changed.append(manifest)
                _announce(repository, manifest)
    return changed


def refresh_namespace(namespace: Namespace) -> int:
    """Every signed image of the namespace, against its keys as they are now. Returns how many
    verdicts changed."""
    keys = trusted_keys(namespace.pk)
    changed = 0
    pairs = (
        ArtifactLink.objects.filter(repository__namespace=namespace)
        .values_list("repository_id", "subject_digest")
        .distinct()
    )
    by_repository: dict[int, set[str]] = {}
    for repository_id, digest in pairs:
        by_repository.setdefault(repository_id, set()).add(digest)
    for repository in Repository.objects.filter(pk__in=by_repository).select_related("namespace"):
        changed += len(refresh(repository=repository, digests=by_repository[repository.pk], keys=keys))
    return changed


def verdict(manifest: Manifest) -> dict:
    """The API's and the webhooks' shape of a verdict."""
    return {"status": manifest.signature_status, "key": manifest.signature_key or None}


def _announce(repository: Repository, manifest: Manifest) -> None:
    from webhooks.services import dispatch, repository_payload

    tags = sorted(Tag.objects.filter(repository=repository, manifest=manifest).values_list("name", flat=True))
    if not tags:
        return  # an image only known by digest (a platform of an index): its index's tags carry it
    dispatch(
        event="signature",
        repository=repository,
        payload=lambda: {
            "callback_url": None,
            "signature_data": {"digest": manifest.digest, "tags": tags, **verdict(manifest)},
            "repository": repository_payload(repository),
        },
        tags=tags,
    )


# --- trusted keys ------------------------------------------------------------------------------


def signing_key_add(*, namespace: Namespace, name: str, public_key: str, actor) -> SigningKey:
    """Trust a public key for the namespace's images; every signed image is checked again."""
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise ValidationError({"name": "Give the key a name of 1 to 100 characters."})
    try:
        loaded = signing.load_public_key(public_key)
    except signing.InvalidKey as exc:
        raise ValidationError({"public_key": str(exc)}) from None
    if SigningKey.objects.filter(namespace=namespace).count() >= MAX_KEYS_PER_NAMESPACE:
        raise ValidationError({"public_key": f"A namespace trusts at most {MAX_KEYS_PER_NAMESPACE} keys."})
    existing = SigningKey.objects.filter(namespace=namespace).filter(Q(name=name) | Q(fingerprint=loaded.fingerprint))
    for other in existing:
        if other.fingerprint == loaded.fingerprint:
            raise ValidationError({"public_key": f"This key is already trusted, as {other.name}."})
        raise ValidationError({"name": f"{namespace.name} already has a key named {name}."})
    with transaction.atomic():
        key = SigningKey.objects.create(
            namespace=namespace,
            name=name,
            public_key=loaded.pem,
            fingerprint=loaded.fingerprint,
            algorithm=loaded.algorithm,
            added_by=actor if getattr(actor, "pk", None) else None,
        )
        audit_record(
            action="signing_key.add",
            actor=actor,
            target_name=f"{namespace.name}:{name}",
            namespace=namespace.name,
            data={"fingerprint": loaded.fingerprint, "algorithm": loaded.algorithm},
        )
        refresh_namespace(namespace)
    return key


def signing_key_delete(*, key: SigningKey, actor) -> None:
    namespace = key.namespace
    with transaction.atomic():
        audit_record(
            action="signing_key.delete",
            actor=actor,
            target_name=f"{namespace.name}:{key.name}",
            namespace=namespace.name,
            data={"fingerprint": key.fingerprint},
        )
        key.delete()
        refresh_namespace(namespace)
