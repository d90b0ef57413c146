"""django-auth-ldap's settings (AUTH_LDAP_*) from the environment's LDAP_* variables: one place,
for portal/settings.py and for the tests that point the portal at a real slapd. No Django
models here: settings import it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path


def _flag(env: Mapping[str, str], name: str, default: str) -> bool:
    return str(env.get(name, default)).strip().lower() in ("1", "true", "yes", "on")


def ldap_settings(env: Mapping[str, str]) -> dict:
    """Raises ImproperlyConfigured for what would fail later, at a sign-in: a password that
    would cross in the clear (ldap:// without StartTLS), or a user filter that is not one."""
    import ldap
    from django.core.exceptions import ImproperlyConfigured
    from django_auth_ldap.config import GroupOfNamesType, LDAPSearch

    uri = env["LDAP_SERVER_URI"].strip()
    if not uri.startswith(("ldap://", "ldaps://")):
        raise ImproperlyConfigured("LDAP_SERVER_URI: use ldaps://… or ldap://… with LDAP_START_TLS=true")
    if uri.startswith("ldap://") and not _flag(env, "LDAP_START_TLS", "false"):
        raise ImproperlyConfigured(
            "LDAP_SERVER_URI is ldap:// without LDAP_START_TLS=true: passwords would cross in the clear. "
            "Set LDAP_START_TLS=true, or use ldaps://."
        )
    user_filter = env.get("LDAP_USER_FILTER") or "(uid=%(user)s)"
    try:
        probe = user_filter % {"user": "probe"}
    except (KeyError, TypeError, ValueError) as exc:
        raise ImproperlyConfigured(f"LDAP_USER_FILTER: not a filter with %(user)s ({exc})") from None
    if "%(user)s" not in user_filter or not (probe.startswith("(") and probe.endswith(")")):
        raise ImproperlyConfigured("LDAP_USER_FILTER: a filter in parentheses naming %(user)s")

    password = env.get("LDAP_BIND_PASSWORD", "")
    if not password and env.get("LDAP_BIND_PASSWORD_FILE"):
        password = Path(env["LDAP_BIND_PASSWORD_FILE"]).read_text().strip()
    # TLS options on each connection, the new-context option last: python-ldap builds the
    # connection's TLS context from the options set on it before (a CA set globally is not
    # seen then). The certificate is always verified.
    connection = {ldap.OPT_X_TLS_REQUIRE_CERT: ldap.OPT_X_TLS_DEMAND}
    if env.get("LDAP_CA_FILE"):
        connection[ldap.OPT_X_TLS_CACERTFILE] = env["LDAP_CA_FILE"]
    connection |= {ldap.OPT_NETWORK_TIMEOUT: 5, ldap.OPT_TIMEOUT: 10, ldap.OPT_X_TLS_NEWCTX: 0}
    found = {
        "AUTH_LDAP_SERVER_URI": uri,
        "AUTH_LDAP_BIND_DN": env.get("LDAP_BIND_DN", ""),
        "AUTH_LDAP_BIND_PASSWORD": password,
        "AUTH_LDAP_START_TLS": _flag(env, "LDAP_START_TLS", "false"),
        "AUTH_LDAP_CONNECTION_OPTIONS": connection,
        "AUTH_LDAP_USER_SEARCH": LDAPSearch(env.get("LDAP_USER_SEARCH_BASE", ""), ldap.SCOPE_SUBTREE, user_filter),
        "AUTH_LDAP_USER_ATTR_MAP": {
            "email": env.get("LDAP_ATTR_EMAIL") or "mail",
            "full_name": env.get("LDAP_ATTR_FULL_NAME") or "cn",
        },
        "AUTH_LDAP_ALWAYS_UPDATE_USER": True,
        "AUTH_LDAP_FIND_GROUP_PERMS": False,
        "AUTH_LDAP_MIRROR_GROUPS": False,
        "AUTH_LDAP_CACHE_TIMEOUT": 0,
    }
    if env.get("LDAP_GROUP_SEARCH_BASE"):
        found["AUTH_LDAP_GROUP_SEARCH"] = LDAPSearch(
            env["LDAP_GROUP_SEARCH_BASE"],
            ldap.SCOPE_SUBTREE,
            env.get("LDAP_GROUP_FILTER") or "(objectClass=groupOfNames)",
        )
        found["AUTH_LDAP_GROUP_TYPE"] = GroupOfNamesType()
    return found
