"""What the registry holds, as the portal knows it, and who may reach it: repositories,
manifests, tags, grants, access rules, stars, and the registry's events as they arrived."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts.models import Level, Namespace, Organization, Robot, Team, Visibility
from repositories.versions import version_sort_key


class ByteOrderCharField(models.CharField):
    """Text compared byte by byte in every database. PostgreSQL compares text by the database's
    collation, which on most installations (en_US.UTF-8, the postgres image's default) is
    linguistic: it ignores punctuation and case at first and would scramble a sort key. SQLite
    compares bytes already."""

    def db_parameters(self, connection):
        params = super().db_parameters(connection)
        if connection.vendor == "postgresql":
            params["collation"] = "C"
        return params


# distribution's reference grammar: path components joined by "/", the repository part after
# the namespace. The whole name (namespace/name) is at most 255 characters.
COMPONENT_RE = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
REPOSITORY_NAME_RE = rf"^{COMPONENT_RE}(?:/{COMPONENT_RE})*$"
TAG_RE = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"
DIGEST_RE = r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$"

LEVEL_CHECK = Q(level__in=[Level.READ, Level.WRITE, Level.ADMIN])


class Repository(models.Model):
    namespace = models.ForeignKey(Namespace, on_delete=models.PROTECT, related_name="repositories")
    name = models.CharField(
        max_length=200,
        help_text="The path after the namespace; may contain /.",
        validators=[
            RegexValidator(
                REPOSITORY_NAME_RE,
                "Use lowercase letters and digits, separated by single '.', '_', '__' or '-', with '/' "
                "between path components (e.g. team/app-1).",
            )
        ],
    )
    # "namespace/name", kept beside the two (namespaces are never renamed) so that search and
    # exact lookups need no join. Set by save().
    full_name = models.CharField(max_length=255, unique=True, editable=False)
    visibility = models.CharField(max_length=8, choices=Visibility.choices, default=Visibility.PRIVATE)
    short_description = models.CharField(max_length=100, blank=True)
    full_description = models.TextField(max_length=25000, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    last_pushed_at = models.DateTimeField(null=True, blank=True)
    pull_count = models.BigIntegerField(default=0)
    star_count = models.PositiveIntegerField(default=0)  # kept by the star services
    # Descriptions filled from the image's OCI annotations or labels, until a person edits them.
    description_from_image = models.BooleanField(default=False)
    # The last reconcile's problem with this repository ('' when it synced cleanly). Written
    # only when it changes, so a crawl that finds nothing new writes nothing per repository.
    sync_error = models.TextField(blank=True)
    sync_error_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "repositories"
        ordering = ["namespace__name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["namespace", "name"], name="repository_unique_name"),
            models.CheckConstraint(condition=Q(name__regex=REPOSITORY_NAME_RE), name="repository_name_grammar"),
            models.CheckConstraint(
                condition=Q(visibility__in=["public", "private"]), name="repository_visibility_valid"
            ),
            models.CheckConstraint(condition=Q(pull_count__gte=0), name="repository_pull_count_nonnegative"),
        ]
        indexes = [models.Index(fields=["-last_pushed_at"], name="repository_last_pushed")]

    def save(self, *args, **kwargs) -> None:
        self.full_name = f"{self.namespace.name}/{self.name}"
        super().save(*args, **kwargs)

    @property
    def is_public(self) -> bool:
        return self.visibility == Visibility.PUBLIC

    def __str__(self) -> str:
        return self.full_name


class Manifest(models.Model):
    """An image manifest or an image index, content-addressed within its repository (the
    registry links a manifest to each repository separately)."""

    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="manifests")
    digest = models.CharField(max_length=150)
    media_type = models.CharField(max_length=100)
    # Compressed size: config + layers; for an index the sum over its platforms' manifests.
    total_size = models.BigIntegerField(default=0)
    config_digest = models.CharField(max_length=150, blank=True)
    os = models.CharField(max_length=32, blank=True)
    architecture = models.CharField(max_length=32, blank=True)
    variant = models.CharField(max_length=32, blank=True)
    image_created_at = models.DateTimeField(null=True, blank=True)
    labels = models.JSONField(default=dict, blank=True)
    annotations = models.JSONField(default=dict, blank=True)
    layer_count = models.PositiveIntegerField(default=0)
    # What the tag page shows of an image (repositories/artifacts.py image_details): layers with
    # their history line, entrypoint, cmd, exposed ports, environment variable names. Manifests
    # stored before these were read have details_version 0; the next crawl fills them in.
    details = models.JSONField(default=dict, blank=True)
    details_version = models.PositiveSmallIntegerField(default=0)
    # A signature, attestation or SBOM manifest: what it holds (artifacts.artifact_content).
    artifact = models.JSONField(default=dict, blank=True)
    # Signatures, attestations and SBOMs found for this manifest (cosign's sha256-<hex>.sig,
    # .att, .sbom tags, or OCI 1.1 referrers), and the verdict on its signatures against the
    # namespace's trusted keys (repositories/signing.py).
    is_signed = models.BooleanField(default=False)
    has_attestation = models.BooleanField(default=False)
    has_sbom = models.BooleanField(default=False)
    signature_status = models.CharField(
        max_length=9,
        choices=[
            ("verified", "verified"),
            ("untrusted", "untrusted"),
            ("invalid", "invalid"),
            ("unsigned", "unsigned"),
        ],
        default="unsigned",
    )
    signature_key = models.CharField(max_length=100, blank=True)  # the trusted key's name, when verified
    last_pulled_at = models.DateTimeField(null=True, blank=True)
    children = models.ManyToManyField(
        "self", through="IndexEntry", symmetrical=False, related_name="parents", blank=True
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["repository", "digest"], name="manifest_unique_digest"),
            models.CheckConstraint(condition=Q(digest__regex=DIGEST_RE), name="manifest_digest_grammar"),
            models.CheckConstraint(condition=Q(total_size__gte=0), name="manifest_size_nonnegative"),
        ]

    @property
    def is_index(self) -> bool:
        return "index" in self.media_type or "manifest.list" in self.media_type

    def __str__(self) -> str:
        return f"{self.repository_id}@{self.digest}"


class IndexEntry(models.Model):
    """One platform of an image index (or Docker manifest list)."""

    index = models.ForeignKey(Manifest, on_delete=models.CASCADE, related_name="entries")
    child = models.ForeignKey(Manifest, on_delete=models.CASCADE, related_name="index_entries")
    os = models.CharField(max_length=32, blank=True)
    architecture = models.CharField(max_length=32, blank=True)
    variant = models.CharField(max_length=32, blank=True)
    size = models.BigIntegerField(default=0)  # the child manifest document's own size

    class Meta:
        verbose_name_plural = "index entries"
        constraints = [
            models.UniqueConstraint(fields=["index", "child"], name="index_entry_unique"),
            models.CheckConstraint(condition=~Q(index=models.F("child")), name="index_entry_not_self"),
        ]

    def __str__(self) -> str:
        return f"{self.index_id} → {self.child_id} ({self.platform})"

    @property
    def platform(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


class ArtifactLink(models.Model):
    """A signature, attestation or SBOM manifest, and the image it is about: named by a cosign
    tag (sha256-<hex>.sig/.att/.sbom) or by the manifest's own OCI 1.1 `subject`."""

    class Via(models.TextChoices):
        TAG = "tag", "cosign tag"
        SUBJECT = "subject", "OCI subject"

    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="artifact_links")
    artifact = models.ForeignKey(Manifest, on_delete=models.CASCADE, related_name="links")
    subject_digest = models.CharField(max_length=150)
    via = models.CharField(max_length=7, choices=Via.choices)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["artifact", "subject_digest"], name="artifact_link_unique")]
        indexes = [models.Index(fields=["repository", "subject_digest"], name="artifact_link_subject")]

    def __str__(self) -> str:
        return f"{self.artifact_id} → {self.subject_digest}"


