"""Repository names may contain slashes (acme/team/app), so these routes are regular
expressions: the sub-resource suffixes (tags, permissions, star, pulls) are matched first and
everything between the namespace and them is the name. That leaves a repository named like a
sub-resource (acme/web/tags) unreachable by the short form, so every route also exists with the
"/-/" separator that no name can contain, as the pages use: repositories/acme/web/tags/-/ is
that repository, repositories/acme/web/-/tags/ the tags of acme/web."""

from django.urls import path, re_path

from repositories.api import views

NS = r"(?P<namespace>[a-z0-9]+(?:[._-][a-z0-9]+)*)"
NAME = r"(?P<name>[a-z0-9][a-z0-9._-]*(?:/[a-z0-9][a-z0-9._-]*)*?)"  # components start with a letter or digit
R = rf"^repositories/{NS}/{NAME}"
# Unambiguous, so greedy: "-" is never a name component.
S = rf"^repositories/{NS}/(?P<name>[a-z0-9][a-z0-9._-]*(?:/[a-z0-9][a-z0-9._-]*)*)/-"
TAG = r"(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})"


def _digest(group: str) -> str:
    return rf"(?P<{group}>sha256:[0-9a-f]{{64}})"


urlpatterns = [
    path("repositories/", views.RepositoryListView.as_view(), name="api-repositories"),
    re_path(rf"{S}/tags/{TAG}/$", views.TagDetailView.as_view(), name="api-tag-separated"),
    re_path(rf"{S}/tags/$", views.TagListView.as_view(), name="api-tags-separated"),
    re_path(rf"{S}/permissions/(?P<grant_id>[0-9]+)/$", views.PermissionDetailView.as_view()),
    re_path(rf"{S}/permissions/$", views.PermissionListView.as_view()),
    re_path(rf"{S}/star/$", views.StarView.as_view()),
    re_path(rf"{S}/pulls/$", views.PullsView.as_view()),
    re_path(
        rf"{S}/attachments/{_digest('artifact')}/{_digest('layer')}/$",
        views.AttachmentView.as_view(),
        name="api-attachment-separated",
    ),
    re_path(rf"{S}/$", views.RepositoryDetailView.as_view(), name="api-repository-separated"),
    re_path(rf"{R}/tags/{TAG}/$", views.TagDetailView.as_view(), name="api-tag"),
    re_path(rf"{R}/tags/$", views.TagListView.as_view(), name="api-tags"),
    re_path(rf"{R}/permissions/(?P<grant_id>[0-9]+)/$", views.PermissionDetailView.as_view(), name="api-permission"),
    re_path(rf"{R}/permissions/$", views.PermissionListView.as_view(), name="api-permissions"),
    re_path(rf"{R}/star/$", views.StarView.as_view(), name="api-star"),
    re_path(rf"{R}/pulls/$", views.PullsView.as_view(), name="api-pulls"),
    re_path(
        rf"{R}/attachments/{_digest('artifact')}/{_digest('layer')}/$",
        views.AttachmentView.as_view(),
        name="api-attachment",
    ),
    re_path(rf"{R}/$", views.RepositoryDetailView.as_view(), name="api-repository"),
    re_path(rf"^repositories/{NS}/$", views.NamespaceRepositoryListView.as_view(), name="api-namespace-repositories"),
    path("namespaces/<str:namespace>/signing-keys/", views.SigningKeyListView.as_view(), name="api-signing-keys"),
    path(
        "namespaces/<str:namespace>/signing-keys/<int:key_id>/",
        views.SigningKeyDetailView.as_view(),
        name="api-signing-key",
    ),
    path("namespaces/<str:namespace>/immutable-tags/", views.ImmutableTagListView.as_view(), name="api-immutable-tags"),
    path("namespaces/<str:namespace>/storage/", views.StorageView.as_view(), name="api-storage"),
    path("admin/gc/", views.GcView.as_view(), name="api-gc"),
    path(
        "namespaces/<str:namespace>/retention-rules/", views.RetentionRuleListView.as_view(), name="api-retention-rules"
    ),
    path(
        "namespaces/<str:namespace>/retention-rules/<int:rule_id>/",
        views.RetentionRuleDetailView.as_view(),
        name="api-retention-rule",
    ),
    path("namespaces/<str:namespace>/retention-runs/", views.RetentionRunView.as_view(), name="api-retention-runs"),
    path(
        "namespaces/<str:namespace>/immutable-tags/<int:rule_id>/",
        views.ImmutableTagDetailView.as_view(),
        name="api-immutable-tag",
    ),
]
