"""`make run` as a newcomer meets it (issue 13, item 9; issue 14, item 1): the embedded stack
serves like production (gunicorn, static files, branded error pages, no debug pages), keeps
Redis' queue on disk under var/, and a crashed worker or registry is started again without
stopping the rest; Ctrl-C stops everything."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import pytest
import requests

from tests import services

pytestmark = [pytest.mark.registry]
ADMIN_PASSWORD = "make-run-admin-pass-1"


def descendants(pid: int) -> list[tuple[int, int, str]]:
    """(pid, ppid, command line) of every process below `pid`."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        table[int(entry.name)] = (ppid, cmdline)
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        for child, (ppid, cmdline) in table.items():
            if ppid == parent:
                found.append((child, ppid, cmdline))
                frontier.append(child)
    return found


def main_process(root: int, pattern: str) -> int | None:
    """The process matching `pattern` whose parent does not match it (celery's and gunicorn's
    forked children share their parent's command line)."""
    procs = descendants(root)
    matching = {pid: ppid for pid, ppid, cmd in procs if re.search(pattern, cmd)}
    mains = [pid for pid, ppid in matching.items() if ppid not in matching]
    return mains[0] if mains else None


@pytest.fixture
def stack(tmp_path):
    ports = {name: services.free_port() for name in ("portal", "web", "registry", "redis")}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST", "DATABASE_URL", "REDIS"))}
    env.update(
        DOCKYARD_DATA_DIR=str(tmp_path / "var"),
        PORTAL_LISTEN=f"127.0.0.1:{ports['portal']}",  # the front (nginx): the one public address
        WEB_LISTEN=f"127.0.0.1:{ports['web']}",
        REGISTRY_LISTEN=f"127.0.0.1:{ports['registry']}",
        REDIS_PORT=str(ports["redis"]),
        DJANGO_SUPERUSER_USERNAME="admin",
        DJANGO_SUPERUSER_PASSWORD=ADMIN_PASSWORD,
        DJANGO_SUPERUSER_EMAIL="admin@example.org",
        SYNC_INTERVAL_SECONDS="0",
    )
    log = open(tmp_path / "run.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        ["scripts/run.sh"], cwd=services.ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    base = f"http://127.0.0.1:{ports['portal']}"
    try:
        services.wait_until(lambda: requests.get(f"{base}/healthz", timeout=1).ok, timeout=90, what="make run")
        yield {
            "base": base,
            "registry": f"127.0.0.1:{ports['registry']}",  # behind the front
            "front": f"127.0.0.1:{ports['portal']}",
            "pid": proc.pid,
            "log": tmp_path / "run.log",
            "data": tmp_path / "var",
            "env": env,
        }
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
        finally:
            log.close()
        for port in ports.values():
            assert not services.port_open(port), f"port {port} still open after Ctrl-C"


def push_sample(stack, tag: str) -> None:
    result = services.skopeo(
        "copy",
        "--dest-tls-verify=false",
        "--retry-times=0",
        "--dest-creds",
        f"admin:{ADMIN_PASSWORD}",
        f"oci:{stack['data']}/sample-image:latest",
        f"docker://{stack['front']}/admin/hello:{tag}",
    )
    assert result.returncode == 0, result.stderr


def test_make_run_serves_like_production_and_outlives_a_crash(stack):
    base = stack["base"]
    token = requests.post(
        f"{base}/api/v1/access-tokens/",
        json={"name": "test", "scope": "write"},
        auth=("admin", ADMIN_PASSWORD),
        timeout=10,
    ).json()["token"]
    headers = {"Authorization": f"Bearer {token}"}

    def tags() -> set[str]:
        answer = requests.get(f"{base}/api/v1/repositories/admin/hello/tags/", headers=headers, timeout=5)
        return {t["name"] for t in answer.json()["results"]} if answer.ok else set()

    # Production pages: static files served, a branded 404 with no debug listing.
    assert requests.get(f"{base}/static/css/site.css", timeout=5).status_code == 200
    missing = requests.get(f"{base}/no/such/page/", timeout=5)
    assert missing.status_code == 404
    assert "Not found" in missing.text and "URLconf" not in missing.text and "Traceback" not in missing.text
    assert requests.get(f"{base}/api/v1/access-tokens/not-a-number/", headers=headers, timeout=5).status_code == 404

    push_sample(stack, "first")
    services.wait_until(lambda: "first" in tags(), timeout=60, what="the first push in the portal")

    # A manage.py command beside the stack, given the variables the stack was given, reaches
    # that stack (its Redis, its database): scripts/manage.sh, which README names.
    env = {k: v for k, v in stack["env"].items() if not k.startswith("DJANGO_SUPERUSER")}
    script = "from django.core.cache import cache; from repositories.models import Tag; cache.set('seen', 7); " + (
        "print(cache.get('seen'), sorted(Tag.objects.values_list('name', flat=True)))"
    )
    beside = subprocess.run(
        ["scripts/manage.sh", "shell", "-c", script], cwd=services.ROOT, env=env, capture_output=True, text=True
    )
    assert beside.returncode == 0, beside.stderr
    assert beside.stdout.strip().splitlines()[-1] == "7 ['first']", beside.stdout

    # Webhook deliveries have a worker of their own (a slow receiver never delays the sync), and
    # so has the long background work (a crawl never holds a process the events wait for).
    assert main_process(stack["pid"], r"^\S*python\S* \S*celery -A portal worker .*--queues=webhooks\b")
    assert main_process(stack["pid"], r"^\S*python\S* \S*celery -A portal worker .*--queues=maintenance\b")
    # The worker and the registry die hard; each is started again, the rest keeps running.
    # (Patterns anchored at the program: the restart loop's own command line names it too.)
    for pattern in (r"^\S*python\S* \S*celery -A portal worker .*--queues=celery\b", r"^docker-registry serve"):
        before = main_process(stack["pid"], pattern)
        assert before is not None, pattern
        os.kill(before, signal.SIGKILL)
        services.wait_until(
            lambda pattern=pattern, before=before: main_process(stack["pid"], pattern) not in (None, before),
            timeout=30,
            what=f"{pattern} started again",
        )
    services.wait_until(
        lambda: requests.get(f"http://{stack['registry']}/v2/", timeout=1).status_code == 401,
        timeout=30,
        what="the registry back",
    )
    push_sample(stack, "after-crash")
    services.wait_until(lambda: "after-crash" in tags(), timeout=60, what="a push after the crashes")
    assert "exited with status" in stack["log"].read_text()
    # Redis keeps its queue on disk, under the data directory.
    assert list((stack["data"] / "redis").glob("appendonly*"))
