from django.contrib import admin
from django.urls import include, path

from portal.health import healthz
from repositories import registry_views, views

urlpatterns = [
    path("", views.home, name="home"),
    path("r/<str:namespace>/<path:name>/", views.repository_detail, name="repository"),
    path("healthz", healthz, name="healthz"),
    path("auth/token", registry_views.token_view, name="registry-token"),
    path("api/v1/registry/events", registry_views.events_view, name="registry-events"),
    path("accounts/", include("allauth.urls")),
    path("admin/", admin.site.urls),
]
