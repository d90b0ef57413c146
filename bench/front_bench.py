"""The front door (issue 16): how long the portal takes to answer nginx's auth_request for a
manifest PUT while clients push, and push throughput through the front against straight to the
registry, in the same run.

Services: PostgreSQL, Redis, the real registry, gunicorn (2 workers, 4 threads, as `make run`)
and nginx rendered from deploy/nginx/default.conf.template. The namespace has an immutable-tag
rule (`v*`) so each decision reads the rules; the pushes use other tags, as most pushes do.
Each push is one image: two small layer blobs, a config and the manifest (the manifest PUT is
what the front checks), by `--pushers` clients at once; the direct and front rounds alternate.

Run from the repository root: .venv/bin/python bench/front_bench.py
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _harness import gunicorn_times, setup_django, start  # noqa: E402

from tests.services import Process, Registry, free_port, wait_until  # noqa: E402

PASSWORD = "bench-password-123"


def push_round(base_url: str, portal_url: str, repositories: list[str], images: int, pushers: int, tag: str) -> float:
    """Seconds to push `images` new images (spread over the repositories) with `pushers` clients."""
    from tests import oci_push as oci

    pushers_by_repo = {
        name: oci.Pusher.login(
            portal_url=portal_url, registry_url=base_url, repository=name, username="bench", password=PASSWORD
        )
        for name in repositories
    }

    def one(i: int) -> None:
        pusher = pushers_by_repo[repositories[i % len(repositories)]]
        layers = (os.urandom(32 * 1024), os.urandom(8 * 1024))
        oci.image(pusher, layers=layers, tag=f"{tag}-{i}")

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=pushers) as pool:
        list(pool.map(one, range(images)))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=200, help="images per round")
    parser.add_argument("--pushers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each path, alternating")
    parser.add_argument("--client-nice", type=int, default=10, help="CPU niceness of the pushing clients")
    args = parser.parse_args()

    services = start("front-bench")
    work, env = services.work, services.env
    setup_django(env)
    from django.conf import settings
    from django.core.management import call_command

    from accounts.models import Namespace
    from accounts.services import user_create
    from portal.front import write_config
    from repositories import policies
    from repositories.registry import get_issuer
    from repositories.registry.config import render_config
    from repositories.registry.token import BUNDLE_FILE

    call_command("migrate", verbosity=0)
    user_create(username="bench", password=PASSWORD)
    policies.immutable_rule_create(namespace=Namespace.objects.get(name="bench"), tag_pattern="v*", actor=None)
    get_issuer()
    processes: list = []
    try:
        web_port, front_port = free_port(), free_port()
        portal_url = f"http://127.0.0.1:{web_port}"

        def config(listen: str, _storage: Path, debug_addr: str) -> str:
            return render_config(
                listen=listen,
                storage_dir=work / "storage",
                realm=f"{portal_url}/auth/token",
                service=settings.REGISTRY_SERVICE,
                issuer=settings.TOKEN_ISSUER,
                rootcertbundle=Path(settings.TOKEN_KEY_DIR) / BUNDLE_FILE,
                notifications_url=None,
                notifications_secret=settings.REGISTRY_EVENTS_SECRET,
                http_secret="bench",
                debug_addr=debug_addr,
            )

        registry = Registry(workdir=work / "registry", config_text=config).start()
        processes.append(registry)
        child_env = {**os.environ, **env, "REGISTRY_URL": registry.url, "PYTHONUNBUFFERED": "1"}
        web = Process(
            "gunicorn",
            [
                sys.executable,
                "-m",
                "gunicorn",
                "portal.wsgi",
                "-b",
                f"127.0.0.1:{web_port}",
                "-w",
                "2",
                "--threads",
                "4",
                "--log-level",
                "warning",
                "--access-logfile",
                "-",
                "--access-logformat",
                "%(r)s %(s)s %(D)s",
            ],
            env=child_env,
            cwd=ROOT,
            log_dir=work,
        )
        processes.append(web)
        static = work / "static"
        static.mkdir()
        nginx_conf = write_config(
            work / "front",
            {
                "PORTAL_UPSTREAM": f"127.0.0.1:{web_port}",
                "REGISTRY_UPSTREAM": registry.host,
                "LISTEN_PORT": str(front_port),
                "STATIC_ROOT": str(static),
            },
            listen_host="127.0.0.1",
        )
        nginx = Process("nginx", ["nginx", "-c", str(nginx_conf), "-p", str(nginx_conf.parent)], log_dir=work)
        processes.append(nginx)
        front_url = f"http://127.0.0.1:{front_port}"
        wait_until(lambda: requests.get(f"{portal_url}/healthz", timeout=1).ok, timeout=30, what="gunicorn")
        wait_until(lambda: requests.get(f"{front_url}/v2/", timeout=1).status_code == 401, timeout=30, what="nginx")

        repositories = [f"bench/app-{i}" for i in range(8)]
        # The pushing clients (this process, hashing blobs in Python) share the server's two
        # cores here; in a deployment they are other machines. At a lower CPU priority they stop
        # preempting nginx, the registry and gunicorn, for both paths alike (--client-nice 0: off).
        os.nice(args.client_nice)
        push_round(registry.url, portal_url, repositories, 20, args.pushers, "warm")  # connections, caches
        push_round(front_url, portal_url, repositories, 20, args.pushers, "warm-front")
        log = work / "gunicorn.log"
        checks_before = len(gunicorn_times(log, "/-/front/check"))
        direct, front = [], []
        # A trivial request (/healthz, no database) asked of the same gunicorn all along: the
        # floor a decision cannot go below under this load, on this machine.
        stop_floor = threading.Event()

        def floor() -> None:
            session = requests.Session()
            while not stop_floor.is_set():
                session.get(f"{portal_url}/healthz", timeout=5)
                time.sleep(0.01)

        floor_thread = threading.Thread(target=floor, daemon=True)
        floor_thread.start()
        for r in range(args.rounds):
            direct.append(push_round(registry.url, portal_url, repositories, args.images, args.pushers, f"d{r}"))
            front.append(push_round(front_url, portal_url, repositories, args.images, args.pushers, f"f{r}"))
            print(f"round {r}: direct {direct[-1]:.2f} s, through the front {front[-1]:.2f} s ({args.images} images)")
        stop_floor.set()
        floor_thread.join(10)
        latencies = gunicorn_times(log, "/-/front/check")[checks_before:]
        floor_ms = gunicorn_times(log, "/healthz")
        assert len(latencies) >= args.images * args.rounds, (len(latencies), "checks logged")
        # A refusal, for the record: an immutable tag pushed twice through the front.
        from tests import oci_push as oci

        pusher = oci.Pusher.login(
            portal_url=portal_url, registry_url=front_url, repository="bench/app-0", username="bench", password=PASSWORD
        )
        oci.image(pusher, layers=(b"v1",), tag="v1.0")
        body = json.dumps({"schemaVersion": 2, "mediaType": oci.OCI_MANIFEST, "config": {}, "layers": []})
        refused = requests.put(
            f"{front_url}/v2/bench/app-0/manifests/v1.0",
            data=body,
            headers={**pusher.headers, "Content-Type": oci.OCI_MANIFEST},
            timeout=10,
        )
        print(f"second push of an immutable tag: {refused.status_code} {refused.text.strip()}")
        # The same decision with nothing else running: its own cost, without the push's CPU.
        session = requests.Session()
        headers = {
            "Authorization": pusher.headers["Authorization"],
            "X-Original-Method": "PUT",
            "X-Original-URI": "/v2/bench/app-0/manifests/idle",
        }
        idle = []
        for _ in range(300):
            t0 = time.perf_counter()
            assert session.get(f"{portal_url}/-/front/check", headers=headers, timeout=5).status_code == 204
            idle.append((time.perf_counter() - t0) * 1000)
    finally:
        for process in reversed(processes):
            process.stop()
        services.stop()

    best_direct, best_front = min(direct), min(front)
    ratio = best_direct / best_front
    p50 = statistics.median(latencies)
    p99 = statistics.quantiles(latencies, n=100)[98]
    print(
        f"RESULT decisions={len(latencies)} decision_p50_ms={p50:.2f} decision_p99_ms={p99:.2f} "
        f"push_direct_per_s={args.images / best_direct:.1f} push_front_per_s={args.images / best_front:.1f} "
        f"front_ratio={ratio:.2f} idle_decision_p50_ms={statistics.median(idle):.2f} "
        f"idle_decision_p99_ms={statistics.quantiles(idle, n=100)[98]:.2f} "
        f"floor_p50_ms={statistics.median(floor_ms):.2f} floor_p99_ms={statistics.quantiles(floor_ms, n=100)[98]:.2f}"
    )


if __name__ == "__main__":
    main()
