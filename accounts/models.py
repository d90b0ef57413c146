"""Who can hold access: users, organizations with their members and teams, robot accounts, and
the credentials they present (passwords live on User; tokens and robot secrets here, hashed).

Namespaces are shared by users and organizations: `alice/app` and `acme/api` live in one table
of names, so a user can never take an organization's name or the other way round.
"""

from __future__ import annotations

import re

from django.contrib.auth.models import AbstractUser
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

# A namespace is the first path component of a repository name, so it follows distribution's
# path-component grammar, kept a little stricter (no leading/trailing separators, 2..64 chars).
NAMESPACE_RE = r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$"
namespace_validator = RegexValidator(
    NAMESPACE_RE,
    "Use lowercase letters, digits and single separators (. _ -), starting and ending with a letter or digit.",
)
# Robots are called "<org>+<name>" when they log in, as on Quay.
ROBOT_NAME_RE = r"^[a-z0-9]+(?:[_-][a-z0-9]+)*$"


class Level(models.IntegerChoices):
    """Access levels, ordered: each includes the ones below it."""

    NONE = 0, "none"
    READ = 10, "read"
    WRITE = 20, "write"
    ADMIN = 30, "admin"


class User(AbstractUser):
    """A person. The username is also the name of the user's personal namespace."""

    username = models.CharField(
        max_length=64, unique=True, validators=[namespace_validator], help_text="Also your namespace."
    )
    full_name = models.CharField(max_length=150, blank=True, verbose_name="display name")
    bio = models.CharField(max_length=300, blank=True)
    company = models.CharField(max_length=150, blank=True)
    location = models.CharField(max_length=150, blank=True)
    # Where the account comes from: "" (made here, with a password), "ldap", or "oidc:<provider
    # id>". Company accounts sign in through their directory and have no password here.
    directory = models.CharField(max_length=100, blank=True, default="", db_index=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(username__regex=NAMESPACE_RE), name="user_username_grammar"),
        ]

    def __str__(self) -> str:
        return self.username


class Organization(models.Model):
    name = models.CharField(max_length=64, unique=True, validators=[namespace_validator])
    display_name = models.CharField(max_length=150, blank=True)
    description = models.CharField(max_length=300, blank=True)
    email = models.EmailField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    members = models.ManyToManyField(User, through="Membership", related_name="organizations")

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(name__regex=NAMESPACE_RE), name="organization_name_grammar"),
        ]

    def __str__(self) -> str:
        return self.name


class Visibility(models.TextChoices):
    PUBLIC = "public", "Public"
    PRIVATE = "private", "Private"


class Namespace(models.Model):
    """The shared name space of users and organizations; exactly one of the two owns a row."""

    class Kind(models.TextChoices):
        USER = "user", "User"
        ORGANIZATION = "org", "Organization"

    name = models.CharField(max_length=64, unique=True, validators=[namespace_validator])
    kind = models.CharField(max_length=4, choices=Kind.choices)
    user = models.OneToOneField(User, null=True, blank=True, on_delete=models.CASCADE, related_name="namespace")
    organization = models.OneToOneField(
        Organization, null=True, blank=True, on_delete=models.CASCADE, related_name="namespace"
    )
    # What a repository created by a push gets (DESIGN.md section 4: private unless changed).
    default_visibility = models.CharField(max_length=8, choices=Visibility.choices, default=Visibility.PRIVATE)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(name__regex=NAMESPACE_RE), name="namespace_name_grammar"),
            models.CheckConstraint(
                condition=(
                    Q(kind="user", user__isnull=False, organization__isnull=True)
                    | Q(kind="org", user__isnull=True, organization__isnull=False)
                ),
                name="namespace_exactly_one_owner",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        MEMBER = "member", "Member"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=8, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(default=timezone.now)
    # Made by a group mapping (accounts/directory.py): it goes when the person's groups no
    # longer give it. A membership made by hand is never removed by a sync.
    managed = models.BooleanField(default=False)
    # The owner role was given by a group mapping: it goes back to member when the group does.
    # An owner made by hand is never demoted by a sync.
    owner_from_mapping = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "user"], name="membership_unique"),
            models.CheckConstraint(condition=Q(role__in=["owner", "member"]), name="membership_role_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.organization} ({self.role})"


class Team(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="teams")
    name = models.CharField(max_length=64, validators=[namespace_validator])
    description = models.CharField(max_length=300, blank=True)
    members = models.ManyToManyField(User, through="TeamMembership", related_name="teams", blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["organization__name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="team_unique_name"),
        ]

    def __str__(self) -> str:
        return f"{self.organization.name}/{self.name}"


class TeamMembership(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="team_memberships")
    created_at = models.DateTimeField(default=timezone.now)
    managed = models.BooleanField(default=False)  # made by a group mapping

    class Meta:
        constraints = [models.UniqueConstraint(fields=["team", "user"], name="team_membership_unique")]

    def __str__(self) -> str:
        return f"{self.user} in {self.team}"


class GroupMapping(models.Model):
    """An identity provider's group, or an LDAP group's DN, whose members are members of an
    organization's team (and, with `owner`, owners of the organization). Memberships follow at
    each sign-in and by the periodic check; a team with a mapping takes no members by hand."""

    source = models.CharField(
        max_length=100, help_text='"ldap", or "oidc:<provider id>" as configured in OIDC_PROVIDERS.'
    )
    group = models.CharField(max_length=500, help_text="The group's name as the provider sends it, or its DN.")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="group_mappings")
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.CASCADE, related_name="group_mappings")
    owner = models.BooleanField(default=False, help_text="Members of the group own the organization.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["organization__name", "source", "group"]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "group", "organization", "team"],
                condition=Q(team__isnull=False),
                name="group_mapping_unique_team",
            ),
            models.UniqueConstraint(
                fields=["source", "group", "organization"],
                condition=Q(team__isnull=True),
                name="group_mapping_unique_ownership",
            ),
            models.CheckConstraint(condition=Q(team__isnull=False) | Q(owner=True), name="group_mapping_grants"),
        ]

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        if self.team_id and self.organization_id and self.team.organization_id != self.organization_id:
            raise ValidationError({"team": "The team must belong to the organization."})
        if not self.team_id and not self.owner:
            raise ValidationError({"team": "Map the group to a team, to ownership, or both."})
        if self.source != "ldap" and not re.fullmatch(r"oidc:[a-z0-9][a-z0-9_-]{0,90}", self.source or ""):
            raise ValidationError({"source": 'Use "ldap" or "oidc:<provider id>".'})
        from accounts.directory import normalize_group

        self.group = normalize_group(self.source, self.group or "")  # as every sync compares it
        if not self.group:
            raise ValidationError({"group": "Name a group."})
        import unicodedata

        if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in self.group):
            raise ValidationError({"group": "No control or direction characters in a group's name."})

    def __str__(self) -> str:
        target = f"{self.organization.name}/{self.team.name}" if self.team_id else self.organization.name
        return f"{self.source} {self.group} -> {target}{' (owner)' if self.owner else ''}"


