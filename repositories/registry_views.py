"""The two endpoints the registry and its clients talk to: the token server (`/auth/token`,
docs/spec/auth/token.md and oauth.md) and the notification receiver (`/api/v1/registry/events`).

Both are thin: credentials.py says who is asking, access.py decides (registry_grants, a pure
function: a token request writes nothing), token.py signs, sync.py stores and processes."""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import time

from django.conf import settings
from django.db import DatabaseError, OperationalError, connection, transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from accounts.credentials import (
    PAT_MARK,
    PasswordRefused,
    Throttled,
    authenticate_credentials,
    authenticate_refresh_token,
)
from accounts.services import refresh_token_create
from portal.net import client_address
from repositories import access, sync
from repositories.registry import get_issuer
from repositories.registry.events import MAX_ENVELOPE_BYTES, EnvelopeError, parse_envelope, parse_event
from repositories.registry.token import Scope, ScopeError, parse_scopes

log = logging.getLogger(__name__)

MAX_PARAM_LENGTH = 1024
BASIC_CHALLENGE = 'Basic realm="dockyard"'


def _json(body: dict, status: int = 200, **headers: str) -> JsonResponse:
    response = JsonResponse(body, status=status)
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def _error(status: int, code: str, message: str, **headers: str) -> JsonResponse:
    """The registry's own error shape, which docker and skopeo print."""
    return _json({"errors": [{"code": code, "message": message}]}, status, **headers)


def _oauth_error(status: int, error: str, description: str, **headers: str) -> JsonResponse:
    """RFC 6749's error shape, for the OAuth2 form."""
    return _json({"error": error, "error_description": description}, status, **headers)


def _address(request: HttpRequest) -> str | None:
    return client_address(request)


def _too_long(params) -> bool:
    return any(len(v) > MAX_PARAM_LENGTH for _key, values in params.lists() for v in values)


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


