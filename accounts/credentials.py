"""Who is this? Turn presented credentials into an Actor, or None when they are not valid.

Kinds: a password, a personal access token (`dy_pat_…`), a robot secret (`dy_robot_…`,
presented with the username `<org>+<robot>`) and a refresh token (`dy_rt_…`). Secrets are
looked up by their prefix and compared in constant time; only SHA-256 hashes are stored (the
secrets are 256-bit random strings, so a slow hash would only slow every pull).

Passwords are the exception: they go through Django's hasher, which costs ~220 ms. A password
that checked out is remembered for PASSWORD_CACHE_SECONDS under an HMAC of the credential (never
the password), tied to the current password hash so a password change ends it at once.

Two-factor authentication means the password alone opens nothing outside the browser: once a
user has an authenticator, a correct password here raises PasswordRefused (the CLI and the API
need a personal access token, as on Docker Hub). Refresh tokens born from a password end when
the password or the 2FA setup changes (credential_fingerprint), expire, and answer only the
client they were issued to.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import secrets

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from accounts import throttle
from accounts.actors import Actor, Via, actor_for_robot, actor_for_token
from accounts.backends import password_sign_in_allowed
from accounts.models import PersonalAccessToken, RefreshToken, Robot, User
from audit.services import audit_record

log = logging.getLogger(__name__)

PAT_MARK = "dy_pat_"
ROBOT_MARK = "dy_robot_"
REFRESH_MARK = "dy_rt_"
PREFIX_LENGTH = 8
MAX_CREDENTIAL_LENGTH = 256
# last_used_at is informational; writing it on every pull would make each token request a write.
LAST_USED_RESOLUTION = dt.timedelta(seconds=60)


def new_secret(mark: str) -> tuple[str, str, str]:
    """A fresh secret: (whole secret, lookup prefix, SHA-256 hex)."""
    body = secrets.token_urlsafe(32)
    secret = f"{mark}{body}"
    return secret, body[:PREFIX_LENGTH], hash_secret(secret)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _prefix(secret: str, mark: str) -> str | None:
    if not secret.startswith(mark) or len(secret) < len(mark) + PREFIX_LENGTH + 16:
        return None
    return secret[len(mark) : len(mark) + PREFIX_LENGTH]


def _lookup(model, secret: str, mark: str, prefix_field: str, hash_field: str, related: tuple[str, ...]):
    prefix = _prefix(secret, mark)
    if prefix is None:
        return None
    # No ORDER BY: the prefix is unique, and sorting costs more than the lookup itself.
    row = next(iter(model.objects.select_related(*related).filter(**{prefix_field: prefix}).order_by()[:1]), None)
    if row is None or not hmac.compare_digest(getattr(row, hash_field), hash_secret(secret)):
        return None
    return row


def _touch(row) -> None:
    now = timezone.now()
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
        type(row).objects.filter(pk=row.pk).update(last_used_at=now)


class Throttled(Exception):
    """Too many failed logins for this username or address; try again after `retry_after`."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed logins; retry after {retry_after} s")
        self.retry_after = retry_after


TWO_FACTOR_MESSAGE = (
    "two-factor authentication is on for this account: the password works only in the browser. "
    "Sign in with a personal access token instead (create one at /settings/tokens/)."
)


COMPANY_ACCOUNT_MESSAGE = (
    "this account signs in through your company's sign-in ({directory}) and has no password here. "
    "Sign in with a personal access token instead (create one at /settings/tokens/)."
)
PASSWORD_SIGN_IN_OFF_MESSAGE = (
    "invalid username or password, or password sign-in, which is for staff only on this portal. "
    "Everyone else signs in with a personal access token (create one at /settings/tokens/)."
)


class PasswordRefused(Exception):
    """A password cannot be used here, and the message says why and what will do: the account
    has two-factor authentication (the password was right; outside the browser only a personal
    access token will do), or it is a company account (LDAP, single sign-on) with no password
    here, or password sign-in is for staff only (PASSWORD_SIGN_IN)."""

    def __init__(self, message: str = TWO_FACTOR_MESSAGE) -> None:
        super().__init__(message)


