from allauth.account.decorators import secure_admin_login
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from accounts import org_views as account_org_views
from accounts import views as account_views
from portal.health import healthz, readyz
from repositories import org_views, registry_views, views
from repositories.admin_views import effective_access
from repositories.api.views import DockerSearchView

# The admin signs in through allauth's login, so two-factor authentication holds there too
# (Django's own admin login form asks for the password only).
admin.site.login = secure_admin_login(admin.site.login)

NS = r"(?P<namespace>[a-z0-9]+(?:[._-][a-z0-9]+)*)"
NAME = r"(?P<name>[a-z0-9][a-z0-9._/-]*?)"
TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"

urlpatterns = [
    path("", views.home, name="home"),
    path("search/", views.search, name="search"),
    # A repository's sub-pages live behind "/-/", which no repository name can contain (each
    # path component starts with a letter or digit), so acme/web/tags is a repository and
    # acme/web/-/tags/ is acme/web's tags: names and pages never collide (GitLab's scheme).
    re_path(
        rf"^r/{NS}/{NAME}/-/tags/(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})/delete/$",
        views.tag_delete,
        name="tag-delete",
    ),
    re_path(rf"^r/{NS}/{NAME}/-/tags/(?P<tag>{TAG})/$", views.tag_detail, name="tag-detail"),
    re_path(
        rf"^r/{NS}/{NAME}/-/attachments/(?P<artifact>sha256:[0-9a-f]{{64}})/(?P<layer>sha256:[0-9a-f]{{64}})/$",
        views.attachment_download,
        name="attachment-download",
    ),
    re_path(rf"^r/{NS}/{NAME}/-/tags/$", views.repository_tags, name="repository-tags"),
    re_path(rf"^r/{NS}/{NAME}/-/settings/$", views.repository_settings, name="repository-settings"),
    re_path(rf"^r/{NS}/{NAME}/-/star/$", views.star, name="repository-star"),
    re_path(rf"^r/{NS}/(?P<name>[a-z0-9][a-z0-9._/-]*)/$", views.repository_detail, name="repository"),
    path("new/", org_views.repository_create, name="repository-create"),
    path("orgs/new/", org_views.organization_create, name="organization-create"),
    path("u/<str:name>/settings/", account_org_views.organization_settings, name="organization-settings"),
    *[
        path(f"u/<str:name>/settings/{route}/", view, name=f"org-{route.replace('/', '-')}")
        for route, view in [
            ("members", account_org_views.member_set),
            ("members/remove", account_org_views.member_remove),
            ("teams", account_org_views.team_create),
            ("teams/delete", account_org_views.team_delete),
            ("teams/members", account_org_views.team_member_add),
            ("teams/members/remove", account_org_views.team_member_remove),
            ("rules", account_org_views.rule_create),
            ("rules/delete", account_org_views.rule_delete),
            ("robots", account_org_views.robot_create),
            ("robots/rotate", account_org_views.robot_rotate),
            ("robots/delete", account_org_views.robot_delete),
            ("webhooks", account_org_views.webhook_create),
            ("webhooks/delete", account_org_views.webhook_delete),
            ("webhooks/redeliver", account_org_views.webhook_redeliver),
            ("keys", account_org_views.key_add),
            ("keys/delete", account_org_views.key_delete),
            ("immutable", account_org_views.immutable_add),
            ("immutable/delete", account_org_views.immutable_delete),
            ("storage", account_org_views.quota_set),
            ("retention", account_org_views.retention_add),
            ("retention/delete", account_org_views.retention_delete),
            ("retention/run", account_org_views.retention_run),
            ("profile", account_org_views.settings_update),
            ("delete", account_org_views.organization_delete),
        ]
    ],
    path("u/<str:name>/", views.namespace_page, name="namespace"),
    path("settings/tokens/", account_views.access_tokens, name="access-tokens"),
    path("settings/profile/", account_views.profile, name="account-profile"),
    path("settings/signing-keys/", account_views.signing_keys, name="signing-keys"),
    path("settings/policies/", account_views.policies, name="account-policies"),
    *[
        path(
            f"settings/policies/{action.replace('_', '/')}/", view, name=f"account-policies-{action.replace('_', '-')}"
        )
        for action, view in account_views.POLICY_ACTIONS.items()
    ],
    path("settings/", RedirectView.as_view(pattern_name="account-profile", permanent=False)),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("auth/token", registry_views.token_view, name="registry-token"),
    path("-/front/check", registry_views.front_check, name="front-check"),
    path("api/v1/registry/events", registry_views.events_view, name="registry-events"),
    path("api/v1/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves its start-up script as a file: no inline script, so the CSP holds.
    path("api/v1/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/v1/", include("webhooks.api.urls")),
    path("api/v1/", include("accounts.api.urls")),
    path("api/v1/", include("repositories.api.urls")),
    path("v1/search", DockerSearchView.as_view(), name="docker-search"),
    # Company accounts have no password here: these two of allauth's pages say so (accounts/views.py).
    path("accounts/password/change/", account_views.password_change),
    path("accounts/password/set/", account_views.password_set),
    path("accounts/", include("allauth.urls")),
    path("admin/effective-access/", admin.site.admin_view(effective_access), name="admin-effective-access"),
    path("admin/", admin.site.urls),
]

handler404 = "portal.errors.not_found"
