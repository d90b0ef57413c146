"""The first hour, in Chromium (issue 14): a token people can use (write, 90 days, the docker
login line, a Kubernetes pull secret to copy or download, CI snippets, shown once in a dialog),
a first-push panel where there is nothing yet, settings that answer in their section and ask
before destroying, the account hub, the activity feed in words, "did you mean", phone layouts
that never overflow, a branded 404; axe-core on every page, at desktop and phone widths."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from accounts.models import Membership, Namespace, Organization
from accounts.services import organization_create, team_create, team_member_add, user_create
from repositories.models import Manifest, Repository, Tag
from tests.test_ui_browser import PASSWORD, check_accessibility, shoot, sign_up

pytestmark = [pytest.mark.browser]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


def sign_in(page, base: str, username: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.fill("input[name=login]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url(f"{base}/")


def both_widths(page) -> None:
    """axe-core at desktop and phone width, and nothing wider than the phone's screen."""
    check_accessibility(page)
    page.set_viewport_size(PHONE)
    check_accessibility(page)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{page.url} is {overflow}px wider than a phone"
    page.set_viewport_size(DESKTOP)


def test_a_new_user_makes_a_token_that_pushes_and_finds_every_way_to_use_it(transactional_db, live_server, page):
    base = live_server.url
    sign_up(page, base, "nina")
    # Nothing yet: the home page says exactly how to push, for this host.
    panel = page.locator("#first-push")
    expect(panel).to_contain_text("docker login")
    expect(panel).to_contain_text("/nina/my-app:latest")
    both_widths(page)

    page.click("a.account-link")  # the header leads to the account hub
    page.wait_for_url(f"{base}/settings/profile/")
    page.click("nav.hub-nav >> text=Access tokens")
    assert page.input_value("#id_scope") == "write"  # what a push needs
    assert page.input_value("#id_expires") == "90"
    both_widths(page)
    page.fill("#id_name", "laptop")
    page.click("button[value=create]")

    dialog = page.locator("dialog#secret-dialog")
    expect(dialog).to_be_visible()
    secret = page.input_value("#new-secret")
    assert secret.startswith("dy_pat_")
    assert page.inner_text("#snippet-docker-login").endswith("-u nina --password-stdin")
    for key, text in [
        ("kubectl", "kubectl create secret docker-registry laptop-pull"),
        ("k8s-manifest", "type: kubernetes.io/dockerconfigjson"),
        ("github-actions", "docker/login-action"),
        ("gitlab-ci", "--password-stdin"),
    ]:
        assert text in page.text_content(f"#snippet-{key}"), key
    page.click("summary:has-text('the same Secret as a manifest')")
    with page.expect_download() as download:
        page.click("button[data-download='#snippet-k8s-manifest']")
    assert download.value.suggested_filename == "laptop-pull.yaml"
    with open(download.value.path()) as manifest:
        assert "kubernetes.io/dockerconfigjson" in manifest.read()
    check_accessibility(page)
    page.keyboard.press("Escape")  # it stays until dismissed
    expect(dialog).to_be_visible()
    page.click("#secret-done")
    expect(dialog).to_be_hidden()
    page.goto(f"{base}/settings/tokens/")  # (a reload would ask to send the form again)
    assert secret not in page.content()

    # Revoking asks first; dismissing keeps the token.
    messages = []
    page.once("dialog", lambda d: (messages.append(d.message), d.dismiss()))
    page.click("button[value=revoke]")
    assert "stops working at once" in messages[0]
    expect(page.locator("#tokens")).to_contain_text("active")
    page.once("dialog", lambda d: d.accept())
    page.click("button[value=revoke]")
    expect(page.locator("#tokens")).to_contain_text("revoked")
    shoot(page, "tokens")


