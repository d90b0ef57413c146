"""Error pages: the API's scripts get JSON, people get the HTML page."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """A path under /api/ that names no endpoint (a typo, `…/immutable-tags/abc/`) answers as the
    API's own 404s do, {"detail": …}, not with the site's HTML page."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found: no such API endpoint or object."}, status=404)
    return defaults.page_not_found(request, exception)
