"""The portal in a real browser (Playwright driving Debian's Chromium) with the real registry:
sign up, a token made in the UI pushes with skopeo, the tag shows, a hostile description is
rendered harmless, search respects privacy, a tag is deleted; axe-core finds no accessibility
violation of any impact; screenshots of key pages land in docs/screenshots/."""

import os
import re
import tempfile
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect

from accounts.models import PersonalAccessToken
from accounts.services import user_create
from repositories.models import Tag
from repositories.oci_layout import write_image
from tests.helpers import push
from tests.services import ROOT, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.registry]
SHOTS = ROOT / "docs" / "screenshots"
PASSWORD = "a long enough password 42"


def sign_up(page, base: str, username: str) -> None:
    page.goto(f"{base}/accounts/signup/")
    page.fill("input[name=email]", f"{username}@example.org")
    page.fill("input[name=username]", username)
    page.fill("input[name=password1]", PASSWORD)
    page.fill("input[name=password2]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")


def check_accessibility(page) -> None:
    results = Axe().run(page)
    found = results.response["violations"]  # every impact: minor and moderate too
    assert found == [], [(v["id"], v["impact"], v["help"], [n["target"] for n in v["nodes"]][:3]) for v in found]


def shoot(page, name: str) -> None:
    """Desktop and phone screenshots: into docs/screenshots/ with UPDATE_SCREENSHOTS=1 (the ones
    the README shows), elsewhere otherwise, so ordinary runs leave the tree alone."""
    target = SHOTS if os.environ.get("UPDATE_SCREENSHOTS") else Path(tempfile.gettempdir()) / "dockyard-screenshots"
    target.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target / f"{name}-desktop.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(target / f"{name}-phone.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})


def test_a_person_signs_up_pushes_describes_searches_and_deletes(live_server, registry, celery_worker, page, tmp_path):
    base = live_server.url
    sign_up(page, base, "dana")
    assert "dana" in page.inner_text("header")
    check_accessibility(page)

    # A token made in the UI, shown once with its docker login line, pushes with skopeo.
    page.goto(f"{base}/settings/tokens/")
    page.fill("#id_name", "laptop")
    page.select_option("#id_scope", "delete")
    page.click("button[value=create]")
    secret = page.input_value("#new-secret")
    assert secret.startswith("dy_pat_")
    assert "docker login" in page.inner_text("#snippet-docker-login")
    assert "--password-stdin" in page.inner_text("#snippet-docker-login")
    check_accessibility(page)
    page.click("#secret-done")  # the dialog stays until it is dismissed
    page.reload()  # a GET: the form is not sent again (a README-only newcomer, helper-12, got two tokens)
    assert page.url.startswith(f"{base}/settings/tokens/")
    assert secret not in page.content()  # never shown again
    assert PersonalAccessToken.objects.filter(user__username="dana", name="laptop").count() == 1

    image = write_image(tmp_path / "img", "1.0", content="ui", arch="arm64")
    write_image(tmp_path / "img", "latest", content="ui", arch="arm64")
    for tag in ("1.0", "latest"):
        result = push(tmp_path / "img", tag, registry.host, f"dana/web-app:{tag}", creds=f"dana:{secret}")
        assert result.returncode == 0, result.stderr
    wait_until(lambda: Tag.objects.filter(repository__full_name="dana/web-app").count() == 2, timeout=30, what="tags")

    page.goto(f"{base}/r/dana/web-app/-/tags/")
    rows = page.locator("table.tags tbody tr").all_inner_texts()
    assert any("1.0" in row and "linux/arm64" in row for row in rows)
    assert image.top.digest.split(":")[1][:12] in page.content()
    check_accessibility(page)

    # A description with a script and an onerror handler is rendered without them.
    page.goto(f"{base}/r/dana/web-app/-/settings/")
    page.fill("#id_short_description", "The dana web app")
    page.fill(
        "#id_full_description",
        '# Web app\n\n<script>window.pwned = 1</script>\n\n<img src=x onerror="window.pwned = 2">\n\n'
        "| a | b |\n|---|---|\n| 1 | 2 |\n\n```python\nprint('hi')\n```\n",
    )
    page.click("button[value=preview]")
    assert page.locator("#preview h1").inner_text() == "Web app"
    page.click("button[value=describe]")
    page.goto(f"{base}/r/dana/web-app/")
    assert page.locator("article.overview table").count() == 1
    assert page.locator("article.overview .highlight").count() == 1
    assert page.locator("article.overview script").count() == 0
    assert page.locator("article.overview img").get_attribute("onerror") is None
    assert page.evaluate("window.pwned") is None
    check_accessibility(page)
    shoot(page, "repository")

    # Search: the owner finds the private repository, an outsider does not.
    page.goto(f"{base}/search/?q=web")
    assert "dana/web-app" in page.inner_text("main")
    assert page.locator("mark").count() >= 1
    check_accessibility(page)
    shoot(page, "search")
    user_create(username="eve", password=PASSWORD)
    other = page.context.browser.new_context().new_page()
    other.goto(f"{base}/accounts/login/")
    other.fill("input[name=login]", "eve")
    other.fill("input[name=password]", PASSWORD)
    other.click("button[type=submit]")
    other.wait_for_url(f"{base}/")
    other.goto(f"{base}/search/?q=web")
    assert "dana/web-app" not in other.inner_text("main")
    assert other.goto(f"{base}/r/dana/web-app/").status == 404
    other.context.close()

    # Deleting a tag names every tag that goes with its digest.
    page.goto(f"{base}/r/dana/web-app/-/tags/")
    page.click("a[href$='/tags/1.0/delete/']")
    assert page.locator("#doomed-tags li").all_inner_texts() == ["1.0", "latest"]
    check_accessibility(page)
    page.click("button.danger")
    assert "Deleted 1.0, latest" in page.inner_text(".messages")
    assert not Tag.objects.filter(repository__full_name="dana/web-app").exists()
    shoot(page, "tags")

    page.goto(f"{base}/")
    check_accessibility(page)
    shoot(page, "home")

    # The API docs (Swagger UI, served from this host) start under the same policy.
    page.goto(f"{base}/api/v1/docs/")
    page.wait_for_selector(".swagger-ui .info")


