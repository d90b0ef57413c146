"""The access-policy world: one organization, one personal namespace, every kind of actor.

Repositories: acme/pub-app (public), acme/priv-app (private), alice/pub-tool (public),
alice/priv-tool (private). The expected outcomes live in EXPECTED, one row per actor.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.utils import timezone

from accounts.models import Level, Membership, Namespace, Visibility
from accounts.services import (
    access_token_create,
    access_token_revoke,
    membership_set,
    organization_create,
    robot_create,
    team_create,
    team_member_add,
    user_create,
)
from repositories.access import ANONYMOUS, SYSTEM, Actor
from repositories.models import AccessRule, Repository, RepositoryGrant

PASSWORD = "correct horse battery staple"
REPOS = ["acme/pub-app", "acme/priv-app", "alice/pub-tool", "alice/priv-tool"]

# Allowed actions per repository, in REPOS order: r = pull, w = push, d = delete.
EXPECTED = {
    "anonymous": ["r", "-", "r", "-"],
    "outsider": ["r", "-", "r", "-"],
    "personal owner": ["r", "-", "rwd", "rwd"],
    "org owner": ["rwd", "rwd", "r", "-"],
    "org member without grants": ["r", "-", "r", "-"],
    "team read": ["r", "r", "r", "-"],
    "team write": ["r", "rw", "r", "-"],
    "team admin": ["r", "rwd", "r", "-"],
    "rule by pattern": ["r", "rw", "r", "-"],
    "robot": ["r", "rw", "r", "-"],
    "staff": ["rwd", "rwd", "rwd", "rwd"],
    "inactive user": ["-", "-", "-", "-"],
    "read-only token": ["r", "-", "r", "r"],
    "expired token": ["-", "-", "-", "-"],
    "revoked token": ["-", "-", "-", "-"],
    "token limited to alice/priv-tool": ["r", "-", "r", "rwd"],
    "system": ["rwd", "rwd", "rwd", "rwd"],
}
# Actors whose credentials the token endpoint refuses outright (401), whatever the scope.
REFUSED_CREDENTIALS = {"inactive user", "expired token", "revoked token"}


@dataclass
class World:
    actors: dict[str, Actor] = field(default_factory=dict)
    # (username, secret) each actor presents to the token endpoint; None for anonymous.
    credentials: dict[str, tuple[str, str] | None] = field(default_factory=dict)
    repos: dict[str, Repository] = field(default_factory=dict)


def build_world() -> World:
    world = World()
    users = {
        name: user_create(username=name, email=f"{name}@example.org", password=PASSWORD)
        for name in ["alice", "olga", "bob", "dan", "erin", "frank", "gina", "charlie", "ivan"]
    }
    users["sam"] = user_create(username="sam", password=PASSWORD, is_staff=True)
    acme = organization_create(name="acme", owner=users["olga"])
    for name in ["bob", "dan", "erin", "frank", "gina", "ivan"]:
        membership_set(organization=acme, user=users[name], role=Membership.Role.MEMBER, actor=users["olga"])

    acme_ns, alice_ns = Namespace.objects.get(name="acme"), Namespace.objects.get(name="alice")
    for full in REPOS:
        ns = acme_ns if full.startswith("acme/") else alice_ns
        name = full.split("/", 1)[1]
        visibility = Visibility.PUBLIC if name.startswith("pub-") else Visibility.PRIVATE
        world.repos[full] = Repository.objects.create(namespace=ns, name=name, visibility=visibility)
    priv_app = world.repos["acme/priv-app"]

    for team_name, member, level in [
        ("readers", "dan", Level.READ),
        ("writers", "erin", Level.WRITE),
        ("admins", "frank", Level.ADMIN),
    ]:
        team = team_create(organization=acme, name=team_name, actor=users["olga"])
        team_member_add(team=team, user=users[member], actor=users["olga"])
        RepositoryGrant.objects.create(repository=priv_app, team=team, level=level)
        if team_name == "writers":
            team_member_add(team=team, user=users["ivan"], actor=users["olga"])
    builders = team_create(organization=acme, name="builders", actor=users["olga"])
    team_member_add(team=builders, user=users["gina"], actor=users["olga"])
    AccessRule.objects.create(organization=acme, team=builders, pattern="priv-*", level=Level.WRITE)

    robot, robot_secret = robot_create(organization=acme, name="deployer", actor=users["olga"])
    RepositoryGrant.objects.create(repository=priv_app, robot=robot, level=Level.WRITE)

    users["ivan"].is_active = False
    users["ivan"].save()

    read_token, read_secret = access_token_create(user=users["alice"], name="ci read", scope="read")
    expired, expired_secret = access_token_create(
        user=users["alice"], name="old", scope="write", expires_at=timezone.now() - dt.timedelta(days=1)
    )
    revoked, revoked_secret = access_token_create(user=users["alice"], name="leaked", scope="write")
    access_token_revoke(token=revoked, actor=users["alice"])
    revoked.refresh_from_db()
    limited, limited_secret = access_token_create(user=users["alice"], name="one repo", scope="delete")
    limited.limits = ["alice/priv-tool"]
    limited.save()

    def user(name: str) -> Actor:
        return Actor(kind="user", user=users[name])

    world.actors = {
        "anonymous": ANONYMOUS,
        "outsider": user("charlie"),
        "personal owner": user("alice"),
        "org owner": user("olga"),
        "org member without grants": user("bob"),
        "team read": user("dan"),
        "team write": user("erin"),
        "team admin": user("frank"),
        "rule by pattern": user("gina"),
        "robot": Actor(kind="robot", robot=robot),
        "staff": user("sam"),
        "inactive user": user("ivan"),
        "read-only token": Actor(kind="user", user=users["alice"], token=read_token),
        "expired token": Actor(kind="user", user=users["alice"], token=expired),
        "revoked token": Actor(kind="user", user=users["alice"], token=revoked),
        "token limited to alice/priv-tool": Actor(kind="user", user=users["alice"], token=limited),
        "system": SYSTEM,
    }
    world.credentials = {
        "anonymous": None,
        "outsider": ("charlie", PASSWORD),
        "personal owner": ("alice", PASSWORD),
        "org owner": ("olga", PASSWORD),
        "org member without grants": ("bob", PASSWORD),
        "team read": ("dan", PASSWORD),
        "team write": ("erin", PASSWORD),
        "team admin": ("frank", PASSWORD),
        "rule by pattern": ("gina", PASSWORD),
        "robot": ("acme+deployer", robot_secret),
        "staff": ("sam", PASSWORD),
        "inactive user": ("ivan", PASSWORD),
        "read-only token": ("alice", read_secret),
        "expired token": ("alice", expired_secret),
        "revoked token": ("alice", revoked_secret),
        "token limited to alice/priv-tool": ("alice", limited_secret),
    }
    return world


def actions_for(code: str) -> list[str]:
    return [action for letter, action in (("r", "pull"), ("w", "push"), ("d", "delete")) if letter in code]
