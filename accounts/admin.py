from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from accounts.models import Membership, Namespace, Organization, PersonalAccessToken, Robot, Team, TeamMembership, User


@admin.register(User)
class DockyardUserAdmin(UserAdmin):
    list_display = ("username", "email", "full_name", "is_active", "is_staff", "last_login")
    fieldsets = (*UserAdmin.fieldsets, ("Profile", {"fields": ("full_name", "company", "location")}))


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


class TeamInline(admin.TabularInline):
    model = Team
    extra = 0
    show_change_link = True


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ("name", "display_name", "created_at")
    search_fields = ("name", "display_name")
    inlines = [MembershipInline, TeamInline]


@admin.register(Namespace)
class NamespaceAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "default_visibility", "created_at")
    list_filter = ("kind", "default_visibility")
    search_fields = ("name",)
    list_select_related = ("user", "organization")
    raw_id_fields = ("user", "organization")


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("organization", "user", "role")
    list_filter = ("role",)
    list_select_related = ("organization", "user")
    search_fields = ("organization__name", "user__username")


class TeamMembershipInline(admin.TabularInline):
    model = TeamMembership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ("name", "organization")
    list_select_related = ("organization",)
    search_fields = ("name", "organization__name")
    inlines = [TeamMembershipInline]


@admin.register(TeamMembership)
class TeamMembershipAdmin(admin.ModelAdmin):
    list_display = ("team", "user")
    list_select_related = ("team__organization", "user")


@admin.register(Robot)
class RobotAdmin(admin.ModelAdmin):
    list_display = ("__str__", "organization", "is_active", "last_used_at")
    list_select_related = ("organization",)
    readonly_fields = ("secret_prefix", "secret_hash", "last_used_at")
    search_fields = ("name", "organization__name")


@admin.register(PersonalAccessToken)
class PersonalAccessTokenAdmin(admin.ModelAdmin):
    list_display = ("name", "user", "prefix", "scope", "expires_at", "last_used_at", "revoked_at")
    list_filter = ("scope",)
    list_select_related = ("user",)
    search_fields = ("name", "user__username", "prefix")
    readonly_fields = ("prefix", "token_hash", "last_used_at")