def test_the_screenshots_the_readme_shows_are_committed():
    readme = (ROOT / "README.md").read_text()
    shown = set(re.findall(r"\(docs/screenshots/([a-z-]+-(?:desktop|phone)\.png)\)", readme))
    taken = set()
    for test_file in (ROOT / "tests").glob("test_*.py"):
        for name in re.findall(r'shoot\(page, "([a-z-]+)"\)', test_file.read_text()):
            taken |= {f"{name}-desktop.png", f"{name}-phone.png"}
    assert len(taken) == 18 and shown == taken  # every shot the tests take is in the README, and only those
    assert [name for name in sorted(shown) if not (SHOTS / name).exists()] == []
    assert sorted(p.name for p in SHOTS.glob("*.png")) == sorted(shown)  # no stale ones left behind


def test_an_owner_builds_an_organization_and_only_its_team_finds_the_private_repository(live_server, page, browser):
    base = live_server.url
    user_create(username="erin", password=PASSWORD)
    user_create(username="frank", password=PASSWORD)
    sign_up(page, base, "olive")
    page.goto(f"{base}/orgs/new/")
    page.fill("#id_name", "olive-co")
    page.click("button.primary")
    page.wait_for_url(f"{base}/u/olive-co/settings/")
    check_accessibility(page)
    page.fill("#id_member-username", "erin")
    page.click("#members button:has-text('Add or change role')")
    expect(page.locator("#members .messages")).to_contain_text("erin is now a member")  # at its section
    page.fill("#id_team-name", "devs")
    page.click("button:has-text('Create team')")
    page.fill("#id_team_member-team", "devs")
    page.fill("#id_team_member-username", "erin")
    page.click("button:has-text('Add to team')")
    page.fill("#id_rule-holder", "devs")
    page.fill("#id_rule-pattern", "*")
    page.select_option("#id_rule-level", "read")
    page.click("button:has-text('Add rule')")
    expect(page.locator("#rules .messages")).to_contain_text("Access rule added")
    assert "erin" in page.inner_text("#teams")
    shoot(page, "organization")

    page.goto(f"{base}/new/?namespace=olive-co")
    page.fill("#id_name", "secret-app")
    page.check("input[name=visibility][value=private]")
    page.click("button.primary")
    page.wait_for_url(f"{base}/r/olive-co/secret-app/")

    for username, finds in (("erin", True), ("frank", False)):
        context = browser.new_context()
        other = context.new_page()
        other.goto(f"{base}/accounts/login/")
        other.fill("input[name=login]", username)
        other.fill("input[name=password]", PASSWORD)
        other.click("button[type=submit]")
        other.wait_for_url(f"{base}/")
        other.goto(f"{base}/search/?q=secret")
        assert ("olive-co/secret-app" in other.inner_text("main")) is finds, username
        context.close()


def test_account_pages_pass_the_accessibility_check(live_server, page):
    base = live_server.url
    for url in ("/accounts/login/", "/accounts/signup/", "/accounts/password/reset/"):
        page.goto(base + url)
        check_accessibility(page)
    sign_up(page, base, "axel")
    for url in ("/accounts/email/", "/accounts/2fa/", "/accounts/2fa/totp/activate/", "/new/", "/orgs/new/"):
        page.goto(base + url)
        check_accessibility(page)


def test_filtering_tags_and_previewing_happen_in_place(transactional_db, live_server, page):
    """htmx: the tags filter and the Markdown preview update the page without reloading it,
    and the filtered list keeps a URL a person can share."""
    from accounts.models import Namespace
    from repositories.models import Manifest, Repository

    owner = user_create(username="hana", password=PASSWORD)
    repository = Repository.objects.create(namespace=Namespace.objects.get(name="hana"), name="app")
    for i, name in enumerate(["1.0", "1.1", "2.0", "nightly"]):
        manifest = Manifest.objects.create(repository=repository, digest=f"sha256:{i:064x}", media_type="x")
        Tag.objects.create(repository=repository, name=name, manifest=manifest)
    base = live_server.url
    page.goto(f"{base}/accounts/login/")
    page.fill("input[name=login]", owner.username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")

    page.goto(f"{base}/r/hana/app/-/tags/")
    page.evaluate("window.stillHere = true")
    page.fill("input[name=name]", "nightly")
    expect(page.locator("table.tags tbody tr")).to_have_count(1)  # no eval: the CSP forbids it
    assert "nightly" in page.inner_text("table.tags tbody")
    assert page.evaluate("window.stillHere") is True  # no reload
    assert "name=nightly" in page.url  # shareable

    page.goto(f"{base}/r/hana/app/-/settings/")
    page.evaluate("window.stillHere = true")
    page.fill("#id_full_description", "# Instant\n\nPreviewed in place.")
    page.click("button[value=preview]")
    page.wait_for_selector("#preview h1")
    assert page.inner_text("#preview h1") == "Instant"
    assert page.evaluate("window.stillHere") is True
    check_accessibility(page)
