from django.http import HttpRequest, JsonResponse


def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers. No database, no cache: a restart would not fix those."""
    return JsonResponse({"status": "ok"})
