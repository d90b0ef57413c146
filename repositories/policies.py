"""Lifecycle policies enforced at the registry's front door (issue 16): immutable tags and
namespace quotas (repositories/storage.py).

The token server cannot enforce a tag rule (a token's scope names a repository, not a tag), so
nginx asks the portal (`front_decision`) before the few requests a policy covers reach the
registry: a manifest PUT, a manifest DELETE and the start of a blob upload. Everything else
goes straight through. The
answer costs two small queries and no registry round trip in the common case.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import threading
import time
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from accounts.models import Namespace
from audit.services import audit_record
from repositories import gc, storage
from repositories.access import pattern_matches, split_repository_name
from repositories.models import ImmutableTagRule, Tag

MANIFEST_PATH_RE = re.compile(r"^/v2/(?P<name>.+)/manifests/(?P<reference>[^/]+)$")
UPLOAD_PATH_RE = re.compile(r"^/v2/(?P<name>.+)/blobs/uploads/$")
BLOB_PATH_RE = re.compile(r"^/v2/(?P<name>.+)/blobs/(?P<digest>[^/]+)$")
DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
MAX_RULES_PER_NAMESPACE = 100
# A repository's admins (not the namespace's) may set at most this many rules for their
# repository, and never the namespace's last RESERVED_FOR_NAMESPACE_ADMINS: one repository's
# admins must not use up the room its owners need for namespace-wide policy.
MAX_RULES_PER_REPOSITORY_ADMIN = 10
RESERVED_FOR_NAMESPACE_ADMINS = 10


def check_repository_admin_room(model, namespace: Namespace, repository_name: str, field: str, limit: int) -> None:
    """Raise ValidationError when a repository's admin may not add another rule (see above)."""
    rules = model.objects.filter(namespace=namespace)
    if rules.filter(repository_pattern=repository_name).count() >= MAX_RULES_PER_REPOSITORY_ADMIN:
        raise ValidationError(
            {field: f"A repository's admins may set at most {MAX_RULES_PER_REPOSITORY_ADMIN} rules for it."}
        )
    if rules.count() >= limit - RESERVED_FOR_NAMESPACE_ADMINS:
        raise ValidationError({field: "The namespace's remaining rules are kept for its admins."})


SAFE_MESSAGE_RE = re.compile(r"[^A-Za-z0-9 ._*?()\[\]!/:,-]")


# --- rules -------------------------------------------------------------------------------------


def immutable_rule_create(
    *, namespace: Namespace, tag_pattern: str, repository_pattern: str = "*", actor, repository_admin: bool = False
):
    """Make tags matching `tag_pattern` (in repositories matching `repository_pattern`)
    immutable once they exist. Audited. `repository_admin`: asked by an admin of that one
    repository, not of the namespace (a smaller allowance)."""
    if repository_admin:
        check_repository_admin_room(
            ImmutableTagRule, namespace, (repository_pattern or "").strip(), "pattern", MAX_RULES_PER_NAMESPACE
        )
    rule = ImmutableTagRule(
        namespace=namespace,
        tag_pattern=(tag_pattern or "").strip(),
        repository_pattern=(repository_pattern or "*").strip() or "*",
        created_by=actor if getattr(actor, "pk", None) else None,
    )
    rule.full_clean(exclude=["namespace", "created_by"], validate_unique=False)
    if ImmutableTagRule.objects.filter(namespace=namespace).count() >= MAX_RULES_PER_NAMESPACE:
        raise ValidationError({"pattern": f"A namespace has at most {MAX_RULES_PER_NAMESPACE} immutable-tag rules."})
    try:
        with transaction.atomic():
            rule.save()
            audit_record(
                action="immutable_rule.add",
                actor=actor,
                target_name=f"{namespace.name}/{rule.repository_pattern}:{rule.tag_pattern}",
                namespace=namespace.name,
                data={"repository": rule.repository_pattern, "pattern": rule.tag_pattern},
            )
            forget_front_state()
    except IntegrityError:
        raise ValidationError({"pattern": "This rule exists already."}) from None
    return rule


def immutable_rule_delete(*, rule: ImmutableTagRule, actor) -> None:
    with transaction.atomic():
        audit_record(
            action="immutable_rule.delete",
            actor=actor,
            target_name=f"{rule.namespace.name}/{rule.repository_pattern}:{rule.tag_pattern}",
            namespace=rule.namespace.name,
            data={"repository": rule.repository_pattern, "pattern": rule.tag_pattern},
        )
        rule.delete()
        forget_front_state()


