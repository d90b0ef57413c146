"""Retention (issue 16, item 2): rules that say which tags to keep; the rest of the tags a rule
covers are removed when retention runs, on schedule or on demand, always with a dry-run
preview that is exactly what the run would do.

- A rule covers the tags matching `tag_pattern` in the namespace's repositories matching
  `repository_pattern`. It keeps a tag that is among the `keep_most_recent` most recently
  pushed tags it covers (per repository), or pushed within `keep_pushed_within_days`, or pulled
  within `keep_pulled_within_days`; immutable tags and tags verified by a trusted key are kept
  when the rule protects them (the default). A rule with no keep criterion keeps nothing it
  covers but what it protects.
- A tag goes only if every rule covering it would let it go (a tag no rule covers stays).
- The registry deletes by digest, which removes every tag on it: a digest goes only when all
  the tags that reach it go (its own, and those of the image indexes that list it, at any
  depth), as the registry has them at that moment (asked again before each delete); otherwise
  it is kept and the run says why.
- `untagged` also removes manifests no tag points at, except signatures, attestations, SBOMs
  and the platform manifests of an index (they are reached through what they belong to).
- `bytes` is the storage the removed images alone held: blobs that no remaining image of the
  namespace shares.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.models import Namespace
from audit.services import audit_record
from repositories import gc, policies, storage
from repositories.access import pattern_matches
from repositories.models import ArtifactLink, IndexEntry, Manifest, Repository, RetentionRule, RetentionRun, Tag
from repositories.registry.client import RegistryError, RegistryNotFound

log = logging.getLogger(__name__)
RULE_FIELDS = (
    "repository_pattern",
    "tag_pattern",
    "keep_most_recent",
    "keep_pushed_within_days",
    "keep_pulled_within_days",
    "untagged",
    "protect_immutable",
    "protect_verified",
)
MAX_RULES_PER_NAMESPACE = 50
# A run reads a repository's tags from the registry (a HEAD each) again before a delete when
# its last reading is older than this (or than four times the reading took): a mutable tag
# pushed onto an image in the seconds before the run deletes that image can go with it (as with
# any delete by digest); not an immutable tag, whose push is marked and checked at the delete
# itself (policies.guard_delete). 0: read before every delete (bench/retention_bench.py compares).
GRAPH_MAX_AGE = 2.0


# --- rules -------------------------------------------------------------------------------------


def rule_save(
    *, namespace: Namespace, actor, rule: RetentionRule | None = None, repository_admin: bool = False, **values
) -> RetentionRule:
    """Create (rule None) or change a rule; audited. Raises ValidationError with field errors.
    `repository_admin`: asked by an admin of one repository, not of the namespace (a smaller
    allowance, policies.check_repository_admin_room)."""
    creating = rule is None
    if creating and repository_admin:
        from repositories.policies import check_repository_admin_room

        name = str(values.get("repository_pattern") or "").strip()
        check_repository_admin_room(RetentionRule, namespace, name, "repository_pattern", MAX_RULES_PER_NAMESPACE)
    if creating and RetentionRule.objects.filter(namespace=namespace).count() >= MAX_RULES_PER_NAMESPACE:
        raise ValidationError({"repository_pattern": f"A namespace has at most {MAX_RULES_PER_NAMESPACE} rules."})
    rule = rule or RetentionRule(namespace=namespace, created_by=actor if getattr(actor, "pk", None) else None)
    before = {name: getattr(rule, name) for name in RULE_FIELDS}
    for name, value in values.items():
        if name in RULE_FIELDS and value is not None:
            setattr(rule, name, value.strip() if isinstance(value, str) else value)
    for name in ("keep_most_recent", "keep_pushed_within_days", "keep_pulled_within_days"):
        if name in values and values[name] is None:
            setattr(rule, name, None)
    rule.full_clean(exclude=["namespace", "created_by"])
    with transaction.atomic():
        rule.save()
        audit_record(
            action="retention_rule.add" if creating else "retention_rule.change",
            actor=actor,
            target_name=f"{namespace.name}/{rule.repository_pattern}:{rule.tag_pattern}",
            namespace=namespace.name,
            data={"before": None if creating else before, "after": {n: getattr(rule, n) for n in RULE_FIELDS}},
        )
    return rule


def rule_delete(*, rule: RetentionRule, actor) -> None:
    with transaction.atomic():
        audit_record(
            action="retention_rule.delete",
            actor=actor,
            target_name=f"{rule.namespace.name}/{rule.repository_pattern}:{rule.tag_pattern}",
            namespace=rule.namespace.name,
            data={n: getattr(rule, n) for n in RULE_FIELDS},
        )
        rule.delete()


# --- the plan ----------------------------------------------------------------------------------


@dataclass
class Plan:
    remove_tags: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # repository -> tags
    remove_digests: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # repository -> digests
    untagged: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    skipped: list[str] = field(default_factory=list)
    # repository -> {digest: every index that lists it}: the run deletes an index first
    ancestors: dict[str, dict[str, set[str]]] = field(default_factory=dict)


def _keeps(rule: RetentionRule, tag: Tag, rank: int, now: dt.datetime, immutable: bool) -> bool:
    if immutable:
        # Always, whatever protect_immutable says: an immutable tag is never deleted (the delete
        # itself refuses it), so a preview that let it go would not be what the run does.
        return True
    if rule.protect_verified and tag.manifest.signature_status == "verified":
        return True
    if rule.keep_most_recent is not None and rank < rule.keep_most_recent:
        return True
    if rule.keep_pushed_within_days is not None and tag.pushed_at >= now - dt.timedelta(
        days=rule.keep_pushed_within_days
    ):
        return True
    pulled = tag.manifest.last_pulled_at
    return bool(
        rule.keep_pulled_within_days is not None
        and pulled is not None
        and pulled >= now - dt.timedelta(days=rule.keep_pulled_within_days)
    )


def plan(namespace: Namespace, *, now: dt.datetime | None = None) -> Plan:
    """What a run would remove now, from the portal's picture (the run checks each digest with
    the registry again before deleting it)."""
    now = now or timezone.now()
    rules = list(RetentionRule.objects.filter(namespace=namespace))
    result = Plan()
    if not rules:
        return result
    for repository in Repository.objects.filter(namespace=namespace).order_by("name"):
        covering = [r for r in rules if pattern_matches(r.repository_pattern, repository.name)]
        if not covering:
            continue
        tags = list(
            Tag.objects.filter(repository=repository, artifact="")
            .select_related("manifest")
            .order_by("-pushed_at", "name")
        )
        immutable = set(
            policies.immutable_tags(
                namespace_name=namespace.name, repository_name=repository.name, tag_names=[t.name for t in tags]
            )
        )
        verdicts: dict[str, list[bool]] = defaultdict(list)  # tag -> [kept by rule …] for covering rules
        for rule in covering:
            if not rule.keeps_tags:  # untagged-only: no say about tags
                continue
            ranked = [t for t in tags if pattern_matches(rule.tag_pattern, t.name)]
            for rank, tag in enumerate(ranked):
                verdicts[tag.name].append(_keeps(rule, tag, rank, now, tag.name in immutable))
        going = {name for name, kept in verdicts.items() if not any(kept)}
        by_digest: dict[str, set[str]] = defaultdict(set)
        for tag in tags:
            by_digest[tag.manifest.digest].add(tag.name)
        parents, children = index_links(repository)
        ancestors = result.ancestors[repository.name] = ancestors_of(parents)
        for digest, names in sorted(by_digest.items()):
            # An image goes only when every tag that reaches it goes: its own, and those of the
            # indexes that list it (deleting a platform manifest breaks the index).
            via_index = set().union(*(by_digest.get(index, set()) for index in ancestors.get(digest, ()))) - names
            if names <= going and via_index <= going:
                result.remove_digests[repository.name].add(digest)
                result.remove_tags[repository.name] |= names
            elif names & going:
                staying = ", ".join(sorted(names & going))
                if names <= going:
                    kept = ", ".join(sorted(via_index - going))
                    result.skipped.append(f"{repository.name}: {staying} stay: a platform of the kept index {kept}")
                else:
                    kept = ", ".join(sorted(names - going))
                    result.skipped.append(f"{repository.name}: {staying} stay: the same image as kept {kept}")
        _with_accessories(result, repository, namespace_name=namespace.name, ancestors=ancestors)
        if any(rule.untagged for rule in covering):
            linked = set(ArtifactLink.objects.filter(repository=repository).values_list("artifact_id", flat=True))
            for pk, digest, content in Manifest.objects.filter(
                repository=repository, tags__isnull=True, index_entries__isnull=True
            ).values_list("pk", "digest", "artifact"):
                holds = isinstance(content, dict) and (content.get("signatures") or content.get("attached"))
                if pk not in linked and not holds:  # signatures and SBOMs go with their image
                    result.untagged[repository.name].add(digest)
        _with_platforms(result, repository, parents, children)
    return result


def _with_platforms(
    result: Plan, repository: Repository, parents: dict[str, set[str]], children: dict[str, set[str]]
) -> None:
    """A removed index's platform manifests go with it (and theirs, for an index inside it),
    when no tag points at one and every index that lists it goes too: left in the registry,
    nothing would ever list them again (the portal forgets what no tag or index refers to, and
    the registry cannot list untagged manifests), and garbage collection keeps their layers."""
    going = result.remove_digests.get(repository.name, set()) | result.untagged.get(repository.name, set())
    if not going or not children:
        return
    tagged = set(Manifest.objects.filter(repository=repository, tags__isnull=False).values_list("digest", flat=True))
    added: set[str] = set()
    level = going
    for _depth in range(policies.MAX_INDEX_DEPTH):
        below = {
            child
            for index in level
            for child in children.get(index, ())
            if child not in going and child not in added and child not in tagged
        }
        below = {child for child in below if parents[child] <= going | added | below}
        if not below:
            break
        added |= below
        level = below
    if added:
        result.untagged[repository.name] |= added


def _with_accessories(
    result: Plan, repository: Repository, *, namespace_name: str, ancestors: dict[str, set[str]]
) -> None:
    """A removed image's signatures, attestations and SBOMs go with it: cosign's
    sha256-<hex>.sig/.att/.sbom tags (each digest only when all of its tags are such tags of
    removed images, none immutable) and OCI 1.1 referrers (untagged manifests whose subject it
    is). Harbor removes an artifact's accessories with it; left behind they list as orphans."""
    removed = result.remove_digests.get(repository.name, set())
    if not removed:
        return
    names = {
        f"sha256-{digest.removeprefix('sha256:')}{suffix}"
        for digest in removed
        for suffix in ("", ".sig", ".att", ".sbom")
    }
    # Whole-repository reads, filtered here: a first run may remove tens of thousands of
    # digests, more than a query can name.
    by_digest: dict[str, set[str]] = defaultdict(set)
    for name, digest in Tag.objects.filter(repository=repository).values_list("name", "manifest__digest"):
        by_digest[digest].add(name)
    immutable = set(
        policies.immutable_tags(namespace_name=namespace_name, repository_name=repository.name, tag_names=sorted(names))
    )
    for digest, tags in sorted(by_digest.items()):
        if not tags & names or not tags <= names or digest in removed:
            continue  # not only an accessory of removed images (another tag keeps it)
        if tags & immutable:
            kept = ", ".join(sorted(tags & immutable))
            result.skipped.append(f"{repository.name}: {kept} stays: immutable, though its image goes")
        elif not ancestors.get(digest, set()) <= removed:
            result.skipped.append(f"{repository.name}: {', '.join(sorted(tags))} stays: an index that stays lists it")
        else:
            result.remove_digests[repository.name].add(digest)
            result.remove_tags[repository.name] |= tags
    referrers = ArtifactLink.objects.filter(
        repository=repository, via=ArtifactLink.Via.SUBJECT, artifact__tags__isnull=True
    ).values_list("subject_digest", "artifact__digest")
    result.untagged[repository.name] |= {
        artifact
        for subject, artifact in referrers
        if subject in removed and artifact not in removed and ancestors.get(artifact, set()) <= removed
    }


