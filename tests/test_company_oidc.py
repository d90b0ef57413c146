"""OpenID Connect sign-in in Chromium against a real provider process (tests/oidc_idp:
django-oidc-provider on loopback): the account is made at the first sign-in, its teams follow
the groups the provider sends, at every sign-in."""

import pytest

from accounts import services
from accounts.directory import group_mapping_create
from accounts.models import Membership, TeamMembership, User
from accounts.oidc_config import socialaccount_providers
from tests.oidc_server import OidcProvider
from tests.test_token_endpoint import basic, get_token

pytestmark = [pytest.mark.browser]
IDP_PASSWORD = "idp-password-of-dana"


@pytest.fixture(scope="module")
def idp(live_server):
    provider = OidcProvider(
        redirect_uri=f"{live_server.url}/accounts/oidc/corp/login/callback/",
        people=[
            f"dana:{IDP_PASSWORD}:developers,staff-all",
            f"frank:{IDP_PASSWORD}:",
            f"eve-unverified:{IDP_PASSWORD}:developers",
        ],
    ).start()
    yield provider
    provider.stop()


@pytest.fixture
def corp(transactional_db, settings, idp, alice):
    entry = idp.portal_provider("corp")
    settings.OIDC_PROVIDERS = [entry]
    settings.SOCIALACCOUNT_PROVIDERS = socialaccount_providers([entry])
    org = services.organization_create(name="acme", owner=alice)
    team = services.team_create(organization=org, name="developers", actor=alice)
    group_mapping_create(actor=alice, source="oidc:corp", group="developers", organization=org, team=team, owner=False)
    return org


def sign_in_with_the_provider(page, base: str, username: str, *, provider_session: bool = False) -> None:
    page.goto(f"{base}/accounts/login/")
    page.click("text=Corp sign-in")
    page.wait_for_url(lambda url: "/accounts/oidc/corp/login/" in url)
    page.click("main button[type=submit]")  # allauth's "continue to the provider" (a POST)
    if not provider_session:
        page.wait_for_url(lambda url: "/login/" in url and url.startswith("http://127.0.0.1:") and base not in url)
        page.fill("#idp-username", username)
        page.fill("#idp-password", IDP_PASSWORD)
        page.click("#idp-submit")
    try:
        page.wait_for_url(f"{base}/")
    except Exception:
        raise AssertionError(f"stuck at {page.url}: {page.inner_text('body')[:800]}") from None


def test_a_person_signs_in_through_the_provider_and_their_team_follows_their_groups(corp, live_server, page, idp):
    base = live_server.url
    sign_in_with_the_provider(page, base, "dana")
    assert "dana" in page.inner_text("header")
    dana = User.objects.get(username="dana")
    assert dana.directory == "oidc:corp" and not dana.has_usable_password()
    assert dana.email == "dana@corp.example"  # verified at the provider
    assert TeamMembership.objects.filter(user=dana, team__name="developers").exists()
    assert Membership.objects.get(user=dana, organization=corp).managed

    # The provider drops dana from the group; at the next sign-in the team follows.
    idp.set_groups("dana", ["staff-all"])
    page.context.clear_cookies()  # the portal's session, and the provider's
    sign_in_with_the_provider(page, base, "dana")
    assert not TeamMembership.objects.filter(user=dana).exists()
    assert not Membership.objects.filter(user=dana, organization=corp).exists()
    assert User.objects.filter(directory="oidc:corp").count() == 1  # the same account, found by subject

    # And the registry's token endpoint tells a password to use a personal access token.
    from django.test import Client

    refused = get_token(Client(), "repository:acme/x:pull", auth=basic("dana", IDP_PASSWORD))
    assert refused.status_code == 401 and "personal access token" in refused.content.decode()


def test_an_unverified_address_is_not_kept_and_a_local_name_is_never_taken_over(corp, live_server, page, idp):
    base = live_server.url
    frank = services.user_create(username="frank", email="frank@example.org", password="local-frank-password")
    sign_in_with_the_provider(page, base, "frank")
    assert frank.__class__.objects.get(pk=frank.pk).directory == ""  # the local frank is untouched
    assert User.objects.get(username="frank-2").directory == "oidc:corp"
    page.context.clear_cookies()
    sign_in_with_the_provider(page, base, "eve-unverified")
    eve = User.objects.get(username="eve-unverified")
    assert eve.email == ""  # the provider did not say it was verified
    assert TeamMembership.objects.filter(user=eve, team__name="developers").exists()


def test_the_periodic_check_follows_groups_and_deactivates_people_the_provider_removed(corp, live_server, page, idp):
    from allauth.socialaccount.models import SocialToken

    from accounts.oidc import oidc_check

    idp.set_groups("dana", ["developers"])
    sign_in_with_the_provider(page, live_server.url, "dana")
    dana = User.objects.get(username="dana", directory="oidc:corp")
    assert SocialToken.objects.filter(account__user=dana).exclude(token_secret="").exists()
    _, token = services.access_token_create(user=dana, name="ci", scope="read")
    from django.test import Client

    assert get_token(Client(), auth=basic("dana", token)).status_code == 200
    idp.set_groups("dana", [])  # no sign-in: the check follows
    assert oidc_check() == {"checked": 1, "deactivated": 0}
    assert not TeamMembership.objects.filter(user=dana).exists()
    idp.remove("dana")  # gone at the provider: the refresh token is refused
    assert oidc_check() == {"checked": 0, "deactivated": 1}
    assert not User.objects.get(pk=dana.pk).is_active
    assert get_token(Client(), auth=basic("dana", token)).status_code == 401
