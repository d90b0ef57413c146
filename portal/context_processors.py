from django.conf import settings
from django.http import HttpRequest


def site(request: HttpRequest) -> dict:
    return {"REGISTRY_HOST": settings.REGISTRY_PUBLIC_HOST}
