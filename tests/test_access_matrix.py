"""THE policy table: every actor by repository by action, through the policy module and through
the token endpoint (the actions granted in the JWT). One table, several surfaces."""

import base64

import jwt
import pytest

from accounts.models import Level
from repositories import access
from tests.world import EXPECTED, REFUSED_CREDENTIALS, REPOS, actions_for, build_world

pytestmark = pytest.mark.django_db
CELLS = [(actor, i) for actor in EXPECTED for i in range(len(REPOS))]


@pytest.fixture
def world():
    return build_world()


def test_the_table_covers_every_actor_the_issue_names():
    assert len(EXPECTED) >= 15
    assert all(len(row) == len(REPOS) for row in EXPECTED.values())


@pytest.mark.parametrize(("actor_name", "repo_index"), CELLS, ids=[f"{a}-{REPOS[i]}" for a, i in CELLS])
def test_policy(world, actor_name, repo_index):
    repo = world.repos[REPOS[repo_index]]
    decision = access.decide(world.actors[actor_name], repo.namespace, repo.name, repo)
    granted = [a for a in ("pull", "push", "delete") if decision.allows(access.ACTION_LEVEL[a])]
    assert granted == actions_for(EXPECTED[actor_name][repo_index]), decision.reason
    assert decision.reason  # every answer says why


def test_policy_explains_its_answers(world):
    repo = world.repos["acme/priv-app"]
    cases = {
        "team write": "team writers grant (write)",
        "rule by pattern": "team builders rule priv-* (write)",
        "org owner": "owner of organization acme",
        "robot": "robot grant (write)",
        "inactive user": "user is inactive",
        "expired token": "token has expired",
        "revoked token": "token is revoked",
        "outsider": "no access",
    }
    for actor_name, reason in cases.items():
        assert access.decide(world.actors[actor_name], repo.namespace, repo.name, repo).reason == reason
    capped = access.decide(world.actors["read-only token"], world.repos["alice/priv-tool"].namespace, "priv-tool")
    assert capped.reason == "owner of personal namespace, capped by token scope read"
    assert capped.level == Level.READ


def _basic(username: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{secret}".encode()).decode()


@pytest.mark.parametrize("actor_name", [a for a in EXPECTED if a != "system"])
def test_token_endpoint(world, client, settings, actor_name):
    _token_table_row(world, client, settings, actor_name)


@pytest.mark.parametrize("actor_name", [a for a in EXPECTED if a != "system"])
def test_token_endpoint_remembered(transactional_db, client, settings, actor_name):
    """The same row on committed data with the token server's memory of decisions on
    (repositories/generation.py): asked twice, the second answer comes from memory and still
    matches the table; a refused credential is never remembered."""
    from repositories.generation import DECISIONS

    settings.TOKEN_DECISION_CACHE_SECONDS = 60
    world = build_world()
    _token_table_row(world, client, settings, actor_name)
    hits = DECISIONS.hits
    _token_table_row(world, client, settings, actor_name)
    assert DECISIONS.hits == hits + (0 if actor_name in REFUSED_CREDENTIALS else 1)


def _token_table_row(world, client, settings, actor_name):
    credentials = world.credentials[actor_name]
    headers = {"HTTP_AUTHORIZATION": _basic(*credentials)} if credentials else {}
    scopes = [f"repository:{repo}:pull,push,delete" for repo in REPOS]
    response = client.get("/auth/token", {"service": settings.REGISTRY_SERVICE, "scope": scopes}, **headers)
    if actor_name in REFUSED_CREDENTIALS:
        assert response.status_code == 401
        return
    assert response.status_code == 200
    claims = jwt.decode(response.json()["token"], options={"verify_signature": False})
    granted = {entry["name"]: entry["actions"] for entry in claims["access"]}
    for i, repo in enumerate(REPOS):
        assert granted.get(repo, []) == actions_for(EXPECTED[actor_name][i]), repo
    expected_sub = "" if credentials is None else credentials[0]
    assert claims["sub"] == expected_sub


def test_visible_repositories_agree_with_the_table(world):
    for actor_name, row in EXPECTED.items():
        visible = {r.full_name for r in access.visible_repositories(world.actors[actor_name])}
        expected = {repo for repo, code in zip(REPOS, row, strict=True) if "r" in code}
        assert visible & set(REPOS) == expected, actor_name
