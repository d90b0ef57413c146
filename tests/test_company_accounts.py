"""The rules of company accounts that need no directory: how groups move memberships, usernames
from claims, and PASSWORD_SIGN_IN."""

import pytest
from rest_framework.test import APIClient

from accounts import services
from accounts.directory import group_mapping_create, groups_sync, username_available, username_from_claim
from accounts.models import Membership, TeamMembership
from accounts.oidc_config import socialaccount_providers
from tests.conftest import PASSWORD as CONFTEST_PASSWORD
from tests.test_token_endpoint import basic, get_token

pytestmark = pytest.mark.django_db
PASSWORD = "a-long-enough-password"


@pytest.fixture
def acme(alice):
    org = services.organization_create(name="acme", owner=alice)
    devs = services.team_create(organization=org, name="devs", actor=alice)
    group_mapping_create(actor=alice, source="oidc:corp", group="devs", organization=org, team=devs, owner=False)
    group_mapping_create(actor=alice, source="oidc:corp", group="admins", organization=org, team=None, owner=True)
    return org


def test_groups_give_and_take_mapped_teams_and_ownership_but_never_hand_made_memberships(acme, alice):
    zoe = services.user_create(username="zoe", password=PASSWORD)
    assert groups_sync(user=zoe, source="oidc:corp", groups=["devs", "admins"])
    assert Membership.objects.get(user=zoe, organization=acme).role == "owner"
    assert TeamMembership.objects.filter(user=zoe, team__name="devs").exists()
    groups_sync(user=zoe, source="oidc:corp", groups=["devs"])
    assert Membership.objects.get(user=zoe, organization=acme).role == "member"
    groups_sync(user=zoe, source="ldap", groups=[])  # another source's sync leaves these alone
    assert TeamMembership.objects.filter(user=zoe, team__name="devs").exists()
    groups_sync(user=zoe, source="oidc:corp", groups=[])
    assert not Membership.objects.filter(user=zoe, organization=acme).exists()
    # alice's membership was made by hand: a sync without her groups leaves it
    groups_sync(user=alice, source="oidc:corp", groups=[])
    assert Membership.objects.get(user=alice, organization=acme).role == "owner"
    # and nothing changes twice
    assert groups_sync(user=zoe, source="oidc:corp", groups=[]) == []


def test_the_last_owner_is_never_demoted_by_a_sync(acme, alice):
    zoe = services.user_create(username="zoe", password=PASSWORD)
    groups_sync(user=zoe, source="oidc:corp", groups=["admins"])
    services.membership_remove(organization=acme, user=alice, actor=alice)
    groups_sync(user=zoe, source="oidc:corp", groups=[])
    assert Membership.objects.get(user=zoe, organization=acme).role == "owner"


@pytest.mark.parametrize(
    ("claim", "name"),
    [("Dana.Scully@corp.example", "dana.scully"), ("Jürgen Groß", "jurgen-gro"), ("__", "user"), ("x", "user-x")],
)
def test_a_claim_becomes_a_namespace_name(claim, name):
    assert username_from_claim(claim) == name


def test_a_taken_name_gets_a_number(alice):
    assert username_available("alice") == "alice-2"
    assert username_available("new-person") == "new-person"


def test_a_mapping_needs_a_team_of_its_organization_or_ownership(acme, alice, bob):
    other = services.organization_create(name="other", owner=bob)
    stranger = services.team_create(organization=other, name="t", actor=bob)
    api = APIClient()
    api.force_authenticate(alice)
    assert (
        api.post("/api/v1/orgs/acme/group-mappings/", {"source": "ldap", "group": "cn=x"}, format="json").status_code
        == 400
    )
    refused = api.post(
        "/api/v1/orgs/acme/group-mappings/", {"source": "ldap", "group": "cn=x", "team": stranger.name}, format="json"
    )
    assert refused.status_code == 400
    wrong_source = api.post(
        "/api/v1/orgs/acme/group-mappings/", {"source": "saml", "group": "x", "owner": True}, format="json"
    )
    assert wrong_source.status_code == 400 and "oidc:" in wrong_source.content.decode()
    made = api.post(
        "/api/v1/orgs/acme/group-mappings/",
        {"source": "ldap", "group": "CN=Ops, OU=Groups,DC=Example,DC=Com", "team": "devs"},
        format="json",
    )
    assert made.status_code == 201 and made.json()["group"] == "cn=ops,ou=groups,dc=example,dc=com"


