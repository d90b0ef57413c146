"""Registry bearer tokens: scopes in, signed JWTs out. No ORM here.

Facts this follows (DESIGN.md section 2, verified against distribution 2.8.2 and 3.x):
- ES256 JWTs; header `kid` is the libtrust key id of the signing key, and `x5c` carries the
  signing certificate so registry 3.x (which no longer resolves libtrust ids) verifies it too.
- A scope is `type:name:actions`; the name may contain a `host:port` colon, so the actions are
  split off from the right. One `scope` value may hold several scopes separated by spaces.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

KEY_FILE = "signing-key.pem"
CERT_FILE = "signing-cert.pem"
BUNDLE_FILE = "rootcertbundle.pem"

REPOSITORY_ACTIONS = ("pull", "push", "delete", "*")
MAX_SCOPE_LENGTH = 512
MAX_SCOPES = 16
_NAME_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*)*$")


class ScopeError(ValueError):
    """A scope string that does not follow the token spec's grammar."""


@dataclass(frozen=True)
class Scope:
    type: str  # "repository" or "registry"
    name: str  # "acme/api", or "catalog"
    actions: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(self.actions)}"


def parse_scopes(values: list[str]) -> list[Scope]:
    """Parse the `scope` parameters of a token request. Several values, each possibly holding
    several space-separated scopes; scopes for the same resource are merged."""
    merged: dict[tuple[str, str], list[str]] = {}
    count = 0
    for value in values:
        if len(value) > MAX_SCOPE_LENGTH:
            raise ScopeError("scope parameter is too long")
        for item in value.split():
            count += 1
            if count > MAX_SCOPES:
                raise ScopeError(f"at most {MAX_SCOPES} scopes per request")
            scope = _parse_one(item)
            actions = merged.setdefault((scope.type, scope.name), [])
            actions.extend(a for a in scope.actions if a not in actions)
    return [Scope(t, n, tuple(a)) for (t, n), a in merged.items()]


def _parse_one(item: str) -> Scope:
    type_, sep, rest = item.partition(":")
    name, sep2, actions_part = rest.rpartition(":")
    if not sep or not sep2 or not type_ or not name:
        raise ScopeError(f"malformed scope {item!r}: expected type:name:actions")
    # The resource type may carry a class, e.g. repository(plugin); we only serve images.
    if type_ not in ("repository", "registry"):
        raise ScopeError(f"unknown resource type {type_!r}")
    actions = tuple(a for a in actions_part.split(",") if a)
    if not actions:
        raise ScopeError(f"scope {item!r} names no action")
    if type_ == "registry":
        if name != "catalog" or any(a != "*" for a in actions):
            raise ScopeError(f"unknown registry scope {item!r}")
    else:
        if len(name) > 255 or not _NAME_RE.match(name):
            raise ScopeError(f"invalid repository name {name!r}")
        unknown = [a for a in actions if a not in REPOSITORY_ACTIONS]
        if unknown:
            raise ScopeError(f"unknown action {unknown[0]!r} in scope {item!r}")
    return Scope(type_, name, actions)


def libtrust_key_id(public_key: ec.EllipticCurvePublicKey) -> str:
    """The key id distribution 2.8 looks tokens' `kid` up by: base32 of the first 240 bits of
    SHA-256 over the DER SubjectPublicKeyInfo, in groups of four joined by colons."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    b32 = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(b32[i : i + 4] for i in range(0, len(b32), 4))


@dataclass
class SigningKey:
    private_key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    kid: str = field(init=False)
    x5c: str = field(init=False)

    def __post_init__(self) -> None:
        self.kid = libtrust_key_id(self.private_key.public_key())
        self.x5c = base64.b64encode(self.certificate.public_bytes(serialization.Encoding.DER)).decode()


def generate_signing_key(common_name: str = "dockyard token signer") -> SigningKey:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return SigningKey(key, cert)


def ensure_signing_key(directory: Path) -> SigningKey:
    """Load the signing key from `directory`, creating it (and the registry's root certificate
    bundle) on first use. Older certificates already in the bundle are kept so tokens signed by
    a previous key still verify until an operator removes them."""
    directory.mkdir(parents=True, exist_ok=True)
    key_path, cert_path, bundle_path = directory / KEY_FILE, directory / CERT_FILE, directory / BUNDLE_FILE
    if not key_path.exists() or not cert_path.exists():
        _write_key(directory, generate_signing_key())
    signing = load_signing_key(directory)
    pem_cert = signing.certificate.public_bytes(serialization.Encoding.PEM)
    bundle = bundle_path.read_bytes() if bundle_path.exists() else b""
    if pem_cert not in bundle:
        bundle_path.write_bytes(pem_cert + bundle)
    return signing


def _write_key(directory: Path, signing: SigningKey) -> None:
    pem_key = signing.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key_tmp, cert_tmp = directory / f"{KEY_FILE}.tmp", directory / f"{CERT_FILE}.tmp"
    key_tmp.write_bytes(pem_key)
    key_tmp.chmod(0o600)
    cert_tmp.write_bytes(signing.certificate.public_bytes(serialization.Encoding.PEM))
    cert_tmp.rename(directory / CERT_FILE)
    key_tmp.rename(directory / KEY_FILE)


def rotate_signing_key(directory: Path) -> SigningKey:
    """Make a new key the signer. Its certificate goes first in the bundle; the old ones stay,
    so tokens the old key signed keep verifying until `prune_bundle`. The registry reads the
    bundle at start: add the new certificate there (restart it) before tokens need it."""
    ensure_signing_key(directory)
    signing = generate_signing_key()
    bundle_path = directory / BUNDLE_FILE
    bundle_path.write_bytes(signing.certificate.public_bytes(serialization.Encoding.PEM) + bundle_path.read_bytes())
    _write_key(directory, signing)
    return signing


def prune_bundle(directory: Path) -> int:
    """Keep only the current signing certificate in the bundle; returns how many were removed."""
    bundle_path = directory / BUNDLE_FILE
    before = bundle_path.read_bytes().count(b"BEGIN CERTIFICATE")
    current = load_signing_key(directory).certificate.public_bytes(serialization.Encoding.PEM)
    bundle_path.write_bytes(current)
    return before - 1


def load_signing_key(directory: Path) -> SigningKey:
    key = serialization.load_pem_private_key((directory / KEY_FILE).read_bytes(), password=None)
    cert = x509.load_pem_x509_certificate((directory / CERT_FILE).read_bytes())
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("the token signing key must be an EC P-256 key")
    return SigningKey(key, cert)


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_in: int
    issued_at: str


class TokenIssuer:
    def __init__(self, signing_key: SigningKey, *, issuer: str, service: str, lifetime: int) -> None:
        self.signing_key = signing_key
        self.issuer = issuer
        self.service = service
        self.lifetime = max(60, lifetime)

    def issue(self, subject: str, access: list[dict]) -> IssuedToken:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.service,
            "exp": now + self.lifetime,
            "nbf": now - 5,  # tolerate small clock skew between portal and registry
            "iat": now,
            "jti": secrets.token_urlsafe(16),
            "access": access,
        }
        headers = {"kid": self.signing_key.kid, "x5c": [self.signing_key.x5c]}
        token = jwt.encode(claims, self.signing_key.private_key, algorithm="ES256", headers=headers)
        issued_at = dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return IssuedToken(token=token, expires_in=self.lifetime, issued_at=issued_at)
