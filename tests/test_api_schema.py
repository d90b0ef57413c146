"""The OpenAPI schema and its docs page, then schemathesis against the schema on a seeded
database: no 500, no response that breaks the schema."""

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from rest_framework.settings import api_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from accounts.services import access_token_create
from portal.wsgi import application
from tests.world import build_world


def test_schema_and_docs_pages_load_with_local_assets(client, db):
    schema = client.get("/api/v1/schema/")
    assert schema.status_code == 200
    assert b"/api/v1/repositories/{namespace}/{name}/tags/" in schema.content
    docs = client.get("/api/v1/docs/")
    assert docs.status_code == 200
    assert b"swagger-ui" in docs.content
    assert b"cdn." not in docs.content and b"jsdelivr" not in docs.content  # served from this host


schema = schemathesis.openapi.from_dict(SchemaGenerator().get_schema(request=None, public=True))
schema.app = application


@pytest.fixture
def seeded(db, monkeypatch):
    # Calling the WSGI app directly would close the test's connection at the end of each
    # request, as Django does between real requests; its test client avoids that the same way.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    monkeypatch.setitem(api_settings.DEFAULT_THROTTLE_RATES, "anon", "100000/min")
    monkeypatch.setitem(api_settings.DEFAULT_THROTTLE_RATES, "user", "100000/min")
    world = build_world()
    _, secret = access_token_create(user=world.actors["staff"].user, name="fuzz", scope="delete")
    yield {"Authorization": f"Bearer {secret}"}
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@schema.parametrize()
@settings(
    max_examples=25,
    derandomize=True,  # the same cases every run in CI; drop it locally to explore
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api_conforms_to_its_schema(case, seeded):
    case.call_and_validate(headers=seeded, checks=[not_a_server_error, response_schema_conformance])


def test_the_schema_documents_the_tag_detail_shape():
    """Issue 15's API shape, which scripts rely on, is in the schema."""
    generated = SchemaGenerator().get_schema(request=None, public=True)
    path = generated["paths"]["/api/v1/repositories/{namespace}/{name}/tags/{tag}/"]["get"]
    ref = path["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    components = generated["components"]["schemas"]
    detail = components[ref]["properties"]
    for field in [
        "digest",
        "media_type",
        "platforms",
        "tags_sharing_digest",
        "pushed_at",
        "pushed_by",
        "last_pulled_at",
        "pull_commands",
        "signature",
        "attestations",
    ]:
        assert field in detail, field
    platform = components[detail["platforms"]["items"]["$ref"].rsplit("/", 1)[1]]["properties"]
    assert {"os", "architecture", "variant", "digest", "size", "created", "layers", "labels"} <= set(platform)
    layer = components[platform["layers"]["items"]["$ref"].rsplit("/", 1)[1]]["properties"]
    assert set(layer) == {"digest", "size", "created_by"}
    verdict = components[detail["signature"]["$ref"].rsplit("/", 1)[1]]["properties"]
    status = verdict["status"]
    status = components[status["$ref"].rsplit("/", 1)[1]] if "$ref" in status else status
    assert set(status["enum"]) == {"verified", "untrusted", "invalid", "unsigned"}
    attestation = components[detail["attestations"]["items"]["$ref"].rsplit("/", 1)[1]]["properties"]
    assert {"type", "download_url"} <= set(attestation)
    keys = generated["paths"]["/api/v1/namespaces/{namespace}/signing-keys/"]
    assert {"get", "post"} <= set(keys)


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/namespaces/alice/immutable-tags/abc/",
        "/api/v1/nonexistent/",
        "/api/v1/namespaces/alice/retention-rules/x/",
    ],
)
def test_a_path_under_the_api_that_names_nothing_answers_json(db, alice, path):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_login(alice)
    for method in ("get", "delete", "post"):
        answer = getattr(client, method)(path)
        assert answer.status_code == 404 and answer["Content-Type"] == "application/json", (method, path)
        assert "detail" in answer.json()
    page = client.get("/no-such-page/")  # people still get the site's page
    assert page.status_code == 404 and page["Content-Type"].startswith("text/html")
