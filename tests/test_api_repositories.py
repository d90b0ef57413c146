"""Repository endpoints: the policy table through the API, privacy, query counts, tags,
permissions, stars, pulls, search (ours and the Docker CLI's)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from accounts.models import Level, Namespace, Visibility
from accounts.services import access_token_create
from repositories.models import DailyPulls, Manifest, Repository, Tag
from tests.world import EXPECTED, REFUSED_CREDENTIALS, REPOS, build_world

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    return build_world()


def api_client_for(world, actor_name: str) -> APIClient:
    """Users sign in with a session; token actors send their token; refused credentials go
    over Basic (a password there would be refused anyway)."""
    client = APIClient()
    actor = world.actors[actor_name]
    if actor_name in REFUSED_CREDENTIALS:
        secret = world.credentials[actor_name][1]
        client.credentials(HTTP_AUTHORIZATION="Bearer " + secret if secret.startswith("dy_pat_") else "Basic x")
    elif actor.token is not None:
        client.credentials(HTTP_AUTHORIZATION="Bearer " + world.credentials[actor_name][1])
    elif actor.user is not None:
        client.force_authenticate(actor.user)
    return client


API_ACTORS = [a for a in EXPECTED if a not in ("system", "robot")]


@pytest.mark.parametrize("actor_name", API_ACTORS)
def test_policy_table_through_the_api(world, actor_name):
    client = api_client_for(world, actor_name)
    for repo, code in zip(REPOS, EXPECTED[actor_name], strict=True):
        detail = client.get(f"/api/v1/repositories/{repo}/")
        edit = client.patch(f"/api/v1/repositories/{repo}/", {"description": "edited"}, format="json")
        if actor_name in REFUSED_CREDENTIALS:
            assert (detail.status_code, edit.status_code) == (401, 401), repo
        elif "r" not in code:
            assert (detail.status_code, edit.status_code) == (404, 404), repo
        elif "d" in code:  # admin
            assert (detail.status_code, edit.status_code) == (200, 200), repo
        else:
            assert (detail.status_code, edit.status_code) == (200, 403), repo


def test_lists_and_counts_never_show_private_repositories(world):
    client = api_client_for(world, "outsider")
    body = client.get("/api/v1/repositories/").json()
    names = {r["full_name"] for r in body["results"]}
    assert names == {"acme/pub-app", "alice/pub-tool"}
    assert body["count"] == 2
    assert client.get("/api/v1/repositories/?q=priv").json()["count"] == 0
    assert client.get("/api/v1/repositories/acme/").json()["count"] == 1
    owner = api_client_for(world, "org owner").get("/api/v1/repositories/acme/").json()
    assert owner["count"] == 2


def test_search_ranks_names_before_descriptions_and_finds_partial_names(world):
    acme = Namespace.objects.get(name="acme")
    Repository.objects.create(namespace=acme, name="postgres-tools", visibility=Visibility.PUBLIC, short_description="")
    Repository.objects.create(
        namespace=acme, name="misc", visibility=Visibility.PUBLIC, short_description="helpers for postgres"
    )
    client = APIClient()
    results = [r["full_name"] for r in client.get("/api/v1/repositories/?q=postgres").json()["results"]]
    assert results == ["acme/postgres-tools", "acme/misc"]
    partial = [r["full_name"] for r in client.get("/api/v1/repositories/?q=gres-to").json()["results"]]
    assert partial == ["acme/postgres-tools"]


def test_ordering_and_filters(world):
    Repository.objects.filter(full_name="acme/pub-app").update(pull_count=10, star_count=1)
    client = api_client_for(world, "org owner")
    by_pulls = [r["full_name"] for r in client.get("/api/v1/repositories/?ordering=pulls").json()["results"]]
    assert by_pulls[0] == "acme/pub-app"
    private = client.get("/api/v1/repositories/?visibility=private").json()["results"]
    assert {r["full_name"] for r in private} == {"acme/priv-app"}


def _seed_tags(repository: Repository, count: int) -> None:
    manifests = Manifest.objects.bulk_create(
        Manifest(
            repository=repository,
            digest=f"sha256:{i:064x}",
            media_type="application/vnd.oci.image.manifest.v1+json",
            os="linux",
            architecture="amd64",
            total_size=1000 + i,
        )
        for i in range(count)
    )
    Tag.objects.bulk_create(Tag(repository=repository, name=f"1.{i}", manifest=m) for i, m in enumerate(manifests))


def test_list_endpoints_run_a_fixed_number_of_queries(world):
    client = api_client_for(world, "org owner")
    repository = world.repos["acme/priv-app"]
    _seed_tags(repository, 40)
    counts = {}
    for size in (5, 40):
        with CaptureQueriesContext(connection) as tags, CaptureQueriesContext(connection):
            assert client.get(f"/api/v1/repositories/acme/priv-app/tags/?page_size={size}").status_code == 200
        with CaptureQueriesContext(connection) as repos:
            assert client.get(f"/api/v1/repositories/?page_size={size}").status_code == 200
        counts[size] = (len(tags), len(repos))
    # tags: repository, policy (membership), names, count, rows, platforms;
    # repositories: the rules' patterns, the page's keys with the total (the policy's subqueries
    # and the ranking in one narrow statement), the page's rows by key.
    assert counts[5] == counts[40] == (5, 3)  # pinned (issue 17, item 5): a constant extra query fails too


def test_tags_hide_signatures_and_sort_by_version(world):
    client = api_client_for(world, "org owner")
    repository = world.repos["acme/priv-app"]
    _seed_tags(repository, 12)
    manifest = Manifest.objects.filter(repository=repository).first()
    Tag.objects.create(repository=repository, name="sha256-" + "a" * 64 + ".sig", manifest=manifest, artifact="sig")
    names = [
        t["name"] for t in client.get("/api/v1/repositories/acme/priv-app/tags/?ordering=version").json()["results"]
    ]
    assert names[:3] == ["1.11", "1.10", "1.9"]
    assert not any(n.endswith(".sig") for n in names)
    with_artifacts = client.get("/api/v1/repositories/acme/priv-app/tags/?artifacts=true&page_size=100").json()
    assert with_artifacts["count"] == 13


def test_permissions_can_be_granted_and_revoked_by_admins_only(world):
    owner = api_client_for(world, "org owner")
    created = owner.post(
        "/api/v1/repositories/acme/pub-app/permissions/", {"team": "readers", "level": "write"}, format="json"
    )
    assert created.status_code == 201
    assert created.json()["level"] == "write"
    writer = api_client_for(world, "team write")
    assert writer.get("/api/v1/repositories/acme/priv-app/permissions/").status_code == 403
    bad = owner.post(
        "/api/v1/repositories/acme/pub-app/permissions/", {"team": "x", "user": "y", "level": "read"}, format="json"
    )
    assert bad.status_code == 400
    assert owner.delete(f"/api/v1/repositories/acme/pub-app/permissions/{created.json()['id']}/").status_code == 204


def test_star_and_pulls(world):
    reader = api_client_for(world, "team read")
    starred = reader.post("/api/v1/repositories/acme/priv-app/star/")
    assert starred.json()["star_count"] == 1
    assert starred.json()["is_starred"] is True
    mine = reader.get("/api/v1/repositories/?is_starred=true").json()
    assert [r["full_name"] for r in mine["results"]] == ["acme/priv-app"]
    assert reader.delete("/api/v1/repositories/acme/priv-app/star/").json()["star_count"] == 0
    DailyPulls.objects.create(repository=world.repos["acme/priv-app"], day="2026-11-27", count=4)
    assert reader.get("/api/v1/repositories/acme/priv-app/pulls/?days=366").json() == [
        {"day": "2026-11-27", "count": 4}
    ]
    assert reader.get("/api/v1/repositories/acme/priv-app/pulls/?days=many").status_code == 400


def test_read_only_token_changes_nothing(world):
    client = api_client_for(world, "read-only token")
    assert client.get("/api/v1/repositories/alice/priv-tool/").status_code == 200
    refused = client.patch("/api/v1/repositories/alice/priv-tool/", {"description": "x"}, format="json")
    assert refused.status_code == 403
    assert "capped by token scope read" in refused.json()["detail"]  # the policy's reason reaches the caller
    assert client.post("/api/v1/repositories/alice/priv-tool/star/").status_code == 403
    assert client.post("/api/v1/repositories/alice/", {"name": "new"}, format="json").status_code == 404
    assert client.post("/api/v1/orgs/", {"name": "tokenorg"}, format="json").status_code == 403


def test_create_repository_validates(world):
    client = api_client_for(world, "org owner")
    bad = client.post("/api/v1/repositories/acme/", {"name": "Bad Name!"}, format="json")
    assert bad.status_code == 400
    assert "name" in bad.json()
    long = client.post("/api/v1/repositories/acme/", {"name": "ok", "description": "x" * 101}, format="json")
    assert long.status_code == 400
    assert "description" in long.json()
    made = client.post(
        "/api/v1/repositories/acme/",
        {"name": "team/new-app", "is_private": False, "full_description": "# Hi"},
        format="json",
    )
    assert made.status_code == 201
    assert made.json()["full_name"] == "acme/team/new-app"
    assert made.json()["is_private"] is False
    assert client.get("/api/v1/repositories/acme/team/new-app/").json()["full_description"] == "# Hi"
    assert client.post("/api/v1/repositories/acme/", {"name": "team/new-app"}, format="json").status_code == 400


def test_a_names_bonus_is_its_trigram_similarity_for_whole_words_and_shorter_names_come_first(world):
    """The bonus is computed from the name's stored trigram count (migration 0021); for a query
    that is whole words of the name it equals pg_trgm's similarity(), which it replaced."""
    from django.db.models import FloatField
    from django.db.models.expressions import RawSQL

    from repositories.search import search_repositories

    acme = Namespace.objects.get(name="acme")
    for name in ["nginx", "nginx-proxy-extra", "my-nginx-sidecar-builder", "web/nginx.conf"]:
        Repository.objects.create(namespace=acme, name=name, visibility=Visibility.PUBLIC)
    results = [r["full_name"] for r in APIClient().get("/api/v1/repositories/?q=nginx").json()["results"]]
    assert results == ["acme/nginx", "acme/web/nginx.conf", "acme/nginx-proxy-extra", "acme/my-nginx-sidecar-builder"]
    for query in ["nginx", "nginx-proxy", "sidecar-builder", "acme/nginx"]:
        expected = RawSQL(
            "ts_rank(search_vector, plainto_tsquery('simple'::regconfig, %s)) + similarity(full_name, %s)",
            (query, query),
            output_field=FloatField(),
        )
        ranks = list(
            search_repositories(Repository.objects.all(), query)
            .filter(full_name__contains=query)
            .annotate(expected=expected)
            .values_list("full_name", "rank", "expected")
        )
        assert ranks and all(abs(rank - want) < 1e-6 for _, rank, want in ranks), ranks


