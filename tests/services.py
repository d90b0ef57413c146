"""Real services for tests, each on a free loopback port: a throwaway PostgreSQL cluster,
redis-server, docker-registry with the portal's generated config, and a Celery worker.

Nothing here sleeps for a fixed time: every wait polls with a deadline.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check: Callable[[], object], *, timeout: float = 20.0, interval: float = 0.05, what: str = "condition"):
    """Poll `check` until it returns something truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except Exception as exc:
            last_exc = exc
        time.sleep(interval)
    raise TimeoutError(
        f"timed out after {timeout}s waiting for {what}" + (f" (last error: {last_exc})" if last_exc else "")
    )


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class Process:
    """A child process in its own process group, with its output in a log file."""

    def __init__(self, name: str, argv: list[str], *, env: dict | None = None, cwd: Path | None = None, log_dir: Path):
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            argv, env=env, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        if self.alive():
            try:
                os.killpg(self.proc.pid, sig)
                self.proc.wait(timeout)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._log.close()


class Postgres:
    """A throwaway cluster. PostgreSQL refuses to run as root, so as root it runs as the
    `postgres` user through runuser."""

    def __init__(self) -> None:
        candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not candidates:
            raise RuntimeError("PostgreSQL server binaries not found; run `make test`, which installs them")
        self.bin = Path(candidates[-1]).parent
        self.port = free_port()
        self.base = Path(tempfile.mkdtemp(prefix="dockyard-pg-"))
        self.data = self.base / "data"
        self.as_root = os.geteuid() == 0
        if self.as_root:
            shutil.chown(self.base, "postgres", "postgres")

    def _run(self, *argv: str) -> None:
        cmd = [str(self.bin / argv[0]), *argv[1:]]
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, cwd=self.base)

    def start(self) -> Postgres:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        options = (
            f"-p {self.port} -h 127.0.0.1 -k {self.base} -c fsync=off -c synchronous_commit=off "
            "-c full_page_writes=off -c max_connections=200"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.base / "log"), "-w", "-t", "60", "start"
        )
        return self

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.base, ignore_errors=True)


class Redis:
    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.log_dir = log_dir
        self.process: Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> Redis:
        self.process = Process(
            f"redis-{self.port}",
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"],
            log_dir=self.log_dir,
        )
        wait_until(lambda: port_open(self.port), what="redis-server to listen")
        return self

    def stop(self) -> None:
        if self.process:
            self.process.stop()

    def restart(self) -> Redis:
        """Start again on the same port (after stop())."""
        self.process = None
        return self.start()


class Registry:
    """docker-registry with the config the portal generates (render_config)."""

    def __init__(self, *, workdir: Path, config_text: Callable[..., str]) -> None:
        self.port = free_port()
        self.debug_port = free_port()
        self.workdir = workdir
        self.storage = workdir / "storage"
        self.config_path = workdir / "registry.yml"
        self.storage.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(
            config_text(f"127.0.0.1:{self.port}", self.storage, debug_addr=f"127.0.0.1:{self.debug_port}")
        )
        self.process: Process | None = None

    def pending_notifications(self) -> int:
        """Events the registry has queued but not yet delivered, over all endpoints."""
        data = requests.get(f"http://127.0.0.1:{self.debug_port}/debug/vars", timeout=2).json()
        endpoints = data["registry"].get("notifications", {}).get("endpoints") or []
        return sum(endpoint["Metrics"]["Pending"] for endpoint in endpoints)

    def drain_notifications(self, timeout: float = 30.0) -> None:
        wait_until(lambda: self.pending_notifications() == 0, timeout=timeout, what="registry notifications to drain")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Registry:
        # A clean environment: the registry reads REGISTRY_* variables as config overrides.
        self.process = Process(
            f"registry-{self.port}",
            ["docker-registry", "serve", str(self.config_path)],
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            log_dir=self.workdir,
        )
        wait_until(
            lambda: requests.get(f"{self.url}/v2/", timeout=1).status_code == 401,
            what="docker-registry to answer",
        )
        return self

    def stop(self) -> None:
        if self.process:
            self.process.stop()


def celery_worker(*, env: dict[str, str], log_dir: Path, name: str = "worker", purge: bool = True) -> Process:
    if purge:
        # Tasks queued by earlier tests name rows that are gone; start from an empty queue.
        import redis

        redis.Redis.from_url(env["REDIS_URL"]).delete("celery", "webhooks", "maintenance")
    return Process(
        name,
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "portal",
            "worker",
            "--pool=solo",
            "--queues=celery,webhooks,maintenance",  # production runs a worker for each (Procfile)
            "--loglevel=INFO",
            "--without-heartbeat",
            "--without-mingle",
            "--without-gossip",
        ],
        env=env,
        cwd=ROOT,
        log_dir=log_dir,
    )


def skopeo(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run skopeo against a plain-HTTP registry on loopback."""
    return subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=timeout)


def portal_registry(
    *,
    workdir: Path,
    realm: str,
    notifications_url: str | None = None,
    key_dir: Path | None = None,
    storage: Path | None = None,
) -> Registry:
    """Start a registry configured the way the portal configures it (render_config with the
    portal's service, issuer, certificate bundle and notification secret)."""
    from django.conf import settings

    from repositories.registry.config import render_config
    from repositories.registry.token import BUNDLE_FILE

    bundle = (key_dir or Path(settings.TOKEN_KEY_DIR)) / BUNDLE_FILE

    def config(listen: str, own_storage: Path, debug_addr: str) -> str:
        return render_config(
            listen=listen,
            storage_dir=storage or own_storage,
            realm=realm,
            service=settings.REGISTRY_SERVICE,
            issuer=settings.TOKEN_ISSUER,
            rootcertbundle=bundle,
            notifications_url=notifications_url,
            notifications_secret=settings.REGISTRY_EVENTS_SECRET,
            http_secret="test-http-secret",
            debug_addr=debug_addr,
        )

    return Registry(workdir=workdir, config_text=config).start()
