"""LDAP sign-in against a real OpenLDAP (Debian's slapd, tests/ldap_server.py): StartTLS with a
CA made here, people and groups; groups become teams, and the directory decides who stays in."""

import pytest

from accounts import services
from accounts.directory import group_mapping_create
from accounts.ldap import directory_check
from accounts.ldap_config import ldap_settings
from accounts.models import Membership, Namespace, TeamMembership, User
from audit.models import AuditEvent
from repositories.models import Repository, RepositoryGrant
from tests.ldap_server import GROUPS, Slapd
from tests.test_token_endpoint import basic, claims, get_token

pytestmark = pytest.mark.django_db(transaction=True)
DANA_PASSWORD = "dana-directory-password"


@pytest.fixture(scope="module")
def slapd():
    server = Slapd().start()
    server.dana = server.add_person("dana", DANA_PASSWORD, mail="dana@corp.example", name="Dana Scully")
    server.erin = server.add_person("erin", "erin-directory-password")
    server.developers = server.add_group("developers", [server.dana])
    server.owners = server.add_group("platform-owners", [server.erin])
    yield server
    server.stop()


@pytest.fixture
def ldap_on(settings, slapd):
    settings.LDAP_SERVER_URI = slapd.uri
    for name, value in ldap_settings(slapd.env()).items():
        setattr(settings, name, value)
    settings.AUTHENTICATION_BACKENDS = [*settings.AUTHENTICATION_BACKENDS, "accounts.ldap.DirectoryBackend"]
    return slapd


@pytest.fixture
def acme(ldap_on, alice):
    """An organization whose developers team is the directory's developers group, and whose
    platform-owners group owns it; a private repository the team may push to."""
    org = services.organization_create(name="acme", owner=alice)
    team = services.team_create(organization=org, name="developers", actor=alice)
    group_mapping_create(actor=alice, source="ldap", group=ldap_on.developers, organization=org, team=team, owner=False)
    group_mapping_create(
        actor=alice, source="ldap", group=ldap_on.owners.upper(), organization=org, team=None, owner=True
    )
    repo = Repository.objects.create(namespace=Namespace.objects.get(name="acme"), name="api")
    RepositoryGrant.objects.create(repository=repo, team=team, level=20)
    return org


def sign_in(client, username: str, password: str):
    return client.post("/accounts/login/", {"login": username, "password": password})


def test_a_directory_person_signs_in_and_gets_an_account_a_namespace_and_teams(client, acme):
    response = sign_in(client, "dana", DANA_PASSWORD)
    assert response.status_code == 302, response.content[:500]
    dana = User.objects.get(username="dana")
    assert (dana.directory, dana.email, dana.full_name) == ("ldap", "dana@corp.example", "Dana Scully")
    assert not dana.has_usable_password()
    assert Namespace.objects.filter(name="dana", user=dana).exists()
    assert TeamMembership.objects.filter(user=dana, team__name="developers").exists()
    assert Membership.objects.get(user=dana, organization=acme).managed
    # erin's group owns the organization (the DN was mapped in capitals: DNs compare without case)
    client.logout()
    assert sign_in(client, "erin", "erin-directory-password").status_code == 302
    assert Membership.objects.get(user__username="erin", organization=acme).role == "owner"
    assert AuditEvent.objects.filter(action="team.member_add", actor_name="ldap groups").exists()


def test_a_wrong_password_or_an_unknown_person_gets_no_account(client, acme):
    assert sign_in(client, "dana", "not-it").status_code == 200
    assert sign_in(client, "nobody", "whatever").status_code == 200
    assert not User.objects.filter(username__in=["dana", "nobody"]).exists()


def test_a_local_account_of_the_same_name_is_never_taken_over(client, acme, slapd):
    services.user_create(username="gina", email="gina@example.org", password="local-gina-password")
    slapd.add_person("gina", "directory-gina-password")
    assert sign_in(client, "gina", "directory-gina-password").status_code == 200
    gina = User.objects.get(username="gina")
    assert gina.directory == "" and gina.check_password("local-gina-password")
    assert sign_in(client, "gina", "local-gina-password").status_code == 302