def test_the_account_hub(transactional_db, live_server, page):
    base = live_server.url
    sign_up(page, base, "omar")
    page.goto(f"{base}/settings/profile/")
    page.fill("#id_full_name", "Omar Haddad")
    page.fill("#id_bio", "Builds the build images.")
    page.click("button:has-text('Save profile')")
    expect(page.locator(".messages")).to_contain_text("Profile saved")
    assert page.locator(".profile-head svg.avatar text").text_content() == "OH"  # initials, drawn here
    both_widths(page)
    for link, heading in [
        ("Emails", "Email Addresses"),
        ("Password", "Change Password"),
        ("Two-factor authentication", "Two-Factor Authentication"),
        ("Sessions", "Sessions"),
    ]:
        page.click(f"nav.hub-nav >> text={link}")
        expect(page.locator("main h1")).to_contain_text(heading)
        expect(page.locator("nav.hub-nav a[aria-current=page]")).to_have_text(link)
        both_widths(page)
    expect(page.locator("main")).to_contain_text("Current")  # this very session is listed
    page.goto(f"{base}/u/omar/")
    expect(page.locator("main")).to_contain_text("Builds the build images.")
    shoot(page, "account")


def test_organization_settings_answer_in_their_section_and_ask_before_destroying(transactional_db, live_server, page):
    owner = user_create(username="pia", password=PASSWORD)
    quinn = user_create(username="quinn", password=PASSWORD)
    org = organization_create(name="pia-co", owner=owner)
    base = live_server.url
    sign_in(page, base, "pia")
    page.goto(f"{base}/u/pia-co/settings/")
    # Pickers: the username field offers the users.
    assert page.get_attribute("#id_member-username", "list") == "users-list"
    assert "quinn" in page.inner_html("#users-list")
    page.fill("#id_member-username", "quinn")
    page.click("button:has-text('Add or change role')")
    assert page.url.endswith("#members")
    expect(page.locator("#members .messages")).to_contain_text("quinn is now a member")
    page.fill("#id_robot-name", "ci")
    page.click("button:has-text('Create robot')")
    expect(page.locator("dialog#secret-dialog")).to_be_visible()
    assert page.inner_text("#secret-title") == "Robot pia-co+ci created"
    assert "--docker-username=pia-co+ci" in page.text_content("#snippet-kubectl")
    page.click("#secret-done")

    # A team's member chip holds its own remove button, which asks first (a README-only
    # newcomer, helper-12, found it removed at once, on a line of its own).
    team = team_create(organization=org, name="writers", actor=owner)
    team_member_add(team=team, user=quinn, actor=owner)
    page.goto(f"{base}/u/pia-co/settings/#teams")
    chip = page.locator("#teams .chip:has-text('quinn')")
    remove = chip.get_by_role("button", name="Remove quinn from writers")
    box, inside = chip.bounding_box(), remove.bounding_box()
    assert box["y"] <= inside["y"] and inside["y"] + inside["height"] <= box["y"] + box["height"] + 1
    asked = []
    page.once("dialog", lambda d: (asked.append(d.message), d.dismiss()))
    remove.click()
    assert asked and "Remove quinn from the team writers" in asked[0]
    assert team.members.filter(username="quinn").exists()
    page.once("dialog", lambda d: d.accept())
    remove.click()
    expect(page.locator("#teams .chip:has-text('quinn')")).to_have_count(0)
    assert not team.members.filter(username="quinn").exists()

    asked = []
    page.once("dialog", lambda d: (asked.append(d.message), d.dismiss()))
    page.click("#members tr:has-text('quinn') button:has-text('Remove')")
    assert "leave every team" in asked[0]
    assert Membership.objects.filter(organization=org, user__username="quinn").exists()

    page.check("#id_settings-default_visibility_0")  # public
    page.click("button:has-text('Save settings')")
    expect(page.locator("#settings .messages")).to_contain_text("saved")
    assert Namespace.objects.get(name="pia-co").default_visibility == "public"
    both_widths(page)
    shoot(page, "organization-settings")

    page.fill("#id_delete-confirm", "pia-co")
    page.click("#delete button.danger")
    page.wait_for_url(lambda url: url.split("#")[0] == f"{base}/")
    expect(page.locator(".messages")).to_contain_text("Deleted the organization pia-co")
    assert not Organization.objects.filter(name="pia-co").exists()


