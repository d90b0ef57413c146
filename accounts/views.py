"""Account pages of our own (allauth serves sign-up, log-in, email, password and 2FA)."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from accounts import services
from accounts.models import PersonalAccessToken
from accounts.snippets import credential_snippets
from portal.net import client_address
from portal.params import id_param
from repositories.forms import ProfileForm, TokenForm


@login_required
@require_http_methods(["GET", "POST"])
def access_tokens(request: HttpRequest) -> HttpResponse:
    form = TokenForm(request.POST if request.POST.get("action") == "create" else None)
    context: dict = {"form": form}
    if request.POST.get("action") == "revoke":
        token = PersonalAccessToken.objects.filter(user=request.user, pk=id_param(request.POST.get("token"))).first()
        if token is not None:
            services.access_token_revoke(token=token, actor=request.user)
            messages.success(request, f"Token {token.name} revoked; it stops working at once.")
        return redirect("access-tokens")
    if form.is_bound and form.is_valid():
        days = form.cleaned_data["expires"]
        token, secret = services.access_token_create(
            user=request.user,
            name=form.cleaned_data["name"],
            scope=form.cleaned_data["scope"],
            expires_at=timezone.now() + dt.timedelta(days=int(days)) if days else None,
            limits=form.cleaned_data["limits"],
            address=client_address(request),
        )
        # Shown on this page once; never stored, never in a message or a log.
        context.update(
            secret_title=f"Token “{token.name}” created",
            secret_value=secret,
            snippets=credential_snippets(
                registry=settings.REGISTRY_PUBLIC_HOST, username=request.user.username, secret=secret, name=token.name
            ),
        )
        context["form"] = TokenForm()
    context["tokens"] = PersonalAccessToken.objects.filter(user=request.user).order_by("-created_at")
    status = 400 if form.is_bound and form.errors else 200
    return render(request, "accounts/tokens.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def profile(request: HttpRequest) -> HttpResponse:
    """The account hub's first page: who you are to others (display name, bio, company,
    location; the avatar is drawn from your name)."""
    user = request.user
    form = ProfileForm(request.POST or None, initial={f: getattr(user, f) for f in services.PROFILE_FIELDS})
    if request.method == "POST" and form.is_valid():
        services.user_profile_update(user=user, actor=user, **form.cleaned_data)
        messages.success(request, "Profile saved.")
        return redirect("account-profile")
    return render(request, "accounts/profile.html", {"form": form}, status=400 if form.errors else 200)


@login_required
@require_http_methods(["GET", "POST"])
def signing_keys(request: HttpRequest) -> HttpResponse:
    """The public keys whose cosign signatures your own namespace trusts."""
    from django.core.exceptions import ValidationError

    from repositories import trust
    from repositories.forms import SigningKeyForm
    from repositories.models import SigningKey

    namespace = request.user.namespace
    form = SigningKeyForm(request.POST if request.POST.get("action") == "add" else None)
    if request.POST.get("action") == "remove":
        key = SigningKey.objects.filter(namespace=namespace, pk=id_param(request.POST.get("key"))).first()
        if key is None:
            messages.error(request, "That key is no longer trusted.")
        else:
            trust.signing_key_delete(key=key, actor=request.user)
            messages.success(request, f"{key.name} is no longer trusted; your signed images were checked again.")
        return redirect("signing-keys")
    if form.is_bound and form.is_valid():
        try:
            key = trust.signing_key_add(
                namespace=namespace,
                name=form.cleaned_data["name"],
                public_key=form.cleaned_data["public_key"],
                actor=request.user,
            )
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            messages.success(request, f"{key.name} is trusted; your signed images were checked again.")
            return redirect("signing-keys")
    keys = SigningKey.objects.filter(namespace=namespace).select_related("added_by")
    status = 400 if form.is_bound and form.errors else 200
    return render(request, "accounts/signing_keys.html", {"keys": keys, "key_form": form}, status=status)
