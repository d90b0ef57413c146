"""Lifecycle policies enforced at the registry's front door (issue 16): immutable tags and
namespace quotas (repositories/storage.py).

The token server cannot enforce a tag rule (a token's scope names a repository, not a tag), so
nginx asks the portal (`front_decision`) before the few requests a policy covers reach the
registry: a manifest PUT, a manifest DELETE and the start of a blob upload. Everything else
goes straight through. The
answer costs two small queries and no registry round trip in the common case.
"""

from __future__ import annotations

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
SAFE_MESSAGE_RE = re.compile(r"[^A-Za-z0-9 ._*?()\[\]!/:,-]")


# --- rules -------------------------------------------------------------------------------------


def immutable_rule_create(*, namespace: Namespace, tag_pattern: str, repository_pattern: str = "*", actor):
    """Make tags matching `tag_pattern` (in repositories matching `repository_pattern`)
    immutable once they exist. Audited."""
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


def rules_for(namespace_name: str, repository_name: str) -> list[Rule]:
    """The immutable-tag rules that cover this repository (one small query: the front asks
    this for every manifest PUT)."""
    return [
        rule for rule in namespace_rules(namespace_name) if pattern_matches(rule.repository_pattern, repository_name)
    ]


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


def registry_references(client, full_name: str, *, tag_filter=None) -> dict[str, set[str]]:
    """{digest: the tags that reach it}, as the registry has them now: each tag's manifest and,
    for an index, its platform manifests (deleting one of those breaks the index). Only tags
    passing `tag_filter`, when given. Raises RegistryError when the registry cannot answer."""
    from repositories.registry.client import INDEX_TYPES, RegistryNotFound

    try:
        tags = client.tags(full_name)
    except RegistryNotFound:
        return {}
    if tag_filter is not None:
        tags = [tag for tag in tags if tag_filter(tag)]
    if len(tags) > MAX_TAGS_CHECKED:
        raise TagImmutable(f"{full_name} has too many protected tags to check a delete by digest; delete by tag")
    found: dict[str, set[str]] = {}
    for tag in tags:
        try:
            ref = client.head_manifest(full_name, tag)
        except RegistryNotFound:
            continue  # deleted meanwhile
        found.setdefault(ref.digest, set()).add(tag)
        if ref.media_type in INDEX_TYPES:
            doc = client.get_manifest(full_name, ref.digest)
            for entry in doc.data.get("manifests") or []:
                if isinstance(entry, dict) and isinstance(entry.get("digest"), str):
                    found.setdefault(entry["digest"], set()).add(tag)
    return found


def check_delete_digest(*, namespace_name: str, repository_name: str, digest: str, client) -> None:
    """Raise TagImmutable if deleting `digest` would remove an immutable tag or break one: a tag
    on it, or an index tagged immutable that has it as a platform manifest, as the registry has
    them now (the portal may not have heard of a push yet)."""
    rules = rules_for(namespace_name, repository_name)
    if not rules:
        return
    refs = registry_references(
        client, f"{namespace_name}/{repository_name}", tag_filter=lambda tag: immutable_rule(rules, tag) is not None
    )
    for tag in sorted(refs.get(digest, ())):
        rule = immutable_rule(rules, tag)
        if rule is not None:
            raise TagImmutable(denial(tag, rule))


class TagImmutable(Exception):
    """A push over, or a delete of, an immutable tag; the message names the rule."""


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
        if entry.get("type") == "repository" and entry.get("name") == repository and action in entry.get("actions", []):
            return True
    return False


def front_decision(request: FrontRequest, *, registry_has_tag=None, client_factory=None) -> str | None:
    """None to let the request through, else the registry-style DENIED message naming the rule.
    `registry_has_tag(name, tag)` answers whether the registry holds a tag the portal has not
    heard of yet (a push whose event is on its way); called only for tags a rule covers.
    `client_factory()` gives a registry client, for the same question about a delete by digest."""
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
    rules = [rule for rule in state.rules if pattern_matches(rule.repository_pattern, repository_name)]
    quota = state.over_quota if request.method == "PUT" else None
    if not rules and not quota:
        return None  # the common case: nothing to say, no token to read
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
        return None
    # DELETE: by digest (2.8) removes every tag on it, and breaks every index that has it as a
    # platform; by tag (3.x untags).
    try:
        if DIGEST_RE.match(reference):
            in_repository = Tag.objects.filter(
                repository__namespace__name=namespace_name, repository__name=repository_name
            )
            tags = set(in_repository.filter(manifest__digest=reference).values_list("name", flat=True))
            tags |= set(in_repository.filter(manifest__entries__child__digest=reference).values_list("name", flat=True))
            check_delete(namespace_name=namespace_name, repository_name=repository_name, tags=sorted(tags))
            if client_factory is not None:  # what the portal has not heard of yet
                check_delete_digest(
                    namespace_name=namespace_name,
                    repository_name=repository_name,
                    digest=reference,
                    client=client_factory(),
                )
        else:
            check_delete(namespace_name=namespace_name, repository_name=repository_name, tags=[reference])
    except TagImmutable as exc:
        return _safe(str(exc))
    return None


@dataclass(frozen=True)
class NamespaceState:
    rules: tuple[Rule, ...]
    over_quota: str | None


class FrontState:
    """What the front's checks read, per process, for at most TTL seconds: the GC hold, and per
    namespace its immutable-tag rules and whether it is over its quota. A check then costs no
    query in the common case. Changes made in this process are seen at once (forget); other
    processes see them within TTL. (Quota usage itself is computed seconds after pushes.)"""

    TTL = 1.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hold: tuple[float, bool] | None = None
        self._namespaces: dict[str, tuple[float, NamespaceState]] = {}

    def hold(self) -> bool:
        now = time.monotonic()
        cached = self._hold
        if cached is not None and cached[0] > now:
            return cached[1]
        value = gc.hold_active()
        self._hold = (now + self.TTL, value)
        return value

    def namespace(self, name: str) -> NamespaceState:
        now = time.monotonic()
        cached = self._namespaces.get(name)
        if cached is not None and cached[0] > now:
            return cached[1]
        state = NamespaceState(tuple(namespace_rules(name)), storage.over_quota(name))
        with self._lock:
            if len(self._namespaces) > 10_000:
                self._namespaces.clear()
            self._namespaces[name] = (now + self.TTL, state)
        return state

    def forget(self) -> None:
        with self._lock:
            self._hold = None
            self._namespaces.clear()


FRONT_STATE = FrontState()


def forget_front_state() -> None:
    """A rule, a quota or the GC hold changed: this process's front checks read them again (on
    commit, so that they read the change)."""
    transaction.on_commit(FRONT_STATE.forget)


def _safe(message: str) -> str:
    """nginx puts the message into a JSON string literal as it is: no quotes, no backslashes."""
    return SAFE_MESSAGE_RE.sub("_", message)[:300]
