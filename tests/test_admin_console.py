"""The admin as the access-control console."""

import base64

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import PersonalAccessToken, User
from accounts.services import access_token_create
from audit.models import AuditEvent
from repositories.models import Manifest, Repository, Tag
from tests.world import EXPECTED, PASSWORD, REPOS, actions_for, build_world

pytestmark = pytest.mark.django_db
ADMIN_ACTORS = [a for a in EXPECTED if a not in ("anonymous", "system")]


@pytest.fixture
def world():
    return build_world()


@pytest.fixture
def staff_client(client, world):
    client.force_login(world.actors["staff"].user)
    return client


def principal_for(world, actor_name: str) -> str:
    actor = world.actors[actor_name]
    if actor.token is not None:
        return f"token:{actor.token.prefix}"
    if actor.robot is not None:
        return actor.robot.username
    return actor.user.username


@pytest.mark.parametrize("actor_name", ADMIN_ACTORS)
def test_effective_access_agrees_with_the_policy_table(staff_client, world, actor_name):
    for repo, code in zip(REPOS, EXPECTED[actor_name], strict=True):
        response = staff_client.get(
            "/admin/effective-access/", {"principal": principal_for(world, actor_name), "target": repo}
        )
        assert response.status_code == 200
        allowed = [name for name, ok in response.context["actions"] if ok]
        assert allowed == actions_for(code), (actor_name, repo)
        assert response.context["decision"].reason


def test_who_can_reach_a_repository_and_through_what(staff_client, world):
    response = staff_client.get("/admin/effective-access/", {"principal": "olga", "target": "acme/priv-app"})
    rows = {name: (level, why) for _kind, name, level, why in response.context["principals"]}
    assert rows == {
        "olga": ("admin", "owner of organization acme"),
        "sam": ("admin", "staff"),
        "frank": ("admin", "team admins grant (admin)"),
        "erin": ("write", "team writers grant (write)"),
        "gina": ("write", "team builders rule priv-* (write)"),
        "acme+deployer": ("write", "robot grant (write)"),
        "dan": ("read", "team readers grant (read)"),
    }


def test_a_namespace_shows_each_repository(staff_client, world):
    response = staff_client.get("/admin/effective-access/", {"principal": "gina", "target": "acme"})
    assert response.context["namespace_rows"] == [
        ("acme/priv-app", "write", "team builders rule priv-* (write)"),
        ("acme/pub-app", "read", "public repository"),
    ]


def test_bad_input_gets_form_errors(staff_client, world):
    response = staff_client.get("/admin/effective-access/", {"principal": "nobody", "target": "nowhere/x"})
    assert response.status_code == 200
    assert response.context["form"].errors == {"principal": ["No such user."], "target": ["No such namespace."]}


ADMIN_PAGES = [
    "/admin/",
    "/admin/effective-access/",
    "/admin/accounts/user/",
    "/admin/accounts/organization/",
    "/admin/accounts/team/",
    "/admin/accounts/robot/",
    "/admin/accounts/personalaccesstoken/",
    "/admin/accounts/refreshtoken/",
    "/admin/accounts/membership/",
    "/admin/repositories/repository/",
    "/admin/repositories/tag/",
    "/admin/repositories/accessrule/",
    "/admin/repositories/repositorygrant/",
    "/admin/audit/auditevent/",
    "/admin/repositories/registryevent/",
    "/admin/repositories/syncrun/",
]


@pytest.mark.parametrize("page", ADMIN_PAGES)
def test_console_pages_render_for_staff_and_refuse_others(client, world, page):
    client.force_login(world.actors["org owner"].user)  # an organization owner is not staff
    refused = client.get(page)
    assert refused.status_code == 302 and "/admin/login/" in refused["Location"]
    client.force_login(world.actors["staff"].user)
    assert client.get(page).status_code == 200


def test_change_forms_render(staff_client, world):
    repository = world.repos["acme/priv-app"]
    team = world.actors["team write"].user.teams.first()
    rule = team.organization.access_rules.first()
    for url in (
        f"/admin/repositories/repository/{repository.pk}/change/",
        f"/admin/accounts/team/{team.pk}/change/",
        f"/admin/repositories/accessrule/{rule.pk}/change/",
        f"/admin/accounts/organization/{team.organization.pk}/change/",
        "/admin/accounts/robot/add/",
    ):
        assert staff_client.get(url).status_code == 200, url
    preview = staff_client.get(f"/admin/repositories/accessrule/{rule.pk}/change/")
    assert b"acme/priv-app" in preview.content


def token_status(client, settings, username: str, secret: str) -> int:
    auth = "Basic " + base64.b64encode(f"{username}:{secret}".encode()).decode()
    return client.get(
        "/auth/token",
        {"service": settings.REGISTRY_SERVICE, "scope": "repository:alice/priv-tool:pull"},
        HTTP_AUTHORIZATION=auth,
    ).status_code


def test_revocation_and_deactivation_take_effect_on_the_next_token_request(staff_client, world, settings):
    from django.test import Client

    registry_client = Client()
    token, secret = access_token_create(user=world.actors["personal owner"].user, name="soon revoked", scope="read")
    assert token_status(registry_client, settings, "alice", secret) == 200
    staff_client.post("/admin/accounts/personalaccesstoken/", {"action": "revoke", "_selected_action": [token.pk]})
    assert token_status(registry_client, settings, "alice", secret) == 401

    assert token_status(registry_client, settings, "alice", PASSWORD) == 200  # now remembered in the cache
    alice = User.objects.get(username="alice")
    staff_client.post("/admin/accounts/user/", {"action": "deactivate", "_selected_action": [alice.pk]})
    assert token_status(registry_client, settings, "alice", PASSWORD) == 401
    assert AuditEvent.objects.filter(action="admin.user.change", target_name="alice").exists()


