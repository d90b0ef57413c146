"""Who is asking: the Actor every surface hands to the policy (repositories.access).

An actor is a holder (a user, a robot, the portal's own system identity, or nobody) and the
credential it presented (a session, a password, a personal access token, a refresh token, a
robot secret). The credential matters as much as the holder: a token caps what its owner may do
(scope), where (limits) and until when (expiry).

accounts.credentials builds actors from secrets; pages use actor_for_user (a signed-in session),
the API its own adapter. Nothing here queries the database.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone

from accounts.models import Level, PersonalAccessToken, Robot, TokenScope, User

# The most each token scope allows (Docker Hub's scopes: read = pull, write = + push,
# delete = + delete, which is the admin level).
TOKEN_SCOPE_CAP = {TokenScope.READ: Level.READ, TokenScope.WRITE: Level.WRITE, TokenScope.DELETE: Level.ADMIN}


class Via:
    """How the actor proved who it is."""

    NONE = ""  # anonymous, or the portal itself
    SESSION = "session"  # a browser session (passed 2FA when the user has it)
    PASSWORD = "password"  # a password outside the browser (refused once the user has 2FA)
    TOKEN = "token"  # a personal access token
    REFRESH = "refresh"  # a refresh token, standing for the credential it was issued for
    ROBOT = "robot"  # a robot's secret


@dataclass(frozen=True)
class Actor:
    """Who is asking, and through which credential."""

    kind: str  # "anonymous", "user", "robot", "system"
    user: User | None = None
    robot: Robot | None = None
    token: PersonalAccessToken | None = None
    via: str = Via.NONE

    @property
    def name(self) -> str:
        if self.kind == "system":
            return settings.SYSTEM_IDENTITY
        if self.robot is not None:
            return self.robot.username
        return self.user.username if self.user is not None else ""

    @property
    def is_anonymous(self) -> bool:
        return self.kind == "anonymous"

    @property
    def is_system(self) -> bool:
        return self.kind == "system"

    @property
    def is_staff(self) -> bool:
        return self.user is not None and self.user.is_active and self.user.is_staff

    @property
    def cap(self) -> tuple[Level, str]:
        """The most this credential may do, whatever its holder may."""
        if self.token is not None:
            return TOKEN_SCOPE_CAP[TokenScope(self.token.scope)], f"token scope {self.token.scope}"
        return Level.ADMIN, ""

    @property
    def limits(self) -> list[str]:
        """Namespaces and repositories the credential is confined to; empty: none."""
        return list(self.token.limits or []) if self.token is not None else []

    @property
    def expires_at(self):
        """When the credential stops working; None: it does not expire by itself."""
        return self.token.expires_at if self.token is not None else None

    def disabled_reason(self) -> str:
        """Why this actor gets nothing at all, or '' when it is in good standing."""
        if self.user is not None and not self.user.is_active:
            return "user is inactive"
        if self.robot is not None and not self.robot.is_active:
            return "robot is disabled"
        if self.token is not None:
            if self.token.revoked_at is not None:
                return "token is revoked"
            if self.token.expires_at is not None and self.token.expires_at <= timezone.now():
                return "token has expired"
        return ""


ANONYMOUS = Actor(kind="anonymous")
SYSTEM = Actor(kind="system")


def actor_for_user(user) -> Actor:
    """A signed-in browser session (or nobody)."""
    if user is None or not getattr(user, "is_authenticated", False):
        return ANONYMOUS
    return Actor(kind="user", user=user, via=Via.SESSION)


def actor_for_token(token: PersonalAccessToken) -> Actor:
    return Actor(kind="user", user=token.user, token=token, via=Via.TOKEN)


def actor_for_robot(robot: Robot) -> Actor:
    return Actor(kind="robot", robot=robot, via=Via.ROBOT)
