"""Token signatures as the real registry (2.8) checks them: by libtrust kid or by the x5c
certificate (what registry 3.x uses), and across a key rotation."""

import time
from pathlib import Path

import jwt
import pytest
import requests
from django.conf import settings

from repositories.registry import get_issuer
from repositories.registry.token import ensure_signing_key, prune_bundle, rotate_signing_key
from tests import services

pytestmark = [pytest.mark.registry]


def start_registry(workdir: Path, key_dir: Path) -> services.Registry:
    return services.portal_registry(workdir=workdir, realm="http://127.0.0.1:9/auth/token", key_dir=key_dir)


def accepted(registry: services.Registry, token: str) -> bool:
    response = requests.get(f"{registry.url}/v2/_catalog", headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert response.status_code in (200, 401), response.text
    return response.status_code == 200


def catalog_claims() -> dict:
    now = int(time.time())
    return {
        "iss": settings.TOKEN_ISSUER,
        "sub": "test",
        "aud": settings.REGISTRY_SERVICE,
        "exp": now + 300,
        "nbf": now - 5,
        "iat": now,
        "jti": str(now),
        "access": [{"type": "registry", "name": "catalog", "actions": ["*"]}],
    }


def test_registry_accepts_kid_alone_and_x5c_alone(tmp_path):
    key_dir = tmp_path / "keys"
    signing = ensure_signing_key(key_dir)
    registry = start_registry(tmp_path / "reg", key_dir)
    try:
        key = signing.private_key
        kid_only = jwt.encode(catalog_claims(), key, algorithm="ES256", headers={"kid": signing.kid})
        x5c_only = jwt.encode(catalog_claims(), key, algorithm="ES256", headers={"x5c": [signing.x5c]})
        wrong_kid = jwt.encode(catalog_claims(), key, algorithm="ES256", headers={"kid": "AAAA:" * 11 + "AAAA"})
        assert accepted(registry, kid_only)
        assert accepted(registry, x5c_only)
        assert not accepted(registry, wrong_kid)
    finally:
        registry.stop()


def test_rotation_new_key_signs_old_tokens_verify_until_pruned(tmp_path, settings):
    key_dir = tmp_path / "keys"
    settings.TOKEN_KEY_DIR = key_dir
    system = [{"type": "registry", "name": "catalog", "actions": ["*"]}]
    old_token = get_issuer().issue("test", system).token
    registry = start_registry(tmp_path / "reg1", key_dir)
    try:
        assert accepted(registry, old_token)
        rotate_signing_key(key_dir)
        new_token = get_issuer().issue("test", system).token
        assert jwt.get_unverified_header(new_token)["kid"] != jwt.get_unverified_header(old_token)["kid"]
        assert not accepted(registry, new_token)  # the running registry has not loaded the bundle
    finally:
        registry.stop()

    registry = start_registry(tmp_path / "reg2", key_dir)
    try:
        assert accepted(registry, new_token)
        assert accepted(registry, old_token)  # older certificates still verify
    finally:
        registry.stop()

    assert prune_bundle(key_dir) == 1
    registry = start_registry(tmp_path / "reg3", key_dir)
    try:
        assert accepted(registry, new_token)
        assert not accepted(registry, old_token)
    finally:
        registry.stop()
