"""The token server's memory of decisions (issue 17, repositories/generation.py) never outlives a
change to what the policy reads: database triggers move the policy generation, so every kind of
change, made through the ORM, QuerySet.update(), raw SQL or a `manage.py shell` in another
process, changes the very next token's answer. Per-use columns do not move it. SQLite's
triggers are checked too, on the embedded database of a fresh data directory."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.apps import apps
from django.conf import settings
from django.db import connection
from django.test import Client
from django.utils import timezone

from repositories.generation import DECISIONS, current
from repositories.registry import read_registry_token
from tests.conftest import PASSWORD, worker_env

ROOT = Path(__file__).resolve().parent.parent
WAYS = ["orm", "update", "raw", "shell"]


@dataclass
class Change:
    model: str  # app_label.Model
    op: str  # update | delete | create
    where: dict = field(default_factory=dict)
    values: dict = field(default_factory=dict)
    children: list[tuple[str, str]] = field(default_factory=list)  # (model, fk column) deleted first by raw SQL


@pytest.fixture
def cast(transactional_db, redis_server):
    from accounts.models import Membership
    from accounts.services import (
        access_token_create,
        membership_set,
        organization_create,
        robot_create,
        team_create,
        team_member_add,
        user_create,
    )
    from repositories.services import access_rule_create, grant_set, repository_create

    users = {name: user_create(username=name, password=PASSWORD) for name in ("olga", "mike", "tom", "otto", "mona")}
    org = organization_create(name="acme", owner=users["olga"])
    namespace = apps.get_model("accounts.Namespace").objects.get(name="acme")
    app = repository_create(namespace=namespace, name="app", actor_name="olga", visibility="private")
    pub = repository_create(namespace=namespace, name="pub", actor_name="olga", visibility="public")
    for name in ("mike", "tom", "mona"):
        membership_set(organization=org, user=users[name], role=Membership.Role.MEMBER, actor=users["olga"])
    devs = team_create(organization=org, name="devs", actor=users["olga"])
    team_member_add(team=devs, user=users["mike"], actor=users["olga"])
    rule = access_rule_create(organization=org, pattern="app*", level=20, actor=users["olga"], team=devs)
    ops = team_create(organization=org, name="ops", actor=users["olga"])
    team_member_add(team=ops, user=users["tom"], actor=users["olga"])
    grant = grant_set(repository=app, level=20, actor=users["olga"], team=ops)
    robot, robot_secret = robot_create(organization=org, name="ci", actor=users["olga"])
    access_rule_create(organization=org, pattern="*", level=20, actor=users["olga"], robot=robot)
    token, token_secret = access_token_create(user=users["mike"], name="ci", scope="write")
    return {
        **{name: user.pk for name, user in users.items()},
        "org": org.pk,
        "namespace": namespace.pk,
        "app": app.pk,
        "pub": pub.pk,
        "devs": devs.pk,
        "ops": ops.pk,
        "rule": rule.pk,
        "grant": grant.pk,
        "robot": robot.pk,
        "robot_secret": robot_secret,
        "token": token.pk,
        "token_secret": token_secret,
    }


PAST = "2000-01-01T00:00:00+00:00"
APP = "repository:acme/app:pull,push"

# kind: (username, secret (a cast key, or the password), scope, answer before, change, answer after)
KINDS = {
    "user deactivated": (
        "mike",
        PASSWORD,
        APP,
        ["pull", "push"],
        lambda c: Change("accounts.User", "update", {"id": c["mike"]}, {"is_active": False}),
        401,
    ),
    "user made staff": (
        "otto",
        PASSWORD,
        APP,
        [],
        lambda c: Change("accounts.User", "update", {"id": c["otto"]}, {"is_staff": True}),
        ["pull", "push"],
    ),
    "password changed": (
        "mike",
        PASSWORD,
        APP,
        ["pull", "push"],
        lambda c: Change("accounts.User", "update", {"id": c["mike"]}, {"password": "!unusable"}),
        401,
    ),
    "two-factor turned on": (
        "mike",
        PASSWORD,
        APP,
        ["pull", "push"],
        lambda c: Change("mfa.Authenticator", "create", values={"user_id": c["mike"], "type": "totp", "data": {}}),
        401,
    ),
    "token revoked": (
        "mike",
        "token_secret",
        APP,
        ["pull", "push"],
        lambda c: Change("accounts.PersonalAccessToken", "update", {"id": c["token"]}, {"revoked_at": PAST}),
        401,
    ),
    "token expired": (
        "mike",
        "token_secret",
        APP,
        ["pull", "push"],
        lambda c: Change("accounts.PersonalAccessToken", "update", {"id": c["token"]}, {"expires_at": PAST}),
        401,
    ),
    "token scope narrowed": (
        "mike",
        "token_secret",
        APP,
        ["pull", "push"],
        lambda c: Change("accounts.PersonalAccessToken", "update", {"id": c["token"]}, {"scope": "read"}),
        ["pull"],
    ),
    "token limited": (
        "mike",
        "token_secret",
        APP,
        ["pull", "push"],
        lambda c: Change("accounts.PersonalAccessToken", "update", {"id": c["token"]}, {"limits": ["elsewhere"]}),
        [],
    ),
    "robot disabled": (
        "acme+ci",
        "robot_secret",
        APP,
        ["pull", "push"],
        lambda c: Change("accounts.Robot", "update", {"id": c["robot"]}, {"is_active": False}),
        401,
    ),
    "member removed": (
        "mike",
        "token_secret",
        APP,
        ["pull", "push"],
        lambda c: Change("accounts.Membership", "delete", {"organization_id": c["org"], "user_id": c["mike"]}),
        [],
    ),
    "member made owner": (
        "mona",
        PASSWORD,
        APP,
        [],
        lambda c: Change(
            "accounts.Membership", "update", {"organization_id": c["org"], "user_id": c["mona"]}, {"role": "owner"}
        ),
        ["pull", "push"],
    ),
    "team deleted": (
        "tom",
        PASSWORD,
        APP,
        ["pull", "push"],
        lambda c: Change(
            "accounts.Team",
            "delete",
            {"id": c["ops"]},
            children=[("repositories.RepositoryGrant", "team_id"), ("accounts.TeamMembership", "team_id")],
        ),
        [],
    ),
    "team member removed": (
        "tom",
        PASSWORD,
        APP,
        ["pull", "push"],
        lambda c: Change("accounts.TeamMembership", "delete", {"team_id": c["ops"], "user_id": c["tom"]}),
        [],
    ),
    "grant added": (
        "mona",
        PASSWORD,
        APP,
        [],
        lambda c: Change(
            "repositories.RepositoryGrant",
            "create",
            values={"repository_id": c["app"], "user_id": c["mona"], "level": 10},
        ),
        ["pull"],
    ),
    "grant lowered": (
        "tom",
        PASSWORD,
        APP,
        ["pull", "push"],
        lambda c: Change("repositories.RepositoryGrant", "update", {"id": c["grant"]}, {"level": 10}),
        ["pull"],
    ),
    "rule changed": (
        "mike",
        PASSWORD,
        APP,
        ["pull", "push"],
        lambda c: Change("repositories.AccessRule", "update", {"id": c["rule"]}, {"pattern": "web*"}),
        [],
    ),
    "repository made public": (
        "",
        "",
        "repository:acme/app:pull",
        [],
        lambda c: Change("repositories.Repository", "update", {"id": c["app"]}, {"visibility": "public"}),
        ["pull"],
    ),
    "repository deleted": (
        "",
        "",
        "repository:acme/pub:pull",
        ["pull"],
        lambda c: Change("repositories.Repository", "delete", {"id": c["pub"]}),
        [],
    ),
    "namespace renamed": (
        "olga",
        PASSWORD,
        APP,
        ["pull", "push"],
        lambda c: Change("accounts.Namespace", "update", {"id": c["namespace"]}, {"name": "acme-old"}),
        [],
    ),
    "garbage collection holds writes": (
        "olga",
        PASSWORD,
        APP,
        ["pull", "push"],
        lambda c: Change(
            "repositories.GcRun", "create", values={"status": "holding", "output": "", "requested_by": "test"}
        ),
        ["pull"],
    ),
}


def ask(username: str, secret: str, scope: str):
    client = Client()
    headers = {}
    if username:
        headers["HTTP_AUTHORIZATION"] = "Basic " + base64.b64encode(f"{username}:{secret}".encode()).decode()
    response = client.get("/auth/token", {"service": settings.REGISTRY_SERVICE, "scope": scope}, **headers)
    if response.status_code != 200:
        return response.status_code
    access = read_registry_token(response.json()["token"])["access"]
    return sorted(access[0]["actions"]) if access else []


def _prepared(model, values: dict) -> dict:
    out = {}
    for name, value in values.items():
        f = model._meta.get_field(name.removesuffix("_id")) if name.endswith("_id") else model._meta.get_field(name)
        if isinstance(value, str) and f.get_internal_type() == "DateTimeField":
            value = dt.datetime.fromisoformat(value)
        out[name] = value
    return out


def apply(change: Change, way: str) -> None:
    model = apps.get_model(change.model)
    values = _prepared(model, change.values)
    if way == "orm":
        if change.op == "update":
            for obj in model.objects.filter(**change.where):
                for name, value in values.items():
                    setattr(obj, name, value)
                obj.save()
        elif change.op == "delete":
            for obj in model.objects.filter(**change.where):
                obj.delete()
        else:
            model.objects.create(**values)
    elif way == "update":
        if change.op == "update":
            model.objects.filter(**change.where).update(**values)
        elif change.op == "delete":
            model.objects.filter(**change.where).delete()
        else:
            model.objects.bulk_create([model(**values)])
    elif way == "raw":
        table = model._meta.db_table
        with connection.cursor() as cursor:
            if change.op == "create":
                obj = model(**values)
                fields = [f for f in model._meta.concrete_fields if not f.primary_key]
                params = [f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields]
                columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
                marks = ", ".join(["%s"] * len(fields))
                cursor.execute(f"INSERT INTO {table} ({columns}) VALUES ({marks})", params)
                return
            pks = list(model.objects.filter(**change.where).values_list("pk", flat=True))
            assert pks
            if change.op == "update":
                sets, params = [], []
                for name, value in values.items():
                    f = model._meta.get_field(name.removesuffix("_id") if name.endswith("_id") else name)
                    sets.append(f"{connection.ops.quote_name(f.column)} = %s")
                    params.append(f.get_db_prep_save(value, connection))
                cursor.execute(f"UPDATE {table} SET {', '.join(sets)} WHERE id = ANY(%s)", [*params, pks])
            else:
                for child, column in change.children:
                    cursor.execute(
                        f"DELETE FROM {apps.get_model(child)._meta.db_table} WHERE {column} = ANY(%s)", [pks]
                    )
                cursor.execute(f"DELETE FROM {table} WHERE id = ANY(%s)", [pks])
    else:  # another process: manage.py shell
        spec = json.dumps({"model": change.model, "op": change.op, "where": change.where, "values": change.values})
        code = (
            "import json\n"
            "from django.apps import apps\n"
            f"spec = json.loads({spec!r})\n"
            "m = apps.get_model(spec['model'])\n"
            "if spec['op'] == 'update': m.objects.filter(**spec['where']).update(**spec['values'])\n"
            "elif spec['op'] == 'delete': m.objects.filter(**spec['where']).delete()\n"
            "else: m.objects.create(**spec['values'])\n"
        )
        env = worker_env(
            redis_url=settings.CELERY_BROKER_URL,
            registry_url="http://127.0.0.1:9",  # not asked
            data_dir=Path(settings.TOKEN_KEY_DIR).parent,
        )
        done = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", code],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("kind", list(KINDS))
def test_every_kind_of_change_made_any_way_changes_the_next_answer(cast, settings, kind, way):
    settings.TOKEN_DECISION_CACHE_SECONDS = 60
    username, secret, scope, before, change, after = KINDS[kind]
    secret = cast.get(secret, secret)
    assert ask(username, secret, scope) == before
    hits = DECISIONS.hits
    assert ask(username, secret, scope) == before
    assert DECISIONS.hits == hits + 1  # the second answer came from memory
    generation = current()
    apply(change(cast), way)
    assert current() > generation
    assert ask(username, secret, scope) == after


def test_a_remembered_answer_reads_one_row_and_per_use_columns_do_not_forget_it(
    cast, settings, django_assert_num_queries
):
    from accounts.models import PersonalAccessToken, Robot, User
    from repositories.models import Repository

    settings.TOKEN_DECISION_CACHE_SECONDS = 60
    secret = cast["token_secret"]
    assert ask("mike", secret, APP) == ["pull", "push"]
    with django_assert_num_queries(1):  # the generation
        assert ask("mike", secret, APP) == ["pull", "push"]
    generation = current()
    now = timezone.now()
    PersonalAccessToken.objects.filter(pk=cast["token"]).update(last_used_at=now)
    Robot.objects.filter(pk=cast["robot"]).update(last_used_at=now)
    User.objects.filter(pk=cast["mike"]).update(last_login=now)
    Repository.objects.filter(pk=cast["app"]).update(pull_count=7, last_pushed_at=now, updated_at=now, star_count=1)
    assert current() == generation
    # A wrong secret is never remembered: it is refused, counted and audited every time.
    assert ask("mike", secret[:-1] + ("A" if secret[-1] != "A" else "B"), APP) == 401
    # last_used_at is still kept current (to the minute) for a remembered token.
    PersonalAccessToken.objects.filter(pk=cast["token"]).update(last_used_at=now - dt.timedelta(hours=1))
    for decision in DECISIONS._entries.values():
        decision.touched -= 3600
    assert ask("mike", secret, APP) == ["pull", "push"]
    assert PersonalAccessToken.objects.get(pk=cast["token"]).last_used_at > now - dt.timedelta(minutes=1)


def test_a_remembered_password_is_still_throttled(cast, settings):
    """A throttled guesser must not learn the right password from a remembered answer."""
    settings.TOKEN_DECISION_CACHE_SECONDS = 60
    assert ask("mike", PASSWORD, APP) == ["pull", "push"]
    for _ in range(settings.AUTH_FAILURES_PER_USERNAME + 1):
        assert ask("mike", "wrong guess", APP) in (401, 429)
    assert ask("mike", PASSWORD, APP) == 429
    assert ask("mike", cast["token_secret"], APP) == ["pull", "push"]  # a 256-bit token is not throttled


def test_an_expiring_token_is_not_remembered_past_its_expiry(cast, settings):
    from accounts.models import PersonalAccessToken

    settings.TOKEN_DECISION_CACHE_SECONDS = 60
    secret = cast["token_secret"]
    PersonalAccessToken.objects.filter(pk=cast["token"]).update(expires_at=timezone.now() + dt.timedelta(seconds=1))
    assert ask("mike", secret, APP) == ["pull", "push"]
    (decision,) = DECISIONS._entries.values()
    assert decision.until - time.monotonic() <= 1.0


def embedded(tmp_path):
    """`manage.py …` on the embedded database (SQLite) of a fresh data directory."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")}
    env.update(DOCKYARD_DATA_DIR=str(tmp_path / "data"), DJANGO_SETTINGS_MODULE="portal.settings")

    def run(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
        )

    return run