@dataclass(frozen=True)
class Rule:
    repository_pattern: str
    tag_pattern: str


def covering(rules, repository_name: str) -> list:
    """The rules (immutable-tag or retention, rows or Rule tuples) whose repository pattern
    covers this repository."""
    return [rule for rule in rules if pattern_matches(rule.repository_pattern, repository_name)]


def rules_for(namespace_name: str, repository_name: str) -> list[Rule]:
    """The immutable-tag rules that cover this repository (one small query: the front asks
    this for every manifest PUT)."""
    return covering(namespace_rules(namespace_name), repository_name)


def namespace_rules(namespace_name: str) -> list[Rule]:
    """Every immutable-tag rule of the namespace, oldest first (one small query)."""
    rows = (
        ImmutableTagRule.objects.filter(namespace__name=namespace_name)
        .order_by("pk")
        .values_list("repository_pattern", "tag_pattern")
    )
    return [Rule(repo, tag) for repo, tag in rows]


def immutable_rule(rules: list[Rule], tag_name: str) -> Rule | None:
    return next((rule for rule in rules if pattern_matches(rule.tag_pattern, tag_name)), None)


def immutable_tags(*, namespace_name: str, repository_name: str, tag_names) -> dict[str, str]:
    """{tag: the rule's pattern} for the tags given that are immutable (for the UI's marks)."""
    rules = rules_for(namespace_name, repository_name)
    if not rules:
        return {}
    found = {}
    for name in tag_names:
        rule = immutable_rule(rules, name)
        if rule is not None:
            found[name] = rule.tag_pattern
    return found


MAX_TAGS_CHECKED = 1000
MAX_INDEX_DEPTH = 8  # indexes inside indexes followed this deep (an image index holds images)
IMAGE_MANIFEST_TYPES = frozenset(
    {"application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json"}
)


@dataclass(frozen=True)
class TagGraph:
    """A repository's tags as the registry has them at one moment: what each points at, and the
    tags that reach each digest: a tag reaches its manifest and, when that is an index, every
    manifest the index lists, at any depth (deleting one of those breaks the tag's image)."""

    tags: dict[str, str]  # tag -> digest
    reach: dict[str, set[str]]  # digest -> tags

    def used_by(self, digest: str) -> list[str]:
        """The tags that reach `digest` only through an index (they break if it goes)."""
        return sorted(tag for tag in self.reach.get(digest, ()) if self.tags.get(tag) != digest)

    def on(self, digest: str) -> list[str]:
        """The tags that point at `digest` itself."""
        return sorted(tag for tag in self.reach.get(digest, ()) if self.tags.get(tag) == digest)

    def drop(self, digest: str) -> None:
        """`digest` was deleted, and with it the tags on it: what they reached, they reach no more."""
        for tag in self.on(digest):
            del self.tags[tag]
            for reached in self.reached.get(tag, ()):
                self.reach.get(reached, set()).discard(tag)

    @property
    def reached(self) -> dict[str, set[str]]:
        """{tag: the digests it reaches} (reach turned round; built once)."""
        found = self.__dict__.get("_reached")
        if found is None:
            found = {}
            for digest, tags in self.reach.items():
                for tag in tags:
                    found.setdefault(tag, set()).add(digest)
            object.__setattr__(self, "_reached", found)
        return found


def registry_graph(client, full_name: str, *, tag_filter=None, bounded: bool = True) -> TagGraph:
    """The TagGraph of the tags passing `tag_filter` (all when None). Raises RegistryError when
    the registry cannot answer; TagImmutable, when `bounded`, if more than MAX_TAGS_CHECKED tags
    are to be read (the front's check of a delete by digest, asked in a request)."""
    from repositories.registry.client import RegistryNotFound

    try:
        names = client.tags(full_name)
    except RegistryNotFound:
        return TagGraph({}, {})
    if tag_filter is not None:
        names = [tag for tag in names if tag_filter(tag)]
    if bounded and len(names) > MAX_TAGS_CHECKED:
        raise TagImmutable(f"{full_name} has too many protected tags to check a delete by digest; delete by tag")
    refs = client.head_many(full_name, names)
    return TagGraph({tag: ref.digest for tag, ref in refs.items()}, _reach(client, full_name, refs))