def index_links(repository: Repository) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """({digest: the indexes that list it}, {index: the digests it lists}), from the portal's
    picture (one query)."""
    parents: dict[str, set[str]] = defaultdict(set)
    children: dict[str, set[str]] = defaultdict(set)
    for index, child in IndexEntry.objects.filter(index__repository=repository).values_list(
        "index__digest", "child__digest"
    ):
        parents[child].add(index)
        children[index].add(child)
    return parents, children


def ancestors_of(parents: dict[str, set[str]]) -> dict[str, set[str]]:
    """{digest: every index that lists it, at any depth}, from index_links' parents."""

    def above(level: set[str]) -> set[str]:
        return set().union(*(parents.get(index, set()) for index in level))

    return {digest: policies.index_closure({digest}, above) for digest in parents}


@dataclass
class Snapshot:
    """The namespace's manifests and their blobs, read before anything is deleted."""

    blobs: dict[tuple[str, str], dict[str, int]]  # (repository, digest) -> {blob: size}
    children: dict[tuple[str, str], set[str]]  # (repository, index digest) -> platform digests


def snapshot(namespace: Namespace) -> Snapshot:
    blobs = {}
    for repository_name, *row in Manifest.objects.filter(repository__namespace=namespace).values_list(
        "repository__name", *storage.BLOB_FIELDS
    ):
        blobs[(repository_name, row[0])] = storage.manifest_blobs(*row)
    children: dict[tuple[str, str], set[str]] = defaultdict(set)
    for index_digest, child_digest, repository_name in Manifest.objects.filter(
        repository__namespace=namespace, entries__isnull=False
    ).values_list("digest", "entries__child__digest", "repository__name"):
        children[(repository_name, index_digest)].add(child_digest)
    return Snapshot(blobs, children)


