"""The admin's effective-access page: pick a user, robot or token and a repository (or a
namespace), and see what the policy module decides for each action, and why; for a repository,
also every principal with access and through what. Nothing here decides: access.py does."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from accounts.models import Level, Namespace, PersonalAccessToken, Robot, User
from repositories import access

ACTIONS = [("pull", Level.READ), ("push", Level.WRITE), ("delete", Level.ADMIN)]


class EffectiveAccessForm(forms.Form):
    principal = forms.CharField(
        max_length=150,
        label="User, robot or token",
        help_text="a username; a robot as org+name; a token as token:<prefix> (its first 8 characters after dy_pat_)",
    )
    target = forms.CharField(
        max_length=255,
        label="Repository or namespace",
        help_text="namespace/repository (which may not exist yet), or a namespace",
    )

    def clean_principal(self) -> access.Actor:
        value = self.cleaned_data["principal"].strip()
        if value.startswith("token:"):
            token = PersonalAccessToken.objects.select_related("user").filter(prefix=value[6:]).first()
            if token is None:
                raise forms.ValidationError("No token with that prefix.")
            return access.Actor(kind="user", user=token.user, token=token)
        if "+" in value:
            org, _, name = value.partition("+")
            robot = Robot.objects.select_related("organization").filter(organization__name=org, name=name).first()
            if robot is None:
                raise forms.ValidationError("No such robot.")
            return access.Actor(kind="robot", robot=robot)
        user = User.objects.filter(username=value.lower()).first()
        if user is None:
            raise forms.ValidationError("No such user.")
        return access.Actor(kind="user", user=user)

    def clean_target(self) -> str:
        value = self.cleaned_data["target"].strip().strip("/")
        namespace = value.split("/", 1)[0]
        if not Namespace.objects.filter(name=namespace).exists():
            raise forms.ValidationError("No such namespace.")
        return value


def _describe(actor: access.Actor) -> str:
    if actor.token is not None:
        limits = f", limited to {', '.join(actor.token.limits)}" if actor.token.limits else ""
        token = actor.token
        return f"token {token.name!r} ({token.prefix}…) of {actor.user.username}, scope {token.scope}{limits}"
    return f"robot {actor.robot.username}" if actor.robot else f"user {actor.user.username}"


def effective_access(request: HttpRequest) -> HttpResponse:
    form = EffectiveAccessForm(request.GET or None)
    context = {**admin.site.each_context(request), "title": "Effective access", "form": form}
    if form.is_valid():
        actor, target = form.cleaned_data["principal"], form.cleaned_data["target"]
        context["who"] = _describe(actor)
        if "/" in target:
            decision, namespace, repository = access.decide_by_name(actor, target)
            context["repository_name"] = target
            context["exists"] = repository is not None
            context["actions"] = [(name, decision.allows(level)) for name, level in ACTIONS]
            context["decision"] = decision
            context["level"] = Level(decision.level).label
            if repository is not None:
                context["principals"] = [
                    (kind, name, Level(d.level).label, d.reason)
                    for kind, name, d in access.principals_with_access(repository)
                ]
        else:
            namespace = Namespace.objects.get(name=target)
            rows = []
            # What the staff member at the console may see (everything: staff), through the one
            # visibility query like every other list.
            seen = access.visible_repositories(access.actor_for_user(request.user)).filter(namespace=namespace)
            for repository in seen.select_related("namespace").order_by("name")[:200]:
                decision = access.decide(actor, namespace, repository.name, repository)
                rows.append((repository.full_name, Level(decision.level).label, decision.reason))
            context["namespace_rows"] = rows
    return TemplateResponse(request, "admin/effective_access.html", context)