def _reach(client, full_name: str, refs: dict) -> dict[str, set[str]]:
    from repositories.registry.client import INDEX_TYPES, RegistryNotFound

    listed: dict[str, list[tuple[str, str]]] = {}  # index digest -> [(digest, media type)], read once

    def entries(digest: str) -> list[tuple[str, str]]:
        if digest not in listed:
            try:
                doc = client.get_manifest(full_name, digest)
            except RegistryNotFound:  # deleted meanwhile
                doc = None
            found = []
            for entry in (doc.data.get("manifests") or []) if doc is not None else []:
                if isinstance(entry, dict) and isinstance(entry.get("digest"), str):
                    found.append((entry["digest"], str(entry.get("mediaType") or "")))
            listed[digest] = found
        return listed[digest]

    def inner_indexes(level: set[str]) -> set[str]:
        # What an entry says it is, unless it says an image: an index that names another index
        # with some other type (or none) is still followed.
        return {
            digest for index in level for digest, media_type in entries(index) if media_type not in IMAGE_MANIFEST_TYPES
        }

    reach: dict[str, set[str]] = {}
    for tag, ref in refs.items():
        reach.setdefault(ref.digest, set()).add(tag)
        if ref.media_type not in INDEX_TYPES:
            continue
        for index in {ref.digest} | index_closure({ref.digest}, inner_indexes):
            for digest, _media_type in entries(index):
                reach.setdefault(digest, set()).add(tag)
    return reach


def index_closure(start: set[str], step) -> set[str]:
    """Every digest reached from `start` by `step` (a level of digests -> the next level: the
    indexes above them, or the indexes inside them), at most MAX_INDEX_DEPTH levels."""
    found: set[str] = set()
    level = set(start)
    for _depth in range(MAX_INDEX_DEPTH):
        level = set(step(level)) - found
        if not level:
            break
        found |= level
    return found


def manifest_ancestors(*, namespace_name: str, repository_name: str, digest: str) -> set[str]:
    """The indexes that list `digest`, at any depth, as the portal has them (one query a level)."""
    from repositories.models import IndexEntry

    in_repository = IndexEntry.objects.filter(
        index__repository__namespace__name=namespace_name, index__repository__name=repository_name
    )
    return index_closure(
        {digest}, lambda level: in_repository.filter(child__digest__in=level).values_list("index__digest", flat=True)
    )


def check_delete_digest(*, namespace_name: str, repository_name: str, digest: str, client) -> None:
    """Raise TagImmutable if deleting `digest` would remove an immutable tag or break one: a tag
    on it, or an index tagged immutable that lists it at any depth, as the registry has them now
    (the portal may not have heard of a push yet), or a push of an immutable tag on its way to
    the registry (guard_delete)."""
    rules = rules_for(namespace_name, repository_name)
    if not rules:
        return
    full_name = f"{namespace_name}/{repository_name}"
    graph = registry_graph(client, full_name, tag_filter=lambda tag: immutable_rule(rules, tag) is not None)
    for tag in sorted(graph.reach.get(digest, ())):
        rule = immutable_rule(rules, tag)
        if rule is not None:
            raise TagImmutable(denial(tag, rule))
    guard_delete(client, full_name, [digest], rules=rules)


class TagImmutable(Exception):
    """A push over, or a delete of, an immutable tag; the message names the rule."""


FIRST_PUSH_SECONDS = 10


def _reserve_first_push(full_name: str, tag: str) -> bool:
    """The first push of a tag a rule makes immutable holds it for FIRST_PUSH_SECONDS (long
    enough for the registry to store it, after which the registry itself says the tag exists):
    a second client's push of the same new tag meanwhile is refused rather than racing the first
    one to become the tag's only content. Without the cache (Redis away) nothing is held."""
    from django.core.cache import cache

    try:
        return bool(cache.add(_first_push_key(full_name, tag), 1, timeout=FIRST_PUSH_SECONDS))
    except Exception:
        return True


def _first_push_key(full_name: str, tag: str) -> str:
    return "first-push:" + hashlib.sha256(f"{full_name}:{tag}".encode()).hexdigest()


