"""allauth's hooks into our rules: a new user's name must be free in the shared namespace table,
every new user gets their personal namespace, and the browser's login form shares the failed-
login limiter and the audit log with every other surface (the token endpoint, the API), reading
the client's address the one way (portal.net)."""

from __future__ import annotations

import contextlib

from allauth.account.adapter import DefaultAccountAdapter
from django import forms

from accounts import credentials
from accounts.models import NAMESPACE_RE, Namespace
from accounts.services import user_namespace_ensure
from portal.net import client_address

WEB_SURFACE = "web login"


def _login_name(given: dict) -> str:
    return str(given.get("username") or given.get("email") or "")[:150]


class AccountAdapter(DefaultAccountAdapter):
    def clean_username(self, username: str, shallow: bool = False) -> str:
        import re

        username = super().clean_username(username.lower(), shallow=shallow)
        if not re.match(NAMESPACE_RE, username):
            raise forms.ValidationError(
                "Use lowercase letters and digits, with single . _ or - between them; this is also your namespace."
            )
        if Namespace.objects.filter(name=username).exists():
            raise forms.ValidationError("This name is taken by a user or an organization.")
        return username

    def save_user(self, request, user, form, commit: bool = True):
        user = super().save_user(request, user, form, commit=commit)
        if commit:
            user_namespace_ensure(user=user)
        return user

    def get_client_ip(self, request) -> str:
        return client_address(request) or "unknown"

    def pre_authenticate(self, request, **given) -> None:
        """Refuse before the password is even checked when this username or address is over
        the shared failure limit."""
        if credentials.check_throttle(_login_name(given), client_address(request)) is not None:
            raise self.validation_error("too_many_login_attempts")
        super().pre_authenticate(request, **given)

    def authentication_failed(self, request, **given) -> None:
        # Over the limit: the next attempt is refused by pre_authenticate.
        with contextlib.suppress(credentials.Throttled):
            credentials.record_failure(_login_name(given), client_address(request), WEB_SURFACE)
        super().authentication_failed(request, **given)
