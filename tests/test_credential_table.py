"""Credential creation (issue 12, item 2): the fixed cast by every kind of token request by the
answer the README promises. A credential creates only credentials whose scope, limits and
expiry lie within its own; a read-only credential creates nothing. The same rules on every path
that makes a credential: the API, the token page, robots, refresh tokens."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import transaction
from django.utils import timezone

from accounts.models import PersonalAccessToken, RefreshToken, User
from accounts.services import access_token_create
from tests.cast import CAST, build_cast
from tests.world import PASSWORD

pytestmark = pytest.mark.django_db

Y, N = 201, 403  # created; refused as wider than the credential


def _in(**delta) -> str:
    return (timezone.now() + dt.timedelta(**delta)).isoformat()


REQUESTS = {
    "read": {"scope": "read"},
    "write": {"scope": "write"},
    "delete": {"scope": "delete"},
    "limited to acme": {"scope": "read", "limits": ["acme"]},
    "limited to acme/priv-app": {"scope": "read", "limits": ["acme/priv-app"]},
    "limited to acme/pub-app": {"scope": "read", "limits": ["acme/pub-app"]},
    "limited to alice": {"scope": "read", "limits": ["alice"]},
    "expiring in 30 s": {"scope": "read", "expires_at": "+30s"},
    "expiring in 10 days": {"scope": "read", "expires_at": "+10d"},
}
# Per caller, the answer to each request in REQUESTS' order.
EXPECTED = {
    "anonymous": [401] * 9,
    "owner": [Y] * 9,
    "owner password over Basic": [Y] * 9,  # the one thing a password over Basic may do
    "member": [Y] * 9,
    "team member": [Y] * 9,
    "outsider": [Y] * 9,
    "staff": [Y] * 9,
    "robot": [401] * 9,
    "read token": [N] * 9,  # a read-only token changes nothing
    "write token": [Y, Y, N, Y, Y, Y, Y, Y, Y],
    "delete token": [Y] * 9,
    # Limited to acme/priv-app: only tokens limited to exactly that.
    "token limited to one repository": [N, N, N, N, Y, N, N, N, N],
    # Limited to acme: acme itself or repositories inside it.
    "token limited to the organization": [N, N, N, Y, Y, Y, N, N, N],
    # Expires in 45 s: only tokens expiring no later.
    "token expiring soon": [N, N, N, N, N, N, N, Y, N],
    "expired token": [401] * 9,
    "2FA owner with password": [401] * 9,  # the password does not pass 2FA outside the browser
    "2FA owner with token": [Y] * 9,
}


def _body(name: str) -> dict:
    body = {"name": name, **REQUESTS[name]}
    if body.get("expires_at") == "+30s":
        body["expires_at"] = _in(seconds=30)
    elif body.get("expires_at") == "+10d":
        body["expires_at"] = _in(days=10)
    return body


@pytest.fixture
def cast():
    return build_cast()


def test_the_table_covers_the_cast():
    assert set(EXPECTED) == set(CAST)
    assert all(len(row) == len(REQUESTS) for row in EXPECTED.values())


@pytest.mark.parametrize("caller_name", CAST)
def test_token_creation(cast, caller_name):
    _, callers = cast
    client = callers[caller_name].client()
    failures = []
    for request_name, expected in zip(REQUESTS, EXPECTED[caller_name], strict=True):
        before = PersonalAccessToken.objects.count()
        with transaction.atomic():
            response = client.post("/api/v1/access-tokens/", _body(request_name), format="json")
            created = PersonalAccessToken.objects.count() - before
            transaction.set_rollback(True)
        if response.status_code != expected or created != (1 if expected == Y else 0):
            failures.append(f"{request_name}: expected {expected}, got {response.status_code} {response.content[:160]}")
    assert failures == []


def test_a_refusal_says_why(cast):
    _, callers = cast
    response = (
        callers["token limited to one repository"]
        .client()
        .post("/api/v1/access-tokens/", {"name": "wider", "scope": "read", "limits": ["acme"]}, format="json")
    )
    assert response.status_code == 403
    assert "acme/priv-app" in response.json()["detail"]
    response = (
        callers["token expiring soon"]
        .client()
        .post("/api/v1/access-tokens/", {"name": "forever", "scope": "read"}, format="json")
    )
    assert "expire" in response.json()["detail"]
    response = callers["read token"].client().post("/api/v1/access-tokens/", {"name": "x"}, format="json")
    assert "read-only" in response.json()["detail"]


def test_a_read_only_token_cannot_revoke_but_a_write_token_can(cast):
    _, callers = cast
    olga = User.objects.get(username="olga")
    victim, _ = access_token_create(user=olga, name="victim", scope="read")
    assert callers["read token"].client().delete(f"/api/v1/access-tokens/{victim.pk}/").status_code == 403
    victim.refresh_from_db()
    assert victim.revoked_at is None
    assert callers["write token"].client().delete(f"/api/v1/access-tokens/{victim.pk}/").status_code == 204


def test_the_token_page_creates_with_the_same_rules(cast, client):
    """The browser page is a session: the user themself, any scope, limits and expiry."""
    client.force_login(User.objects.get(username="bob"))
    response = client.post(
        "/settings/tokens/", {"action": "create", "name": "laptop", "scope": "write", "expires": "30", "limits": "acme"}
    )
    assert response.status_code == 200
    token = PersonalAccessToken.objects.get(user__username="bob", name="laptop")
    assert (token.scope, token.limits) == ("write", ["acme"])
    assert dt.timedelta(days=29) < token.expires_at - timezone.now() <= dt.timedelta(days=30)


# --- refresh tokens carry the credential they stand for ----------------------------------------


def _refresh(client, settings, username: str, secret: str, client_id: str = "ci") -> dict:
    return client.post(
        "/auth/token",
        {
            "grant_type": "password",
            "service": settings.REGISTRY_SERVICE,
            "client_id": client_id,
            "access_type": "offline",
            "username": username,
            "password": secret,
            "scope": "repository:acme/priv-app:pull",
        },
    ).json()


def test_a_refresh_token_from_an_expiring_token_expires_with_it(cast, client, settings):
    _, callers = cast
    body = _refresh(client, settings, "olga", callers["token expiring soon"].secret)
    refresh = RefreshToken.objects.get(prefix=body["refresh_token"][len("dy_rt_") :][:8])
    assert refresh.access_token.name == "soon"
    assert refresh.expires_at <= refresh.access_token.expires_at
    assert refresh.password_fingerprint == ""


def test_robots_cannot_be_made_or_rotated_by_an_expiring_token_anywhere(cast):
    """The robot paths of 'every path that creates a credential': the API refuses, and so does
    the policy the page asks (the page itself is a session)."""
    from accounts.actors import actor_for_token
    from accounts.models import Organization
    from repositories import access

    _, callers = cast
    soon = PersonalAccessToken.objects.get(name="soon")
    acme = Organization.objects.get(name="acme")
    assert "expires" in access.robot_secret_refusal(actor_for_token(soon), acme)
    client = callers["token expiring soon"].client()
    assert client.post("/api/v1/orgs/acme/robots/", {"name": "forever"}, format="json").status_code == 403
    assert client.post("/api/v1/orgs/acme/robots/deployer/rotate/").status_code == 403
    never = PersonalAccessToken.objects.get(name="delete")
    assert access.robot_secret_refusal(actor_for_token(never), acme) == ""


def test_password_is_still_the_way_to_make_the_first_token(cast):
    _, callers = cast
    response = (
        callers["owner password over Basic"]
        .client()
        .post("/api/v1/access-tokens/", {"name": "first", "scope": "delete"}, format="json")
    )
    assert response.status_code == 201
    assert response.json()["token"].startswith("dy_pat_")
    assert PASSWORD not in response.content.decode()