def test_groups_are_followed_at_the_next_sign_in_and_the_policy_answers_with_them(client, acme, slapd):
    assert sign_in(client, "dana", DANA_PASSWORD).status_code == 302
    dana = User.objects.get(username="dana")
    _, token = services.access_token_create(user=dana, name="ci", scope="write")
    auth = basic("dana", token)
    assert claims(get_token(client, "repository:acme/api:pull,push", auth=auth))["access"][0]["actions"] == [
        "pull",
        "push",
    ]
    slapd.modify(slapd.developers, member=[slapd.erin])  # dana leaves the developers group
    try:
        client.logout()
        assert sign_in(client, "dana", DANA_PASSWORD).status_code == 302
        assert not TeamMembership.objects.filter(user=dana).exists()
        assert not Membership.objects.filter(user=dana, organization=acme).exists()  # it was the mapping's
        access = claims(get_token(client, "repository:acme/api:pull,push", auth=auth))["access"]
        assert [a for entry in access for a in entry["actions"]] == []
    finally:
        slapd.modify(slapd.developers, member=[slapd.dana])


def test_the_periodic_check_deactivates_disabled_and_deleted_people_and_their_tokens_stop(client, acme, slapd):
    frank = slapd.add_person("frank", "frank-directory-password")
    assert sign_in(client, "frank", "frank-directory-password").status_code == 302
    user = User.objects.get(username="frank")
    _, token = services.access_token_create(user=user, name="ci", scope="read")
    assert get_token(client, auth=basic("frank", token)).status_code == 200
    assert directory_check() == {"checked": 1, "deactivated": 0}
    slapd.modify(frank, employeeType="disabled")  # left out by LDAP_USER_FILTER
    assert directory_check() == {"checked": 1, "deactivated": 1}
    assert get_token(client, auth=basic("frank", token)).status_code == 401
    assert AuditEvent.objects.filter(action="user.deactivate", target_name="frank").exists()
    slapd.modify(frank, employeeType="staff")  # let in again: active again
    directory_check()
    assert User.objects.get(username="frank").is_active
    slapd.delete(frank)  # gone from the directory
    assert directory_check()["deactivated"] == 1
    assert get_token(client, auth=basic("frank", token)).status_code == 401


def test_an_unreachable_directory_deactivates_nobody(client, acme, settings):
    assert sign_in(client, "dana", DANA_PASSWORD).status_code == 302
    settings.AUTH_LDAP_SERVER_URI = "ldap://127.0.0.1:1"
    assert directory_check() == {"checked": 0, "deactivated": 0}
    assert User.objects.get(username="dana").is_active


def test_the_token_endpoint_tells_a_directory_person_to_use_a_token(client, acme):
    assert sign_in(client, "dana", DANA_PASSWORD).status_code == 302
    refused = get_token(client, "repository:acme/api:pull", auth=basic("dana", DANA_PASSWORD))
    assert refused.status_code == 401
    assert "personal access token" in refused.content.decode() and "LDAP" in refused.content.decode()


def test_without_starttls_the_directory_refuses_the_password(client, acme, settings):
    """The directory takes simple binds only over TLS (slapd: security simple_bind=128); a
    portal configured without StartTLS cannot sign anyone in, and says nothing secret."""
    settings.AUTH_LDAP_START_TLS = False
    assert sign_in(client, "dana", DANA_PASSWORD).status_code == 200
    assert not User.objects.filter(username="dana").exists()


def test_a_mapped_team_refuses_members_by_hand_and_says_why(client, acme, alice):
    from rest_framework.test import APIClient

    assert sign_in(client, "dana", DANA_PASSWORD).status_code == 302
    services.membership_set(
        organization=acme, user=services.user_create(username="hank", password="x" * 20), role="member", actor=alice
    )
    api = APIClient()
    api.force_authenticate(alice)
    added = api.post("/api/v1/orgs/acme/teams/developers/members/", {"username": "hank"}, format="json")
    assert added.status_code == 400 and "group mapping" in added.content.decode(), added.content
    removed = api.delete("/api/v1/orgs/acme/teams/developers/members/dana/")
    assert removed.status_code == 400 and GROUPS in removed.content.decode(), removed.content
    assert TeamMembership.objects.filter(user__username="dana", team__name="developers").exists()


