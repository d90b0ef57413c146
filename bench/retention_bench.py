"""Retention at scale (issue 16): how long a run takes, and how many registry requests it makes,
on one repository of N tags of which a rule keeps K (a CI repository that has never been
cleaned up: the case retention exists for).

1. Fill a registry that sends no notifications: N single-platform images tagged ci-00000…,
   and one two-platform index per 20 of them (tagged multi-…), pushed through the registry's
   HTTP API; a full crawl brings them into the portal.
2. A rule `*` keep K; a dry run (the preview), then the run. The run reads the repository's tags
   from the registry (a HEAD each) again before a delete whenever its last reading is older than
   retention.GRAPH_MAX_AGE (or four times the reading took); `--per-digest` reads them before
   every delete, as the run did before (N reads of N tags: quadratic), for comparison in the same
   run on a smaller repository (`--compare-tags`).

Run from the repository root: .venv/bin/python bench/retention_bench.py [--tags 1000] [--keep 10]
[--compare-tags 200]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _harness import setup_django, start  # noqa: E402
from sync_bench import OCI_INDEX, Pusher, digest, layer_blob  # noqa: E402

from tests.services import Registry, portal_registry  # noqa: E402


def fill(pusher: Pusher, name: str, tags: int) -> None:
    layer_data, diff_id = layer_blob(name)
    layer = pusher.blob(name, layer_data)

    def one(i: int) -> None:
        body = pusher.image(name, layer, diff_id, f"{name}-{i}")
        pusher.manifest(name, f"ci-{i:05d}", body)
        if i % 20 == 19:  # a two-platform index now and then
            children = []
            for arch in ("amd64", "arm64"):
                child = pusher.image(name, layer, diff_id, f"{name}-{i}-{arch}", arch)
                desc = pusher.manifest(name, digest(json.dumps(child).encode()), child)
                children.append({**desc, "platform": {"os": "linux", "architecture": arch}})
            pusher.manifest(name, f"multi-{i:05d}", {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children})

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(one, range(tags)))


def measure(name: str, tags: int, keep: int, *, per_digest: bool, quiet: Registry, token_for) -> dict:
    from accounts.models import Namespace
    from repositories import retention
    from repositories.models import Repository, RetentionRule, Tag
    from repositories.reconcile import reconcile
    from repositories.registry import get_client

    fill(Pusher(quiet.url, token_for), name, tags)
    run = reconcile(repository=name)
    assert run.status == "ok", run.error
    namespace = Namespace.objects.get(name="bench")
    repository = Repository.objects.get(namespace=namespace, name=name.split("/", 1)[1])
    total = Tag.objects.filter(repository=repository).count()
    RetentionRule.objects.filter(namespace=namespace).delete()
    retention.rule_save(
        namespace=namespace, actor=None, repository_pattern=repository.name, tag_pattern="*", keep_most_recent=keep
    )
    started = time.perf_counter()
    preview = retention.run(namespace=namespace, dry_run=True, actor_name="bench")
    preview_s = time.perf_counter() - started
    client = get_client()
    client.counts.clear()
    retention.GRAPH_MAX_AGE = 0.0 if per_digest else 2.0
    started = time.perf_counter()
    done = retention.run(namespace=namespace, dry_run=False, actor_name="bench")
    run_s = time.perf_counter() - started
    requests_made = sum(client.counts.values())
    assert (done.tags, done.digests) == (preview.tags, preview.digests), (done.skipped[:5], len(done.tags))
    left = sorted(client.tags(name))
    assert len(left) == total - len(done.tags), (len(left), total, len(done.tags))
    return {
        "tags": total,
        "removed": len(done.digests),
        "preview_s": preview_s,
        "run_s": run_s,
        "requests": requests_made,
        "per_digest_ms": 1000 * run_s / max(1, len(done.digests)),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tags", type=int, default=1000)
    parser.add_argument("--keep", type=int, default=10)
    parser.add_argument("--compare-tags", type=int, default=200, help="repository size for the per-digest comparison")
    args = parser.parse_args()

    services = start("retention-bench", SYNC_INTERVAL_SECONDS="0")
    work, env = services.work, services.env
    setup_django(env)
    from django.conf import settings
    from django.core.management import call_command

    from accounts.services import user_create
    from repositories.registry import get_issuer, system_token

    call_command("migrate", verbosity=0)
    user_create(username="bench", password="bench-password-123")
    get_issuer()
    # A registry as the portal configures it, sending no notifications (the tests' own helper).
    quiet = portal_registry(workdir=work / "registry", realm="http://127.0.0.1:9/auth/token")
    try:
        settings.REGISTRY_URL = quiet.url
        tokens: dict[str, str] = {}

        def token_for(name: str) -> str:
            if name not in tokens:
                tokens[name] = system_token((f"repository:{name}:pull,push",))[0]
            return tokens[name]

        old = measure(
            "bench/small-old", args.compare_tags, args.keep, per_digest=True, quiet=quiet, token_for=token_for
        )
        print(f"per-digest reads, {old}")
        new_small = measure(
            "bench/small-new", args.compare_tags, args.keep, per_digest=False, quiet=quiet, token_for=token_for
        )
        print(f"graph reads,      {new_small}")
        big = measure("bench/big", args.tags, args.keep, per_digest=False, quiet=quiet, token_for=token_for)
        print(f"graph reads,      {big}")
        print(
            f"RESULT tags={big['tags']} removed={big['removed']} run_s={big['run_s']:.1f} "
            f"preview_s={big['preview_s']:.2f} per_digest_ms={big['per_digest_ms']:.1f} "
            f"requests_per_digest={big['requests'] / max(1, big['removed']):.1f} "
            f"compare_tags={old['tags']} compare_speedup={old['run_s'] / new_small['run_s']:.1f} "
            f"compare_requests_ratio={old['requests'] / max(1, new_small['requests']):.1f}"
        )
    finally:
        quiet.stop()
        services.stop()


if __name__ == "__main__":
    main()
