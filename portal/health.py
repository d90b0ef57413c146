"""Probes. /healthz: the process answers (liveness). /readyz: it can do its work — the
database answers and is migrated, Redis answers, the registry answers (readiness)."""

from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, JsonResponse


def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers. No database, no cache: a restart would not fix those."""
    return JsonResponse({"status": "ok"})


def _database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    executor = MigrationExecutor(connection)
    pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    return f"{len(pending)} migrations not applied" if pending else ""


def _redis() -> str:
    key = "readyz"
    cache.set(key, "ok", timeout=10)
    return "" if cache.get(key) == "ok" else "cache did not keep a value"


def _registry() -> str:
    import requests

    response = requests.get(f"{settings.REGISTRY_URL}/v2/", timeout=3)
    # 401 is the registry asking for a token: it is up and using ours.
    return "" if response.status_code in (200, 401) else f"answered {response.status_code}"


def readyz(request: HttpRequest) -> JsonResponse:
    checks = {}
    for name, check in (("database", _database), ("redis", _redis), ("registry", _registry)):
        started = time.monotonic()
        try:
            problem = check()
        except Exception as exc:
            problem = exc.__class__.__name__
        checks[name] = {"ok": not problem, "ms": round((time.monotonic() - started) * 1000, 1)}
        if problem:
            checks[name]["error"] = problem
    ready = all(c["ok"] for c in checks.values())
    return JsonResponse({"status": "ready" if ready else "not ready", "checks": checks}, status=200 if ready else 503)
