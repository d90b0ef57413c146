"""The version order of tag names (issue 15, item 4), property-tested against a reference
written from the README's rules, and through the API on PostgreSQL whatever its collation."""

from __future__ import annotations

import pytest
from django.db import connection
from hypothesis import given, settings
from hypothesis import strategies as st

from repositories.versions import version_sort_key

PRERELEASE_WORDS = ["alpha", "beta", "rc", "pre", "preview", "dev", "snapshot", "canary", "nightly", "milestone"]
VARIANTS = ["alpine", "slim", "bookworm", "windowsservercore", "debian-12", "jdk17", "fpm"]
OTHERS = ["latest", "edge", "main", "stable", "master", "nightly-build", "x", "feature-login"]

numbers = st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=4)
prerelease = st.tuples(
    st.sampled_from(PRERELEASE_WORDS),
    st.lists(st.one_of(st.integers(0, 30).map(str), st.sampled_from(["a", "b", "x", "build"])), max_size=2),
)


@st.composite
def version_names(draw) -> tuple[str, tuple]:
    """(tag name, its meaning) for names of the forms the README describes."""
    parts = draw(numbers)
    prefix = draw(st.sampled_from(["", "v"]))
    kind = draw(st.sampled_from(["plain", "variant", "pre"]))
    name = prefix + ".".join(map(str, parts))
    if kind == "variant":
        suffix = draw(st.sampled_from(VARIANTS))
        return f"{name}-{suffix}", (tuple(parts), 1, suffix)
    if kind == "pre":
        word, rest = draw(prerelease)
        identifiers = [word, *rest]
        return f"{name}-{'.'.join(identifiers)}", (tuple(parts), 2, tuple(identifiers))
    return name, (tuple(parts), 0, None)


def semver_identifiers_cmp(a: tuple, b: tuple) -> int:
    """SemVer 2.0.0 §11 precedence of pre-release identifiers (-1: a is lower)."""
    for x, y in zip(a, b, strict=False):
        if x == y:
            continue
        if x.isdigit() and y.isdigit():
            return -1 if int(x) < int(y) else 1
        if x.isdigit() != y.isdigit():
            return -1 if x.isdigit() else 1  # numbers have lower precedence than words
        return -1 if x < y else 1
    return (len(a) > len(b)) - (len(a) < len(b))


def listed_before(a: tuple, b: tuple) -> int:
    """The README's order, newest first: -1 if a is listed before b, 0 if they tie."""
    (nums_a, kind_a, extra_a), (nums_b, kind_b, extra_b) = a, b
    if nums_a != nums_b:
        return -1 if nums_a > nums_b else 1  # (1, 2, 1) > (1, 2, 0) > (1, 2)
    if kind_a != kind_b:
        return -1 if kind_a < kind_b else 1  # the plain version, its builds, its pre-releases
    if kind_a == 1:
        return (extra_a > extra_b) - (extra_a < extra_b)
    if kind_a == 2:
        return -semver_identifiers_cmp(extra_a, extra_b)  # higher pre-release first
    return 0


@given(version_names(), version_names())
@settings(max_examples=2000, deadline=None)
def test_versions_list_in_the_readme_order(a, b):
    (name_a, meaning_a), (name_b, meaning_b) = a, b
    expected = listed_before(meaning_a, meaning_b)
    key_a, key_b = version_sort_key(name_a), version_sort_key(name_b)
    got = (key_a > key_b) - (key_a < key_b)
    if expected == 0:
        assert got == 0 or name_a.lstrip("v") == name_b.lstrip("v"), (name_a, name_b)
    else:
        assert got == expected, (name_a, name_b)


@given(version_names())
def test_a_leading_v_is_ignored(a):
    name, _ = a
    bare = name.removeprefix("v")
    assert version_sort_key("v" + bare) == version_sort_key(bare) == version_sort_key("V" + bare)


@given(version_names(), st.one_of(st.sampled_from(OTHERS), st.from_regex(r"\A[a-uw-z_][a-z0-9_.-]{0,20}\Z")))
def test_names_that_are_not_versions_come_after_every_version(a, other):
    assert version_sort_key(a[0]) < version_sort_key(other)


@given(st.from_regex(r"\A[a-zA-Z0-9_][a-zA-Z0-9_.-]{0,127}\Z"))
@settings(max_examples=1000)
def test_every_tag_name_has_a_key_that_fits(name):
    """Any name the registry accepts, including 128-digit numbers (which once overflowed the
    two-digit count of digits), gets a key the column holds."""
    key = version_sort_key(name)
    assert 0 < len(key) <= 512


def test_long_numbers_compare_as_numbers():
    assert version_sort_key("1" + "0" * 120) < version_sort_key("1" + "0" * 100) < version_sort_key("9" * 99)
    assert version_sort_key("9" * 99) < version_sort_key("9" * 98)


def test_the_examples_of_the_issue():
    names = ["latest", "1.9", "v1.10", "2.0.0-rc.1", "2.0.0", "2.0.0-alpine", "edge", "main", "2.0.0-rc.2", "1.10.1"]
    assert sorted(names, key=lambda n: (version_sort_key(n), n)) == [
        "2.0.0",
        "2.0.0-alpine",
        "2.0.0-rc.2",
        "2.0.0-rc.1",
        "1.10.1",
        "v1.10",
        "1.9",
        "edge",
        "latest",
        "main",
    ]


# --- in the database ---------------------------------------------------------------------------

NAMES = ["latest", "1.9", "v1.10", "2.0.0-rc.1", "2.0.0", "2.0.0-alpine", "edge", "2.0.0-rc.10", "1.10.1", "10.0"]


@pytest.mark.django_db
def test_the_api_lists_by_version_in_pages(alice):
    from rest_framework.test import APIClient

    from repositories.models import Manifest, Repository, Tag

    repository = Repository.objects.create(namespace=alice.namespace, name="ordered", visibility="public")
    manifest = Manifest.objects.create(repository=repository, digest="sha256:" + "1" * 64, media_type="x")
    Tag.objects.bulk_create([Tag(repository=repository, name=name, manifest=manifest) for name in NAMES])
    expected = sorted(NAMES, key=lambda n: (version_sort_key(n), n))
    client, seen, url = APIClient(), [], "/api/v1/repositories/alice/ordered/tags/?ordering=version&page_size=3"
    while url:
        page = client.get(url).json()
        seen += [row["name"] for row in page["results"]]
        url = page["next"]
    assert seen == expected


@pytest.mark.django_db
def test_postgresql_compares_the_key_byte_by_byte():
    """A linguistic collation (the default of most PostgreSQL installations) scrambles the key;
    the column is compared in "C" whatever the database's default."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite compares bytes")
    keys = [version_sort_key(n) for n in [*NAMES, "1.0-rc.z", "1.0-rc.p", "1.0-rc.j", "1.0-beta"]]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT collation_name FROM information_schema.columns "
            "WHERE table_name = 'repositories_tag' AND column_name = 'version_key'"
        )
        assert cursor.fetchone()[0] == "C"
        cursor.execute("SELECT 1 FROM pg_collation WHERE collname = 'en-x-icu'")
        if cursor.fetchone():
            cursor.execute('SELECT k FROM unnest(%s::text[]) k ORDER BY k COLLATE "en-x-icu"', [keys])
            linguistic = [row[0] for row in cursor.fetchall()]
            assert linguistic != sorted(keys), "the linguistic order would have been right anyway"