def test_admin_changes_are_audited_with_before_and_after(staff_client, world):
    repository = world.repos["acme/priv-app"]
    response = staff_client.post(
        f"/admin/repositories/repository/{repository.pk}/change/",
        {
            "namespace": repository.namespace_id,
            "name": repository.name,
            "visibility": "public",
            "short_description": "now public",
            "full_description": "",
            "grants-TOTAL_FORMS": "0",
            "grants-INITIAL_FORMS": "0",
            "grants-MIN_NUM_FORMS": "0",
            "grants-MAX_NUM_FORMS": "1000",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    event = AuditEvent.objects.get(action="admin.repository.change")
    assert event.actor_name == "sam"
    assert event.data["before"] == {"short_description": "", "visibility": "private"}
    assert event.data["after"] == {"short_description": "now public", "visibility": "public"}
    assert event.namespace == "acme"


def test_secrets_never_reach_the_audit_log(staff_client, world):
    response = staff_client.post(
        "/admin/accounts/robot/add/",
        {
            "organization": world.actors["robot"].robot.organization_id,
            "name": "builder",
            "description": "",
            "is_active": "on",
        },
        follow=True,
    )
    assert response.status_code == 200
    shown = [str(m) for m in response.context["messages"]]
    assert any("dy_robot_" in m and "shown once" in m for m in shown)
    event = AuditEvent.objects.get(action="admin.robot.add")
    assert "secret_hash" not in event.data["after"] and "secret_prefix" not in event.data["after"]
    assert "dy_robot_" not in str(event.data)


def test_the_audit_log_cannot_be_edited_or_deleted(staff_client, world):
    event = AuditEvent.objects.first()
    assert staff_client.post(f"/admin/audit/auditevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    assert AuditEvent.objects.filter(pk=event.pk).exists()
    page = staff_client.get(f"/admin/audit/auditevent/{event.pk}/change/")
    assert page.status_code == 200 and b'name="_save"' not in page.content


def test_token_secrets_are_never_shown(staff_client, world):
    token = PersonalAccessToken.objects.first()
    page = staff_client.get(f"/admin/accounts/personalaccesstoken/{token.pk}/change/")
    assert token.token_hash.encode() not in page.content
    assert staff_client.get("/admin/accounts/personalaccesstoken/add/").status_code == 403


# Pinned (issue 17, item 5): session, user, count, page, and what each list shows beside its rows.
ADMIN_LIST_QUERIES = {
    "/admin/repositories/repository/": 7,
    "/admin/repositories/tag/": 6,
    "/admin/accounts/personalaccesstoken/": 7,
}


@pytest.mark.parametrize("url", list(ADMIN_LIST_QUERIES))
def test_lists_run_a_fixed_number_of_queries(staff_client, world, url):
    def grow(n: int) -> None:
        namespace = world.repos["acme/pub-app"].namespace
        start = Repository.objects.count()
        for i in range(n):
            repo = Repository.objects.create(namespace=namespace, name=f"bulk-{start + i}")
            manifest = Manifest.objects.create(repository=repo, digest=f"sha256:{start + i:064x}", media_type="x")
            Tag.objects.create(repository=repo, name="1", manifest=manifest)
            access_token_create(user=world.actors["outsider"].user, name=f"t{start + i}", scope="read")

    grow(5)
    with CaptureQueriesContext(connection) as few:
        assert staff_client.get(url).status_code == 200
    grow(20)
    with CaptureQueriesContext(connection) as many:
        assert staff_client.get(url).status_code == 200
    assert len(many) == len(few), [q["sql"][:120] for q in many.captured_queries]
    assert len(few) == ADMIN_LIST_QUERIES[url], [q["sql"][:120] for q in few.captured_queries]


def test_stored_registry_events_are_read_only(staff_client, world):
    from repositories.models import RegistryEvent

    event = RegistryEvent.objects.create(event_id="x1", action="push")
    assert (
        staff_client.post(f"/admin/repositories/registryevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    )
    assert RegistryEvent.objects.filter(pk=event.pk).exists()


def test_the_repository_search_has_its_trigram_index(db):
    """The admin's name search is `full_name__icontains`, run by PostgreSQL as UPPER(full_name)
    LIKE …: a trigram index on that expression serves it at 100,000 repositories (bench)."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only")
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'repository_full_name_upper_trgm'")
        row = cursor.fetchone()
    assert row is not None and "gin_trgm_ops" in row[0] and "upper" in row[0].lower()


def test_the_admin_home_names_each_section_once(staff_client, world):
    """Two sections were both called Accounts (ours and allauth's e-mail addresses; a README-only
    newcomer, helper-12): every app's section has a name of its own."""
    import re

    page = staff_client.get("/admin/").content.decode()
    names = re.findall(r'<caption>\s*<a [^>]*class="section"[^>]*>([^<]+)</a>', page)
    assert "People and organizations" in names and len(names) == len(set(names)), names