# --- writes in flight --------------------------------------------------------------------------
# A delete by digest and the push of an immutable tag onto that digest, at once: the delete's
# check reads the registry before the push lands, the push lands, the delete then removes the new
# tag. Neither check can see the other's request on its way (nginx asks before it forwards), so
# each marks its own in Redis first and then looks for the other's (both may be refused; never
# neither): a delete is refused while an immutable tag it cannot see in the registry is being
# pushed to the repository, and such a push is refused while a delete in the repository has not
# yet happened (its digest is still in the registry). Marks last IN_FLIGHT_SECONDS. Without Redis
# nothing is marked (as the first-push hold).

IN_FLIGHT_SECONDS = FIRST_PUSH_SECONDS


def _in_flight(kind: str, full_name: str, add: list[str], *, remove: bool = False) -> set[str]:
    """Mark (or, with remove, unmark) `add` as `kind` writes in flight in the repository; return
    the other kind's marks younger than IN_FLIGHT_SECONDS. Redis sorted sets scored by time."""
    from django.core.cache import cache

    other = "delete" if kind == "push" else "push"
    key = "in-flight:{}:" + hashlib.sha256(full_name.encode()).hexdigest()
    try:
        client = cache._cache.get_client(write=True)
        mine, theirs = (cache.make_and_validate_key(key.format(name)) for name in (kind, other))
        now = time.time()
        pipe = client.pipeline()
        if remove:
            pipe.zrem(mine, *add)
        else:
            pipe.zadd(mine, dict.fromkeys(add, now))
            pipe.zremrangebyscore(mine, "-inf", now - IN_FLIGHT_SECONDS)
            pipe.expire(mine, IN_FLIGHT_SECONDS + 1)
        pipe.zrangebyscore(theirs, now - IN_FLIGHT_SECONDS, "+inf")
        found = pipe.execute()[-1]
    except Exception:
        return set()
    return {item.decode() if isinstance(item, bytes) else str(item) for item in found}


def deletes_done(deleted: list[tuple[str, str]]) -> None:
    """The registry says these (repository, digest) deletes happened (its notifications): their
    marks go, so an immutable push of the same content (pushed again right after) is not taken
    for one racing a delete that has not happened yet."""
    for full_name, digest in deleted[:100]:
        _in_flight("delete", full_name, [digest], remove=True)


def guard_delete(client, full_name: str, digests: list[str], *, rules=None) -> None:
    """Before deleting `digests` from the repository (the front's delete by digest and the
    portal's own deletes): mark them in flight, and raise TagImmutable if an immutable tag is
    being pushed to the repository that the registry does not show yet, or that reaches one of
    them now. `client` None: no registry to ask (any such push refuses the delete)."""
    if not digests:
        return
    pushes = _in_flight("delete", full_name, list(digests))
    if not pushes:
        return
    namespace_name, repository_name = split_repository_name(full_name)
    rules = rules if rules is not None else rules_for(namespace_name, repository_name)
    try:
        graph = registry_graph(client, full_name, tag_filter=pushes.__contains__) if client is not None else None
        for tag in sorted(pushes):
            if graph is None or tag not in graph.tags:
                raise TagImmutable(
                    f"tag {tag} is being pushed to {full_name} (immutable), try the delete again in a moment"
                )
            rule = immutable_rule(rules, tag)
            if any(tag in graph.reach.get(digest, ()) for digest in digests) and rule is not None:
                raise TagImmutable(denial(tag, rule))
    except BaseException:
        _in_flight("delete", full_name, list(digests), remove=True)
        raise


def _guard_push(full_name: str, tag: str, client_factory) -> str | None:
    """The push side of guard_delete: mark the immutable tag's push in flight; a reason to
    refuse it if a delete by digest in the repository has not happened yet."""
    deletes = _in_flight("push", full_name, [tag])
    if not deletes:
        return None
    from repositories.registry.client import RegistryError

    try:
        pending = client_factory is None or bool(client_factory().head_many(full_name, sorted(deletes)))
    except RegistryError:
        pending = True
    if not pending:
        return None
    _in_flight("push", full_name, [tag], remove=True)
    _release_first_push(full_name, tag)
    return f"a delete in {full_name} is under way, push tag {tag} again in a moment"