def test_sqlite_triggers_move_the_generation(tmp_path):
    """The embedded database: the same triggers, checked on a fresh data directory."""
    run = embedded(tmp_path)
    migrate = run("migrate", "-v0")
    assert migrate.returncode == 0, migrate.stderr[-2000:]
    code = """
from django.db import connection
from django.utils import timezone
from accounts.models import PersonalAccessToken, User
from accounts.services import access_token_create, user_create
from repositories.generation import current
assert connection.vendor == "sqlite"
moves = []
def step(what, fn, moves_it=True):
    before = current()
    fn()
    after = current()
    assert (after > before) == moves_it, (what, before, after)
    moves.append(what)
user = step("create user", lambda: user_create(username="sam", password="pw"))
sam = User.objects.get(username="sam")
step("deactivate (update)", lambda: User.objects.filter(pk=sam.pk).update(is_active=False))
def raw():
    with connection.cursor() as cursor:
        cursor.execute("UPDATE accounts_user SET is_staff = 1 WHERE id = %s", [sam.pk])
step("staff (raw SQL)", raw)
step("last_login (per use)", lambda: User.objects.filter(pk=sam.pk).update(last_login=timezone.now()), moves_it=False)
token, _ = access_token_create(user=sam, name="t", scope="write")
tokens = PersonalAccessToken.objects.filter(pk=token.pk)
step("last_used_at (per use)", lambda: tokens.update(last_used_at=timezone.now()), moves_it=False)
step("revoke", lambda: PersonalAccessToken.objects.filter(pk=token.pk).update(revoked_at=timezone.now()))
step("delete", lambda: PersonalAccessToken.objects.filter(pk=token.pk).delete())
print("OK", len(moves))
"""
    done = run("shell", "-c", code)
    assert done.returncode == 0 and "OK 7" in done.stdout, done.stdout + done.stderr[-3000:]


