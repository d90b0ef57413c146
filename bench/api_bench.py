"""API latency at scale: search and tag lists over 100,000 repositories and 1,000,000 tags.

Seeds PostgreSQL with set-based SQL: 1,000 organizations, 100,000 repositories (a fifth
private) named and described from a vocabulary, 1,000,000 tags (10 per repository, and one
repository with 1,000). Then, against gunicorn (one worker, one request at a time: latency,
not throughput):

  search   GET /api/v1/repositories/?q=<query> for a handful of realistic queries, anonymous
  member   the same queries as a signed-in member of organization org1 (a personal access
           token): 10 of its 50 teams, 200 team grants, 50 team rules by pattern, and grants of
           their own on repositories of other organizations
  raw      the same ranked page query, SQL taken from the selector, run on a bare cursor
  tags     GET /api/v1/repositories/<repo with 1,000 tags>/tags/?page_size=25

Run from the repository root: .venv/bin/python bench/api_bench.py [--rounds 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _harness import setup_django, start  # noqa: E402

from tests.services import Process, free_port, wait_until  # noqa: E402

# Single words, a partial name, and (added after seeding) two-word queries taken from real
# descriptions, so every query finds something.
QUERIES = ["postgres", "nginx", "backup", "kafka", "gres"]
WORDS = (
    "postgres redis nginx kafka connect api gateway backup ml model worker cron cache proxy auth web app "
    "service data etl stream search index metrics logs trace agent operator controller builder runner base "
    "python node golang java rust alpine debian ubuntu mysql mongo elastic grafana prometheus vault consul"
).split()


def seed(cursor, repos: int, namespaces: int) -> str:
    words = "ARRAY[" + ",".join(f"'{w}'" for w in WORDS) + "]"
    n = len(WORDS)
    cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    cursor.execute(
        f"""INSERT INTO accounts_organization (name, display_name, description, email, created_at)
        SELECT 'org' || i, 'Org ' || i, '', '', now() FROM generate_series(1, {namespaces}) i"""
    )
    cursor.execute(
        """INSERT INTO accounts_namespace (name, kind, organization_id, default_visibility, created_at)
        SELECT name, 'org', id, 'private', now() FROM accounts_organization"""
    )
    cursor.execute(
        f"""INSERT INTO repositories_repository (namespace_id, name, full_name, visibility, short_description,
            full_description, created_at, updated_at, last_pushed_at, pull_count, star_count,
            description_from_image, sync_error)
        SELECT ns.id, r.name, ns.name || '/' || r.name,
               CASE WHEN r.i % 5 = 0 THEN 'private' ELSE 'public' END,
               left(initcap(r.w1) || ' ' || r.w2 || ' for ' || r.w3, 100),
               '# ' || r.w1 || E'\\n\\nA ' || r.w2 || ' image with ' || r.w3 || ' and ' || r.w4
                 || '. Built nightly; see the tags for versions. ' || repeat('Lorem ipsum dolor sit amet. ', 10),
               now(), now(), now() - (r.i || ' minutes')::interval, (r.i * 7919) % 100000, r.i % 50, false, ''
        FROM (
            SELECT i,
                   ({words})[1 + (i * 7) % {n}] AS w1, ({words})[1 + (i * 13) % {n}] AS w2,
                   ({words})[1 + (i * 17) % {n}] AS w3, ({words})[1 + (i * 23) % {n}] AS w4,
                   ({words})[1 + (i * 7) % {n}] || '-' || ({words})[1 + (i * 13) % {n}] || '-' || i AS name
            FROM generate_series(1, {repos}) i
        ) r
        JOIN accounts_namespace ns ON ns.name = 'org' || (1 + r.i % {namespaces})"""
    )
    cursor.execute(
        """INSERT INTO repositories_manifest (repository_id, digest, media_type, total_size, config_digest, os,
            architecture, variant, labels, annotations, layer_count, is_signed, has_attestation, has_sbom,
            created_at, details, details_version, artifact, signature_status, signature_key)
        SELECT id, 'sha256:' || md5(id::text) || md5(id::text || 'x'), 'application/vnd.oci.image.manifest.v1+json',
               10000000 + id, '', 'linux', 'amd64', '', '{}', '{}', 3, false, false, false, now(),
               '{}', 0, '{}', 'unsigned', ''
        FROM repositories_repository"""
    )
    cursor.execute(
        """INSERT INTO repositories_tag (repository_id, name, manifest_id, pushed_at, pushed_by, artifact, source,
            version_key)
        SELECT m.repository_id, '1.' || t, m.id, now() - (t || ' hours')::interval, 'ci', '', 'event', ''
        FROM repositories_manifest m, generate_series(0, 9) t"""
    )
    cursor.execute("SELECT full_name FROM repositories_repository WHERE visibility = 'public' ORDER BY id LIMIT 1")
    big = cursor.fetchone()[0]
    cursor.execute(
        f"""INSERT INTO repositories_tag (repository_id, name, manifest_id, pushed_at, pushed_by, artifact, source,
            version_key)
        SELECT m.repository_id, '2.' || t, m.id, now() - (t || ' seconds')::interval, 'ci', '', 'event', ''
        FROM repositories_manifest m JOIN repositories_repository r ON r.id = m.repository_id
        CROSS JOIN generate_series(0, {1000 - 11}) t WHERE r.full_name = %s""",
        [big],
    )
    cursor.execute("VACUUM ANALYZE")  # what autovacuum does after a bulk load (hint bits, visibility map)
    return big


def seed_member() -> str:
    """mike, a member of org1 with teams, grants and rules; returns a read token of his."""
    from accounts.models import Membership, Namespace, Team, TeamMembership
    from accounts.services import access_token_create, user_create
    from repositories.models import AccessRule, Repository, RepositoryGrant

    mike = user_create(username="mike", password="mike-bench-password")
    org = Namespace.objects.get(name="org1").organization
    Membership.objects.create(organization=org, user=mike, role="member")
    teams = Team.objects.bulk_create([Team(organization=org, name=f"team-{i}") for i in range(50)])
    TeamMembership.objects.bulk_create([TeamMembership(team=team, user=mike) for team in teams[::5]])
    private = list(Repository.objects.filter(visibility="private").order_by("id").values_list("id", flat=True)[:400])
    RepositoryGrant.objects.bulk_create(
        [RepositoryGrant(repository_id=pk, team=teams[i % 50], level=10) for i, pk in enumerate(private[:200])]
    )
    RepositoryGrant.objects.bulk_create(
        [RepositoryGrant(repository_id=pk, user=mike, level=10) for pk in private[200:250]]
    )
    AccessRule.objects.bulk_create(
        [AccessRule(organization=org, team=teams[i], pattern=f"{WORDS[i % len(WORDS)]}-*", level=10) for i in range(50)]
    )
    return access_token_create(user=mike, name="bench", scope="read")[1]


def percentiles(samples: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(samples, n=20)
    return statistics.median(samples), q[18]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repos", type=int, default=100_000)
    parser.add_argument("--namespaces", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()

    services = start("api-bench", API_THROTTLE_ANON="1000000/min")
    env = services.env
    setup_django(env)
    from django.core.management import call_command
    from django.db import connection

    from repositories.access import ANONYMOUS
    from repositories.models import Tag
    from repositories.selectors import repository_search

    server = None
    try:
        call_command("migrate", verbosity=0)
        started = time.perf_counter()
        with connection.cursor() as cursor:
            big = seed(cursor, args.repos, args.namespaces)
        tags = Tag.objects.count()
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT short_description FROM repositories_repository WHERE visibility = 'public' "
                "ORDER BY id LIMIT 3 OFFSET 1000"
            )
            for (description,) in cursor.fetchall():
                first, second, *_ = description.lower().split()
                QUERIES.append(f"{first} {second}")
        member_token = seed_member()
        print(f"seeded {args.repos} repositories, {tags} tags in {time.perf_counter() - started:.1f} s")

        port = free_port()
        server = Process(
            "gunicorn",
            [
                sys.executable,
                "-m",
                "gunicorn",
                "portal.wsgi",
                "-b",
                f"127.0.0.1:{port}",
                "-w",
                "1",
                "--log-level",
                "warning",
            ],
            env={**os.environ, **env},
            cwd=ROOT,
            log_dir=services.work,
        )
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: requests.get(f"{base}/healthz", timeout=1).ok, timeout=30, what="gunicorn")
        session = requests.Session()

        api, raw, member = [], [], []
        per_query: dict[str, list[float]] = {q: [] for q in QUERIES}
        member_per_query: dict[str, list[float]] = {q: [] for q in QUERIES}
        member_headers = {"Authorization": f"Bearer {member_token}"}
        cursor = connection.cursor()
        for query in QUERIES:  # warm caches once per query
            assert session.get(f"{base}/api/v1/repositories/", params={"q": query}).ok
            assert session.get(f"{base}/api/v1/repositories/", params={"q": query}, headers=member_headers).ok
        for _ in range(args.rounds):
            for query in QUERIES:
                t0 = time.perf_counter()
                response = session.get(f"{base}/api/v1/repositories/", params={"q": query}, headers=member_headers)
                member.append((time.perf_counter() - t0) * 1000)
                member_per_query[query].append(member[-1])
                assert response.ok and response.json()["results"], (query, response.text[:300])
                member_matches = response.json()["count"]
                member_per_query[query].append(-member_matches)
                t0 = time.perf_counter()
                response = session.get(f"{base}/api/v1/repositories/", params={"q": query})
                api.append((time.perf_counter() - t0) * 1000)
                per_query[query].append(api[-1])
                assert response.ok and response.json()["results"], (query, response.text[:300])
                matches = response.json()["count"]
                assert member_matches > matches, (query, member_matches, matches)  # he sees private ones too
                ranked = repository_search(actor=ANONYMOUS, q=query).defer("full_description", "sync_error")
                sql, params = ranked[:25].query.sql_with_params()
                t0 = time.perf_counter()
                cursor.execute(sql, params)
                cursor.fetchall()
                raw.append((time.perf_counter() - t0) * 1000)
                per_query[query].append(-matches)  # remembered for the breakdown

        tag_times = []
        tags_url = f"{base}/api/v1/repositories/{big}/tags/"
        for _ in range(args.rounds * 4):
            t0 = time.perf_counter()
            response = session.get(tags_url, params={"page_size": 25})
            tag_times.append((time.perf_counter() - t0) * 1000)
            assert response.ok and response.json()["count"] >= 1000, response.text[:300]
    finally:
        if server:
            server.stop()
        services.stop()

    for label, table in (("anonymous", per_query), ("member", member_per_query)):
        for query, samples in table.items():
            times = [x for x in samples if x >= 0]
            median, worst = statistics.median(times), max(times)
            print(f"  {label:9} {query!r:24} {-min(samples):6d} matches  p50 {median:6.1f} ms  max {worst:6.1f} ms")
    search_p50, search_p95 = percentiles(api)
    member_p50, member_p95 = percentiles(member)
    raw_p50, raw_p95 = percentiles(raw)
    tags_p50, tags_p95 = percentiles(tag_times)
    print(f"search p50 {search_p50:.1f} ms p95 {search_p95:.1f} ms; raw p50 {raw_p50:.1f} ms p95 {raw_p95:.1f} ms")
    print(f"member search p50 {member_p50:.1f} ms p95 {member_p95:.1f} ms")
    print(f"tags   p50 {tags_p50:.1f} ms p95 {tags_p95:.1f} ms")
    print(
        f"RESULT search_p50_ms={search_p50:.1f} search_p95_ms={search_p95:.1f} "
        f"search_member_p50_ms={member_p50:.1f} search_member_p95_ms={member_p95:.1f} raw_p95_ms={raw_p95:.1f} "
        f"ratio={search_p95 / raw_p95:.2f} tags_p95_ms={tags_p95:.1f}"
    )


if __name__ == "__main__":
    main()
