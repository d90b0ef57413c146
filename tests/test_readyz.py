import pytest

pytestmark = pytest.mark.django_db


def test_readyz_names_what_is_not_ready(client, settings):
    from tests.services import free_port

    settings.REGISTRY_URL = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    response = client.get("/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"]["ok"] and checks["redis"]["ok"], checks
    assert checks["registry"] == {"ok": False, "ms": checks["registry"]["ms"], "error": "ConnectionError"}


@pytest.mark.registry
def test_readyz_is_ready_with_everything_up(client, registry):
    response = client.get("/readyz")
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "ready"


def test_every_answer_carries_the_security_headers(client):
    response = client.get("/healthz")
    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
