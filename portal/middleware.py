"""A content security policy for every answer: scripts and styles from this host only (the
portal runs on private networks and loads nothing from elsewhere), images also from https
(repository overviews may show badges), no framing."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse


class ContentSecurityPolicyMiddleware:
    """The policy, with the OpenID Connect providers' origins added to `form-action`: signing
    in through a provider is a form posted here that the portal answers with a redirect to the
    provider, and browsers hold a form's redirects to `form-action` too."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        self._built: tuple[tuple, str] | None = None

    def policy(self) -> str:
        base = settings.CONTENT_SECURITY_POLICY
        key = (base, tuple(str(p.get("server_url", "")) for p in getattr(settings, "OIDC_PROVIDERS", [])))
        if self._built is None or self._built[0] != key:
            self._built = (key, with_form_targets(base, [origin(url) for url in key[1]]))
        return self._built[1]

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        policy = self.policy()
        if policy and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = policy
        return response


HOST = re.compile(r"[a-z0-9](?:[a-z0-9.-]{0,252}[a-z0-9])?|[0-9a-f:.]*:[0-9a-f:.]*")


def origin(url: str) -> str:
    """`scheme://host[:port]` of a provider's address, or "" when it is anything else (user
    information, wildcards, control characters: nothing of it reaches the header)."""
    try:
        parts = urlsplit(str(url).strip())
        port = parts.port
    except ValueError:
        return ""
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or parts.username or parts.password or not HOST.fullmatch(host):
        return ""
    if parts.netloc.lower() not in (host, f"{host}:{port}", f"[{host}]", f"[{host}]:{port}"):
        return ""  # something between the host and the path that urlsplit let by
    shown = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{shown}{f':{port}' if port else ''}"


def with_form_targets(policy: str, origins: list[str]) -> str:
    origins = sorted({o for o in origins if o})
    if not policy or not origins:
        return policy
    directives = [d.strip() for d in policy.split(";") if d.strip()]
    for i, directive in enumerate(directives):
        if directive.split()[0].lower() == "form-action":
            directives[i] = " ".join([directive, *origins])
            return "; ".join(directives)
    return policy  # no form-action directive: forms are not restricted


class ProviderUnreachableMiddleware:
    """Company sign-in asks the OpenID Connect provider (its discovery document, its token
    endpoint) while the browser waits; when it cannot be reached, the person gets allauth's
    sign-in error page with a 502 and the log one line, not a 500 with a traceback."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception):
        import logging

        import requests
        from django.shortcuts import render

        if not isinstance(exception, requests.RequestException) or not request.path.startswith("/accounts/oidc/"):
            return None
        logging.getLogger(__name__).warning("sign-in provider unreachable: %s", exception.__class__.__name__)
        return render(
            request,
            "socialaccount/authentication_error.html",
            {"auth_error": {"code": "unknown", "exception": None}, "provider_unreachable": True},
            status=502,
        )
