"""Organizations, members, teams, access rules, robots, users and the audit log."""

import pytest
from rest_framework.test import APIClient

from accounts.models import Membership, Robot
from audit.models import AuditEvent
from tests.world import build_world

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    return build_world()


def as_user(world, name: str) -> APIClient:
    client = APIClient()
    client.force_authenticate(world.actors[name].user)
    return client


def test_an_owner_manages_members_teams_rules_and_robots(world):
    owner = as_user(world, "org owner")
    assert (
        owner.post("/api/v1/orgs/acme/members/", {"username": "charlie", "role": "member"}, format="json").status_code
        == 201
    )
    assert owner.patch("/api/v1/orgs/acme/members/charlie/", {"role": "owner"}, format="json").json()["role"] == "owner"
    team = owner.post("/api/v1/orgs/acme/teams/", {"name": "ops", "description": "on call"}, format="json")
    assert team.status_code == 201
    assert owner.post("/api/v1/orgs/acme/teams/ops/members/", {"username": "charlie"}, format="json").status_code == 201
    assert owner.get("/api/v1/orgs/acme/teams/ops/members/").json() == [{"username": "charlie"}]
    rule = owner.post(
        "/api/v1/orgs/acme/access-rules/", {"team": "ops", "pattern": "ops-*", "level": "write"}, format="json"
    )
    assert rule.status_code == 201
    assert rule.json()["pattern"] == "ops-*"
    robot = owner.post("/api/v1/orgs/acme/robots/", {"name": "ci"}, format="json")
    assert robot.status_code == 201
    secret = robot.json()["secret"]
    assert secret.startswith("dy_robot_")
    assert "secret" not in owner.get("/api/v1/orgs/acme/robots/").json()[0]
    rotated = owner.post("/api/v1/orgs/acme/robots/ci/rotate/").json()["secret"]
    assert rotated != secret
    assert Robot.objects.get(name="ci").secret_prefix == rotated[len("dy_robot_") :][:8]
    assert owner.delete(f"/api/v1/orgs/acme/access-rules/{rule.json()['id']}/").status_code == 204
    assert owner.delete("/api/v1/orgs/acme/teams/ops/members/charlie/").status_code == 204
    assert owner.delete("/api/v1/orgs/acme/teams/ops/").status_code == 204
    actions = set(AuditEvent.objects.filter(namespace="acme").values_list("action", flat=True))
    assert {
        "membership.add",
        "membership.change",
        "team.create",
        "access_rule.create",
        "robot.create",
        "robot.rotate",
    } <= actions


def test_members_see_internals_outsiders_do_not_and_only_owners_change(world):
    member = as_user(world, "org member without grants")
    assert member.get("/api/v1/orgs/acme/members/").status_code == 200
    assert member.get("/api/v1/orgs/acme/teams/").json()["count"] == 4
    assert member.post("/api/v1/orgs/acme/teams/", {"name": "rogue"}, format="json").status_code == 403
    outsider = as_user(world, "outsider")
    assert outsider.get("/api/v1/orgs/acme/").status_code == 200  # the organization itself is public
    assert outsider.get("/api/v1/orgs/acme/members/").status_code == 404
    assert outsider.get("/api/v1/orgs/acme/access-rules/").status_code == 404
    assert APIClient().get("/api/v1/orgs/acme/teams/").status_code == 404


def test_the_last_owner_cannot_leave(world):
    owner = as_user(world, "org owner")
    response = owner.delete("/api/v1/orgs/acme/members/olga/")
    assert response.status_code == 400
    assert "owner" in str(response.json())
    assert owner.patch("/api/v1/orgs/acme/members/olga/", {"role": "member"}, format="json").status_code == 400
    assert Membership.objects.get(user__username="olga").role == "owner"


def test_create_organization_and_refuse_taken_names(world):
    charlie = as_user(world, "outsider")
    made = charlie.post("/api/v1/orgs/", {"name": "newco", "display_name": "New Co"}, format="json")
    assert made.status_code == 201
    assert made.json()["display_name"] == "New Co"
    assert charlie.post("/api/v1/orgs/", {"name": "alice"}, format="json").status_code == 400
    assert charlie.post("/api/v1/orgs/", {"name": "Bad!"}, format="json").status_code == 400
    assert APIClient().post("/api/v1/orgs/", {"name": "anon"}, format="json").status_code in (401, 403)


def test_organization_with_repositories_cannot_be_deleted(world):
    response = as_user(world, "org owner").delete("/api/v1/orgs/acme/")
    assert response.status_code == 400


def test_user_profile_and_audit_visibility(world):
    assert APIClient().get("/api/v1/users/alice/").json()["username"] == "alice"
    assert APIClient().get("/api/v1/users/nobody/").status_code == 404
    owner_view = as_user(world, "org owner").get("/api/v1/audit/?namespace=acme").json()
    assert owner_view["count"] > 0
    assert as_user(world, "org member without grants").get("/api/v1/audit/?namespace=acme").json()["count"] == 0
    assert as_user(world, "staff").get("/api/v1/audit/").json()["count"] >= owner_view["count"]
    assert APIClient().get("/api/v1/audit/").status_code in (401, 403)