def test_a_decision_made_under_an_older_generation_is_never_served_under_a_newer_one():
    """A thread that read the number before a change (and decided on the old rows) must not have
    its decision served to a reader of the new number; a database restored from a backup (a
    lower number) starts afresh too."""
    from repositories.generation import Decision, Decisions

    key = (b"k", ())
    old = Decision(actor_name="mike", grants=[{"name": "acme/app", "actions": ["pull", "push"]}], until=1e18)
    decisions = Decisions()
    assert decisions.get(7, key) is None  # the number is 7: a revocation is committed
    assert decisions.get(6, key) is None  # a reader that started before it
    decisions.put(6, key, old)  # its decision, made on the old rows
    assert decisions.get(7, key) is None
    decisions.put(9, key, old)
    assert decisions.get(9, key) is old
    assert decisions.get(3, key) is None  # restored from a backup: nothing from before
    assert decisions.get(9, key) is None


def test_memory_stays_bounded_whatever_callers_ask():
    """Anyone may ask for a token (anonymous pulls are remembered too): requests with many scopes
    are not kept, and the entries are capped."""
    import random
    import string
    import tracemalloc

    from repositories.generation import Decision, Decisions
    from repositories.registry.token import parse_scopes

    def name(k: int) -> str:
        return "".join(random.choices(string.ascii_lowercase, k=k))

    decisions = Decisions()
    many = tuple(parse_scopes([f"repository:{name(100)}/{name(150)}:pull,push" for _ in range(16)]))
    decisions.put(1, (b"x", many), Decision(actor_name="", grants=[], until=1e18))
    assert decisions._entries == {}  # more than MAX_SCOPES: decided afresh every time
    tracemalloc.start()
    n = 1000
    for _ in range(n):
        scopes = tuple(parse_scopes([f"repository:{name(100)}/{name(150)}:pull,push,delete,*" for _ in range(4)]))
        grants = [{"type": s.type, "name": s.name, "actions": []} for s in scopes]
        decisions.put(1, (os.urandom(32), scopes), Decision(actor_name="", grants=grants, until=1e18))
    used, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert used / n * Decisions.MAX_ENTRIES < 50e6, f"{used / n * Decisions.MAX_ENTRIES / 1e6:.0f} MB"
    for i in range(Decisions.MAX_ENTRIES + 10):
        decisions.put(1, (i.to_bytes(4, "big"), ()), Decision(actor_name="", grants=[], until=1e18))
    assert len(decisions._entries) <= Decisions.MAX_ENTRIES