class SigningKey(models.Model):
    """A public key whose signatures a namespace trusts (cosign: ECDSA, RSA, Ed25519)."""

    namespace = models.ForeignKey(Namespace, on_delete=models.CASCADE, related_name="signing_keys")
    name = models.CharField(max_length=100)
    public_key = models.TextField()  # PEM SubjectPublicKeyInfo, normalised
    fingerprint = models.CharField(max_length=64)  # SHA-256 of the DER public key, hex
    algorithm = models.CharField(max_length=20)
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["namespace", "name"], name="signing_key_unique_name"),
            models.UniqueConstraint(fields=["namespace", "fingerprint"], name="signing_key_unique_fingerprint"),
        ]

    def __str__(self) -> str:
        return f"{self.namespace_id}:{self.name}"

    @property
    def short_fingerprint(self) -> str:
        return ":".join(self.fingerprint[i : i + 2] for i in range(0, 16, 2))


class TagQuerySet(models.QuerySet):
    def bulk_create(self, objs, *args, **kwargs):
        objs = list(objs)
        for tag in objs:
            if not tag.version_key:
                tag.version_key = version_sort_key(tag.name)
        return super().bulk_create(objs, *args, **kwargs)


class Tag(models.Model):
    objects = TagQuerySet.as_manager()

    class Artifact(models.TextChoices):
        NONE = "", "Image"
        SIGNATURE = "sig", "Signature"
        ATTESTATION = "att", "Attestation"
        SBOM = "sbom", "SBOM"
        REFERRERS = "ref", "Referrers index"  # the OCI 1.1 fallback tag sha256-<hex>

    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="tags")
    name = models.CharField(max_length=128)
    manifest = models.ForeignKey(Manifest, on_delete=models.PROTECT, related_name="tags")
    pushed_at = models.DateTimeField(default=timezone.now)
    pushed_by = models.CharField(max_length=150, blank=True)

    class Source(models.TextChoices):
        EVENT = "event", "Push event"  # pushed_by and pushed_at are the registry's
        CRAWL = "crawl", "Reconcile"  # seen by a crawl; its push event, if it comes, fills in who

    source = models.CharField(max_length=5, choices=Source.choices, default=Source.EVENT)
    # Set for cosign's sha256-<hex>.sig/.att/.sbom tags (and the OCI referrers tag sha256-<hex>),
    # which lists hide unless asked.
    artifact = models.CharField(max_length=4, choices=Artifact.choices, default=Artifact.NONE, blank=True)
    # repositories/versions.py: the version order, a page at a time from an index.
    version_key = ByteOrderCharField(max_length=512, default="", editable=False)

    class Meta:
        ordering = ["-pushed_at"]
        constraints = [
            models.UniqueConstraint(fields=["repository", "name"], name="tag_unique_name"),
            models.CheckConstraint(condition=Q(name__regex=TAG_RE), name="tag_name_grammar"),
        ]
        indexes = [
            models.Index(fields=["repository", "-pushed_at"], name="tag_repository_pushed"),
            models.Index(fields=["-pushed_at"], name="tag_pushed"),
            models.Index(fields=["repository", "version_key", "name"], name="tag_repository_version"),
        ]

    def __str__(self) -> str:
        return f"{self.repository_id}:{self.name}"

    def save(self, *args, **kwargs) -> None:
        if not self.version_key:
            self.version_key = version_sort_key(self.name)
        super().save(*args, **kwargs)


