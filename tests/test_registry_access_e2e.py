"""The policy table's representative cells, with the real registry and skopeo: docker-style
clients are allowed or refused exactly as the table says."""

import pytest

from audit.models import AuditEvent
from repositories.models import Repository
from repositories.oci_layout import write_image
from tests import services
from tests.helpers import inspect, push
from tests.world import PASSWORD, build_world

pytestmark = [pytest.mark.registry]


@pytest.fixture
def world(transactional_db, registry, tmp_path):
    world = build_world()
    image = tmp_path / "seed"
    write_image(image, "1.0", content="seed")
    for repo in ["acme/pub-app", "acme/priv-app"]:
        result = push(image, "1.0", registry.host, f"{repo}:1.0", creds=f"olga:{PASSWORD}")
        assert result.returncode == 0, result.stderr
    world.image = image
    return world


def creds(world, actor: str) -> str | None:
    pair = world.credentials[actor]
    return None if pair is None else f"{pair[0]}:{pair[1]}"


def test_anonymous_pulls_public_but_not_private(world, registry):
    assert inspect(registry.host, "acme/pub-app:1.0", creds=None).returncode == 0
    refused = inspect(registry.host, "acme/priv-app:1.0", creds=None)
    assert refused.returncode != 0
    assert "unauthorized" in refused.stderr.lower() or "denied" in refused.stderr.lower()


def test_outsider_is_refused_on_private(world, registry):
    assert inspect(registry.host, "acme/priv-app:1.0", creds=creds(world, "outsider")).returncode != 0


def test_team_read_pulls_but_cannot_push(world, registry):
    reader = creds(world, "team read")
    assert inspect(registry.host, "acme/priv-app:1.0", creds=reader).returncode == 0
    assert push(world.image, "1.0", registry.host, "acme/priv-app:by-reader", creds=reader).returncode != 0


def test_team_write_pushes(world, registry):
    result = push(world.image, "1.0", registry.host, "acme/priv-app:by-writer", creds=creds(world, "team write"))
    assert result.returncode == 0, result.stderr


def test_read_only_token_cannot_push(world, registry):
    token = creds(world, "read-only token")
    assert push(world.image, "1.0", registry.host, "alice/priv-tool:by-token", creds=token).returncode != 0
    assert (
        push(world.image, "1.0", registry.host, "alice/priv-tool:by-owner", creds=f"alice:{PASSWORD}").returncode == 0
    )
    assert inspect(registry.host, "alice/priv-tool:by-owner", creds=token).returncode == 0


def test_robot_with_a_grant_pushes(world, registry):
    result = push(world.image, "1.0", registry.host, "acme/priv-app:by-robot", creds=creds(world, "robot"))
    assert result.returncode == 0, result.stderr


def test_delete_needs_admin(world, registry):
    writer, admin = creds(world, "team write"), creds(world, "team admin")
    assert push(world.image, "1.0", registry.host, "acme/priv-app:doomed", creds=writer).returncode == 0
    ref = f"docker://{registry.host}/acme/priv-app:doomed"
    refused = services.skopeo("delete", "--tls-verify=false", "--creds", writer, ref)
    assert refused.returncode != 0
    deleted = services.skopeo("delete", "--tls-verify=false", "--creds", admin, ref)
    assert deleted.returncode == 0, deleted.stderr
    assert inspect(registry.host, "acme/priv-app:doomed", creds=admin).returncode != 0


def test_create_on_push_for_the_namespace_owner_only(world, registry, celery_worker):
    fresh = push(world.image, "1.0", registry.host, "alice/fresh-app:1.0", creds=f"alice:{PASSWORD}")
    assert fresh.returncode == 0, fresh.stderr
    # Created when the registry reports the push, by the pusher, with one audit row.
    services.wait_until(
        lambda: Repository.objects.filter(namespace__name="alice", name="fresh-app").exists(),
        timeout=30,
        what="the repository created by the push event",
    )
    created = AuditEvent.objects.get(action="repository.create", target_name="alice/fresh-app")
    assert created.actor_name == "alice"
    refused = push(world.image, "1.0", registry.host, "acme/bobs-app:1.0", creds=f"bob:{PASSWORD}")
    assert refused.returncode != 0
    registry.drain_notifications()
    assert not Repository.objects.filter(namespace__name="acme", name="bobs-app").exists()