def freed_bytes(before: Snapshot, removed: dict[str, set[str]]) -> int:
    """Storage the removed manifests alone held: their blobs (and their platforms') that no
    remaining manifest of the namespace shares."""
    gone_keys = {(repo, d) for repo, digests in removed.items() for d in digests}
    for key in list(gone_keys):
        gone_keys |= {(key[0], child) for child in before.children.get(key, ())}
    gone: dict[str, int] = {}
    kept: set[str] = set()
    for key, blobs in before.blobs.items():
        if key in gone_keys:
            gone.update(blobs)
        else:
            kept.update(blobs)
    return sum(size for digest, size in gone.items() if digest not in kept)


def _as_lists(found: Plan) -> tuple[list[str], list[str]]:
    tags = sorted(f"{repo}:{tag}" for repo, names in found.remove_tags.items() for tag in names)
    digests = sorted(
        f"{repo}@{d}"
        for source in (found.remove_digests, found.untagged)
        for repo, values in source.items()
        for d in values
    )
    return tags, digests


# --- the run -----------------------------------------------------------------------------------


class RunUnderWay(Exception):
    """Another applied run of this namespace has not finished (one at a time)."""

    def __init__(self, namespace_name: str) -> None:
        super().__init__(f"a retention run of {namespace_name} is under way; its result is listed when it finishes")