class RepositoryGrant(models.Model):
    """A level on one repository for exactly one of: a team, a user, a robot."""

    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="grants")
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.CASCADE, related_name="grants")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="grants"
    )
    robot = models.ForeignKey(Robot, null=True, blank=True, on_delete=models.CASCADE, related_name="grants")
    level = models.PositiveSmallIntegerField(choices=Level.choices, default=Level.READ)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(team__isnull=False, user__isnull=True, robot__isnull=True)
                    | Q(team__isnull=True, user__isnull=False, robot__isnull=True)
                    | Q(team__isnull=True, user__isnull=True, robot__isnull=False)
                ),
                name="grant_exactly_one_holder",
            ),
            models.CheckConstraint(condition=LEVEL_CHECK, name="grant_level_valid"),
            models.UniqueConstraint(
                fields=["repository", "team"], condition=Q(team__isnull=False), name="grant_unique_team"
            ),
            models.UniqueConstraint(
                fields=["repository", "user"], condition=Q(user__isnull=False), name="grant_unique_user"
            ),
            models.UniqueConstraint(
                fields=["repository", "robot"], condition=Q(robot__isnull=False), name="grant_unique_robot"
            ),
        ]

    @property
    def holder(self):
        return self.team or self.user or self.robot

    def clean(self) -> None:
        """A team or robot holds grants only on its own organization's repositories."""
        org_id = self.repository.namespace.organization_id if self.repository_id else None
        for kind in ("team", "robot"):
            holder = getattr(self, kind)
            if holder is not None and holder.organization_id != org_id:
                raise ValidationError(
                    {kind: f"{holder} belongs to another organization than {self.repository.full_name}."}
                )

    def __str__(self) -> str:
        return f"{self.holder} → {self.repository_id} ({self.get_level_display()})"


RULE_PATTERN_RE = r"^[a-z0-9._/*?\[\]!-]+$"


