"""An organization's management page for its owners: one page (GET) with a section per subject,
(each form with its own prefix, so field ids never repeat on the page),
and one small view per action (POST), as healthchecks keeps its account actions. Each action
asks the policy (may_manage_organization), calls one service, and answers with a redirect to its
section, where its result is shown; a form with errors is shown again in its section (400); an
action that makes a secret (a robot, a webhook) shows it once, in a dialog.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from accounts import policy_actions
from accounts import services as account_services
from accounts.models import Level, Membership, Organization, Robot, Team, TeamMembership, User
from accounts.snippets import credential_snippets
from portal.params import id_param, query_param
from repositories import access, trust
from repositories import services as repository_services
from repositories.forms import (
    AccessRuleForm,
    DeleteOrganizationForm,
    MemberForm,
    OrganizationSettingsForm,
    RobotForm,
    SigningKeyForm,
    TeamForm,
    TeamMemberForm,
    WebhookForm,
)
from repositories.models import AccessRule, SigningKey
from webhooks import services as webhook_services
from webhooks.models import Webhook

LEVELS = {"read": Level.READ, "write": Level.WRITE, "admin": Level.ADMIN}
SECTIONS = [
    ("members", "Members"),
    ("teams", "Teams"),
    ("rules", "Access rules"),
    ("robots", "Robots"),
    ("webhooks", "Webhooks"),
    ("keys", "Signing keys"),
    ("immutable", "Immutable tags"),
    ("retention", "Retention"),
    ("storage", "Storage"),
    ("settings", "Settings"),
    ("delete", "Delete"),
]


_Gone = policy_actions.Gone


def _managed(view: Callable) -> Callable:
    """The organization named in the URL, for its managers only (404 for non-members, 403 for
    members who do not manage it)."""

    @wraps(view)
    @login_required
    def wrapper(request: HttpRequest, name: str, *args, **kwargs) -> HttpResponse:
        organization = Organization.objects.filter(name=name).first()
        actor = access.actor_for_user(request.user)
        if organization is None or not access.may_see_organization_internals(actor, organization):
            raise Http404("No such organization.")
        if not access.may_manage_organization(actor, organization):
            raise PermissionDenied("Only the organization's owners manage it.")
        try:
            return view(request, organization, *args, **kwargs)
        except _Gone as gone:
            messages.error(request, gone.message, extra_tags=f"section-{gone.section}")
            return redirect(reverse("organization-settings", kwargs={"name": organization.name}) + f"#{gone.section}")

    return wrapper


def _done(request: HttpRequest, organization: Organization, section: str, message: str) -> HttpResponse:
    messages.success(request, message, extra_tags=f"section-{section}")
    return redirect(reverse("organization-settings", kwargs={"name": organization.name}) + f"#{section}")


def _refused(request: HttpRequest, organization: Organization, section: str, exc: ValidationError) -> HttpResponse:
    messages.error(request, " ".join(exc.messages), extra_tags=f"section-{section}")
    return redirect(reverse("organization-settings", kwargs={"name": organization.name}) + f"#{section}")


def _page(request: HttpRequest, organization: Organization, *, status: int = 200, **extra) -> HttpResponse:
    forms = {
        "settings": OrganizationSettingsForm(
            prefix="settings",
            initial={
                "display_name": organization.display_name,
                "description": organization.description,
                "email": organization.email,
                "default_visibility": organization.namespace.default_visibility,
            },
        ),
        "member": MemberForm(prefix="member"),
        "team": TeamForm(prefix="team"),
        "team_member": TeamMemberForm(prefix="team_member"),
        "rule": AccessRuleForm(prefix="rule"),
        "robot": RobotForm(prefix="robot"),
        "webhook": WebhookForm(prefix="webhook"),
        "key": SigningKeyForm(prefix="key"),
        **policy_actions.forms(),
        "delete": DeleteOrganizationForm(prefix="delete", full_name=organization.name),
    }
    forms.update(extra.pop("forms", {}))
    members = Membership.objects.filter(organization=organization).select_related("user").order_by("user__username")
    teams = list(
        Team.objects.filter(organization=organization).prefetch_related("members", "group_mappings").order_by("name")
    )
    managed = set(
        TeamMembership.objects.filter(team__organization=organization, managed=True).values_list("team_id", "user_id")
    )
    for team in teams:  # who a group mapping put there (no remove button for them)
        team.managed_member_ids = {user_id for team_id, user_id in managed if team_id == team.pk}
    context = {
        "organization": organization,
        "sections": SECTIONS,
        "forms": forms,
        "members": members,
        "teams": teams,
        "rules": AccessRule.objects.filter(organization=organization)
        .select_related("team", "robot")
        .order_by("pattern"),
        "robots": Robot.objects.filter(organization=organization).select_related("organization").order_by("name"),
        "webhooks": Webhook.objects.filter(organization=organization).order_by("name"),
        "keys": SigningKey.objects.filter(namespace=organization.namespace).select_related("added_by"),
        **policy_actions.context(organization.namespace),
        "policy_urls": policy_actions.urls("org", organization.name),
        # Pickers: the names a field may take, offered as a list (typing still works).
        "user_choices": User.objects.filter(is_active=True)
        .order_by("username")
        .values_list("username", flat=True)[:500],
        "member_choices": [m.user.username for m in members],
        "repository_count": organization.namespace.repositories.count(),
        **extra,
    }
    return render(request, "accounts/org_settings.html", context, status=status)


def _invalid(request: HttpRequest, organization: Organization, key: str, form) -> HttpResponse:
    return _page(request, organization, status=400, forms={key: form})


_with_errors = policy_actions.with_errors


@require_GET
@_managed
def organization_settings(request: HttpRequest, organization: Organization) -> HttpResponse:
    return _page(request, organization)


@require_POST
@_managed
def member_set(request: HttpRequest, organization: Organization) -> HttpResponse:
    form = MemberForm(request.POST, prefix="member")
    if form.is_valid():
        user = User.objects.filter(username=form.cleaned_data["username"].lower(), is_active=True).first()
        if user is None:
            form.add_error("username", "No such user.")
        else:
            try:
                account_services.membership_set(
                    organization=organization, user=user, role=form.cleaned_data["role"], actor=request.user
                )
            except ValidationError as exc:
                return _invalid(request, organization, "member", _with_errors(form, exc))
            return _done(request, organization, "members", f"{user.username} is now a {form.cleaned_data['role']}.")
    return _invalid(request, organization, "member", form)


@require_POST
@_managed
def member_remove(request: HttpRequest, organization: Organization) -> HttpResponse:
    user = User.objects.filter(username=query_param(request.POST, "username", 150)).first()
    if user is None:
        raise _Gone("members", "That member is no longer in the organization.")
    try:
        account_services.membership_remove(organization=organization, user=user, actor=request.user)
    except ValidationError as exc:
        return _refused(request, organization, "members", exc)
    return _done(request, organization, "members", f"Removed {user.username} (and from every team).")


@require_POST
@_managed
def team_create(request: HttpRequest, organization: Organization) -> HttpResponse:
    form = TeamForm(request.POST, prefix="team")
    if form.is_valid():
        try:
            account_services.team_create(
                organization=organization,
                name=form.cleaned_data["name"],
                description=form.cleaned_data["description"],
                actor=request.user,
            )
        except ValidationError as exc:
            return _invalid(request, organization, "team", _with_errors(form, exc))
        return _done(request, organization, "teams", f"Team {form.cleaned_data['name']} created.")
    return _invalid(request, organization, "team", form)


@require_POST
@_managed
def team_delete(request: HttpRequest, organization: Organization) -> HttpResponse:
    team = Team.objects.filter(organization=organization, name=query_param(request.POST, "team")).first()
    if team is None:
        raise _Gone("teams", "That team no longer exists.")
    account_services.team_delete(team=team, actor=request.user)
    return _done(request, organization, "teams", f"Team {team.name} deleted, with its grants and rules.")


@require_POST
@_managed
def team_member_add(request: HttpRequest, organization: Organization) -> HttpResponse:
    form = TeamMemberForm(request.POST, prefix="team_member")
    if form.is_valid():
        team = Team.objects.filter(organization=organization, name=form.cleaned_data["team"]).first()
        user = User.objects.filter(username=form.cleaned_data["username"].lower(), is_active=True).first()
        if team is None or user is None:
            form.add_error(None, "No such team or user.")
        else:
            try:
                account_services.team_member_add(team=team, user=user, actor=request.user)
            except ValidationError as exc:
                return _invalid(request, organization, "team_member", _with_errors(form, exc))
            return _done(request, organization, "teams", f"{user.username} joined team {team.name}.")
    return _invalid(request, organization, "team_member", form)


@require_POST
@_managed
def team_member_remove(request: HttpRequest, organization: Organization) -> HttpResponse:
    team = Team.objects.filter(organization=organization, name=query_param(request.POST, "team")).first()
    user = User.objects.filter(username=query_param(request.POST, "username", 150)).first()
    if team is None or user is None:
        raise _Gone("teams", "That team or member no longer exists.")
    try:
        account_services.team_member_remove(team=team, user=user, actor=request.user)
    except ValidationError as exc:
        raise _Gone("teams", " ".join(exc.messages)) from None
    return _done(request, organization, "teams", f"{user.username} left team {team.name}.")


@require_POST
@_managed
def rule_create(request: HttpRequest, organization: Organization) -> HttpResponse:
    form = AccessRuleForm(request.POST, prefix="rule")
    if form.is_valid():
        holder = form.cleaned_data["holder"]
        robot = Robot.objects.filter(organization=organization, name=holder.removeprefix("robot:")).first()
        robot = robot if holder.startswith("robot:") else None
        team = None if robot else Team.objects.filter(organization=organization, name=holder).first()
        if not (team or robot):
            form.add_error("holder", "No such team or robot here.")
        else:
            try:
                repository_services.access_rule_create(
                    organization=organization,
                    pattern=form.cleaned_data["pattern"],
                    level=LEVELS[form.cleaned_data["level"]],
                    actor=request.user,
                    team=team,
                    robot=robot,
                )
            except ValidationError as exc:
                return _invalid(request, organization, "rule", _with_errors(form, exc))
            return _done(request, organization, "rules", "Access rule added.")
    return _invalid(request, organization, "rule", form)


@require_POST
@_managed
def rule_delete(request: HttpRequest, organization: Organization) -> HttpResponse:
    rule = AccessRule.objects.filter(organization=organization, pk=id_param(request.POST.get("rule"))).first()
    if rule is None:
        raise _Gone("rules", "That access rule no longer exists.")
    repository_services.access_rule_delete(rule=rule, actor=request.user)
    return _done(request, organization, "rules", "Access rule removed.")


def _robot_secret_page(request: HttpRequest, organization: Organization, robot: Robot, secret: str, verb: str):
    return _page(
        request,
        organization,
        secret_title=f"Robot {robot.username} {verb}",
        secret_value=secret,
        snippets=credential_snippets(
            registry=settings.REGISTRY_PUBLIC_HOST, username=robot.username, secret=secret, name=robot.username
        ),
    )


@require_POST
@_managed
def robot_create(request: HttpRequest, organization: Organization) -> HttpResponse:
    refusal = access.robot_secret_refusal(access.actor_for_user(request.user), organization)
    if refusal:
        raise PermissionDenied(refusal)
    form = RobotForm(request.POST, prefix="robot")
    if form.is_valid():
        if Robot.objects.filter(organization=organization, name=form.cleaned_data["name"]).exists():
            form.add_error("name", "A robot with this name exists.")
        else:
            try:
                robot, secret = account_services.robot_create(
                    organization=organization,
                    name=form.cleaned_data["name"],
                    description=form.cleaned_data["description"],
                    actor=request.user,
                )
            except ValidationError as exc:
                return _invalid(request, organization, "robot", _with_errors(form, exc))
            return _robot_secret_page(request, organization, robot, secret, "created")
    return _invalid(request, organization, "robot", form)


def _robot(organization: Organization, request: HttpRequest) -> Robot:
    robot = (
        Robot.objects.filter(organization=organization, name=query_param(request.POST, "robot"))
        .select_related("organization")
        .first()
    )
    if robot is None:
        raise _Gone("robots", "That robot no longer exists.")
    return robot


@require_POST
@_managed
def robot_rotate(request: HttpRequest, organization: Organization) -> HttpResponse:
    refusal = access.robot_secret_refusal(access.actor_for_user(request.user), organization)
    if refusal:
        raise PermissionDenied(refusal)
    robot = _robot(organization, request)
    secret = account_services.robot_rotate(robot=robot, actor=request.user)
    return _robot_secret_page(request, organization, robot, secret, "has a new secret")


@require_POST
@_managed
def robot_delete(request: HttpRequest, organization: Organization) -> HttpResponse:
    robot = _robot(organization, request)
    account_services.robot_delete(robot=robot, actor=request.user)
    return _done(request, organization, "robots", f"Robot {robot.username} deleted; its secret stops working.")


@require_POST
@_managed
def webhook_create(request: HttpRequest, organization: Organization) -> HttpResponse:
    form = WebhookForm(request.POST, prefix="webhook")
    if form.is_valid():
        try:
            hook = webhook_services.webhook_create(actor=request.user, organization=organization, **form.cleaned_data)
        except ValidationError as exc:
            return _invalid(request, organization, "webhook", _with_errors(form, exc))
        return _page(
            request,
            organization,
            secret_title=f"Webhook {hook.name} created: its signing secret",
            secret_value=hook.secret,
            snippets=[],
        )
    return _invalid(request, organization, "webhook", form)


@require_POST
@_managed
def webhook_delete(request: HttpRequest, organization: Organization) -> HttpResponse:
    hook = Webhook.objects.filter(organization=organization, pk=id_param(request.POST.get("webhook"))).first()
    if hook is None:
        raise _Gone("webhooks", "That webhook no longer exists.")
    webhook_services.webhook_delete(webhook=hook, actor=request.user)
    return _done(request, organization, "webhooks", f"Webhook {hook.name} deleted.")


@require_POST
@_managed
def webhook_redeliver(request: HttpRequest, organization: Organization) -> HttpResponse:
    from webhooks.models import Delivery

    delivery = (
        Delivery.objects.filter(webhook__organization=organization, pk=id_param(request.POST.get("delivery")))
        .select_related("webhook")
        .first()
    )
    if delivery is None:
        raise _Gone("webhooks", "That delivery no longer exists.")
    webhook_services.redeliver(delivery=delivery, actor=request.user)
    return _done(request, organization, "webhooks", f"Delivery to {delivery.webhook.name} sent again.")


@require_POST
@_managed
def key_add(request: HttpRequest, organization: Organization) -> HttpResponse:
    form = SigningKeyForm(request.POST, prefix="key")
    if form.is_valid():
        try:
            key = trust.signing_key_add(
                namespace=organization.namespace,
                name=form.cleaned_data["name"],
                public_key=form.cleaned_data["public_key"],
                actor=request.user,
            )
        except ValidationError as exc:
            return _invalid(request, organization, "key", _with_errors(form, exc))
        return _done(request, organization, "keys", f"{key.name} is trusted; signed images were checked again.")
    return _invalid(request, organization, "key", form)


@require_POST
@_managed
def key_delete(request: HttpRequest, organization: Organization) -> HttpResponse:
    key = SigningKey.objects.filter(namespace=organization.namespace, pk=id_param(request.POST.get("key"))).first()
    if key is None:
        raise _Gone("keys", "That key is no longer trusted.")
    trust.signing_key_delete(key=key, actor=request.user)
    return _done(request, organization, "keys", f"{key.name} is no longer trusted; signed images were checked again.")


def _answer(request: HttpRequest, organization: Organization, result) -> HttpResponse:
    if isinstance(result, policy_actions.Invalid):
        return _invalid(request, organization, result.key, result.form)
    return _done(request, organization, result.section, result.message)


@require_POST
@_managed
def immutable_add(request: HttpRequest, organization: Organization) -> HttpResponse:
    return _answer(request, organization, policy_actions.immutable_add(request, organization.namespace))


@require_POST
@_managed
def immutable_delete(request: HttpRequest, organization: Organization) -> HttpResponse:
    return _answer(request, organization, policy_actions.immutable_delete(request, organization.namespace))


@require_POST
@_managed
def retention_add(request: HttpRequest, organization: Organization) -> HttpResponse:
    return _answer(request, organization, policy_actions.retention_add(request, organization.namespace))


@require_POST
@_managed
def retention_delete(request: HttpRequest, organization: Organization) -> HttpResponse:
    return _answer(request, organization, policy_actions.retention_delete(request, organization.namespace))


@require_POST
@_managed
def retention_run(request: HttpRequest, organization: Organization) -> HttpResponse:
    return _answer(request, organization, policy_actions.retention_run(request, organization.namespace))


@require_POST
@_managed
def quota_set(request: HttpRequest, organization: Organization) -> HttpResponse:
    return _answer(request, organization, policy_actions.quota_set(request, organization.namespace))


@require_POST
@_managed
def settings_update(request: HttpRequest, organization: Organization) -> HttpResponse:
    form = OrganizationSettingsForm(request.POST, prefix="settings")
    if form.is_valid():
        data = dict(form.cleaned_data)
        visibility = data.pop("default_visibility")
        account_services.organization_update(organization=organization, actor=request.user, **data)
        account_services.namespace_default_visibility_set(
            namespace=organization.namespace, visibility=visibility, actor=request.user
        )
        return _done(request, organization, "settings", "Organization settings saved.")
    return _invalid(request, organization, "settings", form)


@require_POST
@_managed
def organization_delete(request: HttpRequest, organization: Organization) -> HttpResponse:
    form = DeleteOrganizationForm(request.POST, prefix="delete", full_name=organization.name)
    if form.is_valid():
        try:
            account_services.organization_delete(organization=organization, actor=request.user)
        except ValidationError as exc:
            return _invalid(request, organization, "delete", _with_errors(form, exc))
        messages.success(request, f"Deleted the organization {organization.name}.")
        return redirect("home")
    return _invalid(request, organization, "delete", form)
