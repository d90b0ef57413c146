"""allauth's hooks into our rules: a new user's name must be free in the shared namespace table,
every new user gets their personal namespace, and the browser's login form shares the failed-
login limiter and the audit log with every other surface (the token endpoint, the API), reading
the client's address the one way (portal.net)."""

from __future__ import annotations

import contextlib

from allauth.account.adapter import DefaultAccountAdapter
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from django import forms

from accounts import credentials
from accounts.models import NAMESPACE_RE, Namespace, User
from accounts.services import user_namespace_ensure
from portal.net import client_address

WEB_SURFACE = "web login"


def _login_name(given: dict) -> str:
    return str(given.get("username") or given.get("email") or "")[:150]


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request) -> bool:
        """With PASSWORD_SIGN_IN=staff, nobody makes a password account here: people come
        through the company's sign-in."""
        from django.conf import settings

        return settings.PASSWORD_SIGN_IN == "everyone" and super().is_open_for_signup(request)

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

    def send_password_reset_mail(self, user, email: str, context: dict) -> None:
        """A password reset only for accounts that may sign in with a password here. A company
        account (LDAP, single sign-on) or, with PASSWORD_SIGN_IN=staff, anyone but staff gets a
        mail saying how they do sign in instead of a reset link: a password set through the link
        would be refused everywhere. The page answers the same either way."""
        from accounts.backends import password_sign_in_allowed

        if password_sign_in_allowed(user):
            return super().send_password_reset_mail(user, email, context)
        directory = getattr(user, "directory", "")
        how = "LDAP" if directory == "ldap" else "single sign-on" if directory else "your company's sign-in"
        self.send_mail(
            "account/email/password_not_used",
            email,
            {"user": user, "username": user.username, "how": how, "request": context.get("request")},
        )

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


# --- company sign-in through OpenID Connect (README, "Company sign-in") ------------------------


def _oidc_settings(sociallogin) -> dict:
    """The provider's settings: from OIDC_PROVIDERS, or from its Social application in the admin
    (`{"server_url": …, "username_claim": …, "groups_claim": …}`)."""
    try:
        return dict(sociallogin.account.get_provider().app.settings or {})
    except Exception:
        return {}


def _claims(sociallogin) -> dict:
    """The provider's claims: the ID token's, with userinfo's on top (it has more)."""
    data = sociallogin.account.extra_data or {}
    if "userinfo" in data or "id_token" in data:
        return {**(data.get("id_token") or {}), **(data.get("userinfo") or {})}
    return data


def _groups(sociallogin) -> list[str] | None:
    """The groups the provider sent, or None when it sent no groups claim at all (a mapper
    switched off, or Entra ID's overage `_claim_names`): then memberships are left as they are,
    rather than taken away as if the person were in no group."""
    claim = _oidc_settings(sociallogin).get("groups_claim", "groups")
    claims = _claims(sociallogin)
    if claim not in claims:
        import logging

        logging.getLogger(__name__).warning(
            "%s sent no %r claim for %s: group mappings not applied at this sign-in",
            sociallogin.account.provider,
            claim,
            sociallogin.account.uid,
        )
        return None
    value = claims.get(claim) or []
    if isinstance(value, str):
        value = [value]
    return [str(g) for g in value if isinstance(g, str | int)][:1000] if isinstance(value, list) else []


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    """A person from a configured OpenID Connect provider: their account is made at the first
    sign-in (username from the configured claim, made a free namespace name), their e-mail kept
    only when the provider says it is verified, no password here, and their teams follow their
    groups at every sign-in. An account is found again by the provider's subject, never by name
    or e-mail: a local account is never taken over."""

    def is_open_for_signup(self, request, sociallogin) -> bool:
        return True  # the provider decides who may sign in; ACCOUNT signups are for local accounts

    def is_auto_signup_allowed(self, request, sociallogin) -> bool:
        return True

    def populate_user(self, request, sociallogin, data):
        from accounts.directory import username_available, username_from_claim

        user = super().populate_user(request, sociallogin, data)
        claims = _claims(sociallogin)
        claim = _oidc_settings(sociallogin).get("username_claim", "preferred_username")
        wanted = claims.get(claim) or claims.get("preferred_username") or claims.get("email") or claims.get("sub")
        user.username = username_available(username_from_claim(str(wanted)))
        from allauth.account.models import EmailAddress

        # Kept only when verified by the provider and held by no other account here: otherwise
        # allauth would stop at its sign-up form, where any name and address could be typed.
        verified = [
            e
            for e in sociallogin.email_addresses
            if e.verified
            and not EmailAddress.objects.filter(email__iexact=e.email).exists()
            and not User.objects.filter(email__iexact=e.email).exists()
        ]
        user.email = verified[0].email if verified else ""
        sociallogin.email_addresses = verified[:1]
        user.full_name = str(claims.get("name") or "")[:150]
        return user

    def save_user(self, request, sociallogin, form=None):
        from accounts.directory import groups_sync, oidc_source

        user = sociallogin.user
        user.directory = oidc_source(sociallogin.account.provider)
        user.set_unusable_password()
        user = super().save_user(request, sociallogin, form=form)
        user_namespace_ensure(user=user)
        groups = _groups(sociallogin)
        if groups is not None:
            groups_sync(user=user, source=user.directory, groups=groups)
        return user

    def pre_social_login(self, request, sociallogin) -> None:
        """Every sign-in of a known person: their teams follow their groups as sent now."""
        from accounts.directory import groups_sync, oidc_source

        super().pre_social_login(request, sociallogin)
        groups = _groups(sociallogin)
        if sociallogin.is_existing and groups is not None:
            groups_sync(user=sociallogin.user, source=oidc_source(sociallogin.account.provider), groups=groups)
