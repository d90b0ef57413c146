"""Pages for creating repositories and organizations and for managing an organization."""

import pytest
from django.test import Client

from accounts.models import Membership, Robot, Team
from accounts.services import membership_set, organization_create
from repositories.models import AccessRule, Repository
from webhooks.models import Webhook

pytestmark = pytest.mark.django_db


@pytest.fixture
def acme(alice, bob):
    org = organization_create(name="acme", owner=alice)
    membership_set(organization=org, user=bob, role=Membership.Role.MEMBER, actor=alice)
    return org


def test_create_a_repository_with_validation(client, alice, acme):
    client.force_login(alice)
    assert client.get("/new/").status_code == 200
    bad = client.post("/new/", {"namespace": "acme", "name": "Bad Name", "visibility": "private"})
    assert bad.status_code == 400
    assert "lowercase" in bad.content.decode().lower()
    made = client.post("/new/", {"namespace": "acme", "name": "api", "visibility": "private", "short_description": "x"})
    assert made.status_code == 302 and made["Location"] == "/r/acme/api/"
    assert Repository.objects.get(full_name="acme/api").visibility == "private"


def test_a_member_without_write_cannot_create_in_the_organization(client, bob, acme):
    client.force_login(bob)
    refused = client.post("/new/", {"namespace": "acme", "name": "sneaky", "visibility": "public"})
    assert refused.status_code == 400
    assert not Repository.objects.filter(full_name="acme/sneaky").exists()


def test_owners_manage_members_teams_rules_robots_and_webhooks(client, alice, bob, charlie, acme):
    client.force_login(alice)
    url = "/u/acme/settings/"
    assert client.get(url).status_code == 200
    assert client.post(url, {"action": "member", "username": "charlie", "role": "member"}).status_code == 302
    assert client.post(url, {"action": "team", "name": "devs", "description": ""}).status_code == 302
    assert client.post(url, {"action": "team_member", "team": "devs", "username": "bob"}).status_code == 302
    assert (
        client.post(url, {"action": "rule", "holder": "devs", "pattern": "ci-*", "level": "write"}).status_code == 302
    )
    robot = client.post(url, {"action": "robot", "name": "deployer", "description": ""})
    assert robot.status_code == 200 and b"dy_robot_" in robot.content  # the secret, once, on this page
    webhook = client.post(url, {"action": "webhook", "name": "chat", "url": "https://chat.example.org/hook"})
    assert webhook.status_code == 200
    assert Membership.objects.filter(organization=acme, user=charlie).exists()
    assert list(Team.objects.get(name="devs").members.values_list("username", flat=True)) == ["bob"]
    assert AccessRule.objects.get(organization=acme).pattern == "ci-*"
    assert Robot.objects.filter(organization=acme, name="deployer").exists()
    assert Webhook.objects.filter(organization=acme).count() == 1
    assert b"dy_robot_" not in client.get(url).content  # never again
    unknown = client.post(url, {"action": "member", "username": "nobody", "role": "member"})
    assert unknown.status_code == 400 and b"No such user." in unknown.content


def test_members_may_not_manage_and_outsiders_do_not_see(client, bob, charlie, acme):
    client.force_login(bob)
    assert client.get("/u/acme/settings/").status_code == 403
    client.force_login(charlie)
    assert client.get("/u/acme/settings/").status_code == 404
    assert b"Members" not in client.get("/u/acme/").content


def test_forms_need_the_csrf_token(alice, acme):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.post("/u/acme/settings/", {"action": "team", "name": "x"}).status_code == 403
    assert not Team.objects.filter(name="x").exists()


def test_create_an_organization(client, charlie):
    client.force_login(charlie)
    made = client.post("/orgs/new/", {"name": "newco", "display_name": "New Co"})
    assert made.status_code == 302
    taken = client.post("/orgs/new/", {"name": "charlie"})
    assert taken.status_code == 400 and b"taken" in taken.content


def test_404_and_403_pages_are_the_sites_own(client, bob, acme):
    client.force_login(bob)
    missing = client.get("/r/nobody/nothing/")
    assert missing.status_code == 404 and b"Dockyard" in missing.content


def test_a_users_page_shows_activity_only_on_repositories_the_visitor_sees(client, alice, bob):
    from accounts.models import Namespace, Visibility
    from repositories.services import repository_create, repository_update

    ns = Namespace.objects.get(name="alice")
    public = repository_create(namespace=ns, name="open", actor=alice, actor_name="alice", visibility=Visibility.PUBLIC)
    private = repository_create(namespace=ns, name="closed", actor=alice, actor_name="alice")
    repository_update(repository=public, actor=alice, short_description="hello")
    repository_update(repository=private, actor=alice, short_description="hidden")
    client.force_login(bob)
    page = client.get("/u/alice/").content.decode()
    assert "alice/open" in page and "alice/closed" not in page


@pytest.mark.parametrize(
    "url",
    ["/accounts/email/", "/accounts/password/change/", "/accounts/2fa/", "/accounts/reauthenticate/"],
)
def test_account_pages_render_in_the_sites_layout(client, alice, url):
    client.force_login(alice)
    response = client.get(url)
    assert response.status_code == 200
    assert b'class="topbar"' in response.content  # the site's header, not allauth's bare layout


@pytest.mark.parametrize("url", ["/accounts/login/", "/accounts/signup/", "/accounts/password/reset/"])
def test_anonymous_account_pages_render_in_the_sites_layout(client, db, url):
    response = client.get(url)
    assert response.status_code == 200
    assert b'class="topbar"' in response.content
