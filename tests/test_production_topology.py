"""The docker-compose topology without Docker: gunicorn (production settings), a Celery worker,
the registry and Debian's nginx with the very nginx template compose uses. skopeo pushes and
pulls through nginx's single port, and the tag is read back from the API on that same port."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import requests

from accounts.services import access_token_create
from repositories.oci_layout import write_image
from tests import services
from tests.conftest import worker_env
from tests.helpers import inspect, push

pytestmark = [pytest.mark.registry]


def render_template(values: dict[str, str]) -> str:
    """What the nginx image's entrypoint does: fill ${NAME} from the environment, leave nginx's
    own $variables alone."""
    from portal.front import render_site

    return render_site(values)  # raises when the template names other variables than these


@pytest.fixture
def topology(transactional_db, redis_server, tmp_path, test_settings):
    work = tmp_path / "prod"
    work.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(work, 0o777)  # nginx's workers run as an unprivileged user
    # nginx's workers run unprivileged and cannot enter pytest's private temporary directory.
    static_root = Path(tempfile.mkdtemp(prefix="dockyard-static-"))
    static_root.chmod(0o755)
    front_cache = Path(tempfile.mkdtemp(prefix="dockyard-front-cache-"))  # nginx makes cache/ in it for its workers
    front_cache.chmod(0o755)
    nginx_port, web_port = services.free_port(), services.free_port()
    public = f"127.0.0.1:{nginx_port}"

    registry = services.portal_registry(
        workdir=work / "registry",
        realm=f"http://{public}/auth/token",
        notifications_url=f"http://127.0.0.1:{web_port}/api/v1/registry/events",
    )
    env = worker_env(redis_url=redis_server.url, registry_url=registry.url, data_dir=test_settings)
    env.update(
        DJANGO_DEBUG="false",
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        PORTAL_URL=f"http://{public}",
        REGISTRY_PUBLIC_HOST=public,
        DJANGO_SECURE_SSL_REDIRECT="false",  # no TLS in front of this test's nginx
        DJANGO_SECURE_COOKIES="false",
        DJANGO_STATIC_ROOT=str(static_root),
        LOG_FORMAT="json",
        # nginx connects from 127.0.0.1; clients come from other loopback addresses (127.0.0.2 …),
        # so only nginx's own address is trusted to name the client.
        TRUSTED_PROXIES="127.0.0.1",
        AUTH_FAILURES_PER_ADDRESS="5",
        API_THROTTLE_ANON="5/min",
    )
    collected = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--no-input", "-v0"],
        cwd=services.ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert collected.returncode == 0, collected.stderr
    web = services.Process(
        "prod-gunicorn",
        [
            sys.executable,
            "-m",
            "gunicorn",
            "portal.wsgi",
            "-b",
            f"127.0.0.1:{web_port}",
            "-w",
            "2",
            "--access-logfile",
            "-",
        ],
        env=env,
        cwd=services.ROOT,
        log_dir=work,
    )
    worker = services.celery_worker(env=env, log_dir=work, name="prod-worker")
    (work / "default.conf").write_text(
        render_template(
            {
                "PORTAL_UPSTREAM": f"127.0.0.1:{web_port}",
                "REGISTRY_UPSTREAM": registry.host,
                "LISTEN_PORT": str(nginx_port),
                "STATIC_ROOT": str(static_root),
                "FRONT_CACHE_DIR": str(front_cache / "cache"),
            }
        )
    )
    (work / "nginx.conf").write_text(
        f"daemon off; worker_processes 1; pid {work}/nginx.pid; error_log {work}/nginx-error.log;\n"
        "events { worker_connections 256; }\n"
        f"http {{ include /etc/nginx/mime.types; access_log {work}/nginx-access.log;\n"
        f"  client_body_temp_path {work}/body; proxy_temp_path {work}/proxy; fastcgi_temp_path {work}/fastcgi;\n"
        f"  uwsgi_temp_path {work}/uwsgi; scgi_temp_path {work}/scgi;\n"
        f"  include {work}/default.conf; }}\n"
    )
    nginx = services.Process("nginx", ["nginx", "-c", str(work / "nginx.conf"), "-p", str(work)], log_dir=work)
    base = f"http://{public}"
    try:
        services.wait_until(lambda: requests.get(f"{base}/healthz", timeout=1).ok, timeout=30, what="nginx → gunicorn")
        yield {"base": base, "public": public, "registry": registry, "web": web}
    finally:
        registry.drain_notifications()
        for process in (nginx, worker, web):
            process.stop()
        registry.stop()
        shutil.rmtree(static_root, ignore_errors=True)
        shutil.rmtree(front_cache, ignore_errors=True)


def test_push_and_pull_through_one_port_and_read_the_tag_from_the_api(topology, alice, tmp_path):
    base, public = topology["base"], topology["public"]
    _token, secret = access_token_create(user=alice, name="prod", scope="write")
    image = write_image(tmp_path / "img", "1.0", content="through nginx", arch="arm64")
    pushed = push(tmp_path / "img", "1.0", public, "alice/prod-app:1.0", creds=f"alice:{secret}")
    assert pushed.returncode == 0, pushed.stderr
    pulled = inspect(public, "alice/prod-app:1.0", creds=f"alice:{secret}")
    assert pulled.returncode == 0, pulled.stderr
    assert json.loads(pulled.stdout)["layers"]  # the manifest came back through nginx

    def tag_in_api():
        response = requests.get(
            f"{base}/api/v1/repositories/alice/prod-app/tags/", headers={"Authorization": f"Bearer {secret}"}, timeout=5
        )
        return response.ok and response.json()["results"]

    tags = services.wait_until(tag_in_api, timeout=30, what="the tag in the API through nginx")
    assert tags[0]["name"] == "1.0"
    assert tags[0]["digest"] == image.top.digest
    assert tags[0]["images"][0]["architecture"] == "arm64"

    ready = requests.get(f"{base}/readyz", timeout=10)
    assert ready.status_code == 200, ready.text
    css = requests.get(f"{base}/static/css/site.css", timeout=5)
    assert css.status_code == 200 and css.headers["Server"] == "nginx"  # from disk, not Django
    home = requests.get(f"{base}/", timeout=5)
    assert home.status_code == 200
    assert "script-src 'self'" in home.headers["Content-Security-Policy"]
    assert requests.get(f"{base}/no-such-page/", timeout=5).status_code == 404

    def logged_json():
        lines = [line for line in topology["web"].log().splitlines() if line.startswith("{")]
        return [json.loads(line) for line in lines if "Not Found" in line]

    entry = services.wait_until(logged_json, timeout=10, what="a JSON log line")[0]  # structured logs on stdout
    assert entry["level"] == "WARNING" and entry["logger"] == "django.request"


class FromAddress(requests.adapters.HTTPAdapter):
    """Connect from a chosen loopback address: a distinct client as nginx sees it."""

    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.address, 0)
        return super().init_poolmanager(*args, **kwargs)


def client_from(address: str) -> requests.Session:
    session = requests.Session()
    session.mount("http://", FromAddress(address))
    return session


def test_behind_nginx_each_client_is_itself(topology, alice):
    """Issue 12, item 6: one attacker's failed logins lock out that attacker, not everyone
    behind nginx; the audit log names the client, not nginx; a forged X-Forwarded-For does not
    buy a fresh rate limit; the browser's login form counts against the same limit."""
    from audit.models import AuditEvent

    base = topology["base"]
    token_url = f"{base}/auth/token?service=dockyard-registry&scope=repository:alice/x:pull"
    attacker = client_from("127.0.0.2")
    statuses = [attacker.get(token_url, auth=("alice", "wrong"), timeout=10).status_code for _ in range(6)]
    assert statuses == [401] * 5 + [429]
    # Another client behind the same nginx still signs in (with a token: this gunicorn has the
    # production password hashers, the test's users the fast test one).
    _token, secret = access_token_create(user=alice, name="elsewhere", scope="read")
    assert client_from("127.0.0.3").get(token_url, auth=("alice", secret), timeout=10).status_code == 200
    failed = AuditEvent.objects.filter(action="auth.failed").values_list("address", flat=True)
    assert set(failed) == {"127.0.0.2"}

    forger = client_from("127.0.0.4")
    answers = [
        forger.get(
            f"{base}/api/v1/repositories/", headers={"X-Forwarded-For": f"203.0.113.{i}"}, timeout=10
        ).status_code
        for i in range(7)
    ]
    assert answers[:5] == [200] * 5 and answers[-1] == 429

    browser = client_from("127.0.0.5")
    for attempt in range(6):
        form = browser.get(f"{base}/accounts/login/", timeout=10)
        token = form.text.split('name="csrfmiddlewaretoken" value="', 1)[1].split('"', 1)[0]
        answer = browser.post(
            f"{base}/accounts/login/",
            data={"csrfmiddlewaretoken": token, "login": "alice", "password": f"wrong {attempt}"},
            headers={"Referer": f"{base}/accounts/login/"},
            timeout=10,
        )
        assert answer.status_code in (200, 400)
    assert "Too many failed login attempts" in answer.text
    web = AuditEvent.objects.filter(action="auth.failed", address="127.0.0.5")
    assert web.count() == 5 and web.first().data == {"surface": "web login"}