def test_a_repository_in_words_with_its_first_push_panel_and_cards_on_a_phone(transactional_db, live_server, page):
    owner = user_create(username="rui", password=PASSWORD)
    ns = Namespace.objects.get(name="rui")
    empty = Repository.objects.create(namespace=ns, name="empty-app")
    full = Repository.objects.create(namespace=ns, name="busy-app", visibility="public", short_description="Busy")
    for i in range(12):
        manifest = Manifest.objects.create(
            repository=full,
            digest=f"sha256:{i:064x}",
            media_type="application/vnd.oci.image.manifest.v1+json",
            os="linux",
            architecture="amd64",
            total_size=123_456_789,
        )
        Tag.objects.create(repository=full, name=f"release-2026.11.{i}-with-a-long-name", manifest=manifest)
    from audit.services import audit_record

    audit_record(
        action="tag.push",
        actor_name="rui",
        target_name="rui/busy-app:release-2026.11.0-with-a-long-name",
        namespace="rui",
        repository="rui/busy-app",
    )
    base = live_server.url
    sign_in(page, base, "rui")
    page.goto(f"{base}/r/rui/empty-app/")
    expect(page.locator("#first-push")).to_contain_text("/rui/empty-app:latest")
    page.goto(f"{base}/r/rui/busy-app/")
    activity = page.locator("ul.activity li").first
    expect(activity).to_contain_text("rui pushed release-2026.11.0-with-a-long-name to rui/busy-app")
    assert activity.locator("a").count() == 2  # the tag and the repository
    both_widths(page)
    page.goto(f"{base}/r/rui/busy-app/-/tags/")
    page.set_viewport_size(PHONE)
    # Rows become cards: each cell on its own line, labelled, nothing cut mid-word.
    assert page.evaluate("getComputedStyle(document.querySelector('table.tags tr')).display") == "block"
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
    page.set_viewport_size(DESKTOP)
    both_widths(page)
    assert empty.tags.count() == 0 and owner.is_active


def test_search_forgives_typos_and_errors_are_branded(transactional_db, live_server, page):
    from django.db import connection

    user_create(username="sol", password=PASSWORD)
    ns = Namespace.objects.get(name="sol")
    Repository.objects.create(namespace=ns, name="postgres-tools", visibility="public")
    base = live_server.url
    page.goto(f"{base}/search/?q=postgers-tools")
    if connection.vendor == "postgresql":
        expect(page.locator("#did-you-mean")).to_have_text("sol/postgres-tools")
    both_widths(page)
    response = page.goto(f"{base}/r/sol/no-such-thing/")
    assert response.status == 404
    expect(page.locator("main h1")).to_have_text("Not found")
    assert "URLconf" not in page.content()
    check_accessibility(page)


def test_sign_in_pages_use_the_sites_look(transactional_db, live_server, page):
    base = live_server.url
    for url in ("/accounts/login/", "/accounts/signup/", "/accounts/password/reset/"):
        page.goto(base + url)
        assert page.locator("main .entrance.panel").count() == 1, url
        both_widths(page)


def test_nothing_in_a_table_row_runs_into_the_next_cell(transactional_db, live_server, page):
    """A token's prefix ran into its Access column (a README-only newcomer, helper-12): every
    cell's content stays within its cell, on the tokens page at desktop width."""
    from accounts.services import access_token_create

    user = user_create(username="tove", password=PASSWORD)
    for name in ("ci", "laptop"):
        access_token_create(user=user, name=name, scope="write", expires_at=None, limits=[], address="127.0.0.1")
    sign_in(page, live_server.url, "tove")
    page.goto(f"{live_server.url}/settings/tokens/")
    spill = page.evaluate(
        """() => [...document.querySelectorAll('#tokens td')].flatMap(td => {
             const cell = td.getBoundingClientRect();
             return [...td.querySelectorAll('*')].filter(el => el.getBoundingClientRect().right > cell.right + 1)
               .map(el => el.outerHTML.slice(0, 80));
           })"""
    )
    assert spill == []
