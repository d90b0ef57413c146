"""allauth's hooks into our rules: a new user's name must be free in the shared namespace table,
and every new user gets their personal namespace."""

from __future__ import annotations

from allauth.account.adapter import DefaultAccountAdapter
from django import forms

from accounts.models import NAMESPACE_RE, Namespace
from accounts.services import user_namespace_ensure


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
