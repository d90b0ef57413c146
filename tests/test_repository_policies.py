"""Issue 16: lifecycle policies are for "org owners and repository admins". A repository's admin
(a grant or a rule of level admin) manages immutable-tag and retention rules for that one
repository, named exactly, and nothing wider: not the namespace, not a pattern, not a
repository they do not administer. Through HTTP, for the fixed cast."""

from __future__ import annotations

import pytest

from repositories.models import ImmutableTagRule, RetentionRule
from tests.test_api_repositories import api_client_for
from tests.world import EXPECTED, build_world

pytestmark = pytest.mark.django_db

IMMUTABLE = "/api/v1/namespaces/acme/immutable-tags/"
RETENTION = "/api/v1/namespaces/acme/retention-rules/"

# Who may create a rule for acme/priv-app alone: its admins (the org owner, staff, the team
# with an admin grant). Everyone else is refused: 401 without a credential, 403 otherwise.
REPOSITORY_ADMINS = {"org owner", "team admin", "staff"}
UNAUTHENTICATED = {"anonymous", "inactive user", "expired token", "revoked token"}


@pytest.fixture
def world():
    return build_world()


def _expected(actor_name: str, allowed: bool, created: int = 201) -> int:
    if allowed:
        return created
    return 401 if actor_name in UNAUTHENTICATED else 403


@pytest.mark.parametrize("actor_name", [a for a in EXPECTED if a not in ("system", "robot")])
def test_a_rule_for_one_repository_is_for_its_admins(world, actor_name):
    client = api_client_for(world, actor_name)
    allowed = actor_name in REPOSITORY_ADMINS
    made = client.post(IMMUTABLE, {"pattern": "v*", "repository": "priv-app"}, format="json")
    assert made.status_code == _expected(actor_name, allowed), made.content
    kept = client.post(RETENTION, {"repository": "priv-app", "keep_most_recent": 5}, format="json")
    assert kept.status_code == _expected(actor_name, allowed), kept.content
    listed = client.get(IMMUTABLE, {"repository": "priv-app"})
    assert listed.status_code == _expected(actor_name, allowed, 200)
    if allowed:
        assert [rule["repository"] for rule in listed.json()] == ["priv-app"]


def test_a_repository_admin_goes_no_wider_than_the_repository(world):
    admin = api_client_for(world, "team admin")  # frank: admin on acme/priv-app through a team grant
    owner = api_client_for(world, "org owner")
    namespace_wide = owner.post(IMMUTABLE, {"pattern": "release-*"}, format="json").json()["id"]
    for body in (
        {"pattern": "v*"},  # the whole namespace
        {"pattern": "v*", "repository": "*"},
        {"pattern": "v*", "repository": "priv-*"},  # a pattern, even one that covers only theirs
        {"pattern": "v*", "repository": "pub-app"},  # a repository they do not administer
        {"pattern": "v*", "repository": "nothing-here"},
    ):
        assert admin.post(IMMUTABLE, body, format="json").status_code == 403, body
    assert admin.get(IMMUTABLE).status_code == 403  # the namespace's list
    own = admin.post(IMMUTABLE, {"pattern": "v*", "repository": "priv-app"}, format="json").json()["id"]
    # Their list for the repository shows every rule that covers it, the owner's too.
    covering = {rule["id"] for rule in admin.get(IMMUTABLE, {"repository": "priv-app"}).json()}
    assert covering == {own, namespace_wide}
    assert admin.delete(f"{IMMUTABLE}{namespace_wide}/").status_code == 403
    assert admin.delete(f"{IMMUTABLE}999999/").status_code == 403  # no hint whether it exists
    assert admin.delete(f"{IMMUTABLE}{own}/").status_code == 204
    assert not ImmutableTagRule.objects.filter(pk=own).exists()
    # Retention: theirs can change, but not move to another repository or widen.
    rule = admin.post(RETENTION, {"repository": "priv-app", "keep_most_recent": 5}, format="json").json()["id"]
    assert admin.patch(f"{RETENTION}{rule}/", {"keep_most_recent": 3}, format="json").status_code == 200
    for moved in ("pub-app", "*", "priv-*"):
        assert admin.patch(f"{RETENTION}{rule}/", {"repository": moved}, format="json").status_code == 403
    assert RetentionRule.objects.get(pk=rule).repository_pattern == "priv-app"
    assert RetentionRule.objects.get(pk=rule).keep_most_recent == 3
    assert admin.post(RETENTION, {"keep_most_recent": 5}, format="json").status_code == 403  # repository "*"
    assert admin.post("/api/v1/namespaces/acme/retention-runs/", {"dry_run": True}, format="json").status_code == 403
    assert admin.delete(f"{RETENTION}{rule}/").status_code == 204
    # A write grant is not admin.
    writer = api_client_for(world, "team write")
    assert writer.post(IMMUTABLE, {"pattern": "v*", "repository": "priv-app"}, format="json").status_code == 403


