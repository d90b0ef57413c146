"""How the portal talks to the registry: the token issuer and a client for the system identity.

Both are built from settings on first use and kept per process; settings are read at call time
so tests and management commands can point them elsewhere.
"""

from __future__ import annotations

import functools
from pathlib import Path

from django.conf import settings

from repositories.registry.client import RegistryClient
from repositories.registry.token import KEY_FILE, TokenIssuer, ensure_signing_key


@functools.lru_cache(maxsize=8)
def _issuer(key_dir: str, key_mtime: int, issuer: str, service: str, lifetime: int) -> TokenIssuer:
    return TokenIssuer(ensure_signing_key(Path(key_dir)), issuer=issuer, service=service, lifetime=lifetime)


def get_issuer() -> TokenIssuer:
    """The issuer for the current signing key. The key file's mtime is part of the cache key,
    so a rotated key signs from the next token on, in every process, without a restart."""
    key_dir = Path(settings.TOKEN_KEY_DIR)
    try:
        mtime = (key_dir / KEY_FILE).stat().st_mtime_ns
    except FileNotFoundError:
        mtime = 0
    return _issuer(str(key_dir), mtime, settings.TOKEN_ISSUER, settings.REGISTRY_SERVICE, settings.TOKEN_LIFETIME)


def system_token(scopes: tuple[str, ...]) -> tuple[str, int]:
    """Mint a token for the portal's own identity in-process: no round trip to /auth/token.
    The system identity is granted what it asks for (it is the portal itself)."""
    from repositories.registry.token import parse_scopes

    access = [{"type": s.type, "name": s.name, "actions": list(s.actions)} for s in parse_scopes(list(scopes))]
    issued = get_issuer().issue(settings.SYSTEM_IDENTITY, access)
    return issued.token, issued.expires_in


@functools.cache
def _client(base_url: str, timeout: int) -> RegistryClient:
    return RegistryClient(base_url, system_token, timeout=timeout)


def get_client() -> RegistryClient:
    return _client(settings.REGISTRY_URL, settings.REGISTRY_TIMEOUT)


@functools.lru_cache(maxsize=4)
def _bundle_keys(bundle_path: str, mtime: int) -> tuple:
    from cryptography import x509

    data = Path(bundle_path).read_bytes()
    return tuple(cert.public_key() for cert in x509.load_pem_x509_certificates(data))


def read_registry_token(token: str) -> dict | None:
    """The claims of a registry token this portal issued (signed by a key in the bundle the
    registry trusts, for this service, not expired), or None. For the front's checks: what a
    request may do is what its token says."""
    import jwt

    from repositories.registry.token import BUNDLE_FILE

    bundle = Path(settings.TOKEN_KEY_DIR) / BUNDLE_FILE
    try:
        keys = _bundle_keys(str(bundle), bundle.stat().st_mtime_ns)
    except (OSError, ValueError):
        return None
    for key in keys:
        try:
            return jwt.decode(
                token, key, algorithms=["ES256"], audience=settings.REGISTRY_SERVICE, issuer=settings.TOKEN_ISSUER
            )
        except jwt.InvalidSignatureError:
            continue
        except jwt.PyJWTError:
            return None
    return None
