"""THE access policy. Every surface (UI, API, admin, token endpoint) asks this module what an
actor may do to a repository or namespace; none derives a rule of its own (DESIGN.md section 4).

Levels: read (view, pull) < write (+ push) < admin (+ delete, settings, permissions).
Each answer carries the reason that decided it, for the admin's effective-access page and the
audit log.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone

from accounts.models import Level, Membership, Namespace, PersonalAccessToken, Robot, TokenScope, User, Visibility
from repositories.models import AccessRule, Repository, RepositoryGrant

TOKEN_SCOPE_CAP = {TokenScope.READ: Level.READ, TokenScope.WRITE: Level.WRITE, TokenScope.DELETE: Level.ADMIN}

# Registry actions → the level they need (DESIGN.md section 4, token mapping).
ACTION_LEVEL = {"pull": Level.READ, "push": Level.WRITE, "delete": Level.ADMIN, "*": Level.ADMIN}


@dataclass(frozen=True)
class Actor:
    """Who is asking, and through which credential. Built by accounts.credentials."""

    kind: str  # "anonymous", "user", "robot", "system"
    user: User | None = None
    robot: Robot | None = None
    token: PersonalAccessToken | None = None

    @property
    def name(self) -> str:
        if self.kind == "system":
            return settings.SYSTEM_IDENTITY
        if self.robot is not None:
            return self.robot.username
        return self.user.username if self.user is not None else ""

    @property
    def is_anonymous(self) -> bool:
        return self.kind == "anonymous"

    @property
    def is_system(self) -> bool:
        return self.kind == "system"

    @property
    def is_staff(self) -> bool:
        return self.user is not None and self.user.is_active and self.user.is_staff

    @property
    def cap(self) -> tuple[Level, str]:
        """The most this credential may do, whatever its holder may."""
        if self.token is not None:
            return TOKEN_SCOPE_CAP[TokenScope(self.token.scope)], f"token scope {self.token.scope}"
        return Level.ADMIN, ""


ANONYMOUS = Actor(kind="anonymous")
SYSTEM = Actor(kind="system")


def actor_for_user(user) -> Actor:
    if user is None or not getattr(user, "is_authenticated", False):
        return ANONYMOUS
    return Actor(kind="user", user=user)


@dataclass
class Decision:
    level: Level
    reason: str
    # Every source considered that gave some level, for "why" pages.
    sources: list[tuple[Level, str]] = field(default_factory=list)

    def allows(self, level: Level) -> bool:
        return self.level >= level


def _disabled(actor: Actor) -> str:
    """Why this actor gets nothing at all, or '' when it is in good standing."""
    if actor.user is not None and not actor.user.is_active:
        return "user is inactive"
    if actor.robot is not None and not actor.robot.is_active:
        return "robot is disabled"
    if actor.token is not None:
        if actor.token.revoked_at is not None:
            return "token is revoked"
        if actor.token.expires_at is not None and actor.token.expires_at <= timezone.now():
            return "token has expired"
    return ""


def decide(actor: Actor, namespace: Namespace | None, name: str, repository: Repository | None = None) -> Decision:
    """The level `actor` has on repository `name` in `namespace`. The repository may not exist
    yet: then the answer is what the actor may do there, e.g. create it by pushing."""
    if actor.is_system:
        return Decision(Level.ADMIN, "system identity")
    if namespace is None:
        return Decision(Level.NONE, "namespace does not exist")
    why_not = _disabled(actor)
    if why_not:
        return Decision(Level.NONE, why_not)

    public = repository is not None and repository.visibility == Visibility.PUBLIC
    if _outside_token_limits(actor, namespace.name, name):
        # The credential cannot reach this repository; what anyone may do still holds.
        if public:
            return Decision(Level.READ, "public repository (outside the token's limits)")
        return Decision(Level.NONE, "outside the token's limits")

    sources: list[tuple[Level, str]] = []
    if public:
        sources.append((Level.READ, "public repository"))
    if actor.is_staff:
        sources.append((Level.ADMIN, "staff"))
    if actor.user is not None:
        sources.extend(_user_sources(actor.user, namespace, name, repository))
    if actor.robot is not None:
        sources.extend(_robot_sources(actor.robot, namespace, name, repository))

    if not sources:
        return Decision(Level.NONE, "no access", sources)
    level, reason = max(sources, key=lambda s: s[0])
    cap, cap_reason = actor.cap
    if level > cap:
        # The cap is never below read, so a read-only token still pulls what its owner can.
        level, reason = cap, f"{reason}, capped by {cap_reason}"
    return Decision(Level(level), reason, sources)


def _outside_token_limits(actor: Actor, namespace_name: str, name: str) -> bool:
    limits = actor.token.limits if actor.token is not None else None
    if not limits:
        return False
    full_name = f"{namespace_name}/{name}"
    return not any(limit in (namespace_name, full_name) for limit in limits)


def _user_sources(user: User, namespace: Namespace, name: str, repository: Repository | None):
    if namespace.user_id == user.pk:
        yield Level.ADMIN, "owner of personal namespace"
        return
    if namespace.organization_id is None:
        return
    role = (
        Membership.objects.filter(organization_id=namespace.organization_id, user=user)
        .values_list("role", flat=True)
        .first()
    )
    if role == Membership.Role.OWNER:
        yield Level.ADMIN, f"owner of organization {namespace.name}"
        return
    if repository is not None:
        grants = (
            RepositoryGrant.objects.filter(repository=repository)
            .filter(Q(user=user) | Q(team__memberships__user=user))
            .select_related("team")
        )
        for grant in grants:
            holder = f"team {grant.team.name}" if grant.team_id else "user"
            yield Level(grant.level), f"{holder} grant ({Level(grant.level).label})"
    if role is None:
        return  # rules name teams of the organization; non-members hold none
    rules = AccessRule.objects.filter(
        organization_id=namespace.organization_id, team__memberships__user=user
    ).select_related("team")
    for rule in rules:
        if pattern_matches(rule.pattern, name):
            yield Level(rule.level), f"team {rule.team.name} rule {rule.pattern} ({Level(rule.level).label})"


def _robot_sources(robot: Robot, namespace: Namespace, name: str, repository: Repository | None):
    if namespace.organization_id != robot.organization_id:
        return
    if repository is not None:
        for grant in RepositoryGrant.objects.filter(repository=repository, robot=robot):
            yield Level(grant.level), f"robot grant ({Level(grant.level).label})"
    for rule in AccessRule.objects.filter(organization_id=robot.organization_id, robot=robot):
        if pattern_matches(rule.pattern, name):
            yield Level(rule.level), f"robot rule {rule.pattern} ({Level(rule.level).label})"


def pattern_matches(pattern: str, name: str) -> bool:
    """Shell-style, case-sensitive; `*` also crosses `/` so `base/*` covers `base/a/b`."""
    return fnmatch.fnmatchcase(name, pattern)


def split_repository_name(full_name: str) -> tuple[str, str]:
    """'acme/team/app' → ('acme', 'team/app'). A name without a namespace has none ('')."""
    namespace, _, rest = full_name.partition("/")
    return (namespace, rest) if rest else ("", full_name)


def decide_by_name(actor: Actor, full_name: str) -> tuple[Decision, Namespace | None, Repository | None]:
    """Resolve `namespace/name` and decide; the token endpoint's entry point. One query when
    the repository exists (the common case: every pull), two when it does not."""
    ns_name, name = split_repository_name(full_name)
    if not ns_name:
        return decide(actor, None, name), None, None
    found = list(
        Repository.objects.select_related("namespace").filter(namespace__name=ns_name, name=name).order_by()[:1]
    )
    if found:
        repository = found[0]
        return decide(actor, repository.namespace, name, repository), repository.namespace, repository
    namespace = next(iter(Namespace.objects.filter(name=ns_name).order_by()[:1]), None)
    return decide(actor, namespace, name, None), namespace, None


def may_list_catalog(actor: Actor) -> bool:
    """`registry:catalog:*` exposes every name, private ones included: staff and system only."""
    return actor.is_system or (actor.is_staff and not _disabled(actor))


def visible_repositories(actor: Actor) -> QuerySet[Repository]:
    """Every repository the actor may read, as a queryset (for lists, search and counts)."""
    qs = Repository.objects.all()
    public = Q(visibility=Visibility.PUBLIC)
    if actor.is_system:
        return qs
    if _disabled(actor):
        return qs.none()  # as decide(): inactive users and dead tokens get nothing at all
    if actor.is_anonymous:
        return qs.filter(public)
    if actor.token is not None and actor.token.limits:
        qs = qs.filter(public | _limits_q(actor.token.limits))
    if actor.is_staff:
        return qs
    if actor.user is not None:
        user = actor.user
        own = Q(namespace__user=user)
        org_owner = Q(
            namespace__organization__memberships__user=user,
            namespace__organization__memberships__role=Membership.Role.OWNER,
        )
        granted = Q(grants__user=user) | Q(grants__team__memberships__user=user)
        rule_ids = _rule_matched_ids(
            AccessRule.objects.filter(team__memberships__user=user).values_list("organization_id", "pattern")
        )
        return qs.filter(public | own | org_owner | granted | Q(pk__in=rule_ids)).distinct()
    robot = actor.robot
    rule_ids = _rule_matched_ids(AccessRule.objects.filter(robot=robot).values_list("organization_id", "pattern"))
    return qs.filter(public | Q(grants__robot=robot) | Q(pk__in=rule_ids)).distinct()


def _limits_q(limits: list[str]) -> Q:
    q = Q(pk__in=[])
    for limit in limits:
        ns_name, name = split_repository_name(limit)
        q |= Q(namespace__name=ns_name, name=name) if ns_name else Q(namespace__name=limit)
    return q


def _rule_matched_ids(rules) -> list[int]:
    ids: list[int] = []
    for org_id, pattern in rules:
        candidates = Repository.objects.filter(namespace__organization_id=org_id).values_list("pk", "name")
        ids.extend(pk for pk, name in candidates if pattern_matches(pattern, name))
    return ids
