import pytest

from repositories.registry.token import Scope, ScopeError, generate_signing_key, libtrust_key_id, parse_scopes


def test_scopes_may_repeat_and_share_one_value():
    scopes = parse_scopes(["repository:acme/api:pull repository:acme/web:pull,push", "registry:catalog:*"])
    assert scopes == [
        Scope("repository", "acme/api", ("pull",)),
        Scope("repository", "acme/web", ("pull", "push")),
        Scope("registry", "catalog", ("*",)),
    ]


def test_scopes_for_one_repository_are_merged():
    assert parse_scopes(["repository:a/b:pull", "repository:a/b:push,pull"]) == [
        Scope("repository", "a/b", ("pull", "push"))
    ]


def test_actions_are_split_off_from_the_right_so_host_port_names_parse():
    # A name with a host:port colon fails the grammar, but must fail as a name, not as actions.
    with pytest.raises(ScopeError, match="invalid repository name 'localhost:5000/a'"):
        parse_scopes(["repository:localhost:5000/a:pull"])


@pytest.mark.parametrize(
    "bad",
    [
        "repository",
        "repository:acme/api",
        "repository:acme/api:",
        "repository::pull",
        "blob:acme/api:pull",
        "repository:acme/api:steal",
        "repository:Acme/API:pull",
        "registry:catalog:pull",
        "registry:other:*",
        "repository:" + "a" * 300 + ":pull",
    ],
)
def test_malformed_scopes_are_refused(bad):
    with pytest.raises(ScopeError):
        parse_scopes([bad])


def test_too_many_scopes_are_refused():
    with pytest.raises(ScopeError, match="at most"):
        parse_scopes([" ".join(f"repository:a/r{i}:pull" for i in range(17))])


def test_libtrust_key_id_has_twelve_groups_of_four():
    kid = libtrust_key_id(generate_signing_key().private_key.public_key())
    groups = kid.split(":")
    assert len(groups) == 12
    assert all(len(g) == 4 and g.isalnum() and g.upper() == g for g in groups)
