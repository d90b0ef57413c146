"""The token service beyond the table: create-on-push, OAuth2 (POST) with refresh tokens, the
password cache, failure throttling and malformed input."""

import base64
from unittest import mock

import jwt
import pytest

from accounts.models import Namespace, RefreshToken, User, Visibility
from accounts.services import access_token_revoke, refresh_token_revoke
from audit.models import AuditEvent
from repositories.models import Repository
from tests.world import PASSWORD, build_world

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    return build_world()


def basic(username: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{secret}".encode()).decode()


def get(client, settings, *scopes, auth=None, **params):
    headers = {"HTTP_AUTHORIZATION": auth} if auth else {}
    return client.get("/auth/token", {"service": settings.REGISTRY_SERVICE, "scope": list(scopes), **params}, **headers)


def access_of(response) -> dict:
    claims = jwt.decode(response.json()["access_token"], options={"verify_signature": False})
    return {entry["name"]: entry["actions"] for entry in claims["access"]}


# --- create on push ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("username", "repository", "created"),
    [
        ("alice", "alice/new-tool", True),
        ("olga", "acme/new-app", True),
        ("gina", "acme/priv-new", True),  # the builders' rule priv-* gives write
        ("gina", "acme/other-new", False),
        ("bob", "acme/new-app", False),  # a member without a grant or rule
        ("charlie", "alice/new-tool", False),
        ("alice", "nobody/new", False),  # no such namespace
    ],
)
def test_a_token_request_grants_push_to_a_missing_repository_but_creates_nothing(
    world, client, settings, username, repository, created
):
    """The policy decides for repositories that do not exist yet; the repository itself is
    created when the registry reports the push (issue 12, item 8): a GET writes nothing."""
    audit_before = AuditEvent.objects.count()
    response = get(client, settings, f"repository:{repository}:pull,push", auth=basic(username, PASSWORD))
    assert response.status_code == 200
    granted = access_of(response).get(repository, [])
    ns, name = repository.split("/", 1)
    assert not Repository.objects.filter(namespace__name=ns, name=name).exists()
    assert AuditEvent.objects.count() == audit_before
    if created:
        assert granted == ["pull", "push"]
    else:
        assert "push" not in granted


def test_a_repository_created_by_a_push_takes_the_namespace_default_visibility(world):
    from repositories import sync

    acme = Namespace.objects.get(name="acme")
    acme.default_visibility = Visibility.PUBLIC
    acme.save()
    created = sync.repository_for_push(namespace=acme, name="open-new", actor_name="olga")
    assert created.visibility == Visibility.PUBLIC
    audit = AuditEvent.objects.get(action="repository.create", target_name="acme/open-new")
    assert (audit.actor_name, audit.actor.username) == ("olga", "olga")
    assert audit.data["reason"] == "created by push"
    private = sync.repository_for_push(namespace=Namespace.objects.get(name="alice"), name="new", actor_name="alice")
    assert private.visibility == Visibility.PRIVATE


def test_pull_alone_creates_nothing(world, client, settings):
    get(client, settings, "repository:alice/ghost:pull", auth=basic("alice", PASSWORD))
    assert not Repository.objects.filter(name="ghost").exists()


def test_read_only_token_cannot_create_by_push(world, client, settings):
    secret = world.credentials["read-only token"][1]
    response = get(client, settings, "repository:alice/by-token:push", auth=basic("alice", secret))
    assert access_of(response) == {}
    assert not Repository.objects.filter(name="by-token").exists()


# --- catalog, lifetime ---------------------------------------------------------------------


def test_catalog_only_for_staff(world, client, settings):
    assert access_of(get(client, settings, "registry:catalog:*", auth=basic("sam", PASSWORD))) == {"catalog": ["*"]}
    assert access_of(get(client, settings, "registry:catalog:*", auth=basic("olga", PASSWORD))) == {}


def test_the_catalog_is_not_for_a_staff_token_that_is_limited_or_read_only(world, client, settings):
    """Every name, private ones included: a staff token limited to one repository, or read-only,
    must not list them (found by the black-box review of issue 12)."""
    from accounts.models import User
    from accounts.services import access_token_create

    sam = User.objects.get(username="sam")
    limited = access_token_create(user=sam, name="one", scope="delete", limits=["alice/pub-tool"])[1]
    read_only = access_token_create(user=sam, name="ro", scope="read")[1]
    full = access_token_create(user=sam, name="all", scope="delete")[1]
    for secret, expected in ((limited, {}), (read_only, {}), (full, {"catalog": ["*"]})):
        assert access_of(get(client, settings, "registry:catalog:*", auth=basic("sam", secret))) == expected


