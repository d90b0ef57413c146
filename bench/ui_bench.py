"""Server time of the repository page, its tags page (newest first, by version, one platform)
and a tag page, for a repository of 1,000 tags and one of 100,000 (a third of them
multi-platform), on PostgreSQL with the Redis cache (as `make run` has), through Django's test
client (no network). Issue 15: the repository and tags pages under 100 ms at 100,000 tags, i.e.
O(page), not O(tags).

Issue 17: the pages are read as a member of the organization that owns the (private)
repositories, whose read access comes from a team rule matched by pattern, in an organization
with 50 teams, 200 grants and 50 rules: the policy's real path, not the owner's shortcut.

Run from the repository root: .venv/bin/python bench/ui_bench.py
"""

from __future__ import annotations

import datetime as dt
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _harness import setup_django, start  # noqa: E402

SIZES = tuple(int(n) for n in os.environ.get("UI_BENCH_SIZES", "1000,100000").split(","))
CHUNK = 5_000


def build(namespace, name: str, count: int):
    """A public repository of `count` tags: a third point at two-platform indexes (linux/amd64
    and linux/arm64), the rest at single-platform images; names 1.<i> with every tenth a
    pre-release or a build, so the version order has work to do."""
    from accounts.models import Visibility
    from repositories.models import DailyPulls, IndexEntry, Manifest, Repository, Tag

    repository = Repository.objects.create(
        namespace=namespace,
        name=name,
        visibility=Visibility.PUBLIC,
        full_description="# Big\n\n" + "Some text with `code` and a [link](https://example.org).\n\n" * 50,
    )
    indexes_wanted = count // 3
    for start_at in range(0, count, CHUNK):
        stop = min(start_at + CHUNK, count)
        images = Manifest.objects.bulk_create(
            Manifest(
                repository=repository,
                digest=f"sha256:{i:064x}",
                media_type="application/vnd.oci.image.manifest.v1+json",
                os="linux",
                architecture="amd64" if i % 2 else "arm64",
                total_size=10_000_000 + i,
                layer_count=3,
            )
            for i in range(start_at, stop)
        )
        indexes = Manifest.objects.bulk_create(
            Manifest(
                repository=repository,
                digest=f"sha256:{i + 10**9:064x}",
                media_type="application/vnd.oci.image.index.v1+json",
                total_size=20_000_000,
            )
            for i in range(start_at, stop)
            if i < indexes_wanted
        )
        IndexEntry.objects.bulk_create(
            IndexEntry(index=index, child=images[(k * 2 + j) % len(images)], os="linux", architecture=arch)
            for k, index in enumerate(indexes)
            for j, arch in enumerate(("amd64", "arm64"))
        )
        targets = indexes + images[len(indexes) :]

        def tag_name(i: int) -> str:
            return f"1.{i}" + ("-rc.1" if i % 10 == 3 else "-alpine" if i % 10 == 7 else "")

        Tag.objects.bulk_create(
            Tag(repository=repository, name=tag_name(i), manifest=targets[i - start_at], pushed_by="ci")
            for i in range(start_at, stop)
        )
    DailyPulls.objects.bulk_create(
        DailyPulls(repository=repository, day=dt.date.today() - dt.timedelta(days=d), count=d * 3) for d in range(30)
    )
    return repository


def median_ms(client, url: str, rounds: int = 20) -> tuple[float, float]:
    assert client.get(url).status_code == 200, url
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
    return statistics.median(times), max(times)


def show_queries(client, url: str) -> None:
    """The page's queries, slowest first (UI_BENCH_QUERIES=1): where the time goes."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        client.get(url)
    for query in sorted(captured.captured_queries, key=lambda q: -float(q["time"]))[:5]:
        print(f"    {float(query['time']) * 1000:6.1f} ms  {query['sql'][:300]}")


def main() -> None:
    services = start("ui-bench", DJANGO_ALLOWED_HOSTS="testserver")  # Redis: the cache, as in make run
    setup_django(services.env)
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    from accounts.models import Membership, Namespace, Team, TeamMembership, Visibility
    from accounts.services import organization_create, user_create
    from repositories.models import AccessRule, Repository, RepositoryGrant

    results: dict[int, dict[str, float]] = {}
    try:
        call_command("migrate", verbosity=0)
        owner = user_create(username="owner", password="bench-password-1")
        org = organization_create(name="acme", owner=owner)
        namespace = Namespace.objects.get(name="acme")
        member = user_create(username="mike", password="bench-password-2")
        Membership.objects.create(organization=org, user=member, role=Membership.Role.MEMBER)
        teams = Team.objects.bulk_create([Team(organization=org, name=f"team-{i}") for i in range(50)])
        TeamMembership.objects.bulk_create([TeamMembership(team=team, user=member) for team in teams[::5]])
        libs = Repository.objects.bulk_create(
            [Repository(namespace=namespace, name=f"lib-{i}", full_name=f"acme/lib-{i}") for i in range(200)]
        )
        RepositoryGrant.objects.bulk_create(
            [RepositoryGrant(repository=lib, team=teams[i % 50], level=10) for i, lib in enumerate(libs)]
        )
        AccessRule.objects.bulk_create(
            [AccessRule(organization=org, team=teams[i], pattern=f"svc-{i}-*", level=20) for i in range(49)]
            + [AccessRule(organization=org, team=teams[45], pattern="big-*", level=10)]
        )
        for count in SIZES:
            started = time.perf_counter()
            build(namespace, f"big-{count}", count)
            Repository.objects.filter(namespace=namespace, name=f"big-{count}").update(visibility=Visibility.PRIVATE)
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")
            print(f"{count} tags built in {time.perf_counter() - started:.0f} s")
            client = Client()
            client.force_login(member)  # reads through the team rule big-*
            base = f"/r/acme/big-{count}"
            pages = {
                "repo_page": f"{base}/",
                "tags_newest": f"{base}/-/tags/",
                "tags_version": f"{base}/-/tags/?sort=version",
                "tags_platform": f"{base}/-/tags/?platform=linux/arm64",
                "tag_page": f"{base}/-/tags/1.{count - 1}/",
            }
            results[count] = {}
            for key, url in pages.items():
                median, worst = median_ms(client, url)
                results[count][key] = median
                print(f"{count:>7} tags {url:50} median {median:6.1f} ms  max {worst:6.1f} ms")
                if os.environ.get("UI_BENCH_QUERIES") and count == max(SIZES):
                    show_queries(client, url)
    finally:
        services.stop()
    largest = max(SIZES)
    big, small = results[largest], results[min(SIZES)]
    tags_page = max(big["tags_newest"], big["tags_version"])
    print(
        f"RESULT tags={largest} repo_page_ms={big['repo_page']:.1f} tags_page_ms={tags_page:.1f} "
        f"tags_version_ms={big['tags_version']:.1f} tags_platform_ms={big['tags_platform']:.1f} "
        f"tag_page_ms={big['tag_page']:.1f} repo_page_1k_ms={small['repo_page']:.1f} "
        f"tags_page_1k_ms={max(small['tags_newest'], small['tags_version']):.1f} viewer=member"
    )


if __name__ == "__main__":
    main()
