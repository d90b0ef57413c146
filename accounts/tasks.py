"""Celery tasks of accounts: thin wrappers."""

from __future__ import annotations

from celery import shared_task


@shared_task(ignore_result=True)
def directory_check() -> dict:
    """LDAP accounts the directory no longer has, or no longer lets in, are deactivated
    (LDAP_CHECK_INTERVAL_SECONDS, on the maintenance worker)."""
    from accounts.ldap import directory_check as check

    return check()


@shared_task(ignore_result=True)
def oidc_check() -> dict:
    """OpenID Connect accounts, checked with their stored refresh tokens
    (OIDC_CHECK_INTERVAL_SECONDS, on the maintenance worker)."""
    from accounts.oidc import oidc_check as check

    return check()
