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
