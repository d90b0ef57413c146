from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin

from accounts import services
from accounts.credentials import ROBOT_MARK, new_secret
from accounts.models import (
    GroupMapping,
    Membership,
    Namespace,
    Organization,
    PersonalAccessToken,
    RefreshToken,
    Robot,
    Team,
    TeamMembership,
    User,
)
from audit.admin_mixins import AuditedAdmin, audit_admin_change
from repositories.models import AccessRule, RepositoryGrant


def set_flag(request, queryset, field: str, value: bool) -> None:
    """Set a boolean on the selected rows that differ, each change audited."""
    for obj in queryset.exclude(**{field: value}):
        setattr(obj, field, value)
        obj.save(update_fields=[field])
        audit_admin_change(request, obj, {field: str(not value)}, action="change")


@admin.register(User)
class DockyardUserAdmin(AuditedAdmin, UserAdmin):
    list_display = ("username", "email", "full_name", "is_active", "is_staff", "last_login")
    list_filter = ("is_active", "is_staff", "is_superuser")
    fieldsets = (*UserAdmin.fieldsets, ("Profile", {"fields": ("full_name", "company", "location")}))
    actions = ["deactivate", "reactivate"]

    @admin.action(description="Deactivate: sign-ins and every token stop working at once")
    def deactivate(self, request, queryset) -> None:
        set_flag(request, queryset, "is_active", False)
        self.message_user(request, "Deactivated. Their tokens are refused from the next request on.", messages.SUCCESS)

    @admin.action(description="Reactivate")
    def reactivate(self, request, queryset) -> None:
        set_flag(request, queryset, "is_active", True)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


class TeamInline(admin.TabularInline):
    model = Team
    extra = 0
    show_change_link = True


@admin.register(Organization)
class OrganizationAdmin(AuditedAdmin, admin.ModelAdmin):
    list_display = ("name", "display_name", "created_at")
    search_fields = ("name", "display_name")
    inlines = [MembershipInline, TeamInline]


@admin.register(Namespace)
class NamespaceAdmin(AuditedAdmin, admin.ModelAdmin):
    list_display = ("name", "kind", "default_visibility", "created_at")
    list_filter = ("kind", "default_visibility")
    search_fields = ("name",)
    list_select_related = ("user", "organization")
    raw_id_fields = ("user", "organization")


@admin.register(Membership)
class MembershipAdmin(AuditedAdmin, admin.ModelAdmin):
    list_display = ("organization", "user", "role")
    list_filter = ("role", "organization")
    list_select_related = ("organization", "user")
    search_fields = ("organization__name", "user__username")
    raw_id_fields = ("user",)


class TeamMembershipInline(admin.TabularInline):
    model = TeamMembership
    form = None  # set below: TeamMembershipForm
    extra = 0
    autocomplete_fields = ["user"]
    readonly_fields = ["managed"]


class TeamGrantInline(admin.TabularInline):
    model = RepositoryGrant
    fk_name = "team"
    fields = ("repository", "level")
    extra = 0
    raw_id_fields = ("repository",)
    verbose_name_plural = "repository grants"


class TeamRuleInline(admin.TabularInline):
    model = AccessRule
    fk_name = "team"
    fields = ("organization", "pattern", "level")
    extra = 0
    verbose_name_plural = "access rules"


@admin.register(Team)
class TeamAdmin(AuditedAdmin, admin.ModelAdmin):
    list_display = ("name", "organization")
    list_filter = ("organization",)
    list_select_related = ("organization",)
    search_fields = ("name", "organization__name")
    inlines = [TeamMembershipInline, TeamGrantInline, TeamRuleInline]


@admin.register(GroupMapping)
class GroupMappingAdmin(AuditedAdmin, admin.ModelAdmin):
    """Groups of an identity provider (or LDAP group DNs) that make their members members of a
    team, or owners of an organization, at every sign-in and by the periodic check."""

    list_display = ("source", "group", "organization", "team", "owner", "created_at")
    list_filter = ("source", "owner")
    list_select_related = ("organization", "team")
    search_fields = ("group", "organization__name", "team__name")
    raw_id_fields = ("organization", "team")


