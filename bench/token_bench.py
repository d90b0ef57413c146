"""Token endpoint throughput against gunicorn, compared in one run with a trivial JSON view.

Starts its own PostgreSQL cluster and redis-server, seeds a user with a real (PBKDF2) password
and a personal access token, runs gunicorn, and drives it with wrk at 16 connections:

  trivial   GET /healthz                                   (the same gunicorn, no database)
  pat       GET /auth/token, Basic alice:<personal access token>, push+pull on alice/app
  member    a member of organization acme (50 teams, 200 grants, 50 rules) with a personal
            access token, push+pull on acme/svc-api: the write comes from a team rule `svc-*`
  robot     acme's robot, push+pull on acme/svc-api (a robot rule)
  password  alice's password, presented repeatedly (remembered after the first)

Each credential case runs twice: with the token server's memory of decisions (the default,
repositories/generation.py) and on a second gunicorn with TOKEN_DECISION_CACHE_SECONDS=0 and
PASSWORD_CACHE_SECONDS=0 (every request decided afresh; the password hashed every time).

Run from the repository root: .venv/bin/python bench/token_bench.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import base64
import json
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
            "from accounts.services import *\n"
            "from accounts.models import Membership, Namespace, Team, TeamMembership\n"
            "from repositories.models import AccessRule, Repository, RepositoryGrant\n"
            "from repositories.services import repository_create\n"
            f"u = user_create(username='alice', password={PASSWORD!r})\n"
            "repository_create(namespace=Namespace.objects.get(name='alice'), name='app', actor_name='alice')\n"
            "org = organization_create(name='acme', owner=u)\n"
            "ns = Namespace.objects.get(name='acme')\n"
            "repos = Repository.objects.bulk_create([Repository(namespace=ns, name=f'lib-{i}', "
            "full_name=f'acme/lib-{i}') for i in range(200)])\n"
            "repository_create(namespace=ns, name='svc-api', actor_name='alice')\n"
            "teams = Team.objects.bulk_create([Team(organization=org, name=f'team-{i}') for i in range(50)])\n"
            "mike = user_create(username='mike', password='mike-' + 'x' * 20)\n"
            "Membership.objects.create(organization=org, user=mike, role='member')\n"
            "TeamMembership.objects.bulk_create([TeamMembership(team=t, user=mike) for t in teams[::5]])\n"
            "RepositoryGrant.objects.bulk_create([RepositoryGrant(repository=r, team=teams[i % 50], level=10) "
            "for i, r in enumerate(repos)])\n"
            "AccessRule.objects.bulk_create([AccessRule(organization=org, team=teams[i], pattern=f'team{i}-*', "
            "level=20) for i in range(49)]\n"
            "  + [AccessRule(organization=org, team=teams[45], pattern='svc-*', level=20)])\n"
            "robot, robot_secret = robot_create(organization=org, name='ci', actor=u)\n"
            "AccessRule.objects.create(organization=org, robot=robot, pattern='svc-*', level=20)\n"
            "print(access_token_create(user=u, name='bench', scope='write')[1])\n"
            "print(access_token_create(user=mike, name='bench', scope='write')[1])\n"
            "print(robot_secret)\n"
        )
        pat, member_pat, robot_secret = (
            subprocess.run(
                [python, "manage.py", "shell", "-c", seed],
                cwd=ROOT,
                env=env,
                check=True,
                capture_output=True,
                text=True,
            )
            .stdout.strip()
            .splitlines()[-3:]
        )

        def gunicorn(extra_env: dict) -> tuple[Process, str]:
            port = free_port()
            process = Process(
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
                env={**env, "PYTHONUNBUFFERED": "1", **extra_env},
                cwd=ROOT,
                log_dir=services.work,
            )
            base = f"http://127.0.0.1:{port}"
            wait_until(lambda: requests.get(f"{base}/healthz", timeout=1).ok, timeout=30, what="gunicorn")
            return process, base

        def auth(username: str, secret: str) -> str:
            return "Authorization: Basic " + base64.b64encode(f"{username}:{secret}".encode()).decode()

        cases = {
            "pat": ("alice/app", auth("alice", pat)),
            "member": ("acme/svc-api", auth("mike", member_pat)),
            "robot": ("acme/svc-api", auth("acme+ci", robot_secret)),
            "password": ("alice/app", auth("alice", PASSWORD)),
        }
        results: dict[str, tuple[float, float]] = {}
        for label, extra in (("", {}), ("_off", {"TOKEN_DECISION_CACHE_SECONDS": "0", "PASSWORD_CACHE_SECONDS": "0"})):
            server, base = gunicorn(extra)
            try:
                # Check each case answers what it should (push granted) before timing it.
                for name, (repository, header) in cases.items():
                    url = f"{base}/auth/token?service={SERVICE}&scope=repository:{repository}:pull,push"
                    body = requests.get(url, headers=dict([header.split(": ", 1)]), timeout=30)
                    assert body.status_code == 200, (name, body.text)
                    claims = body.json()["token"].split(".")[1]
                    claims = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
                    assert claims["access"][0]["actions"] == ["pull", "push"], (name, claims)
                wrk(f"{base}/healthz", 2, args.connections, None)  # warm every worker
                results["trivial" + label] = wrk(f"{base}/healthz", args.seconds, args.connections, None)
                for name, (repository, header) in cases.items():
                    url = f"{base}/auth/token?service={SERVICE}&scope=repository:{repository}:pull,push"
                    results[name + label] = wrk(url, args.seconds, args.connections, header)
            finally:
                server.stop()
        server = None
    finally:
        if server:
            server.stop()
        services.stop()

    for name, (rps, p99) in results.items():
        print(f"{name:14} {rps:9.1f} req/s  p99 {p99:8.2f} ms")
    trivial = results["trivial"][0]
    trivial_off = results["trivial_off"][0]
    print(
        "RESULT "
        + " ".join(f"ratio_{name}={results[name][0] / trivial:.2f}" for name in cases)
        + " "
        + " ".join(f"{name}_per_s={results[name][0]:.0f}" for name in cases)
        + f" trivial_per_s={trivial:.0f} "
        + " ".join(f"ratio_{name}_off={results[name + '_off'][0] / trivial_off:.2f}" for name in cases)
        + " "
        + " ".join(f"p99_{name}_ms={results[name][1]:.1f}" for name in cases)
    )


if __name__ == "__main__":
    main()