def test_with_password_sign_in_for_staff_only_others_are_refused_with_a_reason(client, settings, alice):
    settings.PASSWORD_SIGN_IN = "staff"
    refused = get_token(client, "repository:alice/x:pull", auth=basic("alice", CONFTEST_PASSWORD))
    assert refused.status_code == 401 and "staff only" in refused.content.decode()
    assert client.post("/accounts/login/", {"login": "alice", "password": CONFTEST_PASSWORD}).status_code == 200
    assert "_auth_user_id" not in client.session
    services.user_create(username="root", password=PASSWORD, is_staff=True)
    assert client.post("/accounts/login/", {"login": "root", "password": PASSWORD}).status_code == 302
    _, token = services.access_token_create(user=alice, name="ci", scope="read")
    assert get_token(client, "repository:alice/x:pull", auth=basic("alice", token)).status_code == 200


def test_deleting_a_mapping_takes_back_what_it_gave_and_only_that(acme, alice, bob):
    from accounts.directory import group_mapping_delete
    from accounts.models import GroupMapping

    zoe = services.user_create(username="zoe", password=PASSWORD)
    services.User.objects.filter(pk=zoe.pk).update(directory="oidc:corp")
    services.User.objects.filter(pk=bob.pk).update(directory="oidc:corp")
    groups_sync(user=zoe, source="oidc:corp", groups=["devs", "admins"])
    services.membership_set(organization=acme, user=bob, role="member", actor=alice)  # by hand
    groups_sync(user=bob, source="oidc:corp", groups=["admins"])  # a mapping makes bob an owner
    assert Membership.objects.get(user=bob, organization=acme).role == "owner"
    group_mapping_delete(actor=alice, mapping=GroupMapping.objects.get(group="admins"))
    assert Membership.objects.get(user=zoe, organization=acme).role == "member"
    assert Membership.objects.get(user=bob, organization=acme).role == "member"  # back to what he was
    group_mapping_delete(actor=alice, mapping=GroupMapping.objects.get(group="devs"))
    assert not TeamMembership.objects.filter(user=zoe).exists()
    assert not Membership.objects.filter(user=zoe, organization=acme).exists()  # the mapping's, gone
    assert Membership.objects.filter(user=bob, organization=acme).exists()  # made by hand: kept
    assert Membership.objects.get(user=alice, organization=acme).role == "owner"


def test_a_hand_made_membership_or_promotion_is_never_taken_back_by_a_sync(acme, alice, bob):
    services.membership_set(organization=acme, user=bob, role="member", actor=alice)
    groups_sync(user=bob, source="oidc:corp", groups=["admins"])
    groups_sync(user=bob, source="oidc:corp", groups=[])
    assert Membership.objects.get(user=bob, organization=acme).role == "member"  # demoted, not removed
    zoe = services.user_create(username="zoe", password=PASSWORD)
    groups_sync(user=zoe, source="oidc:corp", groups=["devs"])
    services.membership_set(organization=acme, user=zoe, role="owner", actor=alice)  # promoted by hand
    groups_sync(user=zoe, source="oidc:corp", groups=["devs"])
    groups_sync(user=zoe, source="oidc:corp", groups=[])
    assert Membership.objects.get(user=zoe, organization=acme).role == "owner"


def test_with_password_sign_in_for_staff_only_nobody_signs_up_and_old_sessions_end(client, settings, alice):
    client.post("/accounts/login/", {"login": "alice", "password": CONFTEST_PASSWORD})
    assert client.get("/settings/tokens/").status_code == 200
    settings.PASSWORD_SIGN_IN = "staff"
    assert client.get("/settings/tokens/").status_code == 302  # her password session ended
    signup = {"email": "x@example.org", "username": "newbie", "password1": PASSWORD, "password2": PASSWORD}
    client.post("/accounts/signup/", signup)
    assert not services.User.objects.filter(username="newbie").exists()


def test_a_refresh_token_born_from_a_password_stops_with_password_sign_in(client, settings, alice):
    from accounts.actors import Actor, Via
    from accounts.credentials import authenticate_refresh_token

    secret = services.refresh_token_create(actor=Actor(kind="user", user=alice, via=Via.PASSWORD), client_id="docker")
    assert authenticate_refresh_token(secret, client_id="docker") is not None
    settings.PASSWORD_SIGN_IN = "staff"
    assert authenticate_refresh_token(secret, client_id="docker") is None


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://sso.example.com/realms/corp", "https://sso.example.com"),
        ("http://127.0.0.1:8080/x", "http://127.0.0.1:8080"),
        ("https://[::1]:8443/", "https://[::1]:8443"),
        ("https://sso.example.com\x0c*", ""),
        ("https://*", ""),
        ("https://user:secret@sso.example.com", ""),
        ("javascript:alert(1)", ""),
    ],
)
def test_only_a_providers_plain_origin_reaches_the_content_security_policy(url, expected):
    from portal.middleware import origin, with_form_targets

    assert origin(url) == expected
    policy = with_form_targets("default-src 'self'; form-action 'self'", [origin(url)])
    assert policy.endswith(f"form-action 'self' {expected}".rstrip())


