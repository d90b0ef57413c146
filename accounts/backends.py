"""Authentication backends. Staff may do everything (DESIGN.md section 4), in the admin
console too: StaffHaveAllPermissions only answers permission questions; it authenticates
nobody. Admin classes that are read-only by design (tags, manifests, the audit log) still
refuse changes with their own rules. The password backends apply PASSWORD_SIGN_IN."""

from __future__ import annotations

from allauth.account.auth_backends import AuthenticationBackend as AllauthBackend
from django.contrib.auth.backends import ModelBackend


class StaffHaveAllPermissions:
    def authenticate(self, request, **credentials):
        return None

    def has_perm(self, user_obj, perm: str, obj=None) -> bool:
        return bool(user_obj.is_active and user_obj.is_staff)

    def has_module_perms(self, user_obj, app_label: str) -> bool:
        return bool(user_obj.is_active and user_obj.is_staff)


def password_sign_in_allowed(user) -> bool:
    """Whether this account may sign in with a password kept here: not a company account (it
    has none), and, with PASSWORD_SIGN_IN=staff, only staff."""
    from django.conf import settings

    if getattr(user, "directory", ""):
        return False
    return settings.PASSWORD_SIGN_IN == "everyone" or bool(user.is_staff)


def _session_allowed(user) -> bool:
    """A session signed in with a password here ends when password sign-in is switched off for
    its account (company accounts' sessions come from their own sign-in and are kept)."""
    return user is None or bool(getattr(user, "directory", "")) or password_sign_in_allowed(user)


class LocalPasswordBackend(ModelBackend):
    """Django's password check, for the accounts allowed to use it (password_sign_in_allowed)."""

    def user_can_authenticate(self, user) -> bool:
        return super().user_can_authenticate(user) and password_sign_in_allowed(user)

    def get_user(self, user_id):
        user = super().get_user(user_id)
        return user if _session_allowed(user) else None


class AllauthPasswordBackend(AllauthBackend):
    """allauth's username-or-email password check, with the same rule. (Not through
    user_can_authenticate: allauth keeps a user that fails it aside and signs them in anyway
    when active, to show its "inactive" page to the inactive ones.)"""

    def get_user(self, user_id):
        user = super().get_user(user_id)
        return user if _session_allowed(user) else None

    def _check_password(self, user, password: str):
        if user is not None and not password_sign_in_allowed(user):
            self._did_check_password = True
            user.check_password(password)  # the same time as a real check
            return None
        return super()._check_password(user, password)
