"""Issue 16's policies in an organization's settings, in Chromium: an owner makes release tags
immutable, adds a retention rule and previews it, sets a quota; each section answers in place
and stays axe-clean at both widths; the tag list marks the immutable tag."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from accounts.services import organization_create, user_create
from repositories.models import Manifest, Repository, Tag
from tests.test_ui_browser import PASSWORD
from tests.test_ui_first_hour import both_widths, sign_in

pytestmark = [pytest.mark.browser]


@pytest.fixture
def org(transactional_db):
    owner = user_create(username="pia", password=PASSWORD)
    organization = organization_create(name="pia-co", owner=owner)
    app = Repository.objects.create(namespace=organization.namespace, name="app", visibility="public")
    for i, name in enumerate(["v1.0", "pr-1", "pr-2", "pr-3"]):
        manifest = Manifest.objects.create(
            repository=app,
            digest=f"sha256:{i + 1:064x}",
            media_type="application/vnd.oci.image.manifest.v1+json",
            total_size=400_000 * (i + 1),
        )
        Tag.objects.create(
            repository=app, name=name, manifest=manifest, pushed_at=timezone.now() - dt.timedelta(days=10 - i)
        )
    return organization


def test_an_owner_sets_the_policies_of_an_organization(org, live_server, page):
    base = live_server.url
    sign_in(page, base, "pia")
    page.goto(f"{base}/u/pia-co/settings/#immutable")
    page.fill("#id_immutable-tag_pattern", "v*")
    page.click("#immutable button:has-text('Make these tags immutable')")
    expect(page.locator("#immutable .messages")).to_contain_text("immutable")
    expect(page.locator("#immutable table")).to_contain_text("v*")

    page.fill("#id_retention-tag_pattern", "pr-*")
    page.fill("#id_retention-keep_most_recent", "1")
    page.click("#retention button:has-text('Add the rule')")
    expect(page.locator("#retention table")).to_contain_text("the 1 most recent")
    page.click("#retention button:has-text('Preview')")
    expect(page.locator("#retention .messages")).to_contain_text("Preview: 2 tag(s)")
    expect(page.locator("#retention details")).to_contain_text("app:pr-1")
    expect(page.locator("#retention details")).to_contain_text("app:pr-2")
    expect(page.locator("#retention details")).not_to_contain_text("app:pr-3")

    page.fill("#id_quota-quota_gib", "0.001")
    page.click("#storage button:has-text('Set the quota')")
    expect(page.locator("#storage .messages").first).to_contain_text("Quota set to 1 MiB")
    expect(page.locator("#storage")).to_contain_text("over its quota")
    both_widths(page)

    page.goto(f"{base}/r/pia-co/app/-/tags/")
    expect(page.locator("table.tags tr", has_text="v1.0").locator(".badge.immutable")).to_have_count(1)
    expect(page.locator("table.tags tr", has_text="pr-1").locator(".badge.immutable")).to_have_count(0)


@pytest.fixture
def own(transactional_db):
    """A user's own namespace, with the same tags as the organization above."""
    user = user_create(username="uma", password=PASSWORD)
    app = Repository.objects.create(namespace=user.namespace, name="app", visibility="private")
    for i, name in enumerate(["v1.0", "pr-1", "pr-2", "pr-3"]):
        manifest = Manifest.objects.create(
            repository=app,
            digest=f"sha256:{i + 1:064x}",
            media_type="application/vnd.oci.image.manifest.v1+json",
            total_size=400_000 * (i + 1),
        )
        Tag.objects.create(
            repository=app, name=name, manifest=manifest, pushed_at=timezone.now() - dt.timedelta(days=10 - i)
        )
    return user