def test_star_action_needs_admin(world, client, settings):
    response = get(client, settings, "repository:acme/priv-app:*", auth=basic("erin", PASSWORD))
    assert access_of(response) == {}
    response = get(client, settings, "repository:acme/priv-app:*", auth=basic("frank", PASSWORD))
    assert access_of(response) == {"acme/priv-app": ["*"]}


def test_token_lifetime_is_configurable(world, client, settings):
    settings.TOKEN_LIFETIME = 900
    response = get(client, settings, "repository:acme/pub-app:pull")
    claims = jwt.decode(response.json()["token"], options={"verify_signature": False})
    assert response.json()["expires_in"] == 900
    assert claims["exp"] - claims["iat"] == 900


# --- OAuth2 POST and refresh tokens --------------------------------------------------------


def post(client, settings, **form):
    return client.post("/auth/token", {"service": settings.REGISTRY_SERVICE, "client_id": "containerd", **form})


def test_oauth_password_grant_with_offline_access_returns_a_refresh_token(world, client, settings):
    response = post(
        client,
        settings,
        grant_type="password",
        username="erin",
        password=PASSWORD,
        scope="repository:acme/priv-app:pull,push",
        access_type="offline",
    )
    assert response.status_code == 200
    body = response.json()
    assert access_of(response) == {"acme/priv-app": ["pull", "push"]}
    assert body["scope"] == "repository:acme/priv-app:pull,push"
    assert body["refresh_token"].startswith("dy_rt_")
    stored = RefreshToken.objects.get(user__username="erin")
    assert stored.client_id == "containerd"
    assert body["refresh_token"] not in stored.token_hash  # only a hash is kept

    again = post(
        client,
        settings,
        grant_type="refresh_token",
        refresh_token=body["refresh_token"],
        scope="repository:acme/priv-app:pull",
    )
    assert again.status_code == 200
    assert access_of(again) == {"acme/priv-app": ["pull"]}
    assert "refresh_token" not in again.json()


def test_revoked_refresh_token_is_refused(world, client, settings):
    refresh = post(
        client, settings, grant_type="password", username="erin", password=PASSWORD, access_type="offline"
    ).json()["refresh_token"]
    refresh_token_revoke(refresh=RefreshToken.objects.get(user__username="erin"), actor_name="erin")
    response = post(client, settings, grant_type="refresh_token", refresh_token=refresh)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_grant"


def test_refresh_token_keeps_the_cap_of_its_access_token_and_dies_with_it(world, client, settings):
    secret = world.credentials["read-only token"][1]
    refresh = post(
        client, settings, grant_type="password", username="alice", password=secret, access_type="offline"
    ).json()["refresh_token"]
    response = post(
        client,
        settings,
        grant_type="refresh_token",
        refresh_token=refresh,
        scope="repository:alice/priv-tool:pull,push",
    )
    assert access_of(response) == {"alice/priv-tool": ["pull"]}
    access_token_revoke(token=world.actors["read-only token"].token, actor=None)
    assert post(client, settings, grant_type="refresh_token", refresh_token=refresh).status_code == 401


def test_refresh_token_dies_when_the_user_is_deactivated(world, client, settings):
    refresh = post(
        client, settings, grant_type="password", username="erin", password=PASSWORD, access_type="offline"
    ).json()["refresh_token"]
    User.objects.filter(username="erin").update(is_active=False)
    assert post(client, settings, grant_type="refresh_token", refresh_token=refresh).status_code == 401


def test_docker_login_gets_an_identity_token_with_offline_token(world, client, settings):
    response = get(
        client, settings, auth=basic("alice", PASSWORD), offline_token="true", client_id="docker", account="alice"
    )
    assert response.status_code == 200
    assert response.json()["refresh_token"].startswith("dy_rt_")
    assert "refresh_token" not in get(client, settings, offline_token="true").json()  # anonymous: none


@pytest.mark.parametrize(
    ("form", "status", "error"),
    [
        ({"grant_type": "password", "username": "erin", "password": "nope"}, 401, "invalid_grant"),
        ({"grant_type": "refresh_token", "refresh_token": "dy_rt_" + "x" * 40}, 401, "invalid_grant"),
        ({"grant_type": "client_credentials"}, 400, "unsupported_grant_type"),
        ({"grant_type": "password", "client_id": ""}, 400, "invalid_request"),
        ({"grant_type": "password", "scope": "repository:A!:pull"}, 400, "invalid_scope"),
    ],
)
def test_oauth_errors(world, client, settings, form, status, error):
    response = post(client, settings, **form)
    assert response.status_code == status
    assert response.json()["error"] == error