class Refused(Exception):
    def __init__(self, status: int, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.retry_after = status, message, retry_after


def _authenticate(request: HttpRequest, username: str, secret: str) -> access.Actor:
    try:
        actor = authenticate_credentials(username, secret, address=_address(request))
    except Throttled as exc:
        raise Refused(429, "too many failed logins; try again later", retry_after=exc.retry_after) from None
    except PasswordRefused as exc:
        raise Refused(401, str(exc)) from None
    if actor is None:
        raise Refused(401, "invalid username or password")
    return actor


WRITE_ACTIONS = {"push", "delete", "*"}


def _grants(actor: access.Actor, scopes: list[Scope]) -> list[dict]:
    grants = [g for g in access.registry_grants(actor, scopes) if g["actions"]]
    if any(set(g["actions"]) & WRITE_ACTIONS for g in grants):
        from repositories.gc import hold_active

        if hold_active():  # garbage collection: reads only until it is done
            grants = [{**g, "actions": [a for a in g["actions"] if a not in WRITE_ACTIONS]} for g in grants]
            grants = [g for g in grants if g["actions"]]
    return grants


def _issue(actor: access.Actor, scopes: list[Scope]) -> tuple[dict, list[dict]]:
    grants = _grants(actor, scopes)
    return _signed(actor.name, grants), grants


def _signed(actor_name: str, grants: list[dict]) -> dict:
    issued = get_issuer().issue(actor_name, grants)
    return {
        "token": issued.token,
        "access_token": issued.token,
        "expires_in": issued.expires_in,
        "issued_at": issued.issued_at,
    }


def _remembered(request: HttpRequest, credentials: tuple[str, str] | None, scopes: list[Scope]):
    """A GET token request answered from this process's memory of decisions (generation.py):
    (body, None) on a hit; (None, keep) on a miss, where keep(actor, grants) remembers the
    decision just made. A password is still checked against the throttle first, so that a
    throttled guesser learns nothing from a remembered answer."""
    from accounts.credentials import check_throttle
    from repositories.generation import DECISIONS, current

    if not DECISIONS.enabled():
        return None, None
    username, secret = credentials if credentials is not None else ("", "")
    username = username.lower()
    password = bool(secret) and "+" not in username and not secret.startswith(PAT_MARK)
    if password and not settings.PASSWORD_CACHE_SECONDS:
        return None, None
    key = DECISIONS.key("basic" if credentials is not None else "anonymous", username, secret, tuple(scopes))
    generation = current()
    decision = DECISIONS.get(generation, key)
    if decision is not None:
        if password:
            wait = check_throttle(username, _address(request))
            if wait is not None:
                raise Refused(429, "too many failed logins; try again later", retry_after=wait)
        _keep_last_used(decision)
        return _signed(decision.actor_name, decision.grants), None

    def keep(actor: access.Actor, grants: list[dict]) -> None:
        DECISIONS.put(generation, key, _decision(actor, grants, password=password))

    return None, keep


def _decision(actor: access.Actor, grants: list[dict], *, password: bool):
    from django.utils import timezone

    from repositories.generation import Decision

    now = time.monotonic()
    lifetime = float(settings.TOKEN_DECISION_CACHE_SECONDS)
    if password:
        lifetime = min(lifetime, settings.PASSWORD_CACHE_SECONDS)
    touch = None
    if actor.token is not None:
        touch = (type(actor.token), actor.token.pk)
        if actor.token.expires_at is not None:
            lifetime = min(lifetime, (actor.token.expires_at - timezone.now()).total_seconds())
    elif actor.robot is not None:
        touch = (type(actor.robot), actor.robot.pk)
    return Decision(actor_name=actor.name, grants=grants, until=now + lifetime, touch=touch, touched=now)


def _keep_last_used(decision) -> None:
    """A remembered credential is still seen as used (`last_used_at`, to the minute as always;
    that column does not move the generation)."""
    from django.utils import timezone

    from accounts.credentials import LAST_USED_RESOLUTION

    if decision.touch is None or time.monotonic() - decision.touched < LAST_USED_RESOLUTION.total_seconds():
        return
    model, pk = decision.touch
    model.objects.filter(pk=pk).update(last_used_at=timezone.now())
    decision.touched = time.monotonic()


@csrf_exempt
@require_http_methods(["GET", "POST"])
def token_view(request: HttpRequest) -> JsonResponse:
    if request.method == "POST":
        return _oauth_token(request)
    params = request.GET
    if _too_long(params):
        return _error(400, "INVALID_REQUEST", "a parameter is too long")
    service = params.get("service", "")
    if service != settings.REGISTRY_SERVICE:
        return _error(400, "INVALID_REQUEST", f"unknown service {service[:100]!r}")
    try:
        scopes = parse_scopes(params.getlist("scope"))
    except ScopeError as exc:
        return _error(400, "INVALID_SCOPE", str(exc))

    credentials = _basic_credentials(request)
    if credentials is False:
        return _error(401, "UNAUTHORIZED", "malformed Authorization header", WWW_Authenticate=BASIC_CHALLENGE)
    # `docker login` asks for a refresh token ("identity token") with offline_token=true. It is
    # bound to the client that asked, so none is issued to a client that gives no client_id.
    client_id = params.get("client_id", "")
    offline = params.get("offline_token") == "true" and client_id and credentials is not None
    actor = access.ANONYMOUS
    try:
        body, keep = (None, None) if offline else _remembered(request, credentials, scopes)
        if body is not None:
            return JsonResponse(body)
        if credentials is not None:
            actor = _authenticate(request, *credentials)
    except Refused as exc:
        if exc.retry_after is not None:
            return _error(exc.status, "TOOMANYREQUESTS", exc.message, Retry_After=str(exc.retry_after))
        return _error(exc.status, "UNAUTHORIZED", exc.message, WWW_Authenticate=BASIC_CHALLENGE)

    body, grants = _issue(actor, scopes)
    if keep is not None:
        keep(actor, grants)
    if offline and not actor.is_anonymous:
        body["refresh_token"] = refresh_token_create(actor=actor, client_id=client_id, address=_address(request))
    return JsonResponse(body)


def _oauth_token(request: HttpRequest) -> JsonResponse:
    """The OAuth2 form that containerd and BuildKit post: grant_type password or refresh_token."""
    form = request.POST
    if _too_long(form):
        return _oauth_error(400, "invalid_request", "a parameter is too long")
    if form.get("service", "") != settings.REGISTRY_SERVICE:
        return _oauth_error(400, "invalid_request", "unknown service")
    client_id = form.get("client_id", "")
    if not client_id:
        return _oauth_error(400, "invalid_request", "client_id is required")
    try:
        scopes = parse_scopes(form.getlist("scope"))
    except ScopeError as exc:
        return _oauth_error(400, "invalid_scope", str(exc))

    grant_type = form.get("grant_type", "")
    if grant_type == "password":
        try:
            actor = _authenticate(request, form.get("username", ""), form.get("password", ""))
        except Refused as exc:
            if exc.retry_after is not None:
                return _oauth_error(429, "slow_down", exc.message, Retry_After=str(exc.retry_after))
            return _oauth_error(401, "invalid_grant", exc.message)
    elif grant_type == "refresh_token":
        actor = authenticate_refresh_token(form.get("refresh_token", ""), client_id=client_id)
        if actor is None:
            return _oauth_error(
                401, "invalid_grant", "invalid, expired or revoked refresh token, or issued to another client"
            )
    else:
        return _oauth_error(400, "unsupported_grant_type", "grant_type must be password or refresh_token")

    body, grants = _issue(actor, scopes)
    del body["token"]  # the OAuth2 form answers access_token only
    # What was granted (RFC 6749 section 5.1), which may be less than what was asked.
    body["scope"] = " ".join(f"{g['type']}:{g['name']}:{','.join(g['actions'])}" for g in grants)
    if grant_type == "password" and form.get("access_type") == "offline":
        body["refresh_token"] = refresh_token_create(actor=actor, client_id=client_id, address=_address(request))
    return JsonResponse(body)


def _registry_authenticated(request: HttpRequest) -> bool:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    expected = f"Bearer {settings.REGISTRY_EVENTS_SECRET}"
    return hmac.compare_digest(header.encode(), expected.encode())


# The registry waits this long for an answer (its endpoint `timeout`) and then retries: a
# database that cannot take the write within this much gets a quick 503 instead.
EVENTS_LOCK_TIMEOUT_MS = 1500


DISCARD_CHUNKS = 32  # MiB read and dropped from an oversized body


def _read_envelope(request: HttpRequest) -> bytes | None:
    """The body, or None when it is larger than an envelope may be (read no further)."""
    body = request.read(MAX_ENVELOPE_BYTES + 1)
    if len(body) <= MAX_ENVELOPE_BYTES:
        return body
    # Too large: read the rest away (up to a bound), so that a client writing its whole body
    # before it reads the answer gets the answer, not a broken pipe.
    for _ in range(DISCARD_CHUNKS):
        if not request.read(1024 * 1024):
            break
    return None


def _store(parsed: list) -> sync.Stored:
    """Store the events and ask for them to be applied, waiting at most EVENTS_LOCK_TIMEOUT_MS
    for the database. PostgreSQL waits inside the transaction (lock and statement timeouts).
    SQLite takes its one write lock when the transaction begins; its own busy handler sleeps in
    growing steps (1, 2, 5, 10, 15, 20, 25 ms …), which under a busy worker made this answer
    tens of milliseconds late, so here the lock is tried again in sub-millisecond steps."""
    sqlite = connection.vendor == "sqlite"
    if sqlite:
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA busy_timeout = 0")
    try:
        return _store_waiting_briefly(parsed, sqlite=sqlite)
    finally:
        if sqlite:  # the connection is kept for the next request, which waits as usual
            with connection.cursor() as cursor:
                cursor.execute(
                    f"PRAGMA busy_timeout = {int(settings.DATABASES['default']['OPTIONS']['timeout'] * 1000)}"
                )


def _store_waiting_briefly(parsed: list, *, sqlite: bool) -> sync.Stored:
    deadline = time.monotonic() + EVENTS_LOCK_TIMEOUT_MS / 1000
    pause = 0.0002
    while True:
        try:
            with transaction.atomic():
                if connection.vendor == "postgresql":
                    with connection.cursor() as cursor:
                        cursor.execute(
                            f"SET LOCAL lock_timeout = '{EVENTS_LOCK_TIMEOUT_MS}ms'; "
                            f"SET LOCAL statement_timeout = '{EVENTS_LOCK_TIMEOUT_MS * 2}ms'"
                        )
                stored = sync.events_store(parsed)
                if stored.new_ids:
                    transaction.on_commit(sync.request_drain)
                if stored.new_instance:
                    transaction.on_commit(sync.enqueue_restart_crawl)
            return stored
        except OperationalError as exc:
            if not (sqlite and "locked" in str(exc) and time.monotonic() < deadline):
                raise
            time.sleep(pause)
            pause = min(pause * 1.5, 0.0005)


@csrf_exempt
@require_POST
def events_view(request: HttpRequest) -> JsonResponse:
    """Store and enqueue, nothing more: the registry delivers one notification at a time, so
    this answer's latency is the whole pipeline's throughput. Anything the authenticated
    registry sends gets a 2xx (unusable events are kept as quarantined, because a 4xx would be
    retried forever and stall its queue); only when nothing could be stored (the database is
    locked or down) does it answer 503, quickly, for the registry to retry."""
    if not _registry_authenticated(request):
        return _error(401, "UNAUTHORIZED", "missing or wrong registry secret")
    body = _read_envelope(request)
    try:
        if body is None:
            raise EnvelopeError(f"envelope is larger than {MAX_ENVELOPE_BYTES} bytes")
        parsed = parse_envelope(body)
    except EnvelopeError as exc:
        sample = (body or request.read(4096))[:4096].decode("utf-8", "replace")
        parsed = [parse_event({"envelope": sample, "error": str(exc)})]
        parsed[0].problem = str(exc)
    from repositories.policies import deletes_done

    deletes_done([(event.repository, event.digest) for event in parsed if event.action == "delete" and event.digest])
    if not sync.needs_storing(parsed):
        return JsonResponse({"stored": 0})
    try:
        stored = _store(parsed)
    except DatabaseError as exc:
        log.warning("registry events not stored (the registry will send them again): %s", exc)
        return _error(503, "UNAVAILABLE", "the portal's database is busy; send again", Retry_After="1")
    return JsonResponse({"stored": len(stored.new_ids)})


# --- the front door (issue 16) -----------------------------------------------------------------


def _registry_has_tag(full_name: str, tag: str) -> bool:
    from repositories.registry import get_client
    from repositories.registry.client import RegistryError, RegistryNotFound

    try:
        get_client().head_manifest(full_name, tag)
    except RegistryNotFound:
        return False
    except RegistryError:
        return False  # the registry cannot be reached: the request itself fails there
    return True


@csrf_exempt
def front_check(request: HttpRequest):
    """nginx's auth_request for a manifest PUT or DELETE (deploy/nginx/default.conf.template):
    204 lets it through to the registry; 403 refuses it, with the message nginx turns into the
    registry-style `DENIED` error the docker CLI prints. The original request's method and URI
    come from nginx; its Authorization header is the client's own."""
    from django.http import HttpResponse

    denied, shared = _front_answer(
        request.headers.get("Authorization", ""),
        request.headers.get("X-Original-Method", ""),
        request.headers.get("X-Original-URI", ""),
    )
    if denied is None:
        response = HttpResponse(status=204)
        response["X-Accel-Expires"] = _keep_for(shared)
        return response
    response = HttpResponse(status=403)
    for name, value in _refusal_headers(denied):
        response[name] = value
    return response


def _refusal_headers(denied: str) -> list[tuple[str, str]]:
    """nginx turns these into the registry-style error: DENIED (403), or UNAVAILABLE (503)
    while garbage collection holds writes."""
    from repositories.gc import MAINTENANCE_MESSAGE

    status = "503" if denied == MAINTENANCE_MESSAGE else "403"
    return [("X-Dockyard-Denied", denied), ("X-Dockyard-Status", status)]


def _keep_for(shared: bool) -> str:
    """How long nginx may keep an allow answer (its proxy_cache on the check): the seconds the
    answer holds for every caller, or 0 (never kept, which is every refusal too)."""
    from repositories.policies import FrontState

    return str(int(FrontState.TTL)) if shared else "0"


def _front_answer(authorization: str, method: str, uri: str) -> tuple[str | None, bool]:
    from repositories.policies import FrontRequest, front_verdict

    token = authorization[7:].strip() if authorization[:7].lower() == "bearer " else ""
    front = FrontRequest(method=method.upper()[:10], uri=uri[:2048], token=token)
    from repositories.registry import get_client
    from repositories.registry.client import RegistryError

    shared = False
    try:
        denied, shared = front_verdict(front, registry_has_tag=_registry_has_tag, client_factory=get_client)
    except RegistryError:
        # A delete by digest that could not be checked with the registry: refuse it (the
        # registry is not answering the portal; it would hardly answer the client).
        denied = "the registry could not be asked whether this delete is allowed; try again"
    if denied is not None:
        log.info("front refused %s %s: %s", front.method, front.uri, denied)
    return denied, shared


def front_check_wsgi(environ, start_response):
    """The same answer as front_check, served by portal/wsgi.py before Django's request
    machinery (middleware, sessions, URL resolving: about half the cost): nginx asks it for
    every manifest PUT and DELETE. An error answers 500, which nginx turns into a refusal."""
    from django.db import close_old_connections

    close_old_connections()
    try:
        denied, shared = _front_answer(
            environ.get("HTTP_AUTHORIZATION", ""),
            environ.get("HTTP_X_ORIGINAL_METHOD", ""),
            environ.get("HTTP_X_ORIGINAL_URI", ""),
        )
    except Exception:
        log.exception("the front's check failed")
        start_response("500 Internal Server Error", [("Content-Length", "0")])
        return [b""]
    finally:
        close_old_connections()
    if denied is None:
        start_response("204 No Content", [("X-Accel-Expires", _keep_for(shared))])
    else:
        start_response("403 Forbidden", [*_refusal_headers(denied), ("Content-Length", "0")])
    return [b""]
