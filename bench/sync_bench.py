"""Sync cost and latency against a real registry filled with generated content.

1. Fill a registry that sends no notifications: R repositories x 20 tags each (15 single-platform
   images, 3 tags that share an image's digest, 2 two-platform indexes), pushed through the
   registry's HTTP API from Python.
2. Full crawl into an empty portal: wall time, and registry requests divided by the floor
   (catalog pages + tag-list pages + one GET per tag, which answers its digest and manifest at
   once (a HEAD is needed only for tags the portal already knows) + one GET per index platform
   + one config GET per new image manifest).
3. A second crawl with nothing changed: manifest GETs and database writes (content tables; the
   SyncRun row itself is bookkeeping and reported apart).
4. Push-to-visible latency through the event path: a registry on the same storage notifying
   gunicorn, Celery workers as in `make run` (events: 3 processes; maintenance; webhooks); N
   pushes, each timed from the manifest PUT's answer until its tag is in the database.
5. The same under a burst (issues 13 and 17): 4 clients pushing 500 new tags at once (every
   fourth a two-platform index, the rest single images) while a full reconcile of the registry
   runs (a task, on the maintenance worker) and every push is announced to a webhook receiver
   that takes 3 s to answer; each tag timed from its manifest PUT's answer until it is in the
   database (`burst_visible_p95_s`, target < 2 s), and how long the events endpoint took to
   answer each notification. Webhook deliveries run on their own worker (`--queues=webhooks`),
   as in `make run` and compose;
   `--shared-worker` runs one worker for all three queues instead, for comparison.

Run from the repository root: .venv/bin/python bench/sync_bench.py [--repos 100] [--pushes 50]
[--burst 500] [--pushers 4]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import itertools
import json
import math
import os
import statistics
import sys
import tarfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _harness import gunicorn_times, setup_django, start  # noqa: E402

from tests.services import Process, Registry, free_port, wait_until  # noqa: E402

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
SINGLE, ALIASES, INDEXES = 15, 3, 2  # 20 tags per repository


def layer_blob(seed: str) -> tuple[bytes, str]:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        data = f"{seed}\n".encode()
        info = tarfile.TarInfo("seed.txt")
        info.size, info.mtime = len(data), 0
        tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0), "sha256:" + hashlib.sha256(raw.getvalue()).hexdigest()


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Pusher:
    """Minimal registry client for filling: monolithic blob uploads and manifest PUTs."""

    def __init__(self, base: str, token_for) -> None:
        self.base, self.token_for, self.session = base, token_for, requests.Session()

    def _auth(self, name: str) -> dict:
        return {"Authorization": f"Bearer {self.token_for(name)}"}

    def blob(self, name: str, data: bytes) -> dict:
        d = digest(data)
        started = self.session.post(f"{self.base}/v2/{name}/blobs/uploads/", headers=self._auth(name))
        assert started.status_code == 202, started.text
        location = started.headers["Location"]
        location = location if location.startswith("http") else self.base + location
        sep = "&" if "?" in location else "?"
        done = self.session.put(
            f"{location}{sep}digest={d}",
            data=data,
            headers={**self._auth(name), "Content-Type": "application/octet-stream"},
        )
        assert done.status_code == 201, done.text
        return {"digest": d, "size": len(data)}

    def manifest(self, name: str, ref: str, body: dict) -> dict:
        data = json.dumps(body).encode()
        response = self.session.put(
            f"{self.base}/v2/{name}/manifests/{ref}",
            data=data,
            headers={**self._auth(name), "Content-Type": body["mediaType"]},
        )
        assert response.status_code == 201, response.text
        return {"mediaType": body["mediaType"], "digest": digest(data), "size": len(data)}

    def image(self, name: str, layer: dict, diff_id: str, seed: str, arch: str = "amd64") -> dict:
        config = json.dumps(
            {
                "architecture": arch,
                "os": "linux",
                "created": "2026-01-01T00:00:00Z",
                "config": {"Labels": {"seed": seed}},
                "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            }
        ).encode()
        cfg = self.blob(name, config)
        return {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **cfg},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **layer}],
        }


def fill_repository(pusher: Pusher, name: str) -> dict[str, int]:
    """Push one repository's 20 tags; returns what a minimal crawl must fetch."""
    layer_data, diff_id = layer_blob(name)
    layer = pusher.blob(name, layer_data)
    bodies = []
    for i in range(SINGLE):
        body = pusher.image(name, layer, diff_id, f"{name}-{i}")
        pusher.manifest(name, f"1.{i}", body)
        bodies.append(body)
    for alias, body in zip(("latest", "stable", "lts"), bodies[-ALIASES:], strict=True):
        pusher.manifest(name, alias, body)  # the same manifest again: a shared digest
    for j in range(INDEXES):
        children = []
        for arch in ("amd64", "arm64"):
            body = pusher.image(name, layer, diff_id, f"{name}-multi{j}-{arch}", arch)
            desc = pusher.manifest(name, digest(json.dumps(body).encode()), body)
            children.append({**desc, "platform": {"os": "linux", "architecture": arch}})
        pusher.manifest(name, f"multi-{j}", {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children})
    return {
        "tags": SINGLE + ALIASES + INDEXES,
        # Besides one GET per tag: each index's two platform manifests (by digest), and one
        # config per image manifest.
        "platform_gets": INDEXES * 2,
        "config_gets": SINGLE + INDEXES * 2,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repos", type=int, default=100)
    parser.add_argument("--pushes", type=int, default=50)
    parser.add_argument("--burst", type=int, default=500, help="tags pushed in the burst")
    parser.add_argument("--pushers", type=int, default=4, help="concurrent clients in the burst")
    parser.add_argument("--sqlite", action="store_true", help="the embedded default (SQLite) instead of PostgreSQL")
    parser.add_argument(
        "--worker-concurrency", type=int, default=3, help="Celery processes for the events (WORKER_CONCURRENCY)"
    )
    parser.add_argument("--shared-worker", action="store_true", help="one worker for the sync and webhooks")
    parser.add_argument("--webhook-delay", type=float, default=3.0, help="seconds the webhook receiver takes")
    parser.add_argument("--no-reconcile", action="store_true", help="no full reconcile during the burst")
    parser.add_argument("--no-webhook", action="store_true", help="no webhook receiver during the burst")
    args = parser.parse_args()

    services = start("sync-bench", SYNC_INTERVAL_SECONDS="0", WEBHOOK_ALLOW_PRIVATE_TARGETS="true")
    work, env = services.work, services.env
    if args.sqlite:
        del env["DATABASE_URL"]  # SQLite in the data directory, as `make run`
    setup_django(env)
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    from accounts.services import user_create
    from repositories.models import Tag
    from repositories.reconcile import reconcile
    from repositories.registry import get_issuer, system_token
    from repositories.registry.client import RegistryClient
    from repositories.registry.config import render_config
    from repositories.registry.token import BUNDLE_FILE

    call_command("migrate", verbosity=0)
    user_create(username="bench", password="bench-password-123")
    get_issuer()  # creates the signing key the registries trust
    bundle = Path(settings.TOKEN_KEY_DIR) / BUNDLE_FILE
    storage = work / "storage"
    processes: list = []
    try:
        web_port = free_port()

        def config(notify: bool):
            def render(listen: str, _storage: Path, debug_addr: str) -> str:
                return render_config(
                    listen=listen,
                    storage_dir=storage,
                    realm=f"http://127.0.0.1:{web_port}/auth/token",
                    service=settings.REGISTRY_SERVICE,
                    issuer=settings.TOKEN_ISSUER,
                    rootcertbundle=bundle,
                    notifications_url=f"http://127.0.0.1:{web_port}/api/v1/registry/events" if notify else None,
                    notifications_secret=settings.REGISTRY_EVENTS_SECRET,
                    http_secret="bench",
                    debug_addr=debug_addr,
                )

            return render

        quiet = Registry(workdir=work / "quiet", config_text=config(False)).start()
        processes.append(quiet)
        tokens: dict[str, str] = {}

        def token_for(name: str) -> str:
            if name not in tokens:
                tokens[name] = system_token((f"repository:{name}:pull,push",))[0]
            return tokens[name]

        names = [f"bench/app-{i:03d}" for i in range(args.repos)]
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=8) as pool:
            expected = list(pool.map(lambda n: fill_repository(Pusher(quiet.url, token_for), n), names))
        fill_s = time.perf_counter() - started
        total_tags = sum(e["tags"] for e in expected)
        print(f"filled {args.repos} repositories, {total_tags} tags in {fill_s:.1f} s")

        # 2. full crawl into an empty portal
        client = RegistryClient(quiet.url, system_token, timeout=10)
        started = time.perf_counter()
        run = reconcile(client=client)
        crawl_s = time.perf_counter() - started
        assert run.status == "ok", run.error
        assert Tag.objects.count() == total_tags, (Tag.objects.count(), total_tags)
        minimum = (
            math.ceil(args.repos / settings.SYNC_PAGE_SIZE)  # catalog pages
            + args.repos  # tag-list pages (2.8 answers every tag in one page)
            + total_tags  # one GET per tag: its digest and its manifest (all new to this portal)
            + sum(e["platform_gets"] + e["config_gets"] for e in expected)
        )
        print(f"crawl: {crawl_s:.2f} s, {run.requests} requests (minimum {minimum}): {dict(client.counts)}")

        # 3. the same crawl again, nothing changed
        client.counts.clear()
        writes: list[str] = []

        def count_writes(execute, sql, params, many, context):
            if sql.split(None, 1)[0].upper() in ("INSERT", "UPDATE", "DELETE") and "repositories_syncrun" not in sql:
                writes.append(sql)
            return execute(sql, params, many, context)

        started = time.perf_counter()
        with connection.execute_wrapper(count_writes):
            noop = reconcile(client=client)
        noop_s = time.perf_counter() - started
        print(f"no-op crawl: {noop_s:.2f} s, {dict(client.counts)}, {len(writes)} content writes")

        # 4. push-to-visible latency through the event path
        python = sys.executable
        child_env = {**os.environ, **env, "REGISTRY_URL": "", "PYTHONUNBUFFERED": "1"}
        events_registry = Registry(workdir=work / "events", config_text=config(True)).start()
        processes.append(events_registry)
        child_env["REGISTRY_URL"] = events_registry.url
        web = Process(
            "gunicorn",
            [
                python,
                "-m",
                "gunicorn",
                "portal.wsgi",
                "-b",
                f"127.0.0.1:{web_port}",
                "-w",
                "2",
                "--threads",
                "4",  # as `make run` and compose: keep-alive for the registry's notifications
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
        celery = [python, "-m", "celery", "-A", "portal", "worker", "--loglevel=WARNING", "--without-gossip"]
        queues = "celery,webhooks,maintenance" if args.shared_worker else "celery"
        worker = Process(
            "worker",
            [*celery, f"--concurrency={args.worker_concurrency}", f"--queues={queues}", "--without-mingle"],
            env=child_env,
            cwd=ROOT,
            log_dir=work,
        )
        processes += [web, worker]
        if not args.shared_worker:  # as the Procfile and compose
            processes.append(
                Process(
                    "maintenance",
                    [*celery, "--queues=maintenance", "--concurrency=1", "--hostname=maintenance@%h"],
                    env=child_env,
                    cwd=ROOT,
                    log_dir=work,
                )
            )
            processes.append(
                Process(
                    "webhooks",
                    [*celery, "--queues=webhooks", "--pool=threads", "--concurrency=8", "--hostname=webhooks@%h"],
                    env=child_env,
                    cwd=ROOT,
                    log_dir=work,
                )
            )
        wait_until(lambda: requests.get(f"http://127.0.0.1:{web_port}/healthz", timeout=1).ok, timeout=30, what="web")
        pusher = Pusher(events_registry.url, token_for)
        # Warm up: the first event makes the worker connect to everything.
        warm_name = names[0]
        layer_data, diff_id = layer_blob("warm")
        layer = pusher.blob(warm_name, layer_data)
        pusher.manifest(warm_name, "warm", pusher.image(warm_name, layer, diff_id, "warm"))
        wait_until(lambda: Tag.objects.filter(name="warm").exists(), timeout=60, what="warm-up push")
        # The first notification from a registry instance the portal never saw starts a crawl
        # (its predecessor's queue may be lost): let it finish, then measure the steady state.
        from repositories.models import SyncRun

        wait_until(
            lambda: SyncRun.objects.filter(trigger="restart").exclude(status="running").exists(),
            timeout=600,
            what="the crawl a new registry instance starts",
        )

        latencies = []
        for i in range(args.pushes):
            name = names[i % len(names)]
            body = pusher.image(
                name, layer if name == warm_name else pusher.blob(name, layer_data), diff_id, f"lat-{i}"
            )
            tag = f"lat-{i}"
            pusher.manifest(name, tag, body)
            t0 = time.perf_counter()
            wait_until(lambda tag=tag: Tag.objects.filter(name=tag).exists(), timeout=60, interval=0.005, what=tag)
            latencies.append(time.perf_counter() - t0)
        p50 = statistics.median(latencies)
        p95 = statistics.quantiles(latencies, n=20)[18]
        if os.environ.get("BENCH_VERBOSE"):
            print("single-push latencies:", " ".join(f"{x:.3f}" for x in latencies))

        # 5. a burst: several clients pushing new images at once, while a full reconcile runs
        # and a webhook receiver answers every push slowly
        receiver, received = slow_receiver(args.webhook_delay)
        from repositories.models import Repository
        from webhooks.services import webhook_create

        for repository in Repository.objects.filter(namespace__name="bench").exclude(
            pk__in=[] if not args.no_webhook else Repository.objects.values("pk")
        ):
            webhook_create(actor=None, name="slow", url=receiver, repository=repository, events=["push"])
        reconciled: dict = {}

        def full_reconcile() -> None:
            """As an operator's "reconcile now" (or beat's schedule): a task, run by the
            maintenance worker (`--shared-worker`: by the one worker)."""
            from django.db import close_old_connections

            from repositories.tasks import reconcile_registry

            before = set(SyncRun.objects.values_list("pk", flat=True))
            started = time.perf_counter()
            reconcile_registry.delay()
            finished = wait_until(
                lambda: SyncRun.objects.exclude(pk__in=before).exclude(status="running").first(),
                timeout=600,
                interval=0.1,
                what="the full reconcile",
            )
            reconciled.update(
                status=finished.status,
                seconds=(finished.finished_at - finished.started_at).total_seconds(),
                requests=finished.requests,
                waited=time.perf_counter() - started,
            )
            close_old_connections()

        burst = run_burst(
            pusher_for=lambda: Pusher(events_registry.url, token_for),
            names=names,
            args=args,
            during=None if args.no_reconcile else full_reconcile,
        )
        print(f"reconcile during the burst: {reconciled}; webhook deliveries received: {len(received)}")
        assert args.no_reconcile or reconciled.get("status") == "ok", reconciled
        reconciled.setdefault("seconds", 0.0)
        endpoint_ms = endpoint_latencies(work / "gunicorn.log")
    finally:
        for process in reversed(processes):
            process.stop()
        services.stop()

    print(
        f"RESULT database={'sqlite' if args.sqlite else 'postgresql'} "
        f"repos={args.repos} tags={total_tags} crawl_s={crawl_s:.2f} request_ratio={run.requests / minimum:.2f} "
        f"noop_manifest_gets={noop.manifests_fetched} noop_db_writes={len(writes)} "
        f"visible_p50_s={p50:.3f} visible_p95_s={p95:.3f} "
        f"burst_tags={args.burst} burst_pushers={args.pushers} burst_push_s={burst['push_s']:.1f} "
        f"burst_visible_p50_s={burst['p50']:.3f} burst_visible_p95_s={burst['p95']:.3f} "
        f"burst_visible_max_s={burst['max']:.3f} events_endpoint_p95_ms={endpoint_ms} "
        f"burst_reconcile_s={reconciled['seconds']:.1f} webhook_delay_s={args.webhook_delay} "
        f"webhook_worker={'shared' if args.shared_worker else 'own'}"
    )


def slow_receiver(delay: float) -> tuple[str, list[float]]:
    """A webhook receiver on loopback that takes `delay` seconds to answer each delivery."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received: list[float] = []

    class Slow(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            time.sleep(delay)
            received.append(time.time())
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}/hook", received


def run_burst(*, pusher_for, names: list[str], args, during=None) -> dict:
    """`args.pushers` threads push `args.burst` new images (a new config blob and manifest each,
    over a layer the repository already has); a watcher notes when each tag reaches the
    database. Latency per tag: from its manifest PUT's answer to the watcher seeing it."""
    import threading

    from django.db import close_old_connections

    from repositories.models import Tag

    done_at: dict[str, float] = {}
    done_wall: dict[str, float] = {}
    seen_at: dict[str, float] = {}
    stop = threading.Event()

    def watch() -> None:
        # Every burst tag's name, 20 times a second (a few hundred short rows): rows commit out
        # of id order, so "new ids only" would miss some. Light enough not to slow the burst.
        while not stop.is_set():
            now = time.perf_counter()
            for name in Tag.objects.filter(name__startswith="burst-").values_list("name", flat=True):
                seen_at.setdefault(name, now)
            close_old_connections()
            time.sleep(0.05)

    def client(index: int) -> None:
        pusher = pusher_for()
        layer_data, diff_id = layer_blob(f"burst-{index}")
        prepared: dict[str, dict] = {}
        for i in range(index, args.burst, args.pushers):
            name = names[i % len(names)]
            if name not in prepared:
                prepared[name] = pusher.blob(name, layer_data)
            tag = f"burst-{i}"
            if i % 4 == 3:  # a two-platform index: its platforms by digest, then the index by tag
                children = []
                for arch in ("amd64", "arm64"):
                    platform = pusher.image(name, prepared[name], diff_id, f"{tag}-{arch}", arch)
                    desc = pusher.manifest(name, digest(json.dumps(platform).encode()), platform)
                    children.append({**desc, "platform": {"os": "linux", "architecture": arch}})
                body = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children}
            else:
                body = pusher.image(name, prepared[name], diff_id, tag)
            pusher.manifest(name, tag, body)
            done_at[tag], done_wall[tag] = time.perf_counter(), time.time()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    background = threading.Thread(target=during, daemon=True) if during else None
    if background:
        background.start()
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.pushers) as pool:
        list(pool.map(client, range(args.pushers)))
    push_s = time.perf_counter() - started
    try:
        wait_until(lambda: len(seen_at) == args.burst, timeout=120, interval=0.05, what="every burst tag")
    except TimeoutError:
        from django.db.models import Count

        from repositories.models import RegistryEvent

        print(dict(RegistryEvent.objects.values_list("status").annotate(n=Count("pk"))))
        print(list(RegistryEvent.objects.exclude(error="").values_list("status", "error")[:5]))
        raise
    stop.set()
    watcher.join()
    if background:
        background.join(600)
    latencies = sorted(seen_at[t] - done_at[t] for t in done_at)
    # Where the time went: the registry's delivery (PUT answered -> event stored) and the
    # worker's queue and work (stored -> processed).
    from repositories.models import RegistryEvent

    rows = RegistryEvent.objects.filter(action="push", tag__in=list(done_at)).values_list(
        "tag", "received_at", "processed_at"
    )
    delivered = sorted(received.timestamp() - done_wall[tag] for tag, received, _ in rows)
    processed = sorted((done - received).total_seconds() for _, received, done in rows if done)
    p95 = statistics.quantiles
    print(
        f"burst: delivery p50 {statistics.median(delivered):.3f} s p95 {p95(delivered, n=20)[18]:.3f} s; "
        f"worker p50 {statistics.median(processed):.3f} s p95 {p95(processed, n=20)[18]:.3f} s"
    )
    # The registry sends its notifications one at a time: how many came, and how far apart.
    arrivals = sorted(
        RegistryEvent.objects.filter(received_at__gte=min(r for _, r, _ in rows)).values_list("received_at", flat=True)
    )
    gaps = sorted((b - a).total_seconds() * 1000 for a, b in itertools.pairwise(arrivals))

    by_kind = Counter(
        f"{action} {'by tag' if tag else 'by digest'}"
        for action, tag in RegistryEvent.objects.filter(received_at__gte=arrivals[0]).values_list("action", "tag")
    )
    print(
        f"burst: {len(arrivals)} notifications stored over {(arrivals[-1] - arrivals[0]).total_seconds():.1f} s; "
        f"gap between two p50 {statistics.median(gaps):.1f} ms p95 {p95(gaps, n=20)[18]:.1f} ms; {dict(by_kind)}"
    )
    return {
        "push_s": push_s,
        "p50": statistics.median(latencies),
        "p95": statistics.quantiles(latencies, n=20)[18],
        "max": latencies[-1],
    }


def endpoint_latencies(log_path: Path) -> str:
    """p95 of the events endpoint's answer time, from gunicorn's access log (%(D)s, µs)."""
    times = gunicorn_times(log_path, "/api/v1/registry/events")
    return f"{statistics.quantiles(times, n=20)[18]:.1f}" if len(times) > 20 else "n/a"


if __name__ == "__main__":
    main()
