from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from portal.health import healthz
from repositories import registry_views, views
from repositories.admin_views import effective_access
from repositories.api.views import DockerSearchView

urlpatterns = [
    path("", views.home, name="home"),
    path("r/<str:namespace>/<path:name>/", views.repository_detail, name="repository"),
    path("healthz", healthz, name="healthz"),
    path("auth/token", registry_views.token_view, name="registry-token"),
    path("api/v1/registry/events", registry_views.events_view, name="registry-events"),
    path("api/v1/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/v1/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/v1/", include("webhooks.api.urls")),
    path("api/v1/", include("accounts.api.urls")),
    path("api/v1/", include("repositories.api.urls")),
    path("v1/search", DockerSearchView.as_view(), name="docker-search"),
    path("accounts/", include("allauth.urls")),
    path("admin/effective-access/", admin.site.admin_view(effective_access), name="admin-effective-access"),
    path("admin/", admin.site.urls),
]
