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
from portal.net import client_address
from portal.params import id_param
from repositories.forms import TokenForm


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
        context["new_token"] = {"name": token.name, "secret": secret, "registry": settings.REGISTRY_PUBLIC_HOST}
        context["form"] = TokenForm()
    context["tokens"] = PersonalAccessToken.objects.filter(user=request.user).order_by("-created_at")
    status = 400 if form.is_bound and form.errors else 200
    return render(request, "accounts/tokens.html", context, status=status)