def _release_first_push(full_name: str, tag: str) -> None:
    from django.core.cache import cache

    with contextlib.suppress(Exception):  # Redis away: the hold ends by itself
        cache.delete(_first_push_key(full_name, tag))


def denial(tag_name: str, rule: Rule) -> str:
    return f"tag {tag_name} is immutable (rule {rule.tag_pattern})"


def check_delete(*, namespace_name: str, repository_name: str, tags: list[str]) -> None:
    """Raise TagImmutable if deleting a digest that carries these tags would remove an
    immutable one (the portal's own deletes, and the front's)."""
    rules = rules_for(namespace_name, repository_name)
    for name in sorted(tags):
        rule = immutable_rule(rules, name)
        if rule is not None:
            raise TagImmutable(denial(name, rule))


# --- the front ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FrontRequest:
    method: str
    uri: str
    token: str  # the registry bearer token the client sent, or ''


def _grants(token: str, repository: str, action: str) -> bool:
    """Whether the request's own registry token allows `action` on `repository`. A request
    without one is refused by the registry anyway: the front says nothing about it (and so
    tells nobody which tags of a private repository exist)."""
    from repositories.registry import read_registry_token

    claims = read_registry_token(token) if token else None
    if not claims:
        return False
    for entry in claims.get("access") or []:
        if entry.get("type") != "repository" or entry.get("name") != repository:
            continue
        actions = entry.get("actions") or []
        # "*" grants every action at the registry (distribution's token access check), so
        # it is a push and a delete here too: `skopeo delete` asks for exactly that scope.
        if action in actions or "*" in actions:
            return True
    return False


def front_decision(request: FrontRequest, *, registry_has_tag=None, client_factory=None) -> str | None:
    """None to let the request through, else the registry-style DENIED message naming the rule.
    `registry_has_tag(name, tag)` answers whether the registry holds a tag the portal has not
    heard of yet (a push whose event is on its way); called only for tags a rule covers.
    `client_factory()` gives a registry client, for the same question about a delete by digest."""
    return front_verdict(request, registry_has_tag=registry_has_tag, client_factory=client_factory)[0]


def front_verdict(request: FrontRequest, *, registry_has_tag=None, client_factory=None) -> tuple[str | None, bool]:
    """front_decision's answer, and whether it is the same for every caller of this method and
    URI for the next FrontState.TTL seconds: true only for an upload start into a namespace under its
    quota with no hold, which nginx may then keep (X-Accel-Expires) instead of asking again for
    each blob of a push. It is not true of manifests: a tag becomes immutable by being pushed."""
    denied = _front_decision(request, registry_has_tag=registry_has_tag, client_factory=client_factory)
    if denied is not None or request.method != "POST":
        return denied, False
    upload = UPLOAD_PATH_RE.match(unquote(urlsplit(request.uri).path))
    namespace_name = split_repository_name(upload.group("name"))[0] if upload else ""
    shared = bool(namespace_name) and not FRONT_STATE.hold() and not FRONT_STATE.namespace(namespace_name).over_quota
    return None, shared


