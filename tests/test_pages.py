import pytest

from accounts.models import Namespace, Visibility
from repositories.models import Repository

pytestmark = pytest.mark.django_db


@pytest.fixture
def repos(alice):
    ns = Namespace.objects.get(name="alice")
    return (
        Repository.objects.create(namespace=ns, name="open-app", visibility=Visibility.PUBLIC),
        Repository.objects.create(namespace=ns, name="secret-app", visibility=Visibility.PRIVATE),
    )


def test_home_lists_public_repositories_to_anonymous_visitors(client, repos):
    response = client.get("/")
    assert response.status_code == 200
    assert b"alice/open-app" in response.content
    assert b"secret-app" not in response.content


def test_home_shows_own_private_repositories(client, alice, repos):
    client.force_login(alice)
    assert b"alice/secret-app" in client.get("/").content


def test_private_repository_page_is_404_for_outsiders_and_anonymous(client, charlie, repos):
    assert client.get("/r/alice/secret-app/").status_code == 404
    client.force_login(charlie)
    assert client.get("/r/alice/secret-app/").status_code == 404
    assert client.get("/r/alice/open-app/").status_code == 200


def test_missing_repository_page_is_the_same_404(client):
    assert client.get("/r/nobody/nothing/").status_code == 404


def test_home_runs_a_fixed_number_of_queries(client, alice, django_assert_max_num_queries):
    ns = Namespace.objects.get(name="alice")
    for i in range(30):
        Repository.objects.create(namespace=ns, name=f"r{i}", visibility=Visibility.PUBLIC)
    # session, user, repositories (+ rule lookup for the user's teams)
    client.force_login(alice)
    with django_assert_max_num_queries(6):
        assert client.get("/").status_code == 200


def test_healthz_answers_without_the_database(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert response.json() == {"status": "ok"}


def test_repository_page_shows_its_activity(client, alice, repos):
    from repositories.services import repository_update

    repository_update(repository=repos[0], actor=alice, short_description="now described")
    page = client.get("/r/alice/open-app/")
    assert b"repository.update" in page.content
    assert b"alice" in page.content
