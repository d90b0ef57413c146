"""Cosign signatures, checked (no ORM, no network: the sync stores what it found, this decides).

A cosign signature is a simple-signing payload (JSON naming the signed image's manifest digest
under critical.image.docker-manifest-digest) and a signature over the payload's exact bytes,
base64 in the layer annotation `dev.cosignproject.cosign/signature`. Keyless signatures also carry
the signing certificate (`dev.sigstore.cosign/certificate`).

The verdict for an image, from all the signatures found for its digest and the trusted keys of
its namespace:

- verified:  a signature whose payload names this digest verifies with a trusted key;
- untrusted: signed (a well-formed payload naming this digest), but no trusted key verifies it;
- invalid:   every signature found is broken: its payload names another image, it cannot be read,
             or it fails against the certificate it carries;
- unsigned:  no signature found.

Without a certificate, a signature that no trusted key verifies cannot be told apart from one
made by a key nobody trusts: both are "untrusted", and neither is verified.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
CERTIFICATE_ANNOTATION = "dev.sigstore.cosign/certificate"
SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
MAX_PEM = 16 * 1024

VERIFIED, UNTRUSTED, INVALID, UNSIGNED = "verified", "untrusted", "invalid", "unsigned"
STATUS_WORDS = {
    VERIFIED: "verified",
    UNTRUSTED: "signed, no trusted key",
    INVALID: "signature invalid",
    UNSIGNED: "unsigned",
}


class InvalidKey(ValueError):
    """Not a public key this portal can check signatures with; the message says why."""


@dataclass(frozen=True)
class PublicKey:
    key: object
    algorithm: str  # "ECDSA P-256", "RSA 3072", "Ed25519"
    fingerprint: str  # SHA-256 of the DER SubjectPublicKeyInfo, hex
    pem: str  # normalised: the SubjectPublicKeyInfo PEM


def load_public_key(text: str) -> PublicKey:
    """A PEM public key (or a certificate, whose key is taken): ECDSA P-256/P-384/P-521, RSA of
    2048 bits or more, or Ed25519."""
    data = (text or "").strip().encode()
    if not data or len(data) > MAX_PEM:
        raise InvalidKey("Paste a PEM public key (-----BEGIN PUBLIC KEY----- …).")
    try:
        if b"BEGIN CERTIFICATE" in data:
            key = x509.load_pem_x509_certificate(data).public_key()
        else:
            key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise InvalidKey("This is not a PEM public key (-----BEGIN PUBLIC KEY----- …).") from None
    if isinstance(key, ec.EllipticCurvePublicKey):
        names = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
        if key.curve.name not in names:
            raise InvalidKey(f"ECDSA keys must be on P-256, P-384 or P-521, not {key.curve.name}.")
        algorithm = f"ECDSA {names[key.curve.name]}"
    elif isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise InvalidKey(f"RSA keys must have at least 2048 bits; this one has {key.key_size}.")
        algorithm = f"RSA {key.key_size}"
    elif isinstance(key, ed25519.Ed25519PublicKey):
        algorithm = "Ed25519"
    else:
        raise InvalidKey("Supported keys: ECDSA (P-256, P-384, P-521), RSA (2048 bits or more), Ed25519.")
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return PublicKey(key=key, algorithm=algorithm, fingerprint=hashlib.sha256(der).hexdigest(), pem=pem)


def verifies(key: PublicKey, payload: bytes, signature: bytes) -> bool:
    """Whether `signature` is `key`'s over `payload`, as cosign signs: ECDSA over SHA-256 (or the
    curve's own hash), RSA PKCS#1 v1.5 or PSS over SHA-256, Ed25519 over the bytes."""
    k = key.key
    try:
        if isinstance(k, ed25519.Ed25519PublicKey):
            k.verify(signature, payload)
            return True
        if isinstance(k, ec.EllipticCurvePublicKey):
            algorithms = [hashes.SHA256(), {384: hashes.SHA384(), 521: hashes.SHA512()}.get(k.curve.key_size)]
            for algorithm in filter(None, algorithms):
                try:
                    k.verify(signature, payload, ec.ECDSA(algorithm))
                    return True
                except InvalidSignature:
                    continue
            return False
        if isinstance(k, rsa.RSAPublicKey):
            for pad in (padding.PKCS1v15(), padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.AUTO)):
                try:
                    k.verify(signature, payload, pad, hashes.SHA256())
                    return True
                except InvalidSignature:
                    continue
            return False
    except (InvalidSignature, ValueError, TypeError):
        return False
    return False


def signed_digest(payload: bytes) -> str | None:
    """The manifest digest a simple-signing payload names, or None if it is not one."""
    try:
        data = json.loads(payload)
        digest = data["critical"]["image"]["docker-manifest-digest"]
    except (ValueError, TypeError, KeyError, UnicodeDecodeError, RecursionError):
        return None
    return digest if isinstance(digest, str) and digest.startswith("sha256:") else None


@dataclass(frozen=True)
class FoundSignature:
    """One signature as stored: the payload's bytes, the base64 signature, the certificate PEM
    it carried (keyless signing) or ''."""

    payload: bytes
    signature: str
    certificate: str = ""


def decide(subject_digest: str, found: list[FoundSignature], keys: list[tuple[str, PublicKey]]) -> tuple[str, str]:
    """(status, name of the key that verified or '') for the image `subject_digest`."""
    if not found:
        return UNSIGNED, ""
    well_formed = False
    for item in found:
        if signed_digest(item.payload) != subject_digest:
            continue  # a signature of another image (copied next to this one): proves nothing
        try:
            raw = base64.b64decode(item.signature, validate=True)
        except (binascii.Error, ValueError):
            continue
        if item.certificate:
            try:
                carried = load_public_key(item.certificate)
            except InvalidKey:
                continue
            if not verifies(carried, item.payload, raw):
                continue  # it fails against its own certificate: tampered
        for name, key in keys:
            if verifies(key, item.payload, raw):
                return VERIFIED, name
        well_formed = True
    return (UNTRUSTED if well_formed else INVALID), ""