# An applied run's hold on its namespace lasts this long past the run's last sign of life (it
# renews it as it goes), so a run whose process died holds nothing for long.
RUN_LOCK_SECONDS = 120


class _Hold:
    """The namespace's run hold, renewed (at most every few seconds) while the run deletes."""

    def __init__(self, key: str) -> None:
        self.key, self.renewed = key, time.monotonic()

    def renew(self) -> None:
        from django.core.cache import cache

        if time.monotonic() - self.renewed < 10:
            return
        self.renewed = time.monotonic()
        try:
            cache.touch(self.key, RUN_LOCK_SECONDS)
        except Exception:
            log.warning("the retention run's hold on %s was not renewed", self.key)


def _run_key(namespace: Namespace) -> str:
    return f"retention-run:{namespace.pk}"


def check_can_start(namespace: Namespace) -> None:
    """What an applied run would refuse at once (for a caller that will not wait for it):
    raises gc.WritesHeld or RunUnderWay."""
    from django.core.cache import cache

    gc.refuse_during_hold()
    try:
        under_way = cache.get(_run_key(namespace)) is not None
    except Exception:
        under_way = False
    if under_way:
        raise RunUnderWay(namespace.name)


def run(*, namespace: Namespace, dry_run: bool, actor=None, actor_name: str = "") -> RetentionRun:
    """Preview (dry_run) or apply the namespace's rules; recorded either way. An applied run
    raises gc.WritesHeld during a garbage collection, RunUnderWay while another one of the
    namespace runs (a caller that gave up waiting and asked again must not start a second)."""
    if dry_run:
        return _run(namespace=namespace, dry_run=True, actor=actor, actor_name=actor_name)
    from django.core.cache import cache

    key = _run_key(namespace)
    try:
        held = bool(cache.add(key, 1, timeout=RUN_LOCK_SECONDS))
    except Exception:
        held = None  # Redis away: nothing to hold, and nothing to release
    if held is False:
        raise RunUnderWay(namespace.name)
    try:
        return _run(namespace=namespace, dry_run=False, actor=actor, actor_name=actor_name, hold=_Hold(key))
    finally:
        if held:
            try:
                cache.delete(key)
            except Exception:
                log.warning("the retention run's hold on %s is left to expire", namespace.name)


