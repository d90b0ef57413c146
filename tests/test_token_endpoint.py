"""The token endpoint's core: what it grants, and that the real registry accepts its JWTs."""

import base64

import jwt
import pytest
import requests
from django.conf import settings

from accounts.models import Namespace, Visibility
from repositories.models import Repository

pytestmark = pytest.mark.django_db
SERVICE = "dockyard-registry"


def basic(username: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{secret}".encode()).decode()


def claims(response) -> dict:
    return jwt.decode(response.json()["token"], options={"verify_signature": False})


def get_token(client, *scopes, auth=None, service=SERVICE):
    headers = {"HTTP_AUTHORIZATION": auth} if auth else {}
    return client.get("/auth/token", {"service": service, "scope": list(scopes)}, **headers)


def test_owner_gets_full_access_to_own_namespace(client, alice):
    from tests.conftest import PASSWORD

    response = get_token(client, "repository:alice/app:pull,push,delete", auth=basic("alice", PASSWORD))
    assert response.status_code == 200
    body = claims(response)
    assert body["sub"] == "alice"
    assert body["aud"] == SERVICE
    assert body["iss"] == settings.TOKEN_ISSUER
    assert body["access"] == [{"type": "repository", "name": "alice/app", "actions": ["pull", "push", "delete"]}]
    assert response.json()["expires_in"] >= 60


def test_user_gets_nothing_in_someone_elses_namespace(client, alice, bob):
    from tests.conftest import PASSWORD

    response = get_token(client, "repository:alice/app:pull,push", auth=basic("bob", PASSWORD))
    assert response.status_code == 200
    assert claims(response)["access"] == []


def test_anonymous_pulls_public_but_not_private(client, alice):
    ns = Namespace.objects.get(name="alice")
    Repository.objects.create(namespace=ns, name="open", visibility=Visibility.PUBLIC)
    Repository.objects.create(namespace=ns, name="closed", visibility=Visibility.PRIVATE)
    response = get_token(client, "repository:alice/open:pull,push", "repository:alice/closed:pull")
    assert response.status_code == 200
    body = claims(response)
    assert body["sub"] == ""
    assert body["access"] == [{"type": "repository", "name": "alice/open", "actions": ["pull"]}]


def test_token_sub_is_the_authenticated_user_not_the_account_parameter(client, alice):
    from tests.conftest import PASSWORD

    response = client.get(
        "/auth/token", {"service": SERVICE, "account": "admin"}, HTTP_AUTHORIZATION=basic("alice", PASSWORD)
    )
    assert claims(response)["sub"] == "alice"


def test_login_without_scope_answers_200_for_valid_credentials(client, alice):
    from tests.conftest import PASSWORD

    response = get_token(client, auth=basic("alice", PASSWORD))
    assert response.status_code == 200
    assert claims(response)["access"] == []


def test_bad_password_gets_401_with_json(client, alice):
    response = get_token(client, "repository:alice/app:pull", auth=basic("alice", "wrong"))
    assert response.status_code == 401
    assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"


@pytest.mark.parametrize("header", ["Basic !!!", "Basic " + base64.b64encode(b"nocolon").decode(), "Bearer x", "junk"])
def test_garbage_authorization_gets_401(client, header):
    assert get_token(client, "repository:a/b:pull", auth=header).status_code == 401


def test_wrong_service_gets_400(client):
    response = get_token(client, "repository:a/b:pull", service="elsewhere")
    assert response.status_code == 400
    assert "service" in response.json()["errors"][0]["message"]


def test_malformed_scope_gets_400(client):
    response = get_token(client, "repository:a/b")
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "INVALID_SCOPE"


def test_catalog_is_not_granted_to_ordinary_users(client, alice):
    from tests.conftest import PASSWORD

    response = get_token(client, "registry:catalog:*", auth=basic("alice", PASSWORD))
    assert claims(response)["access"] == []


@pytest.mark.registry
def test_real_registry_accepts_the_token_and_refuses_an_empty_one(transactional_db, client, registry, alice):
    from tests.conftest import PASSWORD

    granted = get_token(client, "repository:alice/never-pushed:pull", auth=basic("alice", PASSWORD)).json()["token"]
    response = requests.get(
        f"{registry.url}/v2/alice/never-pushed/tags/list", headers={"Authorization": f"Bearer {granted}"}, timeout=5
    )
    # Authorised: the registry looked for the repository and did not find it.
    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "NAME_UNKNOWN"

    empty = get_token(client, "repository:alice/app:pull", auth=basic("bob", "x")).status_code
    assert empty == 401
    anonymous = get_token(client, "repository:alice/never-pushed:pull").json()["token"]
    response = requests.get(
        f"{registry.url}/v2/alice/never-pushed/tags/list", headers={"Authorization": f"Bearer {anonymous}"}, timeout=5
    )
    assert response.status_code == 401
    assert 'scope="repository:alice/never-pushed:pull"' in response.headers["WWW-Authenticate"]
