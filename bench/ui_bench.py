"""Server time of the repository page and its tags page, for a repository with 1,000 tags
(a third of them multi-platform), on PostgreSQL, through Django's test client (no network).

Run from the repository root: .venv/bin/python bench/ui_bench.py
"""

from __future__ import annotations

import datetime as dt
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _harness import setup_django, start  # noqa: E402


def main() -> None:
    services = start("ui-bench", redis=False, DJANGO_ALLOWED_HOSTS="testserver")
    setup_django(services.env)
    from django.core.management import call_command
    from django.test import Client

    from accounts.models import Namespace, Visibility
    from accounts.services import user_create
    from repositories.models import DailyPulls, IndexEntry, Manifest, Repository, Tag

    try:
        call_command("migrate", verbosity=0)
        owner = user_create(username="owner", password="bench-password-1")
        repository = Repository.objects.create(
            namespace=Namespace.objects.get(name="owner"),
            name="big",
            visibility=Visibility.PUBLIC,
            full_description="# Big\n\n" + "Some text with `code` and a [link](https://example.org).\n\n" * 50,
        )
        manifests = Manifest.objects.bulk_create(
            Manifest(
                repository=repository,
                digest=f"sha256:{i:064x}",
                media_type="application/vnd.oci.image.manifest.v1+json",
                os="linux",
                architecture="amd64",
                total_size=10_000_000 + i,
                layer_count=3,
            )
            for i in range(1000)
        )
        indexes = Manifest.objects.bulk_create(
            Manifest(
                repository=repository,
                digest=f"sha256:{i + 5000:064x}",
                media_type="application/vnd.oci.image.index.v1+json",
                total_size=20_000_000,
            )
            for i in range(333)
        )
        IndexEntry.objects.bulk_create(
            IndexEntry(index=index, child=manifests[(i * 2 + k) % 1000], os="linux", architecture=arch)
            for i, index in enumerate(indexes)
            for k, arch in enumerate(("amd64", "arm64"))
        )
        targets = indexes + manifests[333:]
        Tag.objects.bulk_create(
            Tag(repository=repository, name=f"1.{i}", manifest=targets[i], pushed_by="ci") for i in range(1000)
        )
        DailyPulls.objects.bulk_create(
            DailyPulls(
                repository=repository,
                day=dt.date.today() - dt.timedelta(days=d),
                count=d * 3,
            )
            for d in range(30)
        )
        client = Client()
        client.force_login(owner)
        results = {}
        for key, url in (("repo_page", "/r/owner/big/"), ("tags_page", "/r/owner/big/tags/?sort=version")):
            assert client.get(url).status_code == 200
            times = []
            for _ in range(20):
                started = time.perf_counter()
                response = client.get(url)
                times.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200
            results[key] = statistics.median(times)
            print(f"{url:35} median {results[key]:.1f} ms  max {max(times):.1f} ms")
    finally:
        services.stop()
    print(f"RESULT repo_page_ms={results['repo_page']:.1f} tags_page_ms={results['tags_page']:.1f}")


if __name__ == "__main__":
    main()