class TeamMembershipForm(forms.ModelForm):
    """The admin follows the services' rules: a team member is a member of the organization,
    and a team fed by a group mapping takes no members by hand."""

    class Meta:
        model = TeamMembership
        fields = ["team", "user"]

    def clean(self):
        from accounts.directory import mapped_team_refusal

        data = super().clean()
        team = data.get("team") or (self.instance.team if self.instance.team_id else None)
        user = data.get("user")
        if team is not None and user is not None:
            if not Membership.objects.filter(organization=team.organization_id, user=user).exists():
                raise forms.ValidationError(f"{user.username} is not a member of {team.organization.name}.")
            refusal = mapped_team_refusal(team)
            if refusal and not (self.instance.pk and self.instance.team_id == team.pk):
                raise forms.ValidationError(refusal)
        return data


@admin.register(TeamMembership)
class TeamMembershipAdmin(AuditedAdmin, admin.ModelAdmin):
    form = TeamMembershipForm
    list_display = ("team", "user", "managed")
    list_select_related = ("team__organization", "user")
    raw_id_fields = ("user",)
    readonly_fields = ("managed",)


# OpenID Connect providers set up here are audited like everything else (their secret never is),
# and the refresh tokens kept for the periodic check are not shown at all.
from allauth.socialaccount.admin import SocialAppAdmin as _SocialAppAdmin  # noqa: E402
from allauth.socialaccount.models import SocialApp, SocialToken  # noqa: E402

for _model in (SocialApp, SocialToken):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)


@admin.register(SocialApp)
class SocialAppAdmin(AuditedAdmin, _SocialAppAdmin):
    pass


@admin.register(Robot)
class RobotAdmin(AuditedAdmin, admin.ModelAdmin):
    list_display = ("__str__", "organization", "is_active", "created_at", "last_used_at")
    list_filter = ("is_active", "organization")
    list_select_related = ("organization",)
    search_fields = ("name", "organization__name")
    fields = ("organization", "name", "description", "is_active", "last_used_at")
    readonly_fields = ("last_used_at",)
    actions = ["rotate", "disable", "enable"]

    def save_model(self, request, obj, form, change) -> None:
        secret = None
        if not change:
            secret, obj.secret_prefix, obj.secret_hash = new_secret(ROBOT_MARK)
        super().save_model(request, obj, form, change)
        if secret:
            self.message_user(
                request, f"Secret for {obj.username} (shown once, copy it now): {secret}", messages.WARNING
            )

    @admin.action(description="Rotate the secret (the old one stops working at once)")
    def rotate(self, request, queryset) -> None:
        for robot in queryset.select_related("organization"):
            secret = services.robot_rotate(robot=robot, actor=request.user)
            self.message_user(request, f"New secret for {robot.username} (shown once): {secret}", messages.WARNING)

    @admin.action(description="Disable")
    def disable(self, request, queryset) -> None:
        set_flag(request, queryset, "is_active", False)

    @admin.action(description="Enable")
    def enable(self, request, queryset) -> None:
        set_flag(request, queryset, "is_active", True)


@admin.register(PersonalAccessToken)
class PersonalAccessTokenAdmin(AuditedAdmin, admin.ModelAdmin):
    """Tokens are made by their owners; here they are seen and revoked. The secret is never
    stored, so it can never be shown."""

    list_display = ("name", "user", "prefix", "scope", "limits", "expires_at", "last_used_at", "revoked_at")
    list_filter = ("scope", ("revoked_at", admin.EmptyFieldListFilter))
    list_select_related = ("user",)
    search_fields = ("name", "user__username", "prefix")
    fields = ("user", "name", "prefix", "scope", "limits", "created_at", "expires_at", "last_used_at", "revoked_at")
    readonly_fields = fields
    actions = ["revoke"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Revoke (refused from the next request on)")
    def revoke(self, request, queryset) -> None:
        for token in queryset.filter(revoked_at__isnull=True).select_related("user"):
            services.access_token_revoke(token=token, actor=request.user)
        self.message_user(request, "Revoked.", messages.SUCCESS)


@admin.register(RefreshToken)
class RefreshTokenAdmin(admin.ModelAdmin):
    list_display = ("prefix", "user", "robot", "access_token", "client_id", "created_at", "last_used_at", "revoked_at")
    list_select_related = ("user", "robot__organization", "access_token")
    fields = list_display
    readonly_fields = list_display
    actions = ["revoke"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Revoke")
    def revoke(self, request, queryset) -> None:
        for refresh in queryset.filter(revoked_at__isnull=True):
            services.refresh_token_revoke(refresh=refresh, actor_name=request.user.username)


TeamMembershipInline.form = TeamMembershipForm