def _run(
    *, namespace: Namespace, dry_run: bool, actor=None, actor_name: str = "", hold: _Hold | None = None
) -> RetentionRun:
    """run() itself; `hold` is the applied run's hold on its namespace (None for a preview)."""

    who = actor_name or getattr(actor, "username", "") or "retention"
    if not dry_run:
        gc.refuse_during_hold()  # garbage collection holds every write (WritesHeld)
    started_at = timezone.now()
    found = plan(namespace)
    before = snapshot(namespace)
    skipped = list(found.skipped)
    if dry_run:
        removed = {
            repo: set(found.remove_digests.get(repo, ())) | set(found.untagged.get(repo, ()))
            for repo in set(found.remove_digests) | set(found.untagged)
        }
        tags, digests = _as_lists(found)
    else:
        removed, tags, skipped = _apply(namespace, found, actor, skipped, hold)
        digests = sorted(f"{repo}@{d}" for repo, values in removed.items() for d in values)
    size = freed_bytes(before, removed)
    with transaction.atomic():
        record = RetentionRun.objects.create(
            namespace=namespace,
            dry_run=dry_run,
            started_at=started_at,
            finished_at=timezone.now(),
            tags=tags,
            digests=digests,
            bytes=size,
            skipped=skipped[:500],
            requested_by=who[:150],
        )
        if not dry_run:
            audit_record(
                action="retention.run",
                actor=actor if getattr(actor, "pk", None) else None,
                actor_name="" if getattr(actor, "pk", None) else who,
                target_name=namespace.name,
                namespace=namespace.name,
                data={"tags": len(tags), "digests": len(digests), "bytes": size},
            )
    if not dry_run and digests:
        storage.refresh_soon(namespace.pk)
    return record


