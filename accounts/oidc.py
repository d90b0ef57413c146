"""The periodic check of OpenID Connect accounts (OIDC_CHECK_INTERVAL_SECONDS, on the
maintenance worker): with the refresh token stored at the person's last sign-in, the portal
asks the provider for a fresh token and the person's claims. A provider that refuses the
refresh token (`invalid_grant`: the person was removed or disabled there, or their sessions
revoked) deactivates the account, so their personal access tokens stop at the next use; the
groups it sends move memberships as a sign-in would. A provider that cannot be reached changes
nothing. People whose provider gave no refresh token (ask for `offline_access` where needed)
are checked only when they sign in."""

from __future__ import annotations

import datetime as dt
import logging

import requests
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.directory import groups_sync, oidc_source
from accounts.models import User
from audit.services import audit_record

log = logging.getLogger(__name__)
TIMEOUT = 10


def _provider_settings(provider_id: str) -> dict:
    found = next((p for p in settings.OIDC_PROVIDERS if p["id"] == provider_id), None)
    if found is not None:
        return found
    from allauth.socialaccount.models import SocialApp

    app = SocialApp.objects.filter(provider="openid_connect", provider_id=provider_id).first()
    if app is None:
        return {}
    return {"id": provider_id, "client_id": app.client_id, "secret": app.secret, **(app.settings or {})}


def oidc_check() -> dict:
    from allauth.socialaccount.models import SocialToken

    checked = deactivated = errors = 0
    discovery: dict[str, dict] = {}
    tokens = (
        SocialToken.objects.select_related("account__user")
        .filter(account__user__directory__startswith="oidc:", account__user__is_active=True)
        .exclude(token_secret="")
        .order_by("pk")
    )
    for token in tokens:
        account, user = token.account, token.account.user
        provider = _provider_settings(account.provider)
        if not provider.get("server_url"):
            continue
        try:
            if provider["server_url"] not in discovery:
                found = requests.get(
                    provider["server_url"].rstrip("/") + "/.well-known/openid-configuration", timeout=TIMEOUT
                )
                found.raise_for_status()
                discovery[provider["server_url"]] = found.json()
            config = discovery[provider["server_url"]]
            answer = requests.post(
                config["token_endpoint"],
                data={
                    "grant_type": "refresh_token",
                    "refresh_token": token.token_secret,
                    "client_id": provider["client_id"],
                    "client_secret": provider["secret"],
                },
                timeout=TIMEOUT,
            )
            if answer.status_code in (400, 401) and _error(answer) == "invalid_grant":
                _deactivate(user, account.provider)
                token.delete()
                deactivated += 1
                continue
            answer.raise_for_status()
            body = answer.json()
            token.token = body["access_token"]
            token.token_secret = body.get("refresh_token") or token.token_secret
            if body.get("expires_in"):
                token.expires_at = timezone.now() + dt.timedelta(seconds=int(body["expires_in"]))
            token.save(update_fields=["token", "token_secret", "expires_at"])
            info = requests.get(
                config["userinfo_endpoint"], headers={"Authorization": f"Bearer {token.token}"}, timeout=TIMEOUT
            )
            info.raise_for_status()
            claims = info.json()
        except (requests.RequestException, ValueError, KeyError) as exc:
            errors += 1
            log.warning("OIDC check: %s at %s could not be checked: %s", user.username, account.provider, exc)
            continue
        checked += 1
        claim = provider.get("groups_claim", "groups")
        if isinstance(claims, dict) and claim in claims:
            groups = claims[claim] if isinstance(claims[claim], list) else [claims[claim]]
            groups_sync(user=user, source=oidc_source(account.provider), groups=[str(g) for g in groups][:1000])
    return {"checked": checked, "deactivated": deactivated, **({"errors": errors} if errors else {})}


def _error(answer) -> str:
    try:
        return str(answer.json().get("error", ""))
    except ValueError:
        return ""


def _deactivate(user: User, provider_id: str) -> None:
    with transaction.atomic():
        User.objects.filter(pk=user.pk).update(is_active=False)
        audit_record(
            action="user.deactivate",
            actor_name=oidc_source(provider_id),
            target=user,
            target_name=user.username,
            data={"reason": "the provider refused the refresh token (invalid_grant)"},
        )
