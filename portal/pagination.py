"""API plumbing shared by every endpoint: pagination in Docker Hub's shape, and errors that
are never a 500 for bad input or an unreachable registry."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions, pagination
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from repositories.registry.client import RegistryError


class Pagination(pagination.PageNumberPagination):
    page_size = 25
    page_size_query_param = "page_size"
    max_page_size = 100


class RegistryUnavailableError(exceptions.APIException):
    status_code = 503
    default_detail = "The registry could not be reached; nothing was changed. Try again later."
    default_code = "registry_unavailable"


def exception_handler(exc, context) -> Response | None:
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
        exc = exceptions.ValidationError(detail)
    elif isinstance(exc, RegistryError):
        exc = RegistryUnavailableError()
    return drf_exception_handler(exc, context)
