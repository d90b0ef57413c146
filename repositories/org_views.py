"""Creating repositories and organizations, and an organization's management page for its
owners. The same services as the API; access.py decides."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from accounts import services as account_services
from accounts.models import Level, Membership, Namespace, Organization, Robot, Team, User
from portal.params import id_param
from repositories import access, services
from repositories.forms import (
    LEVEL_CHOICES,
    AccessRuleForm,
    MemberForm,
    OrganizationCreateForm,
    OrganizationSettingsForm,
    RepositoryCreateForm,
    RobotForm,
    TeamForm,
    TeamMemberForm,
    WebhookForm,
)
from repositories.models import AccessRule
from webhooks import services as webhook_services
from webhooks.models import Webhook

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


@login_required
@require_http_methods(["GET", "POST"])
def organization_settings(request: HttpRequest, name: str) -> HttpResponse:
    organization = Organization.objects.filter(name=name).first()
    actor = access.actor_for_user(request.user)
    if organization is None or not access.may_see_organization_internals(actor, organization):
        raise Http404("No such organization.")
    if not access.may_manage_organization(actor, organization):
        raise PermissionDenied("Only the organization's owners manage it.")
    action = request.POST.get("action", "")
    if action in ("robot", "rotate-robot") and access.robot_secret_refusal(actor, organization):
        raise PermissionDenied(access.robot_secret_refusal(actor, organization))
    forms = {
        "settings": OrganizationSettingsForm(
            request.POST if action == "settings" else None,
            initial={
                "display_name": organization.display_name,
                "description": organization.description,
                "email": organization.email,
            },
        ),
        "member": MemberForm(request.POST if action == "member" else None),
        "team": TeamForm(request.POST if action == "team" else None),
        "team_member": TeamMemberForm(request.POST if action == "team_member" else None),
        "rule": AccessRuleForm(request.POST if action == "rule" else None),
        "robot": RobotForm(request.POST if action == "robot" else None),
        "webhook": WebhookForm(request.POST if action == "webhook" else None),
    }
    context: dict = {"organization": organization}
    here = redirect("organization-settings", name=name)
    form = forms.get(action)
    try:
        if form is not None and form.is_valid():
            data = form.cleaned_data
            if action == "settings":
                account_services.organization_update(organization=organization, actor=request.user, **data)
                messages.success(request, "Organization settings saved.")
                return here
            if action == "member":
                user = User.objects.filter(username=data["username"].lower(), is_active=True).first()
                if user is None:
                    form.add_error("username", "No such user.")
                else:
                    account_services.membership_set(
                        organization=organization, user=user, role=data["role"], actor=request.user
                    )
                    messages.success(request, f"{user.username} is now a {data['role']} of {organization.name}.")
                    return here
            if action == "team":
                account_services.team_create(
                    organization=organization, name=data["name"], description=data["description"], actor=request.user
                )
                messages.success(request, f"Team {data['name']} created.")
                return here
            if action == "team_member":
                team = Team.objects.filter(organization=organization, name=data["team"]).first()
                user = User.objects.filter(username=data["username"].lower(), is_active=True).first()
                if team is None or user is None:
                    form.add_error(None, "No such team or user.")
                else:
                    account_services.team_member_add(team=team, user=user, actor=request.user)
                    messages.success(request, f"{user.username} joined team {team.name}.")
                    return here
            if action == "rule":
                holder = data["holder"]
                robot = (
                    Robot.objects.filter(organization=organization, name=holder[6:]).first()
                    if holder.startswith("robot:")
                    else None
                )
                team = None if robot else Team.objects.filter(organization=organization, name=holder).first()
                if not (team or robot):
                    form.add_error("holder", "No such team or robot here.")
                else:
                    services.access_rule_create(
                        organization=organization,
                        pattern=data["pattern"],
                        level=LEVELS[data["level"]],
                        actor=request.user,
                        team=team,
                        robot=robot,
                    )
                    messages.success(request, "Access rule added.")
                    return here
            if action == "robot":
                robot, secret = account_services.robot_create(
                    organization=organization, name=data["name"], description=data["description"], actor=request.user
                )
                context["new_secret"] = (robot.username, secret)  # on this page only, once
                forms["robot"] = RobotForm()
            if action == "webhook":
                hook = webhook_services.webhook_create(actor=request.user, organization=organization, **data)
                context["new_secret"] = (f"webhook {hook.name}", hook.secret)
                forms["webhook"] = WebhookForm()
        elif action in (
            "remove-member",
            "remove-rule",
            "rotate-robot",
            "delete-robot",
            "delete-webhook",
            "remove-team-member",
        ):
            target = request.POST.get("target", "")
            if action == "remove-member":
                user = User.objects.filter(username=target).first()
                if user is not None:
                    account_services.membership_remove(organization=organization, user=user, actor=request.user)
                    messages.success(request, f"Removed {user.username}.")
            elif action == "remove-team-member":
                team_name, _, username = target.partition("/")
                team = Team.objects.filter(organization=organization, name=team_name).first()
                user = User.objects.filter(username=username).first()
                if team and user:
                    account_services.team_member_remove(team=team, user=user, actor=request.user)
            elif action == "remove-rule":
                rule = AccessRule.objects.filter(organization=organization, pk=id_param(target)).first()
                if rule is not None:
                    services.access_rule_delete(rule=rule, actor=request.user)
                    messages.success(request, "Access rule removed.")
            elif action in ("rotate-robot", "delete-robot"):
                robot = (
                    Robot.objects.filter(organization=organization, name=target).select_related("organization").first()
                )
                if robot is not None and action == "delete-robot":
                    account_services.robot_delete(robot=robot, actor=request.user)
                    messages.success(request, f"Robot {robot.username} deleted.")
                elif robot is not None:
                    context["new_secret"] = (
                        robot.username,
                        account_services.robot_rotate(robot=robot, actor=request.user),
                    )
            elif action == "delete-webhook":
                hook = Webhook.objects.filter(organization=organization, pk=id_param(target)).first()
                if hook is not None:
                    webhook_services.webhook_delete(webhook=hook, actor=request.user)
                    messages.success(request, f"Webhook {hook.name} deleted.")
            if "new_secret" not in context:
                return here
    except ValidationError as exc:
        if form is not None:
            _errors(form, exc)
        else:
            messages.error(request, " ".join(exc.messages))
            return here
    context.update(
        forms=forms,
        members=Membership.objects.filter(organization=organization).select_related("user").order_by("user__username"),
        teams=Team.objects.filter(organization=organization).prefetch_related("members").order_by("name"),
        rules=AccessRule.objects.filter(organization=organization).select_related("team", "robot").order_by("pattern"),
        robots=Robot.objects.filter(organization=organization).select_related("organization").order_by("name"),
        webhooks=Webhook.objects.filter(organization=organization).order_by("name"),
    )
    status = 400 if any(f.is_bound and f.errors for f in forms.values()) else 200
    return render(request, "repositories/org_settings.html", context, status=status)
