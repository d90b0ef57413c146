"""django-allauth's provider settings from OIDC_PROVIDERS: one place, for portal/settings.py and
for the tests that point the portal at a real provider process. No Django models here."""

from __future__ import annotations


def socialaccount_providers(providers: list[dict]) -> dict:
    return {
        "openid_connect": {
            "OAUTH_PKCE_ENABLED": True,
            "APPS": [
                {
                    "provider_id": p["id"],
                    "name": p.get("name") or p["id"],
                    "client_id": p["client_id"],
                    "secret": p["secret"],
                    "settings": {
                        "server_url": p["server_url"],
                        "fetch_userinfo": True,
                        "oauth_pkce_enabled": True,
                        **({"scope": p["scope"]} if p.get("scope") else {}),
                        # Ours, read by accounts.adapter from the app's settings (as for a
                        # provider configured in the admin's Social applications).
                        **{k: p[k] for k in ("username_claim", "groups_claim") if p.get(k)},
                    },
                }
                for p in providers
            ],
        }
    }