def has_two_factor(user: User) -> bool:
    from allauth.mfa.models import Authenticator

    return Authenticator.objects.filter(user_id=user.pk).exists()


def credential_fingerprint(user: User) -> str:
    """Changes whenever the password or the 2FA setup changes: what a refresh token born from
    a password is bound to."""
    from allauth.mfa.models import Authenticator

    authenticators = ",".join(
        f"{pk}:{kind}"
        for pk, kind in Authenticator.objects.filter(user_id=user.pk).order_by("pk").values_list("pk", "type")
    )
    material = f"{user.password}\0{authenticators}".encode()
    return hmac.new(settings.SECRET_KEY.encode(), material, hashlib.sha256).hexdigest()[:40]


def authenticate_credentials(
    username: str, secret: str, *, address: str | None = None, surface: str = "registry token"
) -> Actor | None:
    """Check a username and a password, token or robot secret. None when anything is off;
    callers answer the same 401 whatever it was, so nothing leaks about which part failed.
    Failures are counted per username and address and audited; past the limit this raises
    Throttled, for passwords before the hasher runs. A right password of an account with 2FA
    raises PasswordRefused."""
    if not username or not secret or len(username) > 150 or len(secret) > MAX_CREDENTIAL_LENGTH:
        actor = None
    elif "+" in username:
        actor = _robot(username.lower(), secret)
    elif secret.startswith(PAT_MARK):
        actor = _token(username.lower(), secret)
    else:
        user = _password(username.lower(), secret, address)
        if user is None:
            _refuse_password_of_company_account(username.lower(), address, surface)
        if settings.PASSWORD_SIGN_IN != "everyone" and (user is None or not password_sign_in_allowed(user)):
            # One answer for a wrong password, an unknown name and a non-staff account with the
            # right password: it tells nothing about the password, nor who is staff.
            record_failure(username, address, surface)
            raise PasswordRefused(PASSWORD_SIGN_IN_OFF_MESSAGE)
        actor = Actor(kind="user", user=user, via=Via.PASSWORD) if user is not None else None
        if user is not None and has_two_factor(user):
            audit_record(
                action="auth.password_refused",
                actor=user,
                data={"surface": surface, "reason": "two-factor authentication is on"},
                address=address,
            )
            raise PasswordRefused()
    if actor is None:
        record_failure(username, address, surface)
    return actor


def _refuse_password_of_company_account(username: str, address: str | None, surface: str) -> None:
    """A password for a company account (which has none here) gets an answer that says what
    will do (usernames are public: they are namespaces, so this tells nothing new). Looked up
    only after the password check failed: the right-password path costs nothing more."""
    found = next(iter(User.objects.filter(username=username).values_list("directory", flat=True)[:1]), None)
    if not found:
        return
    message = COMPANY_ACCOUNT_MESSAGE.format(directory="LDAP" if found == "ldap" else "single sign-on")
    record_failure(username, address, surface)  # counted like a wrong password: no free guesses
    raise PasswordRefused(message)


def check_throttle(username: str, address: str | None) -> int | None:
    """Seconds to wait when this username or address is over its failure limit, else None."""
    limits = throttle.keys(username, address)
    return throttle.retry_after(limits, throttle.cache_get_many(list(limits)))


def record_failure(username: str, address: str | None, surface: str) -> None:
    """Count a failed login (every surface shares the counters) and audit it; raises Throttled
    when already over the limit (then it is not audited again: the log must not be floodable)."""
    limits = throttle.keys(username, address)
    wait = throttle.retry_after(limits, throttle.cache_get_many(list(limits)))
    if wait is not None:
        raise Throttled(wait)  # not audited again: the log must not be floodable
    throttle.record_failure(limits)
    audit_record(action="auth.failed", actor_name=username[:150], data={"surface": surface}, address=address)


def _token(username: str, secret: str) -> Actor | None:
    token = _lookup(PersonalAccessToken, secret, PAT_MARK, "prefix", "token_hash", ("user",))
    if token is None or token.user.username != username or not token.user.is_active or not token.is_usable():
        return None
    _touch(token)
    return actor_for_token(token)


