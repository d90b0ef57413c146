"""Fixtures: real services on free loopback ports, and the cast.

- PostgreSQL: a throwaway cluster for the whole session; every database test runs on it.
- redis-server: the Celery broker and cache for the whole session.
- docker-registry: started with the portal's generated config, notifying the live server.
- a Celery worker process, for tests that need events processed for real.

The cast (after healthchecks): alice owns things, bob is a member, charlie is an outsider.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

import pytest
import requests
from django.conf import settings
from django.contrib.auth.hashers import get_hashers, get_hashers_by_algorithm
from django.db import connections

from repositories.registry.token import ensure_signing_key
from tests import services

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="session")
def service_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("services")


@pytest.fixture(scope="session")
def postgres():
    server = services.Postgres().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def django_db_modify_db_settings(postgres) -> None:
    """Point the default database at the throwaway cluster before pytest-django creates the
    test database in it (the embedded default is SQLite; tests run on PostgreSQL)."""
    db = settings.DATABASES["default"]
    db.update(
        ENGINE="django.db.backends.postgresql",
        NAME="dockyard",
        USER="postgres",
        PASSWORD="",
        HOST="127.0.0.1",
        PORT=str(postgres.port),
        OPTIONS={},
        CONN_MAX_AGE=0,
    )
    with contextlib.suppress(AttributeError):  # none was made yet when this test runs alone
        del connections["default"]  # drop a wrapper made for the SQLite settings, if any


@pytest.fixture(scope="session", autouse=True)
def redis_server(service_dir):
    server = services.Redis(service_dir).start()
    from portal.celery import app

    app.conf.broker_url = server.url
    settings.CELERY_BROKER_URL = server.url
    # The cache gets its own database so clearing it between tests leaves queued tasks alone.
    settings.CACHES["default"]["LOCATION"] = f"redis://127.0.0.1:{server.port}/1"
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def clean_cache(redis_server):
    """Throttle counters and remembered passwords must not leak from one test to the next."""
    from django.core.cache import cache

    # (After a test that stopped Redis, the cache's breaker may stay open a moment longer.)
    services.wait_until(lambda: cache.clear() or True, timeout=5, what="the cache")
    # Nor the front's per-process memory of rules, quotas and the GC hold; read in the request
    # here, not by its background thread, whose connection would not see a test's own rows.
    from repositories.policies import FRONT_STATE

    FRONT_STATE.background = False
    FRONT_STATE.forget()


@pytest.fixture(autouse=True)
def token_decisions(request, settings):
    """The token server's memory of decisions is keyed on a generation that triggers move at
    commit: in a test that never commits (the `db` fixture) it would not move, so only tests on
    committed data (transactional_db, live_server, the registry) keep decisions, as production
    does."""
    from repositories.generation import DECISIONS

    DECISIONS.forget()
    if "transactional_db" not in request.fixturenames:
        settings.TOKEN_DECISION_CACHE_SECONDS = 0


@pytest.fixture(scope="session", autouse=True)
def test_settings(tmp_path_factory) -> Path:
    """Keys and data in temporary directories; a fast password hasher (the real one costs
    ~220 ms per check, and skopeo asks for several tokens per copy)."""
    data_dir = tmp_path_factory.mktemp("data")
    settings.TOKEN_KEY_DIR = data_dir / "token"
    ensure_signing_key(settings.TOKEN_KEY_DIR)
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    get_hashers.cache_clear()
    get_hashers_by_algorithm.cache_clear()
    return data_dir


@pytest.fixture(scope="session")
def registry_server(live_server, service_dir, test_settings):
    """The real registry, its token realm and notifications pointing at the live server."""
    settings.PORTAL_URL = live_server.url

    server = services.portal_registry(
        workdir=service_dir / "registry",
        realm=f"{live_server.url}/auth/token",
        notifications_url=f"{live_server.url}/api/v1/registry/events",
    )
    settings.REGISTRY_URL = server.url
    settings.REGISTRY_PUBLIC_HOST = server.host
    yield server
    server.stop()


@pytest.fixture
def registry(transactional_db, registry_server):
    """The registry for one test. Before the test's database is flushed, every notification the
    registry queued during the test is delivered, so none spills into the next test (or hits
    the live server while database access is blocked between tests)."""
    yield registry_server
    registry_server.drain_notifications()


def worker_env(*, redis_url: str, registry_url: str, data_dir: Path) -> dict[str, str]:
    db = settings.DATABASES["default"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST"))}
    env.update(
        DJANGO_SETTINGS_MODULE="portal.settings",
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        REDIS_URL=redis_url,
        # The cache the test process uses (database 1; see redis_server): coordination keys
        # such as the drain request must be shared, as in production.
        CACHE_URL=redis_url.rsplit("/", 1)[0] + "/1",
        REGISTRY_URL=registry_url,
        TOKEN_KEY_DIR=str(settings.TOKEN_KEY_DIR),
        DOCKYARD_DATA_DIR=str(data_dir / "worker"),
        REGISTRY_EVENTS_SECRET=settings.REGISTRY_EVENTS_SECRET,
        # Tests deliver webhooks to receivers on loopback.
        WEBHOOK_ALLOW_PRIVATE_TARGETS="true",
    )
    return env


@pytest.fixture
def start_worker(registry, redis_server, service_dir, test_settings, request):
    """Start real Celery worker processes on the test database, redis and registry. They live
    for one test: a worker outliving its test would write while the tables are truncated. Each
    keeps its log under the test's name, so a failure can be read after the run."""
    started = []
    test_name = re.sub(r"[^A-Za-z0-9_.-]", "_", request.node.name)[:100]

    def start(*, purge: bool = True, env: dict[str, str] | None = None) -> services.Process:
        extra = env or {}
        env = worker_env(redis_url=redis_server.url, registry_url=registry.url, data_dir=test_settings)
        env.update(extra)
        worker = services.celery_worker(
            env=env, log_dir=service_dir, name=f"worker-{test_name}-{len(started)}", purge=purge
        )
        started.append(worker)
        if purge:
            _ask_for_a_drain_after_the_purge()
        return worker

    yield start
    for worker in started:
        worker.stop()


