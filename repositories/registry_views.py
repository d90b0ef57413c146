"""The two endpoints the registry and its clients talk to: the token server (`/auth/token`,
docs/spec/auth/token.md) and the notification receiver (`/api/v1/registry/events`).

Both are thin: credentials.py says who is asking, access.py decides, token.py signs, sync.py
stores and processes."""

from __future__ import annotations

import base64
import binascii
import hmac
import logging

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from accounts.credentials import authenticate_credentials
from repositories import access, sync
from repositories.registry import get_issuer
from repositories.registry.events import EnvelopeError, parse_envelope, parse_event
from repositories.registry.token import Scope, ScopeError, parse_scopes

log = logging.getLogger(__name__)

MAX_PARAM_LENGTH = 1024


def _error(status: int, code: str, message: str, **headers: str) -> JsonResponse:
    response = JsonResponse({"errors": [{"code": code, "message": message}]}, status=status)
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def _basic_credentials(request: HttpRequest) -> tuple[str, str] | bool | None:
    """(username, secret) from a Basic header; None when there is no header; False when the
    header is there but unreadable."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value or len(value) > 1024:
        return False
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return False
    username, sep, secret = decoded.partition(":")
    return (username, secret) if sep else False


def granted_actions(actor: access.Actor, scope: Scope) -> list[str]:
    """The subset of the scope's actions the policy allows; never an error for a scope."""
    if scope.type == "registry":
        return ["*"] if access.may_list_catalog(actor) else []
    decision, _namespace, _repository = access.decide_by_name(actor, scope.name)
    return [a for a in scope.actions if decision.allows(access.ACTION_LEVEL[a])]


@require_GET
def token_view(request: HttpRequest) -> JsonResponse:
    params = request.GET
    if any(len(v) > MAX_PARAM_LENGTH for values in params.lists() for v in values[1]):
        return _error(400, "INVALID_REQUEST", "a parameter is too long")
    service = params.get("service", "")
    if service != settings.REGISTRY_SERVICE:
        return _error(400, "INVALID_REQUEST", f"unknown service {service!r}")
    try:
        scopes = parse_scopes(params.getlist("scope"))
    except ScopeError as exc:
        return _error(400, "INVALID_SCOPE", str(exc))

    credentials = _basic_credentials(request)
    if credentials is False:
        return _error(401, "UNAUTHORIZED", "malformed Authorization header", WWW_Authenticate='Basic realm="dockyard"')
    if credentials is None:
        actor = access.ANONYMOUS
    else:
        actor = authenticate_credentials(*credentials)
        if actor is None:
            return _error(
                401, "UNAUTHORIZED", "invalid username or password", WWW_Authenticate='Basic realm="dockyard"'
            )

    grants = []
    for scope in scopes:
        actions = granted_actions(actor, scope)
        grants.append({"type": scope.type, "name": scope.name, "actions": actions})
    issued = get_issuer().issue(actor.name, [g for g in grants if g["actions"]])
    return JsonResponse(
        {
            "token": issued.token,
            "access_token": issued.token,
            "expires_in": issued.expires_in,
            "issued_at": issued.issued_at,
        }
    )


def _registry_authenticated(request: HttpRequest) -> bool:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    expected = f"Bearer {settings.REGISTRY_EVENTS_SECRET}"
    return hmac.compare_digest(header.encode(), expected.encode())


@csrf_exempt
@require_POST
def events_view(request: HttpRequest) -> JsonResponse:
    if not _registry_authenticated(request):
        return _error(401, "UNAUTHORIZED", "missing or wrong registry secret")
    try:
        parsed = parse_envelope(request.body)
    except EnvelopeError as exc:
        # Answer 2xx anyway: the registry would retry a 4xx forever and stall its queue.
        parsed = [parse_event({"envelope": request.body[:4096].decode("utf-8", "replace"), "error": str(exc)})]
        parsed[0].problem = str(exc)
    with transaction.atomic():
        new_ids = sync.events_store(parsed)
        for pk in new_ids:
            transaction.on_commit(lambda pk=pk: _enqueue(pk))
    return JsonResponse({"stored": len(new_ids)})


def _enqueue(event_pk: int) -> None:
    from repositories.tasks import process_registry_event

    try:
        process_registry_event.delay(event_pk)
    except Exception:  # broker down: the row stays pending for the periodic sweep
        log.warning("could not enqueue registry event %s; it stays pending", event_pk, exc_info=True)
