"""THE feed table (issue 12, item 5): the fixed cast by every feed (API and pages) by the rows the
README promises. Every feed is the policy's feed: a row about a repository shows only to those
who may see the repository, rows that tell more than a reader may know (grants, webhooks) only
to its admins, and webhook URLs, which are credentials, never appear: the host at most."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.models import Level, Membership, Organization, Team, User
from accounts.services import membership_set
from audit.services import audit_record
from repositories.models import Repository
from repositories.services import grant_set
from tests.cast import CAST, build_cast
from webhooks.services import webhook_create

pytestmark = pytest.mark.django_db

SECRET_PATH = "T000/B000/SECRETXYZ"
R1 = "tag.push acme/priv-app:1.0"
R2 = "tag.push acme/pub-app:2.0"
R3 = "grant.set acme/pub-app"
R4 = "webhook.create ci → hooks.example.org"
R5 = "membership.add charlie in acme"
R6 = "grant.set acme/priv-app"
ROWS = [R1, R2, R3, R4, R5, R6]

MANAGERS = ["owner", "staff", "delete token", "token limited to the organization", "token expiring soon"]
MANAGERS += ["2FA owner with token"]
REFUSED = {"robot": 401, "expired token": 401, "2FA owner with password": 401, "owner password over Basic": 403}


def table(default, **cells):
    """One feed's column: every cast member's expected rows (a set) or status (an int)."""
    column = {name: default for name in CAST}
    column.update(REFUSED)
    for name in MANAGERS:
        column.setdefault(name, default)
    column.update({name.replace("_", " "): value for name, value in cells.items()})
    return column


ALL = set(ROWS)
FEEDS = {
    "/api/v1/orgs/acme/activity/": {
        **table(404),
        **dict.fromkeys(MANAGERS, frozenset(ALL)),
        "member": {R2, R5},
        "team member": {R1, R2, R5},
        "read token": {R1, R2, R5},  # reader rows of what it reads; admin rows need scope delete
        "write token": {R1, R2, R5},
        "token limited to one repository": 404,  # the organization lies outside its limits
    },
    "/api/v1/repositories/acme/pub-app/activity/": {
        **table({R2}),
        **dict.fromkeys(MANAGERS, frozenset({R2, R3})),
    },
    "/api/v1/repositories/acme/priv-app/activity/": {
        **table(404),
        **dict.fromkeys(MANAGERS, frozenset({R1, R6})),
        "team member": {R1},
        "read token": {R1},
        "write token": {R1},
        "token limited to one repository": {R1, R6},
    },
    "/api/v1/users/olga/activity/": {
        **table({R2}),
        **dict.fromkeys(MANAGERS, frozenset({R1, R2, R3, R6})),
        "team member": {R1, R2},
        "read token": {R1, R2},
        "write token": {R1, R2},
        "token limited to one repository": {R1, R2, R6},
    },
    "/api/v1/audit/?namespace=acme": {
        **table(set()),
        **dict.fromkeys(MANAGERS, frozenset(ALL)),
        "anonymous": 401,
        "read token": 403,  # an admin read: scope delete
        "write token": 403,
        "token limited to one repository": {R1, R6},  # that repository's rows, not the rest of acme
    },
}
for column in FEEDS.values():
    column.update(REFUSED)

PAGES = {  # the same feeds as pages, for the browser's callers
    "/u/acme/": {"anonymous": set(), "owner": ALL, "member": {R2, R5}, "team member": {R1, R2, R5}},
    "/u/olga/": {"anonymous": {R2}, "owner": {R1, R2, R3, R6}, "member": {R2}, "team member": {R1, R2}},
    "/r/acme/pub-app/": {"anonymous": {R2}, "owner": {R2, R3}, "member": {R2}, "team member": {R2}},
    "/r/acme/priv-app/": {"anonymous": 404, "owner": {R1, R6}, "member": 404, "team member": {R1}},
}
for column in PAGES.values():
    column.update({"outsider": column["anonymous"], "staff": column["owner"]})


@pytest.fixture
def cast(settings):
    cast = build_cast()
    olga = User.objects.get(username="olga")
    acme = Organization.objects.get(name="acme")
    for repository, tag, digest in (("acme/priv-app", "1.0", "a"), ("acme/pub-app", "2.0", "b")):
        # As sync.announce_push writes them.
        audit_record(
            action="tag.push",
            actor_name="olga",
            target_name=f"{repository}:{tag}",
            namespace="acme",
            repository=repository,
            data={"digest": f"sha256:{digest * 64}"},
        )
    pub, priv = Repository.objects.get(full_name="acme/pub-app"), Repository.objects.get(full_name="acme/priv-app")
    grant_set(repository=pub, level=Level.WRITE, actor=olga, team=Team.objects.get(organization=acme, name="writers"))
    webhook_create(actor=olga, organization=acme, name="ci", url=f"https://hooks.example.org/services/{SECRET_PATH}")
    membership_set(
        organization=acme, user=User.objects.get(username="charlie"), role=Membership.Role.MEMBER, actor=olga
    )
    grant_set(repository=priv, level=Level.READ, actor=olga, team=Team.objects.get(organization=acme, name="readers"))
    # charlie joined for R5 only: the outsider stays an outsider.
    Membership.objects.filter(user__username="charlie").delete()
    return cast


def test_the_tables_cover_the_cast():
    assert all(set(column) == set(CAST) for column in FEEDS.values())
    assert all(
        set(column) == {"anonymous", "owner", "member", "team member", "outsider", "staff"} for column in PAGES.values()
    )


def _rows(body: dict) -> set[str]:
    return {f"{row['action']} {row['target_name']}" for row in body["results"]} & set(ROWS)


@pytest.mark.parametrize("caller_name", CAST)
def test_api_feeds(cast, caller_name):
    _, callers = cast
    client = callers[caller_name].client()
    failures = []
    for path, column in FEEDS.items():
        response = client.get(path)
        assert SECRET_PATH not in response.content.decode()
        expected = column[caller_name]
        if isinstance(expected, int):
            if response.status_code != expected:
                failures.append(f"{path}: expected {expected}, got {response.status_code}")
        elif response.status_code != 200 or _rows(response.json()) != expected:
            got = _rows(response.json()) if response.status_code == 200 else response.status_code
            failures.append(f"{path}: expected {sorted(expected)}, got {got}")
    assert failures == []


@pytest.mark.parametrize("caller_name", ["anonymous", "owner", "member", "team member", "outsider", "staff"])
def test_page_feeds(cast, caller_name):
    client = Client()
    username = {"owner": "olga", "member": "bob", "team member": "dan", "outsider": "charlie", "staff": "sam"}
    if caller_name in username:
        client.force_login(User.objects.get(username=username[caller_name]))
    failures = []
    for path, column in PAGES.items():
        response = client.get(path)
        text = response.content.decode()
        assert SECRET_PATH not in text
        expected = column[caller_name]
        if isinstance(expected, int):
            if response.status_code != expected:
                failures.append(f"{path}: expected {expected}, got {response.status_code}")
            continue
        shown = {row for row in ROWS if f'data-event="{row}"' in text}
        if response.status_code != 200 or shown != expected:
            failures.append(f"{path}: expected {sorted(expected)}, got {sorted(shown)} ({response.status_code})")
    assert failures == []


def test_webhook_urls_reach_no_audit_row_but_their_administrators_see_them(cast):
    from audit.models import AuditEvent

    _, callers = cast
    assert not [e.pk for e in AuditEvent.objects.all() if SECRET_PATH in str(e.data) + e.target_name]
    hooks = callers["owner"].client().get("/api/v1/orgs/acme/webhooks/").json()
    assert SECRET_PATH in hooks[0]["url"]  # the webhook's own administrators see the whole URL