def _front_decision(request: FrontRequest, *, registry_has_tag=None, client_factory=None) -> str | None:
    try:
        path = unquote(urlsplit(request.uri).path)
    except ValueError:
        return None  # not a path nginx would send; the registry answers it
    if request.method == "DELETE" and BLOB_PATH_RE.match(path):
        # Deleting a blob breaks every image that has it; the registry's garbage collector
        # removes blobs no image references.
        return "blobs are removed by garbage collection: delete the image (its manifest) instead"
    if request.method in ("PUT", "DELETE", "POST") and path.startswith("/v2/") and FRONT_STATE.hold():
        return gc.MAINTENANCE_MESSAGE  # garbage collection holds every write
    upload = UPLOAD_PATH_RE.match(path)
    if upload is not None and request.method == "POST":
        # An upload starts (or a blob is mounted from another repository): the quota.
        namespace_name, _ = split_repository_name(upload.group("name"))
        if not namespace_name:
            return None
        quota = FRONT_STATE.namespace(namespace_name).over_quota
        if quota and _grants(request.token, upload.group("name"), "push"):
            return _safe(quota)
        return None
    match = MANIFEST_PATH_RE.match(path)
    if match is None or request.method not in ("PUT", "DELETE"):
        return None
    full_name, reference = match.group("name"), match.group("reference")
    namespace_name, repository_name = split_repository_name(full_name)
    if not namespace_name:
        return None
    state = FRONT_STATE.namespace(namespace_name)
    rules = covering(state.rules, repository_name)
    quota = state.over_quota if request.method == "PUT" else None
    if not rules and not quota:
        return None  # the common case: nothing to say, no token to read
    if (
        request.method == "PUT"
        and not quota
        and (DIGEST_RE.match(reference) or immutable_rule(rules, reference) is None)
    ):
        return None  # no rule covers this tag (or a push by digest, which moves none): nor the token
    action = "push" if request.method == "PUT" else "delete"
    if not _grants(request.token, full_name, action):
        return None  # the registry refuses it; nothing to add
    if quota:
        return _safe(quota)
    if not rules:
        return None
    if request.method == "PUT":
        if DIGEST_RE.match(reference):
            return None  # by digest: no tag moves
        rule = immutable_rule(rules, reference)
        if rule is None:
            return None
        known = Tag.objects.filter(
            repository__namespace__name=namespace_name, repository__name=repository_name, name=reference
        ).exists()
        if known or (registry_has_tag is not None and registry_has_tag(full_name, reference)):
            return _safe(denial(reference, rule))
        if not _reserve_first_push(full_name, reference):
            # Two clients pushing the same new immutable tag at once: the first wins.
            return _safe(f"{denial(reference, rule)}: another push of it is under way, try again in a moment")
        refused = _guard_push(full_name, reference, client_factory)
        return _safe(refused) if refused else None
    # DELETE: by digest (2.8) removes every tag on it, and breaks every index that has it as a
    # platform; by tag (3.x untags).
    try:
        if DIGEST_RE.match(reference):
            in_repository = Tag.objects.filter(
                repository__namespace__name=namespace_name, repository__name=repository_name
            )
            digests = {reference} | manifest_ancestors(
                namespace_name=namespace_name, repository_name=repository_name, digest=reference
            )
            tags = set(in_repository.filter(manifest__digest__in=digests).values_list("name", flat=True))
            check_delete(namespace_name=namespace_name, repository_name=repository_name, tags=sorted(tags))
            if client_factory is not None:  # what the portal has not heard of yet
                check_delete_digest(
                    namespace_name=namespace_name,
                    repository_name=repository_name,
                    digest=reference,
                    client=client_factory(),
                )
            else:
                guard_delete(None, full_name, [reference], rules=rules)
        else:
            check_delete(namespace_name=namespace_name, repository_name=repository_name, tags=[reference])
    except TagImmutable as exc:
        return _safe(str(exc))
    return None


@dataclass(frozen=True)
class NamespaceState:
    rules: tuple[Rule, ...]
    over_quota: str | None
    exists: bool = True  # a name nobody has is answered, but not kept warm