def _apply(namespace: Namespace, found: Plan, actor, skipped: list[str], hold: _Hold):
    """Delete what the plan says, digest by digest, each checked with the registry first."""
    from repositories import services
    from repositories.registry import get_client

    removed: dict[str, set[str]] = defaultdict(set)
    removed_tags: list[str] = []
    client = get_client()
    for repo_name, digests in sorted(found.remove_digests.items()):
        repository = Repository.objects.filter(namespace=namespace, name=repo_name).first()
        if repository is None:
            continue
        planned_tags = found.remove_tags[repo_name]
        # An index before the images it lists: while it is in the registry they are in use.
        ancestors = found.ancestors.get(repo_name, {})
        graph, read_at, max_age = None, 0.0, GRAPH_MAX_AGE
        for digest in sorted(digests, key=lambda d: (len(ancestors.get(d, ())), d)):
            hold.renew()
            try:
                # The registry's tags, read again when the last reading is older than
                # GRAPH_MAX_AGE, or four times what reading them took (once per digest made a
                # run over N tags cost N² requests; a huge repository is read at most a fifth
                # of the time).
                if graph is None or time.monotonic() - read_at > max_age:
                    began = time.monotonic()
                    graph = policies.registry_graph(client, repository.full_name, bounded=False)
                    read_at = time.monotonic()
                    max_age = max(GRAPH_MAX_AGE, 4 * (read_at - began)) if GRAPH_MAX_AGE > 0 else 0.0
                on = graph.on(digest)
                if not on or not set(on) <= planned_tags:
                    skipped.append(f"{repo_name}@{digest}: changed in the registry since it was planned; kept")
                    continue
                preview = services.DeletePreview(digest, on, [tag for tag in graph.used_by(digest) if tag not in on])
                _, gone = services.tag_delete(
                    repository=repository,
                    tag_name=on[0],
                    actor=actor,
                    confirm=True,
                    expected_digest=digest,
                    preview=preview,
                )
                graph.drop(digest)
            except (
                services.TagNotInRegistry,
                services.ConfirmationRequired,
                services.UsedByIndex,
                policies.TagImmutable,
            ) as exc:
                skipped.append(f"{repo_name}@{digest}: kept ({exc.__class__.__name__}: {exc})")
                continue
            except RegistryError as exc:
                skipped.append(f"{repo_name}@{digest}: kept, the registry failed: {exc}")
                continue
            removed[repo_name].add(digest)
            removed_tags += [f"{repo_name}:{t}" for t in gone]
    for repo_name, digests in sorted(found.untagged.items()):
        repository = Repository.objects.filter(namespace=namespace, name=repo_name).first()
        if repository is None:
            continue
        try:
            # Untagged as the registry has it now: a push the portal has not heard of yet may
            # have tagged it, or made it a platform of a new index.
            referenced = policies.registry_graph(client, repository.full_name, bounded=False).reach
        except (RegistryError, policies.TagImmutable) as exc:
            skipped.append(f"{repo_name}: untagged manifests kept, the registry could not be listed: {exc}")
            continue
        ancestors = found.ancestors.get(repo_name, {})
        for digest in sorted(digests, key=lambda d: (len(ancestors.get(d, ())), d)):  # an index first
            hold.renew()
            if digest in referenced:
                tags = ", ".join(sorted(referenced[digest]))
                skipped.append(f"{repo_name}@{digest}: kept, tagged in the registry now ({tags})")
                continue
            try:
                policies.guard_delete(client, repository.full_name, [digest])  # an immutable push on its way
                client.delete_manifest(repository.full_name, digest)
            except RegistryNotFound:
                pass
            except policies.TagImmutable as exc:
                skipped.append(f"{repo_name}@{digest}: kept ({exc})")
                continue
            except RegistryError as exc:
                skipped.append(f"{repo_name}@{digest}: kept, the registry failed: {exc}")
                continue
            Manifest.objects.filter(repository=repository, digest=digest, tags__isnull=True).delete()
            removed[repo_name].add(digest)
    return removed, sorted(removed_tags), skipped


def run_all() -> int:
    """Every namespace with rules (the daily schedule)."""
    count = 0
    for namespace in Namespace.objects.filter(retention_rules__isnull=False).distinct():
        try:
            run(namespace=namespace, dry_run=False, actor_name="schedule")
            count += 1
        except (gc.WritesHeld, RunUnderWay) as exc:
            log.info("retention of %s waits for the next run: %s", namespace.name, exc)
        except Exception:
            log.exception("retention of %s failed", namespace.name)
    return count