def test_a_user_sets_the_policies_of_their_own_namespace(own, org, live_server, page):
    """The personal namespace has the organization's three sections at /settings/policies/, from
    the account menu; they act on the user's own namespace only."""
    base = live_server.url
    sign_in(page, base, "uma")
    page.goto(f"{base}/settings/profile/")
    page.click("nav.hub-nav a:has-text('Storage and policies')")
    expect(page).to_have_url(f"{base}/settings/policies/")
    page.fill("#id_immutable-tag_pattern", "v*")
    page.click("#immutable button:has-text('Make these tags immutable')")
    expect(page.locator("#immutable .messages")).to_contain_text("immutable")
    expect(page.locator("#immutable table")).to_contain_text("v*")

    page.fill("#id_retention-tag_pattern", "pr-*")
    page.fill("#id_retention-keep_most_recent", "2")
    page.click("#retention button:has-text('Add the rule')")
    page.click("#retention button:has-text('Preview')")
    expect(page.locator("#retention .messages")).to_contain_text("Preview: 1 tag(s)")
    expect(page.locator("#retention details")).to_contain_text("app:pr-1")

    page.fill("#id_quota-quota_gib", "0.001")
    page.click("#storage button:has-text('Set the quota')")
    expect(page.locator("#storage")).to_contain_text("uma is over its quota")
    expect(page.locator("#storage table")).to_contain_text("app")
    both_widths(page)

    page.fill("#id_retention-keep_most_recent", "")  # a rule that keeps nothing: refused in place, 400
    page.fill("#id_retention-tag_pattern", "x*")
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.click("#retention button:has-text('Add the rule')")
    assert answer.value.status == 400
    expect(page.locator("#retention")).to_contain_text("Say what to keep")

    page.goto(f"{base}/r/uma/app/-/tags/")
    expect(page.locator("table.tags tr", has_text="v1.0").locator(".badge.immutable")).to_have_count(1)


def test_the_personal_policy_actions_touch_only_your_own_namespace(own, org):
    """Through HTTP: a signed-out visitor is sent to sign in; a rule id of another namespace is
    'gone', not removed; a GET of an action is 405."""
    from django.test import Client

    from accounts.models import User
    from repositories import policies, retention
    from repositories.models import ImmutableTagRule, NamespaceStorage, RetentionRule

    pia = User.objects.get(username="pia")
    theirs = policies.immutable_rule_create(
        namespace=org.namespace, tag_pattern="v*", repository_pattern="*", actor=pia
    )
    their_rule = retention.rule_save(namespace=org.namespace, actor=pia, tag_pattern="x*", keep_most_recent=1)
    client = Client()
    answer = client.get("/settings/policies/")
    assert answer.status_code == 302 and "/accounts/login/" in answer["Location"]
    assert client.post("/settings/policies/immutable/", {"immutable-tag_pattern": "v*"}).status_code == 302
    assert not ImmutableTagRule.objects.filter(namespace=own.namespace).exists()

    client.force_login(own)
    assert client.get("/settings/policies/").status_code == 200
    assert client.get("/settings/policies/immutable/delete/").status_code == 405
    answer = client.post("/settings/policies/immutable/delete/", {"rule": theirs.pk}, follow=True)
    assert "That rule is gone already." in answer.content.decode()
    answer = client.post("/settings/policies/retention/delete/", {"rule": their_rule.pk}, follow=True)
    assert "That rule is gone already." in answer.content.decode()
    assert ImmutableTagRule.objects.filter(pk=theirs.pk).exists()
    assert RetentionRule.objects.filter(pk=their_rule.pk).exists()
    answer = client.post("/settings/policies/storage/", {"quota-quota_gib": "2"})
    assert answer.status_code == 302 and answer["Location"].endswith("/settings/policies/#storage")
    assert NamespaceStorage.objects.get(namespace=own.namespace).quota_bytes == 2 * 1024**3
    assert not NamespaceStorage.objects.filter(namespace=org.namespace, quota_bytes__isnull=False).exists()
    assert client.post("/settings/policies/storage/", {"quota-quota_gib": "lots"}).status_code == 400


def test_a_checkbox_sits_beside_its_label(transactional_db, live_server, page):
    """The retention form's checkboxes stood on lines of their own above their labels (a
    README-only newcomer, helper-12): each now sits on its label's line."""
    user_create(username="cato", password=PASSWORD)
    sign_in(page, live_server.url, "cato")
    page.goto(f"{live_server.url}/settings/policies/")
    for box in page.locator("#retention input[type=checkbox]").all():
        label = page.locator(f"label[for='{box.get_attribute('id')}']")
        b, t = box.bounding_box(), label.bounding_box()
        assert (
            b["x"] + b["width"] <= t["x"] and abs((b["y"] + b["height"] / 2) - (t["y"] + t["height"] / 2)) < t["height"]
        )
