"""Dockyard settings: everything comes from the environment, with defaults that run the
embedded setup (SQLite, local redis-server and docker-registry) with no environment at all.

Bad values fail loudly at start-up rather than half-working later. Every setting read here is
listed in the README's configuration table.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def envbool(name: str, default: str) -> bool:
    value = os.getenv(name, default).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false), not {value!r}")


def envint(name: str, default: str, *, minimum: int | None = None) -> int:
    value = os.getenv(name, default)
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {value!r}") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {number}")
    return number


def envlist(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.getenv(name, default).split(",") if item.strip()]


def envurl(name: str, default: str) -> str:
    value = os.getenv(name, default).strip().rstrip("/")
    if not value.startswith(("http://", "https://")):
        raise ImproperlyConfigured(f"{name} must be an http:// or https:// URL, not {value!r}")
    return value


DATA_DIR = Path(os.getenv("DOCKYARD_DATA_DIR", str(BASE_DIR / "var"))).resolve()


def envsecret(name: str, generated_file: str) -> str:
    """A secret from NAME, else from the file named by NAME_FILE, else one generated once and
    kept (mode 0600) in the data directory so that the embedded setup needs no configuration."""
    if os.getenv(name):
        return os.environ[name]
    if os.getenv(f"{name}_FILE"):
        path = Path(os.environ[f"{name}_FILE"])
        try:
            return path.read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE: cannot read {path}: {exc.strerror}") from None
    path = DATA_DIR / generated_file
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


SECRET_KEY = envsecret("DJANGO_SECRET_KEY", "secrets/django_secret_key")
# Off unless asked for (`DJANGO_DEBUG=true make run`): debug pages list every URL and setting.
DEBUG = envbool("DJANGO_DEBUG", "false")
ALLOWED_HOSTS = envlist("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
CSRF_TRUSTED_ORIGINS = envlist("DJANGO_CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",  # allauth's Sessions page
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "allauth.socialaccount",  # "Linked sign-in" in the account hub
    "allauth.socialaccount.providers.openid_connect",  # company sign-in (OIDC_PROVIDERS)
    "allauth.usersessions",
    "accounts",
    "repositories",
    "audit",
    "webhooks",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files from the collected STATIC_ROOT, compressed and cached, with no web server in
    # front (`make run`); behind nginx, nginx serves /static/ itself.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "portal.middleware.ContentSecurityPolicyMiddleware",
    "portal.middleware.ProviderUnreachableMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "portal.context_processors.site",
            ],
        },
    },
]

# Database: SQLite in the data directory unless DATABASE_URL says otherwise.
if os.getenv("DATABASE_URL"):
    try:
        DATABASES = {"default": dj_database_url.parse(os.environ["DATABASE_URL"], conn_max_age=60)}
    except ValueError as exc:
        raise ImproperlyConfigured(f"DATABASE_URL is not a database URL: {exc}") from None
else:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": DATA_DIR / "dockyard.sqlite3",
            "OPTIONS": {
                # WAL lets the web process read while a worker writes; the busy timeout makes a
                # writer wait for the lock instead of failing with "database is locked".
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "timeout": 20,
                "transaction_mode": "IMMEDIATE",
            },
            # Kept open between requests: opening SQLite and running the PRAGMAs again on every
            # request cost the events endpoint (the registry's throughput) milliseconds.
            "CONN_MAX_AGE": 60,
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

AUTHENTICATION_BACKENDS = [
    "accounts.backends.LocalPasswordBackend",
    "accounts.backends.StaffHaveAllPermissions",
    "accounts.backends.AllauthPasswordBackend",
]

FORMS_URLFIELD_ASSUME_HTTPS = True  # Django 6's default: a URL typed without a scheme is https

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.getenv("DJANGO_STATIC_ROOT", str(DATA_DIR / "static")))
if STATIC_ROOT.is_relative_to(DATA_DIR):
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise wants it, even before collectstatic
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "home"
ACCOUNT_LOGOUT_REDIRECT_URL = "home"
ACCOUNT_LOGIN_METHODS = {"username", "email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "username*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = os.getenv("ACCOUNT_EMAIL_VERIFICATION", "none")
ACCOUNT_ADAPTER = "accounts.adapter.AccountAdapter"
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]

# --- company sign-in (README, "Company sign-in") ----------------------------------------------
# Local passwords: "everyone" (default), or "staff" (only staff accounts sign in with a password
# made here; everyone else through LDAP or OpenID Connect). Company accounts never have one.
PASSWORD_SIGN_IN = os.getenv("PASSWORD_SIGN_IN", "everyone").strip().lower()
if PASSWORD_SIGN_IN not in ("everyone", "staff"):
    raise ImproperlyConfigured('PASSWORD_SIGN_IN: use "everyone" or "staff"')

# OpenID Connect providers (django-allauth's openid_connect), as JSON: a list of
# {"id", "name", "server_url", "client_id", "secret"} with optional "username_claim"
# (default preferred_username), "groups_claim" (default groups) and "scope".
SOCIALACCOUNT_ADAPTER = "accounts.adapter.SocialAccountAdapter"
SOCIALACCOUNT_EMAIL_AUTHENTICATION = False  # an email never merges into an existing account
SOCIALACCOUNT_AUTO_SIGNUP = True
SOCIALACCOUNT_EMAIL_REQUIRED = False  # a company account without a verified address has none here
# The refresh token of a person's last sign-in is kept, for the periodic check (accounts/oidc.py).
SOCIALACCOUNT_STORE_TOKENS = True
OIDC_CHECK_INTERVAL_SECONDS = envint("OIDC_CHECK_INTERVAL_SECONDS", "900", minimum=60)
SOCIALACCOUNT_LOGIN_ON_GET = False
try:
    OIDC_PROVIDERS = json.loads(os.getenv("OIDC_PROVIDERS", "[]") or "[]")
except json.JSONDecodeError as exc:
    raise ImproperlyConfigured(f"OIDC_PROVIDERS is not JSON: {exc}") from None
if not isinstance(OIDC_PROVIDERS, list) or not all(isinstance(p, dict) for p in OIDC_PROVIDERS):
    raise ImproperlyConfigured("OIDC_PROVIDERS: a JSON list of objects")
for _provider in OIDC_PROVIDERS:
    _missing = [k for k in ("id", "server_url", "client_id", "secret") if not _provider.get(k)]
    if _missing:
        raise ImproperlyConfigured(f"OIDC_PROVIDERS: {_provider.get('id', '?')} lacks {', '.join(_missing)}")
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,40}", str(_provider["id"])):
        raise ImproperlyConfigured(f"OIDC_PROVIDERS: id {_provider['id']!r}: lowercase letters, digits and -")
from accounts.oidc_config import socialaccount_providers  # noqa: E402

SOCIALACCOUNT_PROVIDERS = socialaccount_providers(OIDC_PROVIDERS)

# LDAP (django-auth-ldap), on when LDAP_SERVER_URI is set.
LDAP_SERVER_URI = os.getenv("LDAP_SERVER_URI", "").strip()
LDAP_CHECK_INTERVAL_SECONDS = envint("LDAP_CHECK_INTERVAL_SECONDS", "300", minimum=30)
if LDAP_SERVER_URI:
    from accounts.ldap_config import ldap_settings

    # After the local password checks: a local account signs in without waiting for the
    # directory, and an LDAP account has no password here for them to match.
    AUTHENTICATION_BACKENDS.append("accounts.ldap.DirectoryBackend")
    globals().update(ldap_settings(os.environ))
# Sessions are recorded at sign-in; no write per request ("reads never write"), so "last seen" is the sign-in.
USERSESSIONS_TRACK_ACTIVITY = False
MFA_TOTP_ISSUER = "Dockyard"
MFA_TOTP_TOLERANCE = 1  # one 30-second step either way: phones' clocks drift (a used code stays used)
EMAIL_BACKEND = os.getenv("DJANGO_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = os.getenv("DEFAULT_FROM_EMAIL", "dockyard@localhost")

# Redis is the Celery broker and the cache.
REDIS_URL = os.getenv("REDIS_URL", "redis://127.0.0.1:6379/0")
CACHES = {
    "default": {
        # Short timeouts and a breaker (portal/cache.py): a hung Redis fails fast, not slowly.
        "BACKEND": "portal.cache.BreakerRedisCache",
        "LOCATION": os.getenv("CACHE_URL", REDIS_URL),
        "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
    }
}

CELERY_BROKER_URL = os.getenv("CELERY_BROKER_URL", REDIS_URL)
CELERY_TASK_ACKS_LATE = True  # a killed worker's task is delivered again, not lost
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Webhook deliveries wait on other people's servers (up to WEBHOOK_TIMEOUT each, retried): they
# have their own queue and worker, so a slow receiver never delays the sync's own tasks.
# Three queues, each with its own worker (Procfile, compose): "celery" applies the registry's
# events (push-to-visible); "webhooks" delivers (a slow receiver waits there); "maintenance"
# runs the long background work (a full crawl, garbage collection with its write hold,
# retention, storage totals, pruning), which on the events' worker held one of its processes
# for the whole run while pushes waited.
MAINTENANCE_TASKS = [
    "accounts.tasks.directory_check",
    "accounts.tasks.oidc_check",
    "repositories.tasks.reconcile_registry",
    "repositories.tasks.registry_gc",
    "repositories.tasks.retention_run_all",
    "repositories.tasks.retention_run",
    "repositories.tasks.storage_refresh_all",
    "repositories.tasks.prune",
]
CELERY_TASK_ROUTES = {
    "webhooks.tasks.deliver_webhook": {"queue": "webhooks"},
    **{name: {"queue": "maintenance"} for name in MAINTENANCE_TASKS},
}


REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.api.authentication.BearerTokenAuthentication",
        "accounts.api.authentication.BasicCredentialsAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Every view asks repositories.access itself; this one only confines passwords.
    "DEFAULT_PERMISSION_CLASSES": ["accounts.api.authentication.PasswordOnlyCreatesTokens"],
    "DEFAULT_THROTTLE_CLASSES": ["portal.throttling.AnonThrottle", "portal.throttling.UserThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "anon": os.getenv("API_THROTTLE_ANON", "300/min"),
        "user": os.getenv("API_THROTTLE_USER", "1200/min"),
    },
    "DEFAULT_PAGINATION_CLASS": "portal.pagination.Pagination",
    "DEFAULT_PARSER_CLASSES": [
        "portal.pagination.JSONParser",  # DRF's, with too-deep nesting a 400
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "portal.pagination.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Dockyard API",
    "DESCRIPTION": "Repositories, tags, organizations, teams, access and tokens of a Dockyard portal. "
    "Authenticate with `Authorization: Bearer <personal access token>`, Basic `user:token`, or a session.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",  # served from this host: portals run on private networks
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {"WebhookEventEnum": "webhooks.models.Event"},
}

# The portal as users and the registry reach it, and the registry as the portal reaches it.
PORTAL_URL = envurl("PORTAL_URL", "http://127.0.0.1:8000")
REGISTRY_URL = envurl("REGISTRY_URL", "http://127.0.0.1:5000")
# host[:port] that users put in `docker pull` lines.
REGISTRY_PUBLIC_HOST = os.getenv("REGISTRY_PUBLIC_HOST", REGISTRY_URL.split("://", 1)[1])
REGISTRY_SERVICE = os.getenv("REGISTRY_SERVICE", "dockyard-registry")
REGISTRY_TIMEOUT = envint("REGISTRY_TIMEOUT", "10", minimum=1)
REGISTRY_EVENTS_SECRET = envsecret("REGISTRY_EVENTS_SECRET", "secrets/registry_events_secret")
REGISTRY_NOTIFICATIONS_URL = envurl("REGISTRY_NOTIFICATIONS_URL", f"{PORTAL_URL}/api/v1/registry/events")
REGISTRY_CONFIG_FILE = Path(os.getenv("REGISTRY_CONFIG_FILE", str(DATA_DIR / "registry.yml")))
REGISTRY_STORAGE_DIR = Path(os.getenv("REGISTRY_STORAGE_DIR", str(DATA_DIR / "registry")))
REGISTRY_LISTEN = os.getenv("REGISTRY_LISTEN", "127.0.0.1:5000")

TOKEN_ISSUER = os.getenv("TOKEN_ISSUER", "dockyard")
# Clients clamp expires_in below 60 up to 60, so a shorter token would expire while in use.
TOKEN_LIFETIME = envint("TOKEN_LIFETIME", "300", minimum=60)
# Garbage collection (repositories/gc.py): the write hold lasts until tokens issued before it
# have expired; the registry's own binary collects.
REGISTRY_BINARY = os.getenv("REGISTRY_BINARY", "docker-registry")
REGISTRY_GC_HOLD_SECONDS = envint("REGISTRY_GC_HOLD_SECONDS", str(TOKEN_LIFETIME + 5), minimum=0)
REGISTRY_GC_TIMEOUT_SECONDS = envint("REGISTRY_GC_TIMEOUT_SECONDS", "3600", minimum=60)
REGISTRY_GC_INTERVAL_HOURS = envint("REGISTRY_GC_INTERVAL_HOURS", "0", minimum=0)
TOKEN_KEY_DIR = Path(os.getenv("TOKEN_KEY_DIR", str(DATA_DIR / "token")))
# The identity the portal's own workers use towards the registry (token `sub`).
SYSTEM_IDENTITY = "dockyard-system"

LOG_FORMAT = os.getenv("LOG_FORMAT", "plain" if DEBUG else "json")
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be plain or json, not {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "portal.logging.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": os.getenv("LOG_LEVEL", "INFO")},
    "loggers": {"django.server": {"level": "WARNING"}},
}

# When Redis is down, enqueueing must fail fast (the event row stays pending for the sweep)
# instead of holding the registry's notification request open.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}
# A hung Redis (stopped, not gone) holds a publish for the socket timeout: keep it short, so the
# events endpoint answers well inside the registry's 5 s (its events wait for the sweep).
CELERY_BROKER_TRANSPORT_OPTIONS = {"socket_connect_timeout": 1, "socket_timeout": 1}
CELERY_REDIS_SOCKET_CONNECT_TIMEOUT = 2
REGISTRY_HTTP_SECRET = envsecret("REGISTRY_HTTP_SECRET", "secrets/registry_http_secret")

# Credentials: a valid password presented again within this window is not hashed again
# (PBKDF2 costs ~220 ms: ten thousand token signatures); failures are throttled.
PASSWORD_CACHE_SECONDS = envint("PASSWORD_CACHE_SECONDS", "120", minimum=0)
# The token server's memory of its decisions, per process, keyed on the database's policy
# generation (repositories/generation.py): any change to what the policy reads ends it at once;
# this bounds an entry's life in any case. 0: decide every request afresh.
TOKEN_DECISION_CACHE_SECONDS = envint("TOKEN_DECISION_CACHE_SECONDS", "60", minimum=0)
AUTH_FAILURE_WINDOW = envint("AUTH_FAILURE_WINDOW", "300", minimum=1)
AUTH_FAILURES_PER_USERNAME = envint("AUTH_FAILURES_PER_USERNAME", "10", minimum=1)
AUTH_FAILURES_PER_ADDRESS = envint("AUTH_FAILURES_PER_ADDRESS", "50", minimum=1)
# Refresh tokens (docker login's identity token, the OAuth2 form's access_type=offline) expire.
REFRESH_TOKEN_DAYS = envint("REFRESH_TOKEN_DAYS", "30", minimum=1)

# The reverse proxies in front of the portal (addresses or CIDR networks): from them, and only
# from them, X-Forwarded-For names the client (portal/net.py). Empty: no proxy is trusted, and
# REMOTE_ADDR is the client. Behind the shipped nginx, name nginx's address.
TRUSTED_PROXIES = envlist("TRUSTED_PROXIES", "")
try:
    import ipaddress as _ipaddress

    for _item in TRUSTED_PROXIES:
        _ipaddress.ip_network(_item, strict=False)
except ValueError as exc:
    raise ImproperlyConfigured(f"TRUSTED_PROXIES must list addresses or CIDR networks: {exc}") from None
# django-allauth's own rate limits read the client address through our adapter (accounts/adapter.py).

# Sync: the reconcile crawl and the sweep of stored events that were never processed.
SYNC_INTERVAL_SECONDS = envint("SYNC_INTERVAL_SECONDS", "600", minimum=0)  # 0: no scheduled crawl
SYNC_CONCURRENCY = envint("SYNC_CONCURRENCY", "4", minimum=1)
# While pushes are arriving, a crawl waits this long (at most ten times) before each repository.
SYNC_CRAWL_YIELD_MS = envint("SYNC_CRAWL_YIELD_MS", "500", minimum=0)
SYNC_PAGE_SIZE = envint("SYNC_PAGE_SIZE", "100", minimum=1)
# A crawl whose process stopped beating this long ago (killed mid-crawl) is abandoned, and the
# next crawl starts. Its process beats every SYNC_HEARTBEAT_SECONDS while it crawls.
SYNC_RUN_STALE_SECONDS = envint("SYNC_RUN_STALE_SECONDS", "90", minimum=10)
SYNC_HEARTBEAT_SECONDS = max(1, min(10, SYNC_RUN_STALE_SECONDS // 6))
# A crawl removes at most this share of the portal's tags (but always up to the minimum) on its
# own; more, or any removal when the catalog is empty, waits for an operator.
SYNC_REMOVAL_THRESHOLD_PERCENT = envint("SYNC_REMOVAL_THRESHOLD_PERCENT", "10", minimum=0)
SYNC_REMOVAL_THRESHOLD_MIN = envint("SYNC_REMOVAL_THRESHOLD_MIN", "20", minimum=0)
# What is kept how long (days): processed and ignored registry events, webhook deliveries, audit
# rows of failed logins, sync runs and tag tombstones. Pruned daily.
RETENTION_EVENTS_DAYS = envint("RETENTION_EVENTS_DAYS", "30", minimum=1)
RETENTION_DELIVERIES_DAYS = envint("RETENTION_DELIVERIES_DAYS", "30", minimum=1)
RETENTION_FAILED_LOGINS_DAYS = envint("RETENTION_FAILED_LOGINS_DAYS", "90", minimum=1)
RETENTION_SYNC_RUNS_DAYS = envint("RETENTION_SYNC_RUNS_DAYS", "90", minimum=1)
SYNC_TOMBSTONE_DAYS = envint("SYNC_TOMBSTONE_DAYS", "30", minimum=1)
# Beat's one-minute tick sweeps stored events that were never processed, and starts the crawl
# when one is due: a crawl missed while Redis was down runs when it is back.
CELERY_BEAT_SCHEDULE = {
    "sync-tick": {"task": "repositories.tasks.sync_tick", "schedule": 60.0},
    "prune": {"task": "repositories.tasks.prune", "schedule": 24 * 3600.0},
    "storage": {"task": "repositories.tasks.storage_refresh_all", "schedule": 3600.0},
    "gc-release-stale": {"task": "repositories.tasks.registry_gc_release_stale", "schedule": 600.0},
    "retention": {"task": "repositories.tasks.retention_run_all", "schedule": 24 * 3600.0},
}
if OIDC_PROVIDERS:
    CELERY_BEAT_SCHEDULE["oidc-check"] = {
        "task": "accounts.tasks.oidc_check",
        "schedule": float(OIDC_CHECK_INTERVAL_SECONDS),
    }
if LDAP_SERVER_URI:
    CELERY_BEAT_SCHEDULE["ldap-check"] = {
        "task": "accounts.tasks.directory_check",
        "schedule": float(LDAP_CHECK_INTERVAL_SECONDS),
    }
if REGISTRY_GC_INTERVAL_HOURS:
    CELERY_BEAT_SCHEDULE["registry-gc"] = {
        "task": "repositories.tasks.registry_gc",
        "schedule": REGISTRY_GC_INTERVAL_HOURS * 3600.0,
    }

# Webhooks. Targets on loopback, link-local and private ranges are refused unless allowed
# (for a portal whose CI lives on the same private network, say).
WEBHOOK_ALLOW_PRIVATE_TARGETS = envbool("WEBHOOK_ALLOW_PRIVATE_TARGETS", "false")
WEBHOOK_TIMEOUT = envint("WEBHOOK_TIMEOUT", "5", minimum=1)
WEBHOOK_MAX_ATTEMPTS = envint("WEBHOOK_MAX_ATTEMPTS", "5", minimum=1)


# Security. With DJANGO_DEBUG off these default to what `manage.py check --deploy` wants; a
# deployment behind a TLS-terminating proxy passes X-Forwarded-Proto.
CONTENT_SECURITY_POLICY = os.getenv(
    "CONTENT_SECURITY_POLICY",
    "default-src 'self'; img-src 'self' data: https:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'; object-src 'none'",
)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# The https defaults follow the address users reach the portal at: a portal on https (behind
# a TLS proxy) gets redirects, secure cookies and HSTS; the embedded one on http://127.0.0.1
# does not (it would redirect itself out of reach). Each can be set on its own.
_SECURE_DEFAULT = "true" if PORTAL_URL.startswith("https://") and not DEBUG else "false"
if envbool("DJANGO_BEHIND_TLS_PROXY", _SECURE_DEFAULT):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = envbool("DJANGO_SECURE_SSL_REDIRECT", _SECURE_DEFAULT)
# The registry's clients, health probes and the notification endpoint speak plain HTTP inside
# the deployment; they are never redirected.
SECURE_REDIRECT_EXEMPT = [r"^v2/", r"^auth/token", r"^api/v1/registry/events", r"^healthz$", r"^readyz$"]
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = envbool("DJANGO_SECURE_COOKIES", _SECURE_DEFAULT)
SECURE_HSTS_SECONDS = envint("DJANGO_HSTS_SECONDS", "31536000" if _SECURE_DEFAULT == "true" else "0", minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", "true")
SECURE_HSTS_PRELOAD = envbool("DJANGO_HSTS_PRELOAD", "false")
SESSION_COOKIE_HTTPONLY = True
# Putting a domain on the browsers' HSTS preload list is the domain owner's decision (it is
# hard to undo), not a missing protection: opt in with DJANGO_HSTS_PRELOAD.
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
