"""Token endpoint throughput against gunicorn, compared in one run with a trivial JSON view.

Starts its own PostgreSQL cluster and redis-server, seeds a user with a real (PBKDF2) password
and a personal access token, runs gunicorn, and drives it with wrk at 16 connections:

  trivial   GET /healthz                                   (the same gunicorn, no database)
  pat       GET /auth/token, Basic alice:<personal access token>, push+pull on alice/app
  password  the same with alice's password, presented repeatedly (remembered after the first)

Run from the repository root: .venv/bin/python bench/token_bench.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _harness import start  # noqa: E402

from tests.services import Process, free_port, wait_until  # noqa: E402

PASSWORD = "a long and real password for the bench"
SERVICE = "dockyard-registry"


def wrk(url: str, seconds: int, connections: int, header: str | None) -> tuple[float, float]:
    """Requests per second and p99 latency in ms."""
    argv = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if header:
        argv += ["-H", header]
    out = subprocess.run([*argv, url], capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out:
        raise SystemExit(f"wrk saw errors for {url}:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", out).groups()
    p99_ms = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    return rps, p99_ms


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)  # one per core measured best for both views
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: `make deps` (or apt-get install wrk) installs it")

    services = start("token-bench")
    env = {**os.environ, **services.env}
    python = sys.executable
    server = None
    try:
        subprocess.run([python, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        seed = (
            "from accounts.services import user_create, access_token_create\n"
            "from repositories.services import repository_create\n"
            "from accounts.models import Namespace\n"
            f"u = user_create(username='alice', password={PASSWORD!r})\n"
            "repository_create(namespace=Namespace.objects.get(name='alice'), name='app', actor_name='alice')\n"
            "print(access_token_create(user=u, name='bench', scope='write')[1])\n"
        )
        pat = (
            subprocess.run(
                [python, "manage.py", "shell", "-c", seed],
                cwd=ROOT,
                env=env,
                check=True,
                capture_output=True,
                text=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )

        port = free_port()
        server = Process(
            "gunicorn",
            [
                python,
                "-m",
                "gunicorn",
                "portal.wsgi",
                "-b",
                f"127.0.0.1:{port}",
                "-w",
                str(args.workers),
                "--access-logfile",
                "-",
                "--log-level",
                "warning",
            ],
            env={**env, "PYTHONUNBUFFERED": "1"},
            cwd=ROOT,
            log_dir=services.work,
        )
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: requests.get(f"{base}/healthz", timeout=1).ok, timeout=30, what="gunicorn")
        token_url = f"{base}/auth/token?service={SERVICE}&scope=repository:alice/app:pull,push"

        def auth(secret: str) -> str:
            return "Authorization: Basic " + base64.b64encode(f"alice:{secret}".encode()).decode()

        # Check each case answers what it should before timing it.
        for secret in (pat, PASSWORD):
            header = dict([auth(secret).split(": ", 1)])
            body = requests.get(token_url, headers=header, timeout=5)
            assert body.status_code == 200 and body.json()["token"], body.text
        wrk(f"{base}/healthz", 2, args.connections, None)  # warm every worker

        trivial_rps, trivial_p99 = wrk(f"{base}/healthz", args.seconds, args.connections, None)
        pat_rps, pat_p99 = wrk(token_url, args.seconds, args.connections, auth(pat))
        password_rps, password_p99 = wrk(token_url, args.seconds, args.connections, auth(PASSWORD))
    finally:
        if server:
            server.stop()
        services.stop()

    print(f"trivial  {trivial_rps:9.1f} req/s  p99 {trivial_p99:7.2f} ms")
    print(f"pat      {pat_rps:9.1f} req/s  p99 {pat_p99:7.2f} ms")
    print(f"password {password_rps:9.1f} req/s  p99 {password_p99:7.2f} ms")
    print(
        f"RESULT pat_per_s={pat_rps:.0f} trivial_per_s={trivial_rps:.0f} ratio_pat={pat_rps / trivial_rps:.2f} "
        f"password_per_s={password_rps:.0f} ratio_password={password_rps / trivial_rps:.2f} p99_ms={pat_p99:.1f}"
    )


if __name__ == "__main__":
    main()
