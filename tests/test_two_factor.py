"""Two-factor authentication means two factors (issue 12, items 3 and 4): once a user has an
authenticator, the password opens nothing outside the browser (the token endpoint, the OAuth2
form, API Basic), with a message that points to personal access tokens; refresh tokens born from
a password end when the password or the 2FA setup changes, expire, and answer only their client.
In the browser a verified user turns TOTP on (the QR code renders) and signs in with a code, in
the portal and in the admin."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import struct
import time

import jwt
import pytest
from allauth.account.models import EmailAddress
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import RefreshToken
from accounts.services import access_token_create, user_create
from audit.models import AuditEvent
from tests.cast import enable_totp

PASSWORD = "a long enough password 42"


def totp(secret: str, used: set[int]) -> str:
    """RFC 6238, as an authenticator app computes it (SHA-1, 6 digits, 30 s), for a time step
    within the accepted window (MFA_TOTP_TOLERANCE = 1) whose code was not used yet: a used code
    stays used, and a test must not wait 30 s for the next one."""
    now = int(time.time()) // 30
    counter = next(now + offset for offset in (0, 1, -1) if now + offset not in used)
    used.add(counter)
    digest = hmac.new(base64.b32decode(secret, casefold=True), struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = (struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF) % 10**6
    return f"{value:06d}"


def basic(username: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{secret}".encode()).decode()


def token_get(client, settings, auth: str, **params):
    query = {"service": settings.REGISTRY_SERVICE, "scope": "repository:vera/app:pull,push", **params}
    return client.get("/auth/token", query, HTTP_AUTHORIZATION=auth)


def oauth(client, settings, **form):
    return client.post(
        "/auth/token",
        {"service": settings.REGISTRY_SERVICE, "client_id": "buildkit", "scope": "repository:vera/app:pull", **form},
    )


@pytest.fixture
def vera(db):
    user = user_create(username="vera", email="vera@example.org", password=PASSWORD)
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    return user


# --- outside the browser -------------------------------------------------------------------


@pytest.mark.django_db
def test_with_2fa_the_password_is_refused_everywhere_outside_the_browser(vera, client, settings):
    # Before 2FA the password works (and is remembered by the password cache).
    assert jwt.decode(
        token_get(client, settings, basic("vera", PASSWORD)).json()["token"], options={"verify_signature": False}
    )["access"]
    enable_totp(vera)

    refused = token_get(client, settings, basic("vera", PASSWORD))
    assert refused.status_code == 401
    assert "personal access token" in refused.json()["errors"][0]["message"]
    form = oauth(client, settings, grant_type="password", username="vera", password=PASSWORD)
    assert (form.status_code, form.json()["error"]) == (401, "invalid_grant")
    assert "two-factor" in form.json()["error_description"]
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=basic("vera", PASSWORD))
    made = api.post("/api/v1/access-tokens/", {"name": "escalate", "scope": "delete"}, format="json")
    assert made.status_code == 401
    assert "personal access token" in made.json()["detail"]
    assert not vera.access_tokens.exists()
    assert AuditEvent.objects.filter(action="auth.password_refused", actor=vera).count() == 3

    # A personal access token still works, at the registry and in the API.
    _, secret = access_token_create(user=vera, name="cli", scope="write")
    granted = token_get(client, settings, basic("vera", secret))
    claims = jwt.decode(granted.json()["token"], options={"verify_signature": False})
    assert claims["access"] == [{"type": "repository", "name": "vera/app", "actions": ["pull", "push"]}]


@pytest.mark.django_db
def test_a_wrong_password_of_a_2fa_user_is_an_ordinary_failure(vera, client, settings):
    enable_totp(vera)
    response = token_get(client, settings, basic("vera", "wrong"))
    assert response.status_code == 401
    assert "invalid username or password" in response.json()["errors"][0]["message"]


# --- refresh tokens --------------------------------------------------------------------------


def _issue_refresh(client, settings, client_id: str = "buildkit") -> str:
    body = oauth(
        client,
        settings,
        grant_type="password",
        username="vera",
        password=PASSWORD,
        access_type="offline",
        client_id=client_id,
    ).json()
    return body["refresh_token"]


def _use(client, settings, refresh: str, client_id: str = "buildkit"):
    return oauth(client, settings, grant_type="refresh_token", refresh_token=refresh, client_id=client_id)


@pytest.mark.django_db
def test_a_refresh_token_answers_only_its_client(vera, client, settings):
    refresh = _issue_refresh(client, settings)
    assert _use(client, settings, refresh).status_code == 200
    stolen = _use(client, settings, refresh, client_id="someone-else")
    assert (stolen.status_code, stolen.json()["error"]) == (401, "invalid_grant")


@pytest.mark.django_db
def test_a_password_change_ends_refresh_tokens_born_from_the_password(vera, client, settings):
    refresh = _issue_refresh(client, settings)
    vera.set_password("another long password 43")
    vera.save()
    assert _use(client, settings, refresh).status_code == 401


@pytest.mark.django_db
def test_turning_on_2fa_ends_refresh_tokens_born_from_the_password(vera, client, settings):
    refresh = _issue_refresh(client, settings)
    enable_totp(vera)
    assert _use(client, settings, refresh).status_code == 401


@pytest.mark.django_db
def test_refresh_tokens_expire(vera, client, settings):
    refresh = _issue_refresh(client, settings)
    row = RefreshToken.objects.get(user=vera)
    assert dt.timedelta(days=29) < row.expires_at - timezone.now() <= dt.timedelta(days=settings.REFRESH_TOKEN_DAYS)
    RefreshToken.objects.filter(pk=row.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    assert _use(client, settings, refresh).status_code == 401


@pytest.mark.django_db
def test_docker_login_without_a_client_id_gets_no_refresh_token(vera, client, settings):
    body = token_get(client, settings, basic("vera", PASSWORD), offline_token="true").json()
    assert "refresh_token" not in body
    body = token_get(client, settings, basic("vera", PASSWORD), offline_token="true", client_id="docker").json()
    assert body["refresh_token"].startswith("dy_rt_")
    assert RefreshToken.objects.get(user=vera).client_id == "docker"


# --- in the browser --------------------------------------------------------------------------


def _sign_in(page, base: str, username: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.fill("input[name=login]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("main button[type=submit]")


@pytest.mark.browser
def test_a_verified_user_turns_on_totp_and_signs_in_with_a_code(transactional_db, live_server, page):
    base = live_server.url
    user = user_create(username="vera", email="vera@example.org", password=PASSWORD, is_staff=True)
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    _sign_in(page, base, "vera")
    page.wait_for_url(f"{base}/")

    page.goto(f"{base}/accounts/2fa/totp/activate/")
    if "/reauthenticate/" in page.url:  # changing 2FA asks for the password again
        page.fill("main input[name=password]", PASSWORD)
        page.click("main button[type=submit]")
        page.wait_for_url(lambda url: "/2fa/totp/activate/" in url)
    assert page.locator("img[src^='data:image/svg+xml']").count() == 1  # the QR code (needs qrcode)
    secret = page.input_value("#authenticator_secret")
    used: set[int] = set()
    page.fill("input[name=code]", totp(secret, used))
    page.click("main button[type=submit]")
    page.wait_for_url(lambda url: "/activate/" not in url)
    assert user.authenticator_set.filter(type="totp").exists()

    # A new browser session: the password alone is not enough, the code is.
    page.context.clear_cookies()
    _sign_in(page, base, "vera")
    page.wait_for_url(f"{base}/accounts/2fa/authenticate/")
    page.fill("input[name=code]", totp(secret, used))
    page.click("main button[type=submit]")
    page.wait_for_url(f"{base}/")
    assert "vera" in page.inner_text("header")

    # The admin signs in through the same login, 2FA included (Django's own form would not ask).
    page.context.clear_cookies()
    page.goto(f"{base}/admin/")
    page.wait_for_url(lambda url: "/accounts/login/" in url)
    page.fill("input[name=login]", "vera")
    page.fill("input[name=password]", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url(lambda url: "/accounts/2fa/authenticate/" in url)
    page.fill("input[name=code]", totp(secret, used))
    page.click("main button[type=submit]")
    page.wait_for_url(f"{base}/admin/")
    assert "Site administration" in page.content() or "Dockyard" in page.title()
