"""API authentication: who is calling, as DRF (user, auth) pairs, and the Actor the policy
module wants. Session (with CSRF), `Authorization: Bearer <token>`, Basic `user:token`. A
password over Basic is accepted only to create an access token (PasswordOnlyCreatesTokens),
and not at all once the account has two-factor authentication."""

from __future__ import annotations

import base64
import binascii

from rest_framework import authentication, exceptions, permissions
from rest_framework.request import Request

from accounts.actors import ANONYMOUS, Actor, Via, actor_for_token, actor_for_user
from accounts.credentials import PasswordRefused, Throttled, authenticate_access_token, authenticate_credentials
from accounts.models import PersonalAccessToken
from portal.net import client_address

PASSWORD = "password"  # request.auth when a password came over Basic


class BearerTokenAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request: Request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer":
            return None
        actor = authenticate_access_token(secret.strip())
        if actor is None:
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked access token.")
        return actor.user, actor.token

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="dockyard api"'


class BasicCredentialsAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request: Request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            username, sep, secret = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise exceptions.AuthenticationFailed("Malformed Basic credentials.") from None
        if not sep:
            raise exceptions.AuthenticationFailed("Malformed Basic credentials.")
        try:
            actor = authenticate_credentials(username, secret, address=client_address(request), surface="api")
        except Throttled as exc:
            raise exceptions.Throttled(wait=exc.retry_after) from None
        except PasswordRefused as exc:
            raise exceptions.AuthenticationFailed(str(exc)) from None
        if actor is None or actor.user is None:
            raise exceptions.AuthenticationFailed("Invalid username, password or token.")
        return actor.user, actor.token or PASSWORD

    def authenticate_header(self, request: Request) -> str:
        return 'Basic realm="dockyard api"'


class PasswordOnlyCreatesTokens(permissions.BasePermission):
    """A password over Basic may only create an access token: scripts must use tokens, whose
    scope and limits bind them, and passwords must not run the hasher on every call."""

    message = "A password over Basic authentication may only create an access token; use a token."

    def has_permission(self, request: Request, view) -> bool:
        if request.auth != PASSWORD:
            return True
        return getattr(view, "accepts_password", False) and request.method == "POST"


def api_actor(request: Request) -> Actor:
    """The policy's Actor for this API request, carrying the token's cap and limits."""
    user = request.user
    if user is None or not user.is_authenticated:
        return ANONYMOUS
    if isinstance(request.auth, PersonalAccessToken):
        return actor_for_token(request.auth)
    if request.auth == PASSWORD:
        return Actor(kind="user", user=user, via=Via.PASSWORD)
    return actor_for_user(user)  # a browser session


# How the schema describes these (drf-spectacular finds the extensions by class path).
from drf_spectacular.extensions import OpenApiAuthenticationExtension  # noqa: E402


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.api.authentication.BearerTokenAuthentication"
    name = "accessToken"

    def get_security_definition(self, auto_schema) -> dict:
        return {"type": "http", "scheme": "bearer", "description": "A personal access token (dy_pat_…)."}


class BasicCredentialsScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.api.authentication.BasicCredentialsAuthentication"
    name = "basicToken"

    def get_security_definition(self, auto_schema) -> dict:
        return {
            "type": "http",
            "scheme": "basic",
            "description": "username:token. A password is accepted only by POST /api/v1/access-tokens/.",
        }