# --- credential cost and throttling --------------------------------------------------------


def test_a_repeated_password_is_not_hashed_again(world, client, settings):
    with mock.patch.object(User, "check_password", autospec=True, side_effect=User.check_password) as check:
        for _ in range(3):
            assert (
                get(client, settings, "repository:alice/priv-tool:pull", auth=basic("alice", PASSWORD)).status_code
                == 200
            )
    assert check.call_count == 1


def test_a_changed_password_ends_the_remembered_one(world, client, settings):
    assert get(client, settings, auth=basic("alice", PASSWORD)).status_code == 200
    alice = User.objects.get(username="alice")
    alice.set_password("a brand new password")
    alice.save()
    assert get(client, settings, auth=basic("alice", PASSWORD)).status_code == 401
    assert get(client, settings, auth=basic("alice", "a brand new password")).status_code == 200


def test_a_deactivated_user_is_refused_even_when_remembered(world, client, settings):
    assert get(client, settings, auth=basic("alice", PASSWORD)).status_code == 200
    User.objects.filter(username="alice").update(is_active=False)
    assert get(client, settings, auth=basic("alice", PASSWORD)).status_code == 401


def test_failed_logins_are_throttled_per_username_and_audited(world, client, settings):
    settings.AUTH_FAILURES_PER_USERNAME = 3
    for _ in range(3):
        assert get(client, settings, auth=basic("alice", "wrong")).status_code == 401
    throttled = get(client, settings, auth=basic("alice", PASSWORD))
    assert throttled.status_code == 429
    assert int(throttled["Retry-After"]) > 0
    assert AuditEvent.objects.filter(action="auth.failed", actor_name="alice").count() == 3
    # Another user from the same address is not locked out by alice's failures.
    assert get(client, settings, auth=basic("olga", PASSWORD)).status_code == 200


def test_failed_logins_are_throttled_per_address(world, client, settings):
    settings.AUTH_FAILURES_PER_ADDRESS = 4
    for name in ["u1", "u2", "u3", "u4"]:
        assert get(client, settings, auth=basic(name, "wrong")).status_code == 401
    assert get(client, settings, auth=basic("olga", PASSWORD)).status_code == 429


def test_token_secrets_are_checked_without_the_password_hasher(world, client, settings):
    secret = world.credentials["read-only token"][1]
    with mock.patch.object(User, "check_password", autospec=True) as check:
        assert get(client, settings, auth=basic("alice", secret)).status_code == 200
    check.assert_not_called()


def test_a_token_presented_under_another_username_is_refused(world, client, settings):
    secret = world.credentials["read-only token"][1]
    assert get(client, settings, auth=basic("olga", secret)).status_code == 401


# --- malformed input -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"scope": "repository:acme/pub-app"},
        {"scope": "repository:acme/pub-app:pull:extra:junk"},
        {"scope": "plugin:acme/pub-app:pull"},
        {"scope": "repository:ACME/App:pull"},
        {"scope": "repository:acme/../etc:pull"},
        {"scope": "repository:acme/pub-app:pull " * 20},
        {"scope": "x" * 2000},
        {"scope": "repository:acme/pub-app:pull", "account": "a" * 5000},
        {"scope": "\x00\x01"},
    ],
)
def test_malformed_requests_get_400_and_no_token(world, client, settings, params):
    response = client.get("/auth/token", {"service": settings.REGISTRY_SERVICE, **params})
    assert response.status_code == 400
    assert "token" not in response.json()
    assert response.json()["errors"][0]["message"]


def test_repeated_scopes_merge_into_one_grant(world, client, settings):
    response = get(
        client,
        settings,
        "repository:acme/pub-app:pull",
        "repository:acme/pub-app:pull,push",
        auth=basic("olga", PASSWORD),
    )
    assert access_of(response) == {"acme/pub-app": ["pull", "push"]}


@pytest.mark.parametrize(
    "header",
    ["Basic", "Basic " + "A" * 3000, "Basic " + base64.b64encode(b"\xff\xfe:x").decode(), "Digest abc", "Basic a b c"],
)
def test_garbage_authorization_headers_get_401(world, client, settings, header):
    response = get(client, settings, "repository:acme/pub-app:pull", auth=header)
    assert response.status_code == 401
    assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"


def test_oversized_credentials_get_401(world, client, settings):
    assert get(client, settings, auth=basic("alice", "p" * 1000)).status_code == 401
    assert get(client, settings, auth=basic("a" * 500, PASSWORD)).status_code == 401


def test_other_methods_are_refused(client):
    assert client.put("/auth/token").status_code == 405
