"""Every page the portal serves, in Chromium at desktop and phone width (issue 14): axe-core
finds no violation of any impact, nothing is wider than a phone's screen, and each page is the
site's own (its header and stylesheet), for a signed-out visitor, a plain user and an
organization owner. A page added later without a line here fails the sweep of the URL names."""

from __future__ import annotations

import pytest
from django.urls import get_resolver

from accounts.models import Membership
from accounts.services import organization_create, user_create
from repositories.models import Manifest, Repository, Tag
from tests.test_ui_browser import PASSWORD
from tests.test_ui_first_hour import both_widths, sign_in

pytestmark = [pytest.mark.browser]

ANONYMOUS = [
    "/",
    "/search/?q=app",
    "/r/owen-co/app/",
    "/r/owen-co/app/-/tags/",
    "/r/owen-co/app/-/tags/1.0/",
    "/u/owen-co/",
    "/u/owen/",
    "/accounts/login/",
    "/accounts/signup/",
    "/accounts/password/reset/",
    "/r/owen-co/no-such-thing/",  # the branded 404
]
SIGNED_IN = [
    "/",
    "/search/?q=ap",
    "/new/",
    "/orgs/new/",
    "/r/owen-co/app/",
    "/r/owen-co/app/-/tags/",
    "/r/owen-co/app/-/tags/1.0/",
    "/r/owen-co/app/-/tags/1.0/delete/",
    "/r/owen-co/app/-/settings/",
    "/r/owen-co/empty/",
    "/u/owen-co/",
    "/u/owen-co/settings/",
    "/u/owen/",
    "/settings/profile/",
    "/settings/tokens/",
    "/settings/signing-keys/",
    "/settings/policies/",
    "/accounts/email/",
    "/accounts/password/change/",
    "/accounts/2fa/",
    "/accounts/2fa/totp/activate/",
    "/accounts/sessions/",
    "/accounts/3rdparty/",
    "/accounts/logout/",
]
# Pages a plain member of the organization meets: the branded 403 of settings they may not change.
MEMBER = ["/u/owen-co/settings/", "/u/owen-co/"]

# URL names that are not pages (endpoints, redirects, POST-only actions, the API) or are covered
# by the paths above under another name.
NOT_PAGES = {
    "healthz",
    "readyz",
    "registry-token",
    "registry-events",
    "api-schema",
    "api-docs",
    "docker-search",
    "repository-star",
    "admin-effective-access",
    "front-check",  # nginx's auth_request, not a page (tests/test_front.py)
    "attachment-download",  # a file download, not a page (tests/test_signatures.py fetches it)
    # the POST-only actions of /settings/policies/ (tests/test_ui_policies.py)
    *(f"account-policies-{action}" for action in ("immutable", "immutable-delete", "retention")),
    *(f"account-policies-{action}" for action in ("retention-delete", "retention-run", "storage")),
}


@pytest.fixture
def world(transactional_db):
    owner = user_create(username="owen", password=PASSWORD)
    member = user_create(username="mia", password=PASSWORD)
    org = organization_create(name="owen-co", owner=owner)
    Membership.objects.create(organization=org, user=member, role="member")
    app = Repository.objects.create(
        namespace=org.namespace, name="app", visibility="public", short_description="The app"
    )
    Repository.objects.create(namespace=org.namespace, name="empty", visibility="public")
    for i, name in enumerate(["1.0", "latest"]):
        manifest = Manifest.objects.create(
            repository=app,
            digest=f"sha256:{i:064x}",
            media_type="application/vnd.oci.image.manifest.v1+json",
            os="linux",
            architecture="amd64",
            total_size=42_000_000,
        )
        Tag.objects.create(repository=app, name=name, manifest=manifest)
    return owner


def looks_like_the_site(page, path: str) -> None:
    assert page.locator("header .brand, header a[rel=home]").count() >= 1, f"{path} has no site header"
    assert page.evaluate("[...document.styleSheets].some(s => (s.href || '').includes('/static/css/site'))"), path
    text = page.inner_text("body")
    assert not any(mark in text for mark in ("{#", "#}", "{%", "%}", "{{")), f"{path} shows template syntax"


def visit(page, base: str, paths: list[str]) -> None:
    for path in paths:
        page.goto(base + path)
        looks_like_the_site(page, path)
        both_widths(page)


def test_every_page_signed_out(world, live_server, page):
    visit(page, live_server.url, ANONYMOUS)


def test_every_page_signed_in(world, live_server, page):
    sign_in(page, live_server.url, "owen")
    visit(page, live_server.url, SIGNED_IN)


def test_every_page_for_a_plain_member(world, live_server, page):
    sign_in(page, live_server.url, "mia")
    visit(page, live_server.url, MEMBER)
    response = page.goto(live_server.url + "/u/owen-co/settings/")
    assert response.status == 403 and "owners" in page.inner_text("main")


# the API, POST actions, allauth
THEIRS = ("api-", "org-", "account_", "admin:", "mfa_", "socialaccount_", "openid_connect_")


def test_the_sweep_knows_every_page():
    """Each named page of the portal's own URLconf is visited above (allauth's and the admin's
    pages are theirs; the allauth ones the hub links to are listed explicitly)."""
    visited = " ".join(ANONYMOUS + SIGNED_IN + MEMBER)
    portal_names = {
        name
        for name, patterns in get_resolver().reverse_dict.lists()
        if isinstance(name, str) and not name.startswith(THEIRS)
    }
    hints = {
        "home": "/ ",
        "search": "/search/",
        "repository": "/r/owen-co/app/",
        "repository-tags": "/-/tags/",
        "repository-settings": "/-/settings/",
        "tag-delete": "/delete/",
        "tag-detail": "/-/tags/1.0/ ",
        "repository-create": "/new/",
        "organization-create": "/orgs/new/",
        "organization-settings": "/u/owen-co/settings/",
        "namespace": "/u/owen/",
        "access-tokens": "/settings/tokens/",
        "signing-keys": "/settings/signing-keys/",
        "account-policies": "/settings/policies/",
        "account-profile": "/settings/profile/",
    }
    unknown = sorted(n for n in portal_names - NOT_PAGES if n not in hints and not n.startswith("usersessions"))
    assert unknown == [], f"pages the sweep does not visit: {unknown}"
    for name, fragment in hints.items():
        assert fragment in visited + " ", name