def test_the_repository_settings_page_manages_its_own_immutable_tags(world, client):
    """The same rule in the browser's terms: the repository's admin adds and removes a rule for
    this repository on its settings page, sees the namespace's rules, and cannot remove those."""
    from accounts.models import User

    url = "/r/acme/priv-app/-/settings/"
    ImmutableTagRule.objects.create(namespace=world.repos["acme/priv-app"].namespace, tag_pattern="release-*")
    client.force_login(User.objects.get(username="frank"))  # admin of priv-app through a team grant
    page = client.get(url)
    assert page.status_code == 200 and b'id="immutable"' in page.content and b"release-*" in page.content
    added = client.post(url, {"action": "immutable", "tag_pattern": "v*"}, follow=True)
    assert b"immutable in this repository" in added.content
    own = ImmutableTagRule.objects.get(tag_pattern="v*")
    assert own.repository_pattern == "priv-app"
    namespace_wide = ImmutableTagRule.objects.get(tag_pattern="release-*")
    client.post(url, {"action": "immutable-delete", "rule": namespace_wide.pk})
    assert ImmutableTagRule.objects.filter(pk=namespace_wide.pk).exists()  # not theirs to remove
    bad = client.post(url, {"action": "immutable", "tag_pattern": "[unclosed"}, follow=True)
    assert bad.status_code == 200 and ImmutableTagRule.objects.count() == 2
    # A pattern over 128 characters is refused, not cut to a broader one (helper-11).
    long = client.post(url, {"action": "immutable", "tag_pattern": "p" * 127 + "*zzz"}, follow=True)
    assert "at most 128 characters" in long.content.decode() and ImmutableTagRule.objects.count() == 2
    client.post(url, {"action": "immutable-delete", "rule": own.pk})
    assert not ImmutableTagRule.objects.filter(pk=own.pk).exists()
    client.logout()
    client.force_login(User.objects.get(username="erin"))  # write, not admin: no settings page
    assert client.get(url).status_code in (403, 404)


def test_the_repository_settings_page_manages_its_own_retention_rules(world, client):
    from accounts.models import User

    url = "/r/acme/priv-app/-/settings/"
    RetentionRule.objects.create(namespace=world.repos["acme/priv-app"].namespace, keep_most_recent=50)
    client.force_login(User.objects.get(username="frank"))
    page = client.get(url)
    assert page.status_code == 200 and b'id="retention"' in page.content and b"the 50 most recent" in page.content
    added = client.post(
        url, {"action": "retention", "retention-tag_pattern": "pr-*", "retention-keep_most_recent": "3"}, follow=True
    )
    assert b"Rule added" in added.content
    own = RetentionRule.objects.get(tag_pattern="pr-*")
    assert (own.repository_pattern, own.keep_most_recent) == ("priv-app", 3)
    wide = RetentionRule.objects.get(keep_most_recent=50)
    client.post(url, {"action": "retention-delete", "rule": wide.pk})
    assert RetentionRule.objects.filter(pk=wide.pk).exists()  # the namespace's: not theirs
    bad = client.post(url, {"action": "retention", "retention-tag_pattern": "[x", "retention-keep_most_recent": "-1"})
    assert bad.status_code == 400 and RetentionRule.objects.count() == 2
    client.post(url, {"action": "retention-delete", "rule": own.pk})
    assert not RetentionRule.objects.filter(pk=own.pk).exists()


# Found by a black-box review (helper-7): a repository admin could use up the namespace's rules;
# a NUL byte in `repository` was a 500; the first-push refusal's ';' came out as '_'.


@pytest.mark.parametrize("actor_name", ["outsider", "team write", "team admin"])
def test_a_nul_byte_in_a_retention_rules_repository_is_a_400_not_a_500(world, actor_name):
    """RetentionRuleListView.post asks access.may_manage_repository_policies about the raw
    `repository` before the serializer (which refuses NUL) sees it; the repository lookup then
    sends a NUL to PostgreSQL, which refuses it: any signed-in user gets a 500."""
    client = api_client_for(world, actor_name)
    client.raise_request_exception = False
    answer = client.post(RETENTION, {"repository": "priv\x00app", "keep_most_recent": 1}, format="json")
    assert answer.status_code in (400, 403), answer.status_code
    assert not RetentionRule.objects.exists()


def test_a_repository_admin_cannot_use_up_the_namespaces_retention_rules(world):
    """The per-namespace cap (50 retention rules) is shared: a repository's admin fills it with
    rules for their one repository, and the organization's owners can add no rule at all."""
    admin = api_client_for(world, "team admin")  # frank, admin of acme/priv-app only
    owner = api_client_for(world, "org owner")
    made = 0
    for i in range(60):
        answer = admin.post(
            RETENTION, {"repository": "priv-app", "tag_pattern": f"t{i}-*", "keep_most_recent": 1}, format="json"
        )
        if answer.status_code != 201:
            break
        made += 1
    wide = owner.post(RETENTION, {"repository": "*", "keep_most_recent": 10}, format="json")
    assert wide.status_code == 201, (made, wide.content)
    assert made == 10  # the repository admin's own allowance