def test_a_missing_groups_claim_leaves_memberships_as_they_are(acme):
    from types import SimpleNamespace

    from accounts.adapter import _groups

    def login(extra):
        account = SimpleNamespace(extra_data=extra, provider="corp", uid="1", get_provider=lambda: None)
        return SimpleNamespace(account=account)

    assert _groups(login({"userinfo": {"sub": "1"}})) is None
    assert _groups(login({"userinfo": {"sub": "1", "groups": []}})) == []
    assert _groups(login({"id_token": {"groups": "devs"}})) == ["devs"]


def test_a_token_that_has_already_expired_is_not_made(alice):
    api = APIClient()
    api.force_authenticate(alice)
    past = api.post("/api/v1/access-tokens/", {"name": "old", "expires_at": "2020-01-01T00:00:00Z"}, format="json")
    assert past.status_code == 400 and "expired" in past.content.decode()
    assert not alice.access_tokens.exists()


def test_a_hand_made_member_of_a_team_that_got_a_mapping_can_still_be_removed(acme, alice, bob):
    devs = acme.teams.get(name="devs")
    services.membership_set(organization=acme, user=bob, role="member", actor=alice)
    TeamMembership.objects.create(team=devs, user=bob)  # before the mapping fed the team
    zoe = services.user_create(username="zoe", password=PASSWORD)
    groups_sync(user=zoe, source="oidc:corp", groups=["devs"])
    api = APIClient()
    api.force_authenticate(alice)
    assert api.delete("/api/v1/orgs/acme/teams/devs/members/bob/").status_code == 204
    assert api.delete("/api/v1/orgs/acme/teams/devs/members/zoe/").status_code == 400  # the mapping's


def test_deleting_a_team_deletes_its_mappings_audited_and_takes_back_what_they_gave(acme, alice):
    from accounts.models import GroupMapping
    from audit.models import AuditEvent

    devs = acme.teams.get(name="devs")
    group_mapping_create(actor=alice, source="ldap", group="cn=ops", organization=acme, team=devs, owner=True)
    zoe = services.user_create(username="zoe", password=PASSWORD)
    services.User.objects.filter(pk=zoe.pk).update(directory="ldap")
    groups_sync(user=zoe, source="ldap", groups=["cn=ops"])
    assert Membership.objects.get(user=zoe, organization=acme).role == "owner"
    services.team_delete(team=devs, actor=alice)
    assert not GroupMapping.objects.filter(team__isnull=False).exists()
    assert AuditEvent.objects.filter(action="group_mapping.delete").count() == 2
    assert not Membership.objects.filter(user=zoe, organization=acme).exists()


def test_staff_cannot_put_people_in_a_mapped_team_or_outside_members_in_any_team_through_the_admin(
    client, acme, alice, bob
):
    staff = services.user_create(username="root", password=PASSWORD, is_staff=True)
    staff.is_superuser = True
    staff.save()
    client.force_login(staff)
    devs = acme.teams.get(name="devs")
    added = client.post("/admin/accounts/teammembership/add/", {"team": devs.pk, "user": bob.pk})
    assert added.status_code == 200 and b"not a member of acme" in added.content
    services.membership_set(organization=acme, user=bob, role="member", actor=alice)
    added = client.post("/admin/accounts/teammembership/add/", {"team": devs.pk, "user": bob.pk})
    assert added.status_code == 200 and b"group mapping" in added.content
    assert not TeamMembership.objects.filter(user=bob).exists()


def test_a_group_name_with_control_or_direction_characters_is_refused(acme, alice):
    api = APIClient()
    api.force_authenticate(alice)
    for group in ["evil\u202egroup", "two\nlines"]:
        made = api.post(
            "/api/v1/orgs/acme/group-mappings/", {"source": "oidc:corp", "group": group, "owner": True}, format="json"
        )
        assert made.status_code == 400, made.content


def test_the_apis_docker_login_names_the_registry(alice, settings):
    api = APIClient()
    api.force_authenticate(alice)
    made = api.post("/api/v1/access-tokens/", {"name": "ci"}, format="json").json()
    assert made["docker_login"].startswith(f"docker login {settings.REGISTRY_PUBLIC_HOST} -u alice")