def test_the_pages_say_what_a_company_account_and_a_mapped_team_are(client, acme, alice):
    assert sign_in(client, "dana", DANA_PASSWORD).status_code == 302
    tokens = client.get("/settings/tokens/").content.decode()
    assert "You sign in through your company (LDAP)" in tokens and "docker login -u dana" in tokens
    client.force_login(alice)
    page = client.get("/u/acme/settings/").content.decode()
    assert "Members come from" in page and GROUPS in page
    assert 'aria-label="Remove dana from developers"' not in page  # no remove button on a mapped team
    # A hand-made form posting it anyway gets the reason, not an error page.
    refused = client.post("/u/acme/settings/teams/members/remove/", {"team": "developers", "username": "dana"})
    assert refused.status_code in (200, 302)
    assert TeamMembership.objects.filter(user__username="dana", team__name="developers").exists()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LDAP_SERVER_URI": "ldap://ldap.example.com"}, "in the clear"),
        ({"LDAP_SERVER_URI": "ldaps://ldap.example.com", "LDAP_USER_FILTER": "(uid=%(usr)s)"}, "LDAP_USER_FILTER"),
        ({"LDAP_SERVER_URI": "ldaps://ldap.example.com", "LDAP_USER_FILTER": "uid=%(user)s"}, "LDAP_USER_FILTER"),
        ({"LDAP_SERVER_URI": "http://ldap.example.com"}, "ldaps://"),
    ],
)
def test_a_configuration_that_would_fail_at_sign_in_stops_the_start(tmp_path, env, message):
    import os
    import subprocess
    import sys

    from tests.services import ROOT

    clean = {k: v for k, v in os.environ.items() if not k.startswith("LDAP_")}
    run = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**clean, "DOCKYARD_DATA_DIR": str(tmp_path), **env},
        capture_output=True,
        text=True,
    )
    assert run.returncode != 0 and message in run.stderr, run.stderr[-500:]


def test_an_odd_directory_entry_neither_stops_a_sign_in_nor_the_check_for_the_others(client, acme, slapd):
    odd = slapd.add_person("oddie", "oddie-directory-password", name="O" * 200, mail="not an address")
    zed = slapd.add_person("zed", "zed-directory-password")
    try:
        assert sign_in(client, "oddie", "oddie-directory-password").status_code == 302
        oddie = User.objects.get(username="oddie")
        assert (len(oddie.full_name), oddie.email) == (150, "")
        client.logout()
        assert sign_in(client, "zed", "zed-directory-password").status_code == 302
        slapd.modify(zed, employeeType="disabled")
        result = directory_check()
        assert result["deactivated"] == 1 and not User.objects.get(username="zed").is_active, result
    finally:
        slapd.delete(odd)
        slapd.delete(zed)


def test_a_deactivated_persons_browser_session_ends(client, acme, slapd):
    gus = slapd.add_person("gus", "gus-directory-password")
    try:
        assert sign_in(client, "gus", "gus-directory-password").status_code == 302
        assert client.get("/settings/tokens/").status_code == 200
        slapd.modify(gus, employeeType="disabled")
        directory_check()
        assert client.get("/settings/tokens/").status_code == 302  # to the sign-in page
    finally:
        slapd.delete(gus)


def test_ldaps_signs_in_too_and_a_wrong_ca_signs_in_nobody(client, acme, settings, slapd, tmp_path):
    from tests.ldap_server import write_tls

    ldaps = {**slapd.env(), "LDAP_SERVER_URI": f"ldaps://127.0.0.1:{slapd.tls_port}", "LDAP_START_TLS": "false"}
    for name, value in ldap_settings(ldaps).items():
        setattr(settings, name, value)
    assert sign_in(client, "dana", DANA_PASSWORD).status_code == 302
    client.logout()
    other_ca, _, _ = write_tls(tmp_path)  # a CA that did not sign the directory's certificate
    for name, value in ldap_settings({**ldaps, "LDAP_CA_FILE": str(other_ca)}).items():
        setattr(settings, name, value)
    assert sign_in(client, "dana", DANA_PASSWORD).status_code == 200