class Robot(models.Model):
    """A non-person account of an organization for CI and deploy tooling. It logs in as
    `<org>+<name>` with a secret, and holds access only through grants and access rules."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="robots")
    name = models.CharField(
        max_length=64, validators=[RegexValidator(ROBOT_NAME_RE, "Lowercase letters, digits, _ and -.")]
    )
    description = models.CharField(max_length=300, blank=True)
    secret_prefix = models.CharField(max_length=16, unique=True)
    secret_hash = models.CharField(max_length=64)  # SHA-256 hex of the whole secret
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["organization__name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="robot_unique_name"),
            models.CheckConstraint(condition=Q(name__regex=ROBOT_NAME_RE), name="robot_name_grammar"),
        ]

    @property
    def username(self) -> str:
        return f"{self.organization.name}+{self.name}"

    def __str__(self) -> str:
        return self.username


class TokenScope(models.TextChoices):
    """What a personal access token may do at most, whatever its owner may do (Docker Hub's
    scopes): read = pull, write = pull + push, delete = pull + push + delete."""

    READ = "read", "Read-only"
    WRITE = "write", "Read & write"
    DELETE = "delete", "Read, write & delete"


class PersonalAccessToken(models.Model):
    """Only the SHA-256 of the secret is stored, plus a prefix for lookup and display. Secrets
    are 256-bit random strings, so a fast hash is enough (a slow hash would only slow pulls)."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="access_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    token_hash = models.CharField(max_length=64)
    scope = models.CharField(max_length=8, choices=TokenScope.choices, default=TokenScope.READ)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # Optional limits, on top of the scope cap: namespaces ("acme") and repositories
    # ("acme/api"). Empty means everything the owner may reach. Docker Hub cannot do this.
    limits = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(scope__in=["read", "write", "delete"]), name="pat_scope_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def is_usable(self, now=None) -> bool:
        now = now or timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class RefreshToken(models.Model):
    """An OAuth2 refresh token (`access_type=offline`, or `offline_token=true` on GET) as
    containerd, BuildKit and `docker login` keep them. It stands for the credential it was
    issued against: a user's password (until the password or the 2FA setup changes), a personal
    access token (whose cap, limits and expiry it keeps, and whose revocation ends it) or a
    robot. It answers only the client it was issued to, and expires (REFRESH_TOKEN_DAYS). Only
    a SHA-256 hash is stored."""

    user = models.ForeignKey(User, null=True, blank=True, on_delete=models.CASCADE, related_name="refresh_tokens")
    robot = models.ForeignKey(Robot, null=True, blank=True, on_delete=models.CASCADE, related_name="refresh_tokens")
    access_token = models.ForeignKey(
        PersonalAccessToken, null=True, blank=True, on_delete=models.CASCADE, related_name="refresh_tokens"
    )
    client_id = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=16, unique=True)
    token_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    # None for rows made before expiry existed: they expire REFRESH_TOKEN_DAYS after creation.
    expires_at = models.DateTimeField(null=True, blank=True)
    # For one born from a password: accounts.credentials.credential_fingerprint at issue time.
    password_fingerprint = models.CharField(max_length=64, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(user__isnull=False, robot__isnull=True) | Q(user__isnull=True, robot__isnull=False),
                name="refresh_token_exactly_one_holder",
            ),
        ]

    def __str__(self) -> str:
        return f"refresh {self.prefix}… ({self.user or self.robot}, {self.client_id or 'no client id'})"
