"""API plumbing shared by every endpoint: pagination in Docker Hub's shape, and errors that
are never a 500 for bad input or an unreachable registry."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions, pagination, parsers
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from repositories.registry.client import RegistryError


class Pagination(pagination.PageNumberPagination):
    page_size = 25
    page_size_query_param = "page_size"
    max_page_size = 100


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, with one more kind of bad input answered 400: JSON nested deeper than
    Python's decoder recurses (a RecursionError, which was a 500 on every endpoint, signed in
    or not)."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError("JSON parse error - nested too deeply") from None


class RegistryUnavailableError(exceptions.APIException):
    status_code = 503
    default_detail = "The registry could not be reached; nothing was changed. Try again later."
    default_code = "registry_unavailable"


def exception_handler(exc, context) -> Response | None:
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
        exc = exceptions.ValidationError(detail)
    elif isinstance(exc, RegistryError) and getattr(exc, "maintenance", False):
        exc = RegistryUnavailableError(str(exc), code="maintenance")
    elif isinstance(exc, RegistryError):
        exc = RegistryUnavailableError()
    return drf_exception_handler(exc, context)


class WindowCountPagination(Pagination):
    """Page and total in one pass over the matches: `COUNT(*) OVER ()` rides along with the
    ranked page, so a broad search scans its matches once instead of once for the page and
    again for the count. That pass carries only the key and the ranking (narrow rows: sorting
    thousands of matches with every column cost more than finding them); a second query
    fetches the page's rows by key."""

    def paginate_queryset(self, queryset, request, view=None):
        from django.db.models import Count, Window

        self.request = request
        page_size = self.get_page_size(request)
        try:
            number = int(request.query_params.get(self.page_query_param, 1))
        except ValueError:
            number = 0
        if number < 1 or number > 10_000:
            raise exceptions.NotFound("Invalid page.")
        offset = (number - 1) * page_size
        keys = list(
            queryset.annotate(window_total=Window(Count("pk"))).values_list("pk", "window_total")[
                offset : offset + page_size
            ]
        )
        self.count = keys[0][1] if keys else (queryset.count() if number > 1 else 0)
        by_key = {row.pk: row for row in queryset.filter(pk__in=[key for key, _ in keys]).order_by()} if keys else {}
        rows = [by_key[key] for key, _ in keys if key in by_key]
        if number > 1 and not rows:
            raise exceptions.NotFound("Invalid page.")
        self.number, self.page_size_used = number, page_size
        return rows

    def get_paginated_response(self, data) -> Response:
        from rest_framework.utils.urls import remove_query_param, replace_query_param

        url = self.request.build_absolute_uri()
        pages = max(1, -(-self.count // self.page_size_used))
        next_url = replace_query_param(url, self.page_query_param, self.number + 1) if self.number < pages else None
        if self.number <= 1:
            previous_url = None
        elif self.number == 2:
            previous_url = remove_query_param(url, self.page_query_param)
        else:
            previous_url = replace_query_param(url, self.page_query_param, self.number - 1)
        return Response({"count": self.count, "next": next_url, "previous": previous_url, "results": data})
