"""Creating repositories and organizations. The same services as the API; access.py decides.
(An organization's management page is accounts/org_views.py.)"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from accounts import services as account_services
from accounts.models import Level, Namespace, Organization
from repositories import access, services
from repositories.forms import (
    LEVEL_CHOICES,
    OrganizationCreateForm,
    RepositoryCreateForm,
)

LEVELS = {value: {"read": Level.READ, "write": Level.WRITE, "admin": Level.ADMIN}[value] for value, _ in LEVEL_CHOICES}


def _errors(form, exc: ValidationError) -> None:
    if hasattr(exc, "error_dict"):
        for field, errors in exc.message_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, exc.messages)


@login_required
@require_http_methods(["GET", "POST"])
def repository_create(request: HttpRequest) -> HttpResponse:
    actor = access.actor_for_user(request.user)
    account_services.user_namespace_ensure(user=request.user)
    organizations = Organization.objects.filter(memberships__user=request.user).order_by("name")
    candidates = [request.user.username, *organizations.values_list("name", flat=True)]
    form = RepositoryCreateForm(
        request.POST or None, namespaces=candidates, initial={"namespace": request.GET.get("namespace")}
    )
    if request.method == "POST" and form.is_valid():
        namespace = Namespace.objects.get(name=form.cleaned_data["namespace"])
        name = form.cleaned_data["name"].strip().lower()
        refusal = access.repository_creation_refusal(actor, namespace, name, form.cleaned_data["visibility"])
        if refusal:
            field = "visibility" if access.decide(actor, namespace, name).allows(Level.WRITE) else "namespace"
            form.add_error(field, refusal)
        else:
            try:
                repository = services.repository_create(
                    namespace=namespace,
                    name=name,
                    actor=request.user,
                    actor_name=request.user.username,
                    visibility=form.cleaned_data["visibility"],
                    short_description=form.cleaned_data["short_description"],
                )
            except ValidationError as exc:
                _errors(form, exc)
            else:
                messages.success(request, f"Created {repository.full_name}. Push to it with docker push.")
                return redirect("repository", namespace=namespace.name, name=repository.name)
    return render(request, "repositories/create.html", {"form": form}, status=400 if form.errors else 200)


@login_required
@require_http_methods(["GET", "POST"])
def organization_create(request: HttpRequest) -> HttpResponse:
    form = OrganizationCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            organization = account_services.organization_create(
                name=form.cleaned_data["name"], owner=request.user, display_name=form.cleaned_data["display_name"]
            )
        except ValidationError as exc:
            _errors(form, exc)
        else:
            messages.success(request, f"Created the organization {organization.name}; you own it.")
            return redirect("organization-settings", name=organization.name)
    return render(request, "repositories/org_create.html", {"form": form}, status=400 if form.errors else 200)