def test_docker_search_shape(world):
    body = APIClient().get("/v1/search?q=app&n=1").json()
    assert set(body) == {"num_pages", "num_results", "page", "page_size", "query", "results"}
    assert body["num_results"] == 1  # acme/pub-app; the private ones are invisible
    assert body["results"] == [
        {"name": "acme/pub-app", "description": "", "star_count": 0, "is_official": False, "is_automated": False}
    ]
    assert APIClient().get("/v1/search?q=app&n=lots").status_code == 400
    # Found by schemathesis: a page far past the end overflowed SQL's OFFSET (a 500).
    beyond = APIClient().get("/v1/search?q=app&page=119845454540982304768")
    assert beyond.status_code == 200
    assert beyond.json()["results"] == []


def test_level_names_in_grants_match_the_policy_levels():
    from repositories.api.serializers import LEVEL_NAMES

    assert LEVEL_NAMES == {"read": Level.READ, "write": Level.WRITE, "admin": Level.ADMIN}


def test_basic_password_only_creates_tokens(world):
    from tests.world import PASSWORD

    client = APIClient()
    client.credentials(
        HTTP_AUTHORIZATION="Basic " + __import__("base64").b64encode(f"olga:{PASSWORD}".encode()).decode()
    )
    assert client.get("/api/v1/repositories/").status_code == 403
    created = client.post("/api/v1/access-tokens/", {"name": "ci", "scope": "write"}, format="json")
    assert created.status_code == 201
    secret = created.json()["token"]
    assert secret.startswith("dy_pat_")
    token_client = APIClient()
    token_client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    listed = token_client.get("/api/v1/access-tokens/").json()["results"]
    assert "token" not in listed[0]
    basic_token = APIClient()
    basic_token.credentials(
        HTTP_AUTHORIZATION="Basic " + __import__("base64").b64encode(f"olga:{secret}".encode()).decode()
    )
    assert basic_token.get("/api/v1/repositories/acme/priv-app/").status_code == 200
    assert token_client.delete(f"/api/v1/access-tokens/{created.json()['id']}/").status_code == 204
    assert token_client.get("/api/v1/repositories/").status_code == 401