def test_the_key_cannot_be_confused_by_separator_bytes():
    from repositories.generation import Decisions

    assert Decisions.key("basic", "alice\0x", "y", ()) != Decisions.key("basic", "alice", "x\0y", ())
    assert Decisions.key("basic", "", "", ()) != Decisions.key("anonymous", "", "", ())


def test_a_table_rebuild_takes_triggers_away_until_migrate_puts_them_back(tmp_path):
    """SQLite rebuilds a table for most schema changes (copy, DROP, rename), which drops its
    triggers: meanwhile the token server remembers nothing (current() is None), and the next
    `migrate` (post_migrate) puts them back."""
    run = embedded(tmp_path)
    assert run("migrate", "-v0").returncode == 0
    rebuild = """
import copy
from django.db import connection
from accounts.models import Robot
from repositories.generation import current, missing_triggers
old = Robot._meta.get_field("description")
new = copy.deepcopy(old); new.max_length = 400   # what a later AlterField migration does on SQLite
with connection.schema_editor() as editor:
    editor.alter_field(Robot, old, new)
print("MISSING", missing_triggers())
print("CURRENT", current())
"""
    done = run("shell", "-c", rebuild)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "accounts_robot" in done.stdout and "CURRENT None" in done.stdout, done.stdout
    assert run("migrate", "-v0").returncode == 0
    check = """
from accounts.models import Organization, Robot, User
from accounts.services import organization_create, robot_create, user_create
from repositories.generation import current, missing_triggers
assert missing_triggers() == [], missing_triggers()
olga = user_create(username="olga", password="pw")
org = organization_create(name="acme", owner=olga)
robot, _ = robot_create(organization=org, name="ci", actor=olga)
before = current()
Robot.objects.filter(pk=robot.pk).update(is_active=False)
print("MOVED" if current() > before else "STUCK")
"""
    done = run("shell", "-c", check)
    assert done.returncode == 0 and "MOVED" in done.stdout, done.stdout + done.stderr[-3000:]