def test_a_repository_admin_cannot_use_up_the_namespaces_immutable_tag_rules(world):
    """Likewise the 100 immutable-tag rules of a namespace: once one repository's admin has
    made them, the owners cannot make acme's release tags immutable."""
    admin = api_client_for(world, "team admin")
    owner = api_client_for(world, "org owner")
    made = 0
    for i in range(110):
        answer = admin.post(IMMUTABLE, {"pattern": f"t{i}-*", "repository": "priv-app"}, format="json")
        if answer.status_code != 201:
            break
        made += 1
    wide = owner.post(IMMUTABLE, {"pattern": "v*", "repository": "*"}, format="json")
    assert wide.status_code == 201, (made, wide.content)
    assert ImmutableTagRule.objects.filter(repository_pattern="*").exists()
    assert made == 10
    refused = admin.post(IMMUTABLE, {"pattern": "t99-*", "repository": "priv-app"}, format="json")
    assert refused.status_code == 400 and "at most 10" in str(refused.json())


def test_the_first_push_refusal_reads_as_written(world):
    """The 'another push is under way' refusal goes through policies._safe, which turns its ';'
    into '_': the docker CLI shows 'under way_ try again in a moment'."""
    from accounts.models import Namespace, User
    from repositories import policies
    from repositories.registry import get_issuer

    policies.immutable_rule_create(
        namespace=Namespace.objects.get(name="acme"), tag_pattern="v*", actor=User.objects.get(username="olga")
    )
    policies.FRONT_STATE.forget()
    grants = [{"type": "repository", "name": "acme/priv-app", "actions": ["pull", "push"]}]
    put = policies.FrontRequest("PUT", "/v2/acme/priv-app/manifests/v7", get_issuer().issue("olga", grants).token)
    assert policies.front_decision(put, registry_has_tag=lambda *_: False) is None
    second = policies.front_decision(put, registry_has_tag=lambda *_: False)
    assert second is not None and "under way_" not in second, second


@pytest.mark.parametrize(
    ("actor_name", "method", "path"),
    [
        ("anonymous", "post", "/api/v1/orgs/"),
        ("anonymous", "post", "/api/v1/namespaces/acme/immutable-tags/"),
        ("org owner", "post", RETENTION),
        ("org owner", "put", "/api/v1/namespaces/acme/storage/"),
        ("org owner", "post", "/api/v1/access-tokens/"),
        ("org owner", "patch", "/api/v1/repositories/acme/priv-app/"),
    ],
)
def test_json_nested_too_deeply_is_a_400_everywhere(world, actor_name, method, path):
    """Found by a README-only attack (helper-8): 1,000 nested arrays made Python's JSON decoder
    raise RecursionError, a 500 on every API endpoint, signed in or not."""
    client = api_client_for(world, actor_name)
    client.raise_request_exception = False
    body = '{"a":' + "[" * 5000 + "]" * 5000 + "}"
    answer = getattr(client, method)(path, data=body, content_type="application/json")
    assert answer.status_code == 400, (path, answer.status_code)
    assert "nested too deeply" in answer.json()["detail"]


def test_retention_never_plans_to_remove_an_immutable_tag(world):
    """Found by a README-only attack (helper-8): with protect_immutable off, the preview listed
    immutable tags that the run then kept (the delete refuses them): the preview was not the
    run. Immutable tags are always kept now."""
    from accounts.models import Namespace
    from repositories import retention
    from repositories.models import Manifest, Tag

    repo = world.repos["acme/priv-app"]
    for name in ("v1", "pr-1"):
        manifest = Manifest.objects.create(repository=repo, digest="sha256:" + name.encode().hex().ljust(64, "0"))
        Tag.objects.create(repository=repo, name=name, manifest=manifest)
    acme = Namespace.objects.get(name="acme")
    ImmutableTagRule.objects.create(namespace=acme, tag_pattern="v*")
    RetentionRule.objects.create(namespace=acme, keep_most_recent=0, protect_immutable=False, protect_verified=False)
    found = retention.plan(acme)
    assert found.remove_tags["priv-app"] == {"pr-1"}


def test_a_user_made_outside_the_services_gets_the_own_namespace_pages(db, client):
    """A user added in the admin (or with create_user) has no namespace until first need: the
    storage-and-policies and signing-keys pages answered 500 for them (helper-11)."""
    from accounts.models import User

    henry = User.objects.create_user(username="henry", password="a-long-enough-password-1")
    client.force_login(henry)
    assert client.get("/settings/policies/").status_code == 200
    assert client.get("/settings/signing-keys/").status_code == 200
    answer = client.post("/settings/policies/storage/", {"quota-quota_gib": "1"})
    assert answer.status_code == 302