def _validate_rule_pattern(pattern: str) -> None:
    from repositories.access import validate_pattern

    RegexValidator(RULE_PATTERN_RE, "Use lowercase letters, digits, . _ - / and the wildcards * ? [ ] !.")(pattern)
    validate_pattern(pattern)


class AccessRule(models.Model):
    """A level on every repository of an organization whose name (the part after the namespace)
    matches a shell-style pattern such as `ci-*` or `base/*`, for a team or a robot."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="access_rules")
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.CASCADE, related_name="access_rules")
    robot = models.ForeignKey(Robot, null=True, blank=True, on_delete=models.CASCADE, related_name="access_rules")
    pattern = models.CharField(
        max_length=200,
        help_text="e.g. ci-* or base/*: * matches anything (also across /), ? one character, [a-z] one of a set",
        validators=[_validate_rule_pattern],
    )
    level = models.PositiveSmallIntegerField(choices=Level.choices, default=Level.READ)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(Q(team__isnull=False, robot__isnull=True) | Q(team__isnull=True, robot__isnull=False)),
                name="access_rule_exactly_one_holder",
            ),
            models.CheckConstraint(condition=LEVEL_CHECK, name="access_rule_level_valid"),
            models.CheckConstraint(condition=Q(pattern__regex=RULE_PATTERN_RE), name="access_rule_pattern_chars"),
        ]

    def clean(self) -> None:
        """A rule names a team or robot of its own organization."""
        for kind in ("team", "robot"):
            holder = getattr(self, kind)
            if holder is not None and self.organization_id and holder.organization_id != self.organization_id:
                raise ValidationError({kind: f"{holder} belongs to another organization than {self.organization}."})

    def __str__(self) -> str:
        return f"{self.team or self.robot}: {self.organization}/{self.pattern} ({self.get_level_display()})"


class Star(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="stars")
    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="stars")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "repository"], name="star_unique")]

    def __str__(self) -> str:
        return f"{self.user_id} ★ {self.repository_id}"


class RegistryEvent(models.Model):
    """A notification as the registry sent it, stored before we answer so nothing is lost."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        PROCESSING = "processing", "Being applied"  # taken by a worker's drain (claimed_at)
        PROCESSED = "processed", "Processed"
        IGNORED = "ignored", "Ignored"
        FAILED = "failed", "Failed"
        QUARANTINED = "quarantined", "Quarantined"

    event_id = models.CharField(max_length=100, unique=True)
    action = models.CharField(max_length=20, blank=True)
    repository = models.CharField(max_length=255, blank=True)
    tag = models.CharField(max_length=128, blank=True)
    digest = models.CharField(max_length=150, blank=True)
    media_type = models.CharField(max_length=100, blank=True)
    actor = models.CharField(max_length=150, blank=True)
    timestamp = models.DateTimeField(null=True, blank=True)
    payload = models.JSONField(default=dict)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    received_at = models.DateTimeField(default=timezone.now)
    claimed_at = models.DateTimeField(null=True, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at"]
        indexes = [models.Index(fields=["status", "received_at"], name="registry_event_status")]

    def __str__(self) -> str:
        return f"{self.action} {self.repository}:{self.tag or self.digest} ({self.status})"


class DailyPulls(models.Model):
    """Pulls of a repository per UTC day, for charts."""

    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="daily_pulls")
    day = models.DateField()
    count = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name_plural = "daily pulls"
        constraints = [models.UniqueConstraint(fields=["repository", "day"], name="daily_pulls_unique")]

    def __str__(self) -> str:
        return f"{self.repository_id} {self.day}: {self.count}"


