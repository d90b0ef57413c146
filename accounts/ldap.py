"""LDAP sign-in (django-auth-ldap), on when LDAP_SERVER_URI is set (portal/settings.py).

The directory decides who may sign in (the bind, and LDAP_USER_FILTER, which can leave out
disabled people); the portal keeps an account per person (directory "ldap", no password here),
their e-mail and display name from the directory, and their teams from their groups
(accounts/directory.py). A periodic check (accounts/tasks.py) deactivates the accounts the
directory no longer has, or no longer lets in, so their personal access tokens stop too."""

from __future__ import annotations

import logging
import re

from django.conf import settings
from django.db import transaction
from django_auth_ldap.backend import LDAPBackend, populate_user

from accounts.directory import LDAP, groups_sync
from accounts.models import NAMESPACE_RE, User

log = logging.getLogger(__name__)


class DirectoryBackend(LDAPBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        if not settings.LDAP_SERVER_URI or not username or "@" in str(username):
            return None  # an e-mail address is for local accounts (allauth tries both)
        return super().authenticate(request, username=username, password=password, **kwargs)

    def get_user(self, user_id):
        """A deactivated account's session ends (django-auth-ldap's own does not look)."""
        user = super().get_user(user_id)
        return user if user is not None and user.is_active else None

    def get_or_build_user(self, username, ldap_user):
        user, built = super().get_or_build_user(username, ldap_user)
        if not built and user.directory != LDAP:
            # A local account (or another provider's) of the same name is never taken over.
            raise ldap_user.AuthenticationFailed(f"{user.username} is not an LDAP account here")
        if built:
            from accounts.services import namespace_name_available

            name = user.username
            if not re.fullmatch(NAMESPACE_RE, name) or not namespace_name_available(name):
                raise ldap_user.AuthenticationFailed(f"{name!r} cannot be a namespace here (taken, or not a name)")
            user.directory = LDAP
        return user, built

    def populate_user_fields(self, user: User) -> None:  # called from the populate_user signal
        """What the directory holds is fitted to the account's fields: a name longer than the
        field is cut, an address that is not one is left out (one odd entry must not stop a
        sign-in, or the check for everyone after it)."""
        from django.core.exceptions import ValidationError
        from django.core.validators import validate_email

        user.full_name = (user.full_name or "")[:150]
        try:
            validate_email(user.email or "")
            user.email = user.email[:254]
        except ValidationError:
            user.email = ""

    def authenticate_ldap_user(self, ldap_user, password):
        user = super().authenticate_ldap_user(ldap_user, password)
        if user is not None:
            settle(user, ldap_user)
        return user


def _fit_fields(sender, user, ldap_user, **kwargs) -> None:
    DirectoryBackend().populate_user_fields(user)


populate_user.connect(_fit_fields, dispatch_uid="dockyard-ldap-fit-fields")


def settle(user: User, ldap_user) -> None:
    """After a sign-in or a check found the person in the directory: an LDAP account, active,
    with its namespace, and teams as its groups say."""
    from accounts.services import user_namespace_ensure

    with transaction.atomic():
        changed = []
        if user.directory != LDAP:
            user.directory = LDAP
            changed.append("directory")
        if not user.is_active:
            user.is_active = True  # an LDAP account's activity follows the directory
            changed.append("is_active")
        if user.has_usable_password():
            user.set_unusable_password()
            changed.append("password")
        if changed:
            user.save(update_fields=changed)
        user_namespace_ensure(user=user)
        groups = ldap_user.group_dns if getattr(settings, "AUTH_LDAP_GROUP_SEARCH", None) else set()
        groups_sync(user=user, source=LDAP, groups=groups)


def _connect():
    """A connection bound as the portal's account, with the same TLS settings as sign-in.
    Raises ldap.LDAPError when the directory cannot be reached or refuses the bind."""
    import ldap as ldap_module

    conn = ldap_module.initialize(settings.AUTH_LDAP_SERVER_URI)
    for option, value in getattr(settings, "AUTH_LDAP_CONNECTION_OPTIONS", {}).items():
        conn.set_option(option, value)
    if settings.AUTH_LDAP_START_TLS:
        conn.start_tls_s()
    conn.simple_bind_s(settings.AUTH_LDAP_BIND_DN, settings.AUTH_LDAP_BIND_PASSWORD)
    return conn


def _directory_lets_in(conn, username: str) -> bool:
    """The sign-in search (base, scope and LDAP_USER_FILTER) finds this person. Errors raise:
    django-auth-ldap's own search answers "nobody" when the directory is down."""
    from ldap.filter import escape_filter_chars

    search = settings.AUTH_LDAP_USER_SEARCH
    found = conn.search_s(
        search.base_dn, search.scope, search.filterstr % {"user": escape_filter_chars(username)}, ["1.1"]
    )
    return any(dn for dn, _ in found if dn)


def directory_check() -> dict:
    """Every LDAP account, looked up in the directory with the portal's own bind: gone, or left
    out by LDAP_USER_FILTER (a disabled person), means deactivated now, so their personal
    access tokens stop at their next use; found means e-mail, name and teams brought up to date
    (and an account deactivated earlier is active again). When the directory cannot be asked,
    nothing changes."""
    import ldap as ldap_module

    from audit.services import audit_record

    if not settings.LDAP_SERVER_URI:
        return {"checked": 0, "deactivated": 0}
    backend = DirectoryBackend()
    checked = deactivated = errors = 0
    try:
        conn = _connect()
        for user in User.objects.filter(directory=LDAP).order_by("pk"):
            lets_in = _directory_lets_in(conn, user.username)
            checked += 1
            if lets_in:
                try:
                    found = backend.populate_user(user.username)
                    if found is not None:
                        settle(found, found.ldap_user)
                except ldap_module.LDAPError:
                    raise
                except Exception:
                    # This person's entry could not be applied: said in the log, and the check
                    # goes on for everyone else (never a deactivation on an error).
                    errors += 1
                    log.exception("LDAP check: %s could not be brought up to date", user.username)
                continue
            if user.is_active:
                with transaction.atomic():
                    User.objects.filter(pk=user.pk).update(is_active=False)
                    audit_record(
                        action="user.deactivate",
                        actor_name="ldap",
                        target=user,
                        target_name=user.username,
                        data={"reason": "not in the directory, or left out by LDAP_USER_FILTER"},
                    )
                deactivated += 1
        conn.unbind_s()
    except ldap_module.LDAPError as exc:
        log.warning("LDAP check stopped after %s accounts, nothing more changed: %s", checked, exc)
    return {"checked": checked, "deactivated": deactivated, **({"errors": errors} if errors else {})}
