"""The fixed cast of the HTTP table tests (issue 12): every kind of caller a surface must answer
the way the README promises, built on the policy world (tests/world.py).

acme is owned by olga; bob is a member without grants; dan is in team readers (read on
acme/priv-app); charlie is an outsider; sam is staff; acme+deployer is a robot; the tokens are
olga's (so any refusal is the credential's, never the holder's); tina is a second owner of acme
with two-factor authentication.
"""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass

from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import Membership, User
from accounts.services import access_token_create, membership_set, user_create
from tests.world import PASSWORD, World, build_world


@dataclass(frozen=True)
class Caller:
    """How one cast member presents itself to the API."""

    kind: str  # "anonymous", "session", "basic", "bearer"
    username: str = ""
    secret: str = ""

    def client(self) -> APIClient:
        client = APIClient()
        if self.kind == "session":
            client.force_login(User.objects.get(username=self.username))
        elif self.kind == "basic":
            raw = base64.b64encode(f"{self.username}:{self.secret}".encode()).decode()
            client.credentials(HTTP_AUTHORIZATION=f"Basic {raw}")
        elif self.kind == "bearer":
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.secret}")
        return client


CAST = [
    "anonymous",
    "owner",
    "owner password over Basic",
    "member",
    "team member",
    "outsider",
    "staff",
    "robot",
    "read token",
    "write token",
    "delete token",
    "token limited to one repository",
    "token limited to the organization",
    "token expiring soon",
    "expired token",
    "2FA owner with password",
    "2FA owner with token",
]


def enable_totp(user: User) -> str:
    """Give `user` a TOTP authenticator; returns its secret."""
    secret = generate_totp_secret()
    TOTP.activate(user, secret)
    return secret


def build_cast() -> tuple[World, dict[str, Caller]]:
    world = build_world()
    olga = User.objects.get(username="olga")

    def token(name: str, scope: str, *, limits=None, expires_at=None) -> str:
        return access_token_create(user=olga, name=name, scope=scope, limits=limits, expires_at=expires_at)[1]

    tina = user_create(username="tina", email="tina@example.org", password=PASSWORD)
    from accounts.models import Organization

    membership_set(
        organization=Organization.objects.get(name="acme"), user=tina, role=Membership.Role.OWNER, actor=olga
    )
    enable_totp(tina)
    tina_token = access_token_create(user=tina, name="cli", scope="delete")[1]
    robot_user, robot_secret = world.credentials["robot"]
    callers = {
        "anonymous": Caller("anonymous"),
        "owner": Caller("session", "olga"),
        "owner password over Basic": Caller("basic", "olga", PASSWORD),
        "member": Caller("session", "bob"),
        "team member": Caller("session", "dan"),
        "outsider": Caller("session", "charlie"),
        "staff": Caller("session", "sam"),
        "robot": Caller("basic", robot_user, robot_secret),
        "read token": Caller("bearer", secret=token("read", "read")),
        "write token": Caller("bearer", secret=token("write", "write")),
        "delete token": Caller("bearer", secret=token("delete", "delete")),
        "token limited to one repository": Caller(
            "bearer", secret=token("one repo", "delete", limits=["acme/priv-app"])
        ),
        "token limited to the organization": Caller("bearer", secret=token("acme only", "delete", limits=["acme"])),
        "token expiring soon": Caller(
            "bearer", secret=token("soon", "delete", expires_at=timezone.now() + dt.timedelta(seconds=45))
        ),
        "expired token": Caller(
            "bearer", secret=token("old", "delete", expires_at=timezone.now() - dt.timedelta(days=1))
        ),
        "2FA owner with password": Caller("basic", "tina", PASSWORD),
        "2FA owner with token": Caller("bearer", secret=tina_token),
    }
    assert list(callers) == CAST
    return world, callers
