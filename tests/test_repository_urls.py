"""Repository pages behind "/-/" (issue 14, item 2): every name the registry accepts has its
pages, even names that look like sub-pages (web/tags, web/star, settings); the old sub-page
paths redirect when no repository has that name."""

import pytest
from django.urls import reverse

from accounts.models import Namespace, Visibility
from repositories.models import Repository

pytestmark = pytest.mark.django_db
NAMES = ["web", "web/tags", "web/star", "web/settings", "settings", "tags", "star", "x-y/-/z", "a/b/c/-x", "-", "web/-"]
REFUSED = {"a/b/c/-x", "-", "web/-", "x-y/-/z"}  # "-" can never be a path component of a name


@pytest.fixture
def repos(alice):
    ns = Namespace.objects.get(name="alice")
    made = {}
    for name in NAMES:
        repository = Repository(
            namespace=ns, name=name, visibility=Visibility.PUBLIC, short_description=f"about {name}"
        )
        try:
            repository.full_clean()
        except Exception:
            continue  # not a name the registry accepts ("a/b/c/-x": a component starts with -)
        repository.save()
        made[name] = repository
    return made


def test_names_the_registry_refuses_cannot_be_created(repos):
    assert set(repos) == set(NAMES) - REFUSED


@pytest.mark.parametrize("name", [n for n in NAMES if n not in REFUSED])
def test_every_page_of_every_name_is_reachable(client, alice, repos, name):
    client.force_login(alice)
    for url_name in ("repository", "repository-tags", "repository-settings"):
        url = reverse(url_name, kwargs={"namespace": "alice", "name": name})
        response = client.get(url)
        assert response.status_code == 200, url
        assert f"about {name}</p>" in response.content.decode(), url  # this repository, not another


def test_old_subpage_paths_redirect_unless_a_repository_has_that_name(client, alice, repos):
    client.force_login(alice)
    # acme-style old link to the tags of alice/tags's sibling: no repository alice/tags/tags.
    old = client.get("/r/alice/tags/tags/?sort=name")
    assert old.status_code == 301 and old["Location"] == "/r/alice/tags/-/tags/?sort=name"
    assert client.get("/r/alice/settings/settings/")["Location"] == "/r/alice/settings/-/settings/"
    # alice/web/tags exists: the repository wins.
    page = client.get("/r/alice/web/tags/")
    assert page.status_code == 200 and "about web/tags</p>" in page.content.decode()


def test_a_private_name_is_not_revealed_by_the_redirect(client, bob, repos):
    Repository.objects.filter(full_name="alice/web/tags").update(visibility=Visibility.PRIVATE)
    client.force_login(bob)
    # For bob alice/web/tags does not exist: the old tags path of alice/web redirects, as it
    # would for a name nobody has.
    assert client.get("/r/alice/web/tags/")["Location"] == "/r/alice/web/-/tags/"


def test_the_api_reaches_every_name_through_the_separator(alice, repos):
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(alice)
    # The short form keeps its meaning (scripts rely on it): web's tags.
    assert api.get("/api/v1/repositories/alice/web/tags/").status_code == 200
    # With "/-/", the repository alice/web/tags itself, and the tags of alice/web/tags.
    detail = api.get("/api/v1/repositories/alice/web/tags/-/")
    assert detail.status_code == 200 and detail.json()["full_name"] == "alice/web/tags"
    assert api.get("/api/v1/repositories/alice/web/tags/-/tags/").status_code == 200
    star = api.post("/api/v1/repositories/alice/web/star/-/star/")
    assert star.status_code in (200, 201, 204)
    assert Repository.objects.get(full_name="alice/web/star").stars.filter(user=alice).exists()
    assert not Repository.objects.get(full_name="alice/web").stars.exists()
    assert api.get("/api/v1/repositories/alice/nothing/-/").status_code == 404
    assert api.get("/api/v1/repositories/alice/web/tags/-/activity/").status_code == 200
    assert api.get("/api/v1/repositories/alice/web/tags/-/webhooks/").status_code == 200
