"""Account pages of our own (allauth serves sign-up, log-in, email, password and 2FA)."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import policy_actions, services
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


def _own_namespace(request: HttpRequest):
    """The signed-in user's namespace; users made outside the services (the admin's user form,
    create_user) get it on first need, as the organization pages do (it was a 500)."""
    from accounts.services import user_namespace_ensure

    return user_namespace_ensure(user=request.user)


@login_required
@require_http_methods(["GET", "POST"])
def signing_keys(request: HttpRequest) -> HttpResponse:
    """The public keys whose cosign signatures your own namespace trusts."""
    from django.core.exceptions import ValidationError

    from repositories import trust
    from repositories.forms import SigningKeyForm
    from repositories.models import SigningKey

    namespace = _own_namespace(request)
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


def _policies_page(request: HttpRequest, *, status: int = 200, forms: dict | None = None) -> HttpResponse:
    namespace = _own_namespace(request)
    context = {
        "sections": policy_actions.SECTIONS,
        "forms": {**policy_actions.forms(), **(forms or {})},
        "policy_urls": policy_actions.urls("account-policies"),
        **policy_actions.context(namespace),
    }
    return render(request, "accounts/policies.html", context, status=status)


@login_required
@require_GET
def policies(request: HttpRequest) -> HttpResponse:
    """Your own namespace's immutable tags, retention and storage: the sections an organization's
    settings have, for the namespace you own."""
    return _policies_page(request)


def _policy_action(action):
    """A POST view for one of policy_actions' actions on your own namespace."""

    @login_required
    @require_POST
    def view(request: HttpRequest) -> HttpResponse:
        try:
            result = action(request, _own_namespace(request))
        except policy_actions.Gone as gone:
            messages.error(request, gone.message, extra_tags=f"section-{gone.section}")
            return redirect(reverse("account-policies") + f"#{gone.section}")
        if isinstance(result, policy_actions.Invalid):
            return _policies_page(request, status=400, forms={result.key: result.form})
        messages.success(request, result.message, extra_tags=f"section-{result.section}")
        return redirect(reverse("account-policies") + f"#{result.section}")

    view.__name__ = view.__qualname__ = f"policies_{action.__name__}"
    return view


POLICY_ACTIONS = {
    "immutable": _policy_action(policy_actions.immutable_add),
    "immutable_delete": _policy_action(policy_actions.immutable_delete),
    "retention": _policy_action(policy_actions.retention_add),
    "retention_delete": _policy_action(policy_actions.retention_delete),
    "retention_run": _policy_action(policy_actions.retention_run),
    "storage": _policy_action(policy_actions.quota_set),
}


def _company_account_has_no_password(allauth_view):
    """allauth's password change and set pages, except for company accounts (LDAP, single
    sign-on): a password set here would be refused on every surface (password_sign_in_allowed),
    so the page says how they sign in and use docker instead of offering one."""

    def view(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        directory = getattr(request.user, "directory", "") if request.user.is_authenticated else ""
        if not directory:
            return allauth_view(request, *args, **kwargs)
        how = "LDAP" if directory == "ldap" else "single sign-on"
        status = 200 if request.method in ("GET", "HEAD") else 403
        return render(request, "accounts/no_password.html", {"how": how}, status=status)

    view.__name__ = view.__qualname__ = f"company_aware_{getattr(allauth_view, '__name__', 'password')}"
    return view


def _allauth(name: str):
    from allauth.account import views as allauth_views

    return getattr(allauth_views, name)


password_change = _company_account_has_no_password(_allauth("password_change"))
password_set = _company_account_has_no_password(_allauth("password_set"))
