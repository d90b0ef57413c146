"""Who is this? Turn presented credentials into an Actor, or None when they are not valid.

Three kinds: a password, a personal access token (`dy_pat_…`) and a robot secret
(`dy_robot_…`, presented with the username `<org>+<robot>`). Token and robot secrets are
looked up by their prefix and compared in constant time; only SHA-256 hashes are stored.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from django.contrib.auth import authenticate
from django.utils import timezone

from accounts.models import PersonalAccessToken, Robot, User
from repositories.access import Actor

PAT_MARK = "dy_pat_"
ROBOT_MARK = "dy_robot_"
PREFIX_LENGTH = 8
MAX_CREDENTIAL_LENGTH = 256


def new_secret(mark: str) -> tuple[str, str, str]:
    """A fresh secret: (whole secret, lookup prefix, SHA-256 hex)."""
    body = secrets.token_urlsafe(32)
    prefix = body[:PREFIX_LENGTH]
    secret = f"{mark}{body}"
    return secret, prefix, hash_secret(secret)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _prefix(secret: str, mark: str) -> str | None:
    if not secret.startswith(mark) or len(secret) < len(mark) + PREFIX_LENGTH + 16:
        return None
    return secret[len(mark) : len(mark) + PREFIX_LENGTH]


def authenticate_credentials(username: str, secret: str) -> Actor | None:
    """Check a username and a password, token or robot secret. None when anything is off;
    callers answer the same 401 whatever it was, so nothing leaks about which part failed."""
    if not username or not secret or len(username) > 150 or len(secret) > MAX_CREDENTIAL_LENGTH:
        return None
    if "+" in username:
        return _robot(username, secret)
    if secret.startswith(PAT_MARK):
        return _token(username, secret)
    user = authenticate(username=username, password=secret)
    if user is None or not user.is_active:
        return None
    return Actor(kind="user", user=user)


def _token(username: str, secret: str) -> Actor | None:
    prefix = _prefix(secret, PAT_MARK)
    if prefix is None:
        return None
    token = PersonalAccessToken.objects.select_related("user").filter(prefix=prefix).first()
    if token is None or not hmac.compare_digest(token.token_hash, hash_secret(secret)):
        return None
    if token.user.username != username.lower() or not token.user.is_active or not token.is_usable():
        return None
    PersonalAccessToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
    return Actor(kind="user", user=token.user, token=token)


def _robot(username: str, secret: str) -> Actor | None:
    prefix = _prefix(secret, ROBOT_MARK)
    if prefix is None:
        return None
    robot = Robot.objects.select_related("organization").filter(secret_prefix=prefix).first()
    if robot is None or not hmac.compare_digest(robot.secret_hash, hash_secret(secret)):
        return None
    if robot.username != username.lower() or not robot.is_active:
        return None
    Robot.objects.filter(pk=robot.pk).update(last_used_at=timezone.now())
    return Actor(kind="robot", robot=robot)


def user_from_username(username: str) -> User | None:
    return User.objects.filter(username=username.lower()).first()
