"""THE organization table (issue 12): the fixed cast by every organization endpoint by the answer
the README promises, through HTTP. Managing an organization (members, teams, rules, robots,
webhooks, settings, its audit log) is an admin act: an owner (or staff) with a session or a
token of scope delete that reaches the organization, whatever the HTTP method. Each request runs
in its own rolled-back transaction, so every cell starts from the same world."""

from __future__ import annotations

import pytest
from django.db import transaction

from accounts.directory import group_mapping_create
from accounts.models import GroupMapping, Level, Organization, Team
from repositories import policies, retention, trust
from repositories.models import AccessRule, ImmutableTagRule, RetentionRule, SigningKey
from tests.cast import CAST, build_cast
from tests.oci_push import new_key, public_pem

pytestmark = pytest.mark.django_db

CI_KEY = public_pem(new_key("ed25519"))
OK = "ok"  # a 2xx, or for DELETE /orgs/acme/ the documented 400 (it still has repositories)

# How each kind of endpoint answers each cast member.
MANAGE = {
    "anonymous": 401,
    "owner": OK,
    "owner password over Basic": 403,  # a password over Basic only creates tokens
    "member": 403,
    "team member": 403,
    "outsider": 403,
    "staff": OK,
    "robot": 401,  # robots pull and push; the API is for people
    "read token": 403,
    "write token": 403,  # issue 12, item 1: write is not admin
    "delete token": OK,
    "token limited to one repository": 403,
    "token limited to the organization": OK,
    "token expiring soon": OK,
    "expired token": 401,
    "2FA owner with password": 401,
    "2FA owner with token": OK,
}
# A team is internal: who may not see the organization's internals finds no such team.
MANAGE_TEAM = {**MANAGE, "anonymous": 404, "outsider": 404, "token limited to one repository": 404}
# Making or rotating a robot also hands out a secret that never expires.
ROBOT_SECRET = {**MANAGE, "token expiring soon": 403}
INTERNALS = {  # members, teams and rules: the organization's members see them
    "anonymous": 404,
    "owner": OK,
    "owner password over Basic": 403,
    "member": OK,
    "team member": OK,
    "outsider": 404,
    "staff": OK,
    "robot": 401,
    "read token": OK,
    "write token": OK,
    "delete token": OK,
    "token limited to one repository": 404,
    "token limited to the organization": OK,
    "token expiring soon": OK,
    "expired token": 401,
    "2FA owner with password": 401,
    "2FA owner with token": OK,
}
PUBLIC = {
    **{name: OK for name in CAST},
    "owner password over Basic": 403,
    "robot": 401,
    "expired token": 401,
    "2FA owner with password": 401,
}
CREATE_ORGANIZATION = {
    **MANAGE,
    "member": OK,
    "team member": OK,
    "outsider": OK,
    "token limited to the organization": 403,  # a new namespace lies outside its limits
}

# Garbage collection (issue 16) is for staff only: signed in, or a token of scope delete with no
# limits (the cast's tokens are olga's, who is not staff).
STAFF_ONLY = {
    **{name: 403 for name in CAST},
    "anonymous": 401,
    "staff": OK,
    "robot": 401,
    "expired token": 401,
    "2FA owner with password": 401,
}

ENDPOINTS = [
    ("GET", "/api/v1/orgs/acme/", None, PUBLIC),
    ("GET", "/api/v1/orgs/acme/members/", None, INTERNALS),
    ("GET", "/api/v1/orgs/acme/teams/", None, INTERNALS),
    ("GET", "/api/v1/orgs/acme/teams/readers/members/", None, INTERNALS),
    ("GET", "/api/v1/orgs/acme/access-rules/", None, INTERNALS),
    ("GET", "/api/v1/orgs/acme/activity/", None, INTERNALS),
    ("GET", "/api/v1/orgs/acme/robots/", None, MANAGE),
    ("GET", "/api/v1/orgs/acme/webhooks/", None, MANAGE),
    ("PATCH", "/api/v1/orgs/acme/", {"description": "changed"}, MANAGE),
    ("DELETE", "/api/v1/orgs/acme/", None, MANAGE),
    ("POST", "/api/v1/orgs/acme/members/", {"username": "charlie", "role": "owner"}, MANAGE),
    ("PATCH", "/api/v1/orgs/acme/members/bob/", {"role": "owner"}, MANAGE),
    ("DELETE", "/api/v1/orgs/acme/members/bob/", None, MANAGE),
    ("POST", "/api/v1/orgs/acme/teams/", {"name": "ops"}, MANAGE),
    ("PATCH", "/api/v1/orgs/acme/teams/readers/", {"description": "x"}, MANAGE_TEAM),
    ("DELETE", "/api/v1/orgs/acme/teams/readers/", None, MANAGE_TEAM),
    ("POST", "/api/v1/orgs/acme/teams/readers/members/", {"username": "bob"}, MANAGE_TEAM),
    ("DELETE", "/api/v1/orgs/acme/teams/readers/members/dan/", None, MANAGE_TEAM),
    ("POST", "/api/v1/orgs/acme/access-rules/", {"team": "readers", "pattern": "*", "level": "admin"}, MANAGE),
    ("DELETE", "/api/v1/orgs/acme/access-rules/{rule}/", None, MANAGE),
    ("POST", "/api/v1/orgs/acme/robots/", {"name": "ci"}, ROBOT_SECRET),
    ("POST", "/api/v1/orgs/acme/robots/deployer/rotate/", None, ROBOT_SECRET),
    ("DELETE", "/api/v1/orgs/acme/robots/deployer/", None, MANAGE),
    ("POST", "/api/v1/orgs/acme/webhooks/", {"name": "ci", "url": "https://hooks.example.org/x"}, MANAGE),
    ("POST", "/api/v1/orgs/", {"name": "newco"}, CREATE_ORGANIZATION),
    # Trusted signing keys (issue 15) are the namespace's admins' business.
    ("GET", "/api/v1/namespaces/acme/signing-keys/", None, MANAGE),
    ("POST", "/api/v1/namespaces/acme/signing-keys/", {"name": "ci", "public_key": CI_KEY}, MANAGE),
    ("DELETE", "/api/v1/namespaces/acme/signing-keys/{key}/", None, MANAGE),
    # Immutable tags (issue 16): the same.
    ("GET", "/api/v1/namespaces/acme/immutable-tags/", None, MANAGE),
    ("POST", "/api/v1/namespaces/acme/immutable-tags/", {"pattern": "release-*"}, MANAGE),
    ("DELETE", "/api/v1/namespaces/acme/immutable-tags/{immutable}/", None, MANAGE),
    ("GET", "/api/v1/namespaces/acme/storage/", None, MANAGE),
    ("PUT", "/api/v1/namespaces/acme/storage/", {"quota_bytes": 10**12}, MANAGE),
    ("GET", "/api/v1/namespaces/acme/retention-rules/", None, MANAGE),
    ("POST", "/api/v1/namespaces/acme/retention-rules/", {"tag_pattern": "pr-*", "keep_most_recent": 5}, MANAGE),
    ("PATCH", "/api/v1/namespaces/acme/retention-rules/{retention}/", {"keep_most_recent": 3}, MANAGE),
    ("DELETE", "/api/v1/namespaces/acme/retention-rules/{retention}/", None, MANAGE),
    ("GET", "/api/v1/namespaces/acme/retention-runs/", None, MANAGE),
    ("POST", "/api/v1/namespaces/acme/retention-runs/", {"dry_run": True}, MANAGE),
    ("GET", "/api/v1/admin/gc/", None, STAFF_ONLY),
    # Group mappings (issue 18): an owner's act, like members and teams.
    ("GET", "/api/v1/orgs/acme/group-mappings/", None, MANAGE),
    ("POST", "/api/v1/orgs/acme/group-mappings/", {"source": "oidc:corp", "group": "devs", "team": "mapped"}, MANAGE),
    ("POST", "/api/v1/orgs/acme/group-mappings/", {"source": "ldap", "group": "cn=admins", "owner": True}, MANAGE),
    ("DELETE", "/api/v1/orgs/acme/group-mappings/{mapping}/", None, MANAGE),
]