def test_with_password_sign_in_for_staff_only_the_answer_does_not_tell_who_is_staff(client, settings, alice):
    settings.PASSWORD_SIGN_IN = "staff"
    services.user_create(username="root", password=PASSWORD, is_staff=True)
    answers = {
        get_token(client, auth=basic(name, password)).content
        for name, password in [("alice", CONFTEST_PASSWORD), ("alice", "wrong"), ("root", "wrong"), ("nobody", "x")]
    }
    assert len(answers) == 1 and b"personal access token" in answers.pop()
    assert get_token(client, auth=basic("root", PASSWORD)).status_code == 200


def test_an_unreachable_provider_gets_a_sign_in_error_page_not_a_500(client, settings):
    entry = {"id": "corp", "server_url": "http://127.0.0.1:9/", "client_id": "x", "secret": "y"}
    settings.OIDC_PROVIDERS = [entry]
    settings.SOCIALACCOUNT_PROVIDERS = socialaccount_providers([entry])
    response = client.post("/accounts/oidc/corp/login/")
    assert response.status_code == 502


def test_a_password_reset_mails_a_link_only_to_those_who_may_use_a_password(client, settings, alice, mailoutbox):
    """A company account, or anyone but staff with PASSWORD_SIGN_IN=staff, gets a mail saying how
    they sign in, not a reset link (a password set through it would be refused everywhere); the
    page answers the same for all."""
    from allauth.account.models import EmailAddress

    ldap_user = services.user_create(username="lena", password=None)
    ldap_user.directory = "ldap"
    ldap_user.save(update_fields=["directory"])
    for user, address in ((alice, "alice@example.org"), (ldap_user, "lena@example.org")):
        user.email = address
        user.save(update_fields=["email"])
        EmailAddress.objects.create(user=user, email=address, verified=True, primary=True)

    def reset(address: str):
        mailoutbox.clear()
        answer = client.post("/accounts/password/reset/", {"email": address})
        assert answer.status_code == 302 and answer["Location"] == "/accounts/password/reset/done/"
        assert len(mailoutbox) == 1
        return mailoutbox[0]

    assert "/accounts/password/reset/key/" in reset("alice@example.org").body
    mail = reset("lena@example.org")
    assert "/accounts/password/reset/key/" not in mail.body and "signs in through LDAP" in mail.body
    settings.PASSWORD_SIGN_IN = "staff"
    mail = reset("alice@example.org")
    assert "/accounts/password/reset/key/" not in mail.body and "personal access token" in mail.body
    alice.is_staff = True
    alice.save(update_fields=["is_staff"])
    assert "/accounts/password/reset/key/" in reset("alice@example.org").body


def test_an_organization_has_a_bounded_number_of_group_mappings(acme, alice, settings):
    """The list is not paginated; it is bounded (500), with a clear 400 past it."""
    from accounts import directory

    settings.DEBUG = False
    directory.MAX_MAPPINGS_PER_ORGANIZATION, before = 3, directory.MAX_MAPPINGS_PER_ORGANIZATION
    try:
        client = APIClient()
        client.force_login(alice)
        url = "/api/v1/orgs/acme/group-mappings/"
        assert (
            client.post(url, {"source": "ldap", "group": "cn=x,dc=e", "owner": True}, format="json").status_code == 201
        )
        refused = client.post(url, {"source": "ldap", "group": "cn=y,dc=e", "owner": True}, format="json")
        assert refused.status_code == 400 and "at most 3 group mappings" in refused.json()["group"][0]
        assert len(client.get(url).json()) == 3
    finally:
        directory.MAX_MAPPINGS_PER_ORGANIZATION = before


def test_a_company_account_is_not_offered_a_password_here(client, alice):
    """The hub's Password page tells a company account how it signs in and uses docker; a POST
    sets nothing. A local account still gets allauth's form."""
    lena = services.user_create(username="lena", password=None)
    lena.directory = "oidc:corp"
    lena.save(update_fields=["directory"])
    client.force_login(lena, backend="accounts.backends.AllauthPasswordBackend")  # as allauth signs SSO in
    for path in ("/accounts/password/change/", "/accounts/password/set/"):
        page = client.get(path)
        assert page.status_code == 200 and "signs in through single sign-on" in page.content.decode()
        assert "/settings/tokens/" in page.content.decode()
        posted = client.post(path, {"password1": PASSWORD, "password2": PASSWORD})
        assert posted.status_code == 403
    lena.refresh_from_db()
    assert not lena.has_usable_password()
    client.force_login(alice)
    page = client.get("/accounts/password/change/")
    assert page.status_code == 200 and 'name="oldpassword"' in page.content.decode()