def test_token_cannot_mint_a_wider_token(world):
    client = api_client_for(world, "read-only token")
    assert client.post("/api/v1/access-tokens/", {"name": "wider", "scope": "delete"}, format="json").status_code == 403


def test_token_limits_bind_the_api(world):
    alice = world.actors["personal owner"].user
    token, secret = access_token_create(user=alice, name="only-tool", scope="delete")
    token.limits = ["alice/pub-tool"]
    token.save()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert client.patch("/api/v1/repositories/alice/pub-tool/", {"description": "ok"}, format="json").status_code == 200
    assert client.get("/api/v1/repositories/alice/priv-tool/").status_code == 404
    names = {r["full_name"] for r in client.get("/api/v1/repositories/?namespace=alice").json()["results"]}
    assert names == {"alice/pub-tool"}


def test_api_is_throttled_per_address_and_per_user(world, monkeypatch):
    from rest_framework.settings import api_settings

    monkeypatch.setitem(api_settings.DEFAULT_THROTTLE_RATES, "anon", "2/min")
    monkeypatch.setitem(api_settings.DEFAULT_THROTTLE_RATES, "user", "3/min")
    anonymous = APIClient()
    assert [anonymous.get("/api/v1/repositories/").status_code for _ in range(3)] == [200, 200, 429]
    user = api_client_for(world, "org owner")
    assert [user.get("/api/v1/repositories/").status_code for _ in range(4)] == [200, 200, 200, 429]


def test_nul_bytes_in_parameters_are_not_a_server_error(world):
    # Found by schemathesis: PostgreSQL refuses NUL in a string literal.
    client = APIClient()
    assert client.get("/api/v1/repositories/?architecture=a%00b&q=x%00y&namespace=%00").status_code == 200
    assert client.get("/v1/search?q=%00").status_code == 200


def test_pages_come_with_the_total_from_one_query(world):
    client = api_client_for(world, "org owner")
    first = client.get("/api/v1/repositories/?page_size=1&ordering=name").json()
    assert first["count"] == 3  # alice's private repository is not hers to see
    assert first["previous"] is None and "page=2" in first["next"]
    last = client.get("/api/v1/repositories/?page_size=1&ordering=name&page=3").json()
    assert last["next"] is None and [r["full_name"] for r in last["results"]] == ["alice/pub-tool"]
    assert client.get("/api/v1/repositories/?page_size=1&page=4").status_code == 404
    assert client.get("/api/v1/repositories/?page=zero").status_code == 404
