"""Pages for creating repositories and organizations and for managing an organization."""

import pytest
from django.test import Client

from accounts.models import Membership, Organization, Robot, Team
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
    """One small view per action; each answers with its section, where the result is shown."""
    client.force_login(alice)
    url = "/u/acme/settings/"
    assert client.get(url).status_code == 200
    added = client.post(url + "members/", {"member-username": "charlie", "member-role": "member"})
    assert (added.status_code, added["Location"]) == (302, url + "#members")
    assert "charlie is now a member" in client.get(url).content.decode()  # the result, in its section
    assert client.post(url + "teams/", {"team-name": "devs", "team-description": ""})["Location"] == url + "#teams"
    assert (
        client.post(url + "teams/members/", {"team_member-team": "devs", "team_member-username": "bob"}).status_code
        == 302
    )
    assert (
        client.post(url + "rules/", {"rule-holder": "devs", "rule-pattern": "ci-*", "rule-level": "write"}).status_code
        == 302
    )
    robot = client.post(url + "robots/", {"robot-name": "deployer", "robot-description": ""})
    page = robot.content.decode()
    assert robot.status_code == 200 and "dy_robot_" in page  # the secret, once, in a dialog
    assert "<dialog" in page and "kubectl create secret docker-registry" in page
    webhook = client.post(url + "webhooks/", {"webhook-name": "chat", "webhook-url": "https://chat.example.org/hook"})
    assert webhook.status_code == 200 and "whsec_" in webhook.content.decode()
    assert Membership.objects.filter(organization=acme, user=charlie).exists()
    assert list(Team.objects.get(name="devs").members.values_list("username", flat=True)) == ["bob"]
    assert AccessRule.objects.get(organization=acme).pattern == "ci-*"
    assert Robot.objects.filter(organization=acme, name="deployer").exists()
    assert Webhook.objects.filter(organization=acme).count() == 1
    assert b"dy_robot_" not in client.get(url).content  # never again
    unknown = client.post(url + "members/", {"member-username": "nobody", "member-role": "member"})
    assert unknown.status_code == 400 and b"No such user." in unknown.content
    # Owners delete teams, and set the default visibility of new repositories.
    assert client.post(url + "teams/delete/", {"team": "devs"}).status_code == 302
    assert not Team.objects.filter(name="devs").exists()
    saved = client.post(
        url + "profile/",
        {
            "settings-display_name": "Acme",
            "settings-description": "",
            "settings-email": "",
            "settings-default_visibility": "public",
        },
    )
    assert saved.status_code == 302
    acme.namespace.refresh_from_db()
    assert acme.namespace.default_visibility == "public"
    # The last owner cannot leave: the answer says so in the members section.
    refused = client.post(url + "members/remove/", {"username": "alice"}, follow=True)
    assert "needs at least one owner" in refused.content.decode()


def test_an_owner_deletes_an_empty_organization_after_typing_its_name(client, alice, acme):
    client.force_login(alice)
    url = "/u/acme/settings/"
    wrong = client.post(url + "delete/", {"delete-confirm": "acme-typo"})
    assert wrong.status_code == 400 and Organization.objects.filter(name="acme").exists()
    done = client.post(url + "delete/", {"delete-confirm": "acme"})
    assert done.status_code == 302 and not Organization.objects.filter(name="acme").exists()


def test_members_may_not_manage_and_outsiders_do_not_see(client, bob, charlie, acme):
    client.force_login(bob)
    assert client.get("/u/acme/settings/").status_code == 403
    client.force_login(charlie)
    assert client.get("/u/acme/settings/").status_code == 404
    assert b"Members" not in client.get("/u/acme/").content


def test_forms_need_the_csrf_token(alice, acme):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.post("/u/acme/settings/teams/", {"team-name": "x"}).status_code == 403
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