def _robot(username: str, secret: str) -> Actor | None:
    robot = _lookup(Robot, secret, ROBOT_MARK, "secret_prefix", "secret_hash", ("organization",))
    if robot is None or robot.username != username or not robot.is_active:
        return None
    _touch(robot)
    return actor_for_robot(robot)


def _password_key(username: str, password: str) -> str:
    mac = hmac.new(settings.SECRET_KEY.encode(), f"{username}\0{password}".encode(), hashlib.sha256)
    return f"pwok:{mac.hexdigest()}"


def _fingerprint(password_hash: str) -> str:
    return hmac.new(settings.SECRET_KEY.encode(), password_hash.encode(), hashlib.sha256).hexdigest()[:32]


def _password(username: str, password: str, address: str | None) -> User | None:
    key = _password_key(username, password)
    limits = throttle.keys(username, address)
    # One round trip for both: is this password remembered, and is anyone throttled?
    cached = throttle.cache_get_many([key, *limits])
    wait = throttle.retry_after(limits, cached)
    if wait is not None:
        raise Throttled(wait)
    remembered = cached.get(key) if settings.PASSWORD_CACHE_SECONDS else None
    if remembered:
        user = next(iter(User.objects.filter(pk=remembered[0], is_active=True).order_by()[:1]), None)
        if user is not None and hmac.compare_digest(_fingerprint(user.password), remembered[1]):
            return user
    user = next(iter(User.objects.filter(username=username).order_by()[:1]), None)
    if user is None:
        User().set_password(password)  # spend the same time as a real check: no user enumeration
        return None
    if not user.check_password(password) or not user.is_active:
        return None
    if settings.PASSWORD_CACHE_SECONDS:
        try:
            cache.set(key, (user.pk, _fingerprint(user.password)), timeout=settings.PASSWORD_CACHE_SECONDS)
        except Exception:
            log.warning("password cache unavailable", exc_info=True)
    return user


def refresh_token_expired(refresh: RefreshToken, now: dt.datetime | None = None) -> bool:
    expires_at = refresh.expires_at or refresh.created_at + dt.timedelta(days=settings.REFRESH_TOKEN_DAYS)
    return expires_at <= (now or timezone.now())


def authenticate_refresh_token(secret: str, *, client_id: str) -> Actor | None:
    """The credential a refresh token stands for, or None: revoked, expired, presented by
    another client than the one it was issued to, its robot disabled, its access token revoked
    or expired, its user inactive, or (born from a password) the password or 2FA changed."""
    if len(secret) > MAX_CREDENTIAL_LENGTH or not client_id:
        return None
    refresh = _lookup(
        RefreshToken, secret, REFRESH_MARK, "prefix", "token_hash", ("user", "robot__organization", "access_token")
    )
    if refresh is None or refresh.revoked_at is not None or refresh_token_expired(refresh):
        return None
    if not hmac.compare_digest(refresh.client_id.encode(), client_id[:100].encode()):
        return None
    if refresh.robot is not None:
        if not refresh.robot.is_active:
            return None
        actor = Actor(kind="robot", robot=refresh.robot, via=Via.REFRESH)
    else:
        pat = refresh.access_token
        if not refresh.user.is_active or (pat is not None and not pat.is_usable()):
            return None
        if pat is None and not hmac.compare_digest(
            refresh.password_fingerprint.encode(), credential_fingerprint(refresh.user).encode()
        ):
            return None  # born from a password that has changed since, or 2FA was set up
        if pat is None and not password_sign_in_allowed(refresh.user):
            return None  # born from a password, which this account may no longer use (PASSWORD_SIGN_IN)
        actor = Actor(kind="user", user=refresh.user, token=pat, via=Via.REFRESH)
    _touch(refresh)
    return actor


def authenticate_access_token(secret: str) -> Actor | None:
    """A personal access token presented alone (`Authorization: Bearer dy_pat_…`)."""
    if not secret.startswith(PAT_MARK) or len(secret) > MAX_CREDENTIAL_LENGTH:
        return None
    token = _lookup(PersonalAccessToken, secret, PAT_MARK, "prefix", "token_hash", ("user",))
    if token is None or not token.user.is_active or not token.is_usable():
        return None
    _touch(token)
    return actor_for_token(token)
