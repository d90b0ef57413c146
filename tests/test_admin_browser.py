"""A staff member clicks through the effective-access page in a real browser."""

import pytest

from tests.world import PASSWORD, build_world

pytestmark = pytest.mark.browser


def test_staff_finds_who_can_push_and_why(transactional_db, live_server, page):
    build_world()
    page.goto(f"{live_server.url}/admin/login/")  # the portal's login (with 2FA, where set up)
    page.wait_for_url(lambda url: "/accounts/login/" in url)
    page.fill("input[name=login]", "sam")
    page.fill("input[name=password]", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url(lambda url: url.rstrip("/").endswith("/admin"))
    page.click("text=Effective access")
    page.fill("#id_principal", "erin")
    page.fill("#id_target", "acme/priv-app")
    page.click("text=Show access")

    assert page.inner_text("#level") == "write"
    assert page.inner_text("#reason") == "team writers grant (write)"
    rows = page.locator("#principals tbody tr").all_inner_texts()
    assert any(row.split("\t")[:3] == ["robot", "acme+deployer", "write"] for row in rows)
    assert not any("\tbob\t" in row for row in rows)  # a member without grants has nothing more than anyone

    page.fill("#id_principal", "nobody")
    page.click("text=Show access")
    assert "No such user." in page.inner_text("#effective-access")
