"""Database constraints hold even when code bypasses validation."""

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from accounts.models import Level, Namespace, Organization
from accounts.services import organization_create, user_create
from repositories.models import Manifest, Repository, RepositoryGrant, Tag

pytestmark = pytest.mark.django_db


def test_user_gets_a_personal_namespace(alice):
    ns = Namespace.objects.get(name="alice")
    assert ns.kind == Namespace.Kind.USER
    assert ns.user == alice


def test_users_and_organizations_share_one_name_space(alice):
    with pytest.raises(ValidationError):
        organization_create(name="alice", owner=alice)
    organization_create(name="acme", owner=alice)
    with pytest.raises(ValidationError):
        user_create(username="acme", password="x" * 12)


def test_namespace_must_have_exactly_one_owner(alice):
    org = Organization.objects.create(name="lonely")
    with pytest.raises(IntegrityError), transaction.atomic():
        Namespace.objects.create(name="both", kind="user", user=alice, organization=org)
    with pytest.raises(IntegrityError), transaction.atomic():
        Namespace.objects.create(name="nobody", kind="org")


def test_repository_name_follows_distribution_grammar(alice):
    ns = Namespace.objects.get(name="alice")
    Repository.objects.create(namespace=ns, name="team/app-1")
    for bad in ["Upper", "trailing-", "a//b", "-lead", "sp ace"]:
        with pytest.raises(IntegrityError), transaction.atomic():
            Repository.objects.create(namespace=ns, name=bad)


def test_repository_names_are_unique_per_namespace(alice):
    ns = Namespace.objects.get(name="alice")
    Repository.objects.create(namespace=ns, name="app")
    with pytest.raises(IntegrityError), transaction.atomic():
        Repository.objects.create(namespace=ns, name="app")


def test_tag_is_unique_in_repository_and_follows_grammar(alice):
    repo = Repository.objects.create(namespace=Namespace.objects.get(name="alice"), name="app")
    manifest = Manifest.objects.create(repository=repo, digest="sha256:" + "a" * 64, media_type="x")
    Tag.objects.create(repository=repo, name="1.0", manifest=manifest)
    with pytest.raises(IntegrityError), transaction.atomic():
        Tag.objects.create(repository=repo, name="1.0", manifest=manifest)
    with pytest.raises(IntegrityError), transaction.atomic():
        Tag.objects.create(repository=repo, name=".hidden", manifest=manifest)


def test_manifest_digest_must_look_like_a_digest(alice):
    repo = Repository.objects.create(namespace=Namespace.objects.get(name="alice"), name="app")
    with pytest.raises(IntegrityError), transaction.atomic():
        Manifest.objects.create(repository=repo, digest="not a digest", media_type="x")


def test_grant_has_exactly_one_holder_and_a_valid_level(alice):
    repo = Repository.objects.create(namespace=Namespace.objects.get(name="alice"), name="app")
    with pytest.raises(IntegrityError), transaction.atomic():
        RepositoryGrant.objects.create(repository=repo, level=Level.READ)
    with pytest.raises(IntegrityError), transaction.atomic():
        RepositoryGrant.objects.create(repository=repo, user=alice, level=99)
    RepositoryGrant.objects.create(repository=repo, user=alice, level=Level.WRITE)
    with pytest.raises(IntegrityError), transaction.atomic():
        RepositoryGrant.objects.create(repository=repo, user=alice, level=Level.READ)
