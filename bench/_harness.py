"""What every benchmark starts with: a throwaway PostgreSQL cluster (and Redis), and the
environment the portal runs on there (production settings, quiet logs)."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.services import Postgres, Redis  # noqa: E402


@dataclass
class BenchServices:
    work: Path
    postgres: Postgres
    redis: Redis | None
    env: dict[str, str]

    def stop(self) -> None:
        if self.redis is not None:
            self.redis.stop()
        self.postgres.stop()
        shutil.rmtree(self.work, ignore_errors=True)


def start(prefix: str, *, redis: bool = True, **extra_env: str) -> BenchServices:
    work = Path(tempfile.mkdtemp(prefix=f"dockyard-{prefix}-"))
    postgres = Postgres().start()
    server = Redis(work).start() if redis else None
    env = {
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "DJANGO_DEBUG": "false",
        "DJANGO_SECURE_SSL_REDIRECT": "false",  # benchmarks talk plain HTTP on loopback
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:{postgres.port}/postgres",
        "DOCKYARD_DATA_DIR": str(work / "data"),
        "LOG_LEVEL": "WARNING",
        **({"REDIS_URL": server.url} if server else {}),
        **extra_env,
    }
    return BenchServices(work, postgres, server, env)


def setup_django(env: dict[str, str]) -> None:
    """Run the portal in this process, on the benchmark's services."""
    os.environ.update(env)
    import django

    django.setup()


def gunicorn_times(log: Path, path: str) -> list[float]:
    """Answer times (ms) of requests to `path`, from a gunicorn access log written with
    `--access-logformat "%(r)s %(s)s %(D)s"` (the last field, in µs)."""
    found = []
    for line in log.read_text(errors="replace").splitlines():
        last = line.rsplit(" ", 1)[-1]
        if path in line and last.isdigit():
            found.append(int(last) / 1000)
    return found