class FrontState:
    """What the front's checks read, per process: the GC hold, and per namespace its immutable-tag
    rules and whether it is over its quota. A check then costs no query in the common case.

    Changes made in this process are seen at once (forget). Other processes see them within
    TTL + STALE_LIMIT seconds (2 s). One background thread per process reads again, every half
    TTL, what the checks asked for in the last KEEP_WARM seconds, so that a busy front's checks
    do not wait for the database (under load, those waits were its p99); an entry older than
    TTL, by less than STALE_LIMIT, is answered from memory while the thread reads it. An older
    entry (the front was idle, the thread is stuck, the database away) is read in the request
    itself. (Quota usage itself is computed seconds after pushes.)"""

    TTL = 1.0
    STALE_LIMIT = 1.0
    KEEP_WARM = 10.0
    MAX_WARM = 1_000  # namespaces kept warm at most (existing ones only: names are the caller's)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        os.register_at_fork(after_in_child=self._after_fork)
        self._hold: tuple[float, bool] | None = None
        self._namespaces: dict[str, tuple[float, NamespaceState]] = {}
        self._pending: set[str | None] = set()  # None: the hold
        self._used: dict[str | None, float] = {}
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._epoch = 0  # forget() moves it: what was read before is not kept
        self.connected = False  # whether the thread holds a database connection now
        # Off: entries older than TTL are read in the request (the test suite, whose tests see
        # their own uncommitted rows, which another thread's connection would not).
        self.background = True

    def hold(self) -> bool:
        now = time.monotonic()
        self._touch(None, now)
        cached = self._hold
        if cached is not None and self._usable(cached[0], now, None):
            return cached[1]
        return self._read_hold()

    def namespace(self, name: str) -> NamespaceState:
        now = time.monotonic()
        self._touch(name, now)
        cached = self._namespaces.get(name)
        if cached is not None and self._usable(cached[0], now, name):
            return cached[1]
        return self._read_namespace(name)

    def forget(self) -> None:
        with self._lock:
            self._epoch += 1
            self._hold = None
            self._namespaces.clear()
            self._pending.clear()
            self._used.clear()
            self._wake.notify()

    def _usable(self, expires: float, now: float, key: str | None) -> bool:
        if now < expires:
            return True
        if self.background and now < expires + self.STALE_LIMIT:
            self._refresh_later(key)
            return True
        return False

    def _touch(self, key: str | None, now: float) -> None:
        if not self.background:
            return
        if key in self._used or len(self._used) < self.MAX_WARM:
            self._used[key] = now
        thread = self._thread
        if self._pid != os.getpid() or thread is None or not thread.is_alive():
            self._start()

    def _after_fork(self) -> None:
        """In a forked child (gunicorn's workers): the parent's thread is not here, and its lock
        may have been held at the fork."""
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._thread = None
        self._pid = 0
        self._pending = set()
        self._used = {}
        self.connected = False

    def _read_hold(self) -> bool:
        epoch = self._epoch
        value = gc.hold_active()
        with self._lock:
            if epoch == self._epoch:
                self._hold = (time.monotonic() + self.TTL, value)
        return value

    def _read_namespace(self, name: str) -> NamespaceState:
        epoch = self._epoch
        rules, quota = tuple(namespace_rules(name)), storage.over_quota(name)
        exists = bool(rules or quota) or Namespace.objects.filter(name=name).exists()
        state = NamespaceState(rules, quota, exists)
        with self._lock:
            if epoch == self._epoch:
                if len(self._namespaces) > 10_000:
                    self._namespaces.clear()
                self._namespaces[name] = (time.monotonic() + self.TTL, state)
        return state

    def _refresh_later(self, key: str | None) -> None:
        with self._lock:
            if key not in self._pending:
                self._pending.add(key)
                self._wake.notify()

    def _start(self) -> None:
        with self._lock:
            if self._pid == os.getpid() and self._thread is not None and self._thread.is_alive():
                return
            # Started on first use, and again after a fork (gunicorn's workers).
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._refresher, name="front-state", daemon=True)
            self._thread.start()

    def _due(self) -> set[str | None]:
        """Under the lock: what to read now (asked for, or warm and expiring within half a TTL)."""
        now = time.monotonic()
        due = set(self._pending)
        self._pending.clear()
        for key, used in list(self._used.items()):
            if now - used > self.KEEP_WARM:
                del self._used[key]
                continue
            entry = self._hold if key is None else self._namespaces.get(key)
            if entry is not None and key is not None and not entry[1].exists:
                del self._used[key]  # no such namespace: read when asked, never kept warm
                continue
            if entry is None or entry[0] - now < self.TTL / 2:
                due.add(key)
        return due

    def _refresher(self) -> None:
        from django.db import close_old_connections, connection

        while True:
            try:
                with self._lock:
                    due = self._due()
                    if not due:
                        if not self._used:
                            # Nothing warm: this thread keeps no database connection.
                            connection.close()
                            self.connected = False
                        self._wake.wait(self.TTL / 2)
                        continue
                close_old_connections()
                self.connected = True
                for key in due:
                    if key is None:
                        self._read_hold()
                    else:
                        self._read_namespace(key)
            except Exception:  # the database is away: the requests read it after STALE_LIMIT
                import logging

                logging.getLogger(__name__).warning("the front's state could not be read again", exc_info=True)
                time.sleep(self.TTL)


FRONT_STATE = FrontState()


def forget_front_state() -> None:
    """A rule, a quota or the GC hold changed: this process's front checks read them again (on
    commit, so that they read the change)."""
    transaction.on_commit(FRONT_STATE.forget)


def _safe(message: str) -> str:
    """nginx puts the message into a JSON string literal as it is: no quotes, no backslashes."""
    return SAFE_MESSAGE_RE.sub("_", message)[:300]
