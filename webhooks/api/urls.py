from django.urls import path, re_path

from repositories.api.urls import NAME, NS, S
from webhooks.api import views

R = rf"^repositories/{NS}/{NAME}"
HOOKS = [
    ("webhooks/", views.WebhookListView, "webhooks"),
    ("webhooks/<int:hook_id>/", views.WebhookDetailView, "webhook"),
    ("webhooks/<int:hook_id>/deliveries/", views.DeliveryListView, "webhook-deliveries"),
    ("webhooks/<int:hook_id>/test/", views.WebhookTestView, "webhook-test"),
    ("webhooks/<int:hook_id>/deliveries/<int:delivery_id>/redeliver/", views.RedeliverView, "webhook-redeliver"),
]


def _regex(suffix: str) -> str:
    return suffix.replace("<int:hook_id>", r"(?P<hook_id>[0-9]+)").replace(
        "<int:delivery_id>", r"(?P<delivery_id>[0-9]+)"
    )


urlpatterns = [
    *[path(f"orgs/<str:org>/{suffix}", view.as_view(), name=f"api-org-{name}") for suffix, view, name in HOOKS],
    *[re_path(rf"{R}/{_regex(suffix)}$", view.as_view(), name=f"api-repo-{name}") for suffix, view, name in HOOKS],
    re_path(rf"{R}/activity/$", views.RepositoryActivityView.as_view(), name="api-repo-activity"),
    # The same behind "/-/" (see repositories/api/urls.py): reachable whatever the name.
    *[re_path(rf"{S}/{_regex(suffix)}$", view.as_view()) for suffix, view, _ in HOOKS],
    re_path(rf"{S}/activity/$", views.RepositoryActivityView.as_view()),
    path("orgs/<str:org>/activity/", views.OrganizationActivityView.as_view(), name="api-org-activity"),
    path("users/<str:username>/activity/", views.UserActivityView.as_view(), name="api-user-activity"),
]