def _ok(method: str, path: str, status: int) -> bool:
    if method == "DELETE" and path == "/api/v1/orgs/acme/":
        return status == 400  # allowed, and refused for its repositories: nothing was deleted
    return 200 <= status < 300


@pytest.fixture
def cast(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    world, callers = build_cast()
    acme = Organization.objects.get(name="acme")
    trust.signing_key_add(namespace=acme.namespace, name="release", public_key=public_pem(new_key("ecdsa")), actor=None)
    policies.immutable_rule_create(namespace=acme.namespace, tag_pattern="v*", actor=None)
    retention.rule_save(namespace=acme.namespace, actor=None, tag_pattern="nightly-*", keep_most_recent=10)
    mapped = Team.objects.create(organization=acme, name="mapped")
    group_mapping_create(actor=None, source="ldap", group="cn=ops", organization=acme, team=mapped, owner=False)
    return world, callers


def test_the_table_covers_the_cast_and_every_endpoint():
    assert all(set(expected) == set(CAST) for *_, expected in ENDPOINTS)
    assert len(ENDPOINTS) >= 25


@pytest.mark.parametrize("caller_name", CAST)
def test_organization_endpoints(cast, caller_name):
    _, callers = cast
    client = callers[caller_name].client()
    rule = AccessRule.objects.get(organization__name="acme", pattern="priv-*")
    key = SigningKey.objects.get(namespace__name="acme", name="release")
    immutable = ImmutableTagRule.objects.get(namespace__name="acme", tag_pattern="v*")
    kept = RetentionRule.objects.get(namespace__name="acme", tag_pattern="nightly-*")
    mapping = GroupMapping.objects.get(organization__name="acme", group="cn=ops")
    failures = []
    for method, path, body, expected_by_caller in ENDPOINTS:
        path = path.format(rule=rule.pk, key=key.pk, immutable=immutable.pk, retention=kept.pk, mapping=mapping.pk)
        expected = expected_by_caller[caller_name]
        with transaction.atomic():
            response = getattr(client, method.lower())(path, body, format="json")
            transaction.set_rollback(True)  # the next cell starts from the same world
        got_ok = _ok(method, path, response.status_code)
        if (expected == OK) != got_ok or (expected != OK and response.status_code != expected):
            failures.append(
                f"{method} {path}: expected {expected}, got {response.status_code} {response.content[:200]}"
            )
    assert failures == []


def test_a_write_token_cannot_turn_itself_into_delete_rights(cast):
    """The attack of issue 12, item 1: with a write token, make a rule giving the owner's own
    team admin on everything, then delete. Both steps are refused."""
    _, callers = cast
    client = callers["write token"].client()
    team = Team.objects.get(organization__name="acme", name="readers")
    response = client.post(
        "/api/v1/orgs/acme/access-rules/", {"team": team.name, "pattern": "*", "level": "admin"}, format="json"
    )
    assert response.status_code == 403
    assert "scope delete" in response.json()["detail"]
    assert not AccessRule.objects.filter(pattern="*", level=Level.ADMIN).exists()
    assert client.post("/api/v1/orgs/acme/robots/", {"name": "escalate"}, format="json").status_code == 403
    assert client.patch("/api/v1/orgs/acme/members/bob/", {"role": "owner"}, format="json").status_code == 403