class UnclaimedRepository(models.Model):
    """A repository found in the registry whose namespace does not exist in the portal (pushed
    around the portal, or its namespace was deleted). Staff-only; the next crawl after the
    namespace exists imports it."""

    name = models.CharField(max_length=255, unique=True)
    tag_count = models.PositiveIntegerField(default=0)
    first_seen_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "unclaimed repositories"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class SyncRun(models.Model):
    """One reconcile crawl: what it covered, what it cost, what it changed or would change."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        OK = "ok", "Completed"
        PARTIAL = "partial", "Completed with errors"
        HELD = "held", "Completed, removals held for an operator"
        FAILED = "failed", "Failed"

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule", "Schedule"
        OPERATOR = "operator", "Operator"
        REGISTRY_RESTART = "restart", "Registry restarted"

    started_at = models.DateTimeField(default=timezone.now)
    # Written every few seconds by the process that crawls: a run whose heartbeat stopped (its
    # worker was killed) no longer holds the lock.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.RUNNING)
    repository = models.CharField(max_length=255, blank=True, help_text="empty: the whole registry")
    dry_run = models.BooleanField(default=False)
    repositories = models.PositiveIntegerField(default=0)
    tags = models.PositiveIntegerField(default=0)
    manifests_fetched = models.PositiveIntegerField(default=0)
    requests = models.PositiveIntegerField(default=0)
    created = models.PositiveIntegerField(default=0)
    changed = models.PositiveIntegerField(default=0)
    removed = models.PositiveIntegerField(default=0)
    # Removals the crawl planned but did not make: too many at once (or an empty catalog), so an
    # operator must confirm them (`sync_registry --allow-removals`, or the admin's action).
    held = models.PositiveIntegerField(default=0)
    allow_removals = models.BooleanField(default=False)
    trigger = models.CharField(max_length=8, choices=Trigger.choices, default=Trigger.OPERATOR)
    error = models.TextField(blank=True)
    # What was (or, for a dry run, would be) created, changed and removed, by name.
    report = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            # One crawl at a time, whoever starts it (beat, the admin, the command): a second one
            # cannot even record that it runs.
            models.UniqueConstraint(fields=["status"], condition=Q(status="running"), name="sync_run_one_at_a_time"),
        ]

    def __str__(self) -> str:
        return f"sync {self.started_at:%Y-%m-%d %H:%M} {self.repository or 'all'} ({self.status})"


class TagTombstone(models.Model):
    """A tag that was deleted, and when: a push event for that tag and digest stamped before the
    delete (delivered late, or after the delete's own notification was lost) must not bring it
    back. Pruned after SYNC_TOMBSTONE_DAYS."""

    repository = models.CharField(max_length=255)
    tag = models.CharField(max_length=128)
    digest = models.CharField(max_length=150, blank=True)  # empty: whatever it pointed at
    deleted_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["repository", "tag"], name="tombstone_repository_tag")]

    def __str__(self) -> str:
        return f"{self.repository}:{self.tag} deleted {self.deleted_at:%Y-%m-%d %H:%M}"


class RegistryInstance(models.Model):
    """Each registry process has an instance id that its notifications carry. Its queue lives in
    memory, so a new id (a restart, or a new replica) means notifications may have been lost:
    the portal crawls at once."""

    instance_id = models.CharField(max_length=100, unique=True)
    address = models.CharField(max_length=255, blank=True)
    first_seen_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.instance_id} ({self.address})"


TAG_PATTERN_RE = r"^[A-Za-z0-9._*?\[\]!-]+$"


def _validate_tag_pattern(pattern: str) -> None:
    from repositories.access import validate_pattern

    RegexValidator(TAG_PATTERN_RE, "Use letters, digits, . _ - and the wildcards * ? [ ] !.")(pattern)
    validate_pattern(pattern)


class ImmutableTagRule(models.Model):
    """Tags of the namespace's repositories whose name matches `tag_pattern` (in repositories
    whose name matches `repository_pattern`) cannot be pushed again once they exist, nor
    deleted. Enforced where pushes and deletes happen: the front (nginx asks the portal before
    a manifest PUT or DELETE reaches the registry) and the portal's own deletes."""

    namespace = models.ForeignKey(Namespace, on_delete=models.CASCADE, related_name="immutable_tag_rules")
    repository_pattern = models.CharField(
        max_length=200,
        default="*",
        help_text="repositories of the namespace whose name matches, e.g. * or api-*",
        validators=[_validate_rule_pattern],
    )
    tag_pattern = models.CharField(max_length=128, help_text="e.g. v* or release-*", validators=[_validate_tag_pattern])
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["repository_pattern", "tag_pattern"]
        constraints = [
            models.UniqueConstraint(
                fields=["namespace", "repository_pattern", "tag_pattern"], name="immutable_tag_rule_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.repository_pattern}:{self.tag_pattern}"


class NamespaceStorage(models.Model):
    """What a namespace stores in the registry, counting each blob once (layers shared between
    its repositories are shared storage), and its optional quota. Computed by the sync after
    pushes and deletes (repositories/storage.py), read by the front before uploads."""

    namespace = models.OneToOneField(Namespace, on_delete=models.CASCADE, related_name="storage")
    used_bytes = models.BigIntegerField(default=0)
    repository_bytes = models.JSONField(default=dict, blank=True, help_text="{repository name: bytes}")
    quota_bytes = models.BigIntegerField(null=True, blank=True, help_text="empty: no quota")
    computed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.namespace_id}: {self.used_bytes} of {self.quota_bytes}"


class GcRun(models.Model):
    """One garbage collection of the registry (repositories/gc.py): a write hold, the registry's
    own `garbage-collect`, the space it freed. While a run holds, the token server grants no
    push or delete and the front refuses writes with 503."""

    class Status(models.TextChoices):
        HOLDING = "holding", "Holding writes (waiting for outstanding tokens to expire)"
        COLLECTING = "collecting", "Collecting garbage"
        OK = "ok", "Done"
        FAILED = "failed", "Failed"

    HOLD_STATUSES = (Status.HOLDING, Status.COLLECTING)

    status = models.CharField(max_length=10, choices=Status.choices, default=Status.HOLDING, db_index=True)
    started_at = models.DateTimeField(default=timezone.now)
    collect_started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    freed_bytes = models.BigIntegerField(null=True, blank=True, help_text="registry storage before minus after")
    output = models.TextField(blank=True, help_text="the end of garbage-collect's output")
    requested_by = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"GC {self.started_at:%Y-%m-%d %H:%M} {self.status}"


MAX_RETENTION_DAYS = 36_500  # a hundred years: further back than any date a tag can have


class RetentionRule(models.Model):
    """Which tags of the namespace's repositories to keep; the rest of the tags it covers go
    when retention runs (repositories/retention.py). A tag is kept if any criterion keeps it."""

    namespace = models.ForeignKey(Namespace, on_delete=models.CASCADE, related_name="retention_rules")
    repository_pattern = models.CharField(max_length=200, default="*", validators=[_validate_rule_pattern])
    tag_pattern = models.CharField(max_length=128, default="*", validators=[_validate_tag_pattern])
    keep_most_recent = models.PositiveIntegerField(
        null=True, blank=True, help_text="keep the N most recently pushed", validators=[MaxValueValidator(1_000_000)]
    )
    keep_pushed_within_days = models.PositiveIntegerField(
        null=True, blank=True, validators=[MaxValueValidator(MAX_RETENTION_DAYS)]
    )
    keep_pulled_within_days = models.PositiveIntegerField(
        null=True, blank=True, validators=[MaxValueValidator(MAX_RETENTION_DAYS)]
    )
    untagged = models.BooleanField(default=False, help_text="also remove manifests no tag points at")
    protect_immutable = models.BooleanField(default=True, help_text="never remove immutable tags")
    protect_verified = models.BooleanField(default=True, help_text="never remove tags verified by a trusted key")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return f"{self.repository_pattern}:{self.tag_pattern}"

    @property
    def keeps_tags(self) -> bool:
        """Whether the rule speaks about tags at all: it names what to keep. A rule without a
        keep criterion is an `untagged`-only rule (it removes untagged manifests, no tags)."""
        return any(
            value is not None
            for value in (self.keep_most_recent, self.keep_pushed_within_days, self.keep_pulled_within_days)
        )

    def clean(self) -> None:
        # A rule that keeps nothing by accident (a POST of `{}`) would remove every tag it covers
        # at the next daily run; removing them all has to be said: keep_most_recent 0.
        if not self.keeps_tags and not self.untagged:
            raise ValidationError(
                {
                    "keep_most_recent": "Say what to keep: keep_most_recent, keep_pushed_within_days or "
                    "keep_pulled_within_days (keep_most_recent 0 keeps none of the tags the rule covers); "
                    "or untagged alone, for a rule that removes untagged manifests only."
                }
            )


class RetentionRun(models.Model):
    """One run of a namespace's retention rules, or its dry-run preview: what went (would go)."""

    namespace = models.ForeignKey(Namespace, on_delete=models.CASCADE, related_name="retention_runs")
    dry_run = models.BooleanField(default=True)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    tags = models.JSONField(default=list, blank=True, help_text='["repository:tag", …]')
    digests = models.JSONField(default=list, blank=True, help_text='["repository@sha256:…", …]')
    bytes = models.BigIntegerField(default=0, help_text="storage the removed images alone held")
    skipped = models.JSONField(default=list, blank=True, help_text="what was planned but kept, and why")
    requested_by = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return (
            f"retention of {self.namespace_id} {'(dry run) ' if self.dry_run else ''}{self.started_at:%Y-%m-%d %H:%M}"
        )