def _ask_for_a_drain_after_the_purge() -> None:
    """The purge may have dropped a drain that an earlier notification asked for, while its
    request (DRAIN_KEY) still holds the next ones back: the next event would then wait for the
    sweep, which no test runs. A notification still in flight from the test's setup can land
    on either side of the purge, so the request goes after it, and one drain is asked for
    whatever is pending now."""
    from django.core.cache import cache

    from repositories.models import RegistryEvent
    from repositories.sync import DRAIN_KEY
    from repositories.tasks import drain_registry_events

    # (Right after a test restarted Redis the cache's breaker may still be open.)
    services.wait_until(lambda: cache.delete(DRAIN_KEY) or True, timeout=5, what="the cache")
    try:
        pending = RegistryEvent.objects.filter(status=RegistryEvent.Status.PENDING).exists()
    except Exception:  # a test without database access starts no pushes before its worker
        return
    if pending:
        drain_registry_events.delay()


@pytest.fixture
def celery_worker(start_worker):
    return start_worker()


@pytest.fixture
def alice(django_db_blocker):
    from accounts.services import user_create

    return user_create(username="alice", email="alice@example.org", password=PASSWORD)


@pytest.fixture
def bob(django_db_blocker):
    from accounts.services import user_create

    return user_create(username="bob", email="bob@example.org", password=PASSWORD)


@pytest.fixture
def charlie(django_db_blocker):
    from accounts.services import user_create

    return user_create(username="charlie", email="charlie@example.org", password=PASSWORD)


@pytest.fixture
def oci_dir(tmp_path) -> Path:
    return tmp_path / "oci"


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser():
    """Headless Debian Chromium driven by Playwright (its own browser downloads are not
    reachable here, and not needed)."""
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread, and Django then refuses ORM
    # calls from it (tests seed data while the browser is open). Only that check is disabled.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    """A browser page. The test fails if Chromium reports any content-security-policy
    violation: the UI must live within the policy production sends."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    violations: list[str] = []
    page.on(
        "console",
        lambda message: violations.append(message.text) if "Content Security Policy" in message.text else None,
    )
    yield page
    context.close()
    assert violations == [], violations


@pytest.fixture
def front(registry, live_server, tmp_path):
    """Debian's nginx from the compose template (portal/front.py), in front of the session's
    registry and the live server: the one address clients push to (issue 16)."""
    from portal.front import write_config

    port = services.free_port()
    static = tmp_path / "static"
    static.mkdir()
    config = write_config(
        tmp_path / "front",
        {
            "PORTAL_UPSTREAM": live_server.url.removeprefix("http://"),
            "REGISTRY_UPSTREAM": registry.host,
            "LISTEN_PORT": str(port),
            "STATIC_ROOT": str(static),
        },
        listen_host="127.0.0.1",
    )
    nginx = services.Process("front-nginx", ["nginx", "-c", str(config), "-p", str(config.parent)], log_dir=tmp_path)
    host = f"127.0.0.1:{port}"
    try:
        services.wait_until(lambda: requests.get(f"http://{host}/v2/", timeout=1).status_code == 401, what="nginx")
        yield host
    finally:
        nginx.stop()
