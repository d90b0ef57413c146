"""THE access policy. Every surface (UI, API, admin, token endpoint) asks this module what an
actor may do to a repository or namespace; none derives a rule of its own (DESIGN.md section 4).

Levels: read (view, pull) < write (+ push) < admin (+ delete, settings, permissions).
Each answer carries the reason that decided it, for the admin's effective-access page and the
audit log.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import Http404
from django.utils import timezone

from accounts.models import (
    Level,
    Membership,
    Namespace,
    Organization,
    PersonalAccessToken,
    Robot,
    TokenScope,
    User,
    Visibility,
)
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


def access_repository(actor: Actor, full_name: str, level: Level = Level.READ) -> tuple[Repository, Decision]:
    """The repository and the decision, when the actor may act on it at `level`. A repository the
    actor cannot read does not exist for them: one Http404 for missing and private alike;
    readable but not enough is PermissionDenied with the reason. Pages and the API both call
    this (DRF turns both exceptions into its 404 and 403)."""
    repository = Repository.objects.select_related("namespace").filter(full_name=full_name.strip("/")).first()
    if repository is None:
        raise Http404("No such repository.")
    decision = decide(actor, repository.namespace, repository.name, repository)
    if not decision.allows(Level.READ):
        raise Http404("No such repository.")
    if not decision.allows(level):
        raise PermissionDenied(
            f"This needs {level.label} access to {repository.full_name}; you have {decision.reason}."
        )
    return repository, decision


def may_list_catalog(actor: Actor) -> bool:
    """`registry:catalog:*` exposes every name, private ones included: staff and system only."""
    return actor.is_system or (actor.is_staff and not _disabled(actor))


def visible_repositories(actor: Actor) -> QuerySet[Repository]:
    """Every repository the actor may read, as one SQL query (for lists, search and counts):
    subqueries rather than joins, so no DISTINCT is needed and the planner can use indexes."""
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
        owned_orgs = Membership.objects.filter(user=user, role=Membership.Role.OWNER).values("organization_id")
        granted = RepositoryGrant.objects.filter(Q(user=user) | Q(team__memberships__user=user)).values("repository_id")
        rules = AccessRule.objects.filter(team__memberships__user=user)
        return qs.filter(
            public
            | Q(namespace__user=user)
            | Q(namespace__organization_id__in=owned_orgs)
            | Q(pk__in=granted)
            | _rules_q(rules)
        )
    robot = actor.robot
    granted = RepositoryGrant.objects.filter(robot=robot).values("repository_id")
    return qs.filter(public | Q(pk__in=granted) | _rules_q(AccessRule.objects.filter(robot=robot)))


def _limits_q(limits: list[str]) -> Q:
    q = Q(pk__in=[])
    for limit in limits:
        q |= Q(full_name=limit) | Q(namespace__name=limit)
    return q


def _rules_q(rules: QuerySet[AccessRule]) -> Q:
    """Repositories matched by these rules' patterns, evaluated by the database."""
    q = Q(pk__in=[])
    for org_id, pattern in rules.values_list("organization_id", "pattern").distinct():
        q |= Q(namespace__organization_id=org_id, name__regex=pattern_regex(pattern))
    return q


def pattern_regex(pattern: str) -> str:
    """The shell pattern as an anchored regular expression that PostgreSQL and SQLite (Python's
    re) read alike: * and ? become .* and ., [...] stays a class, the rest is literal."""
    out, i = ["^"], 0
    while i < len(pattern):
        char = pattern[i]
        if char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        elif char == "[" and "]" in pattern[i + 1 :]:
            end = pattern.index("]", i + 1)
            out.append("[" + pattern[i + 1 : end].replace("\\", "\\\\") + "]")
            i = end
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out) + "$"


# --- namespaces and organizations ------------------------------------------------------------


def organization_role(actor: Actor, organization_id: int) -> str | None:
    """'owner', 'member' or None; staff count as owners. Caps and limits are not applied here:
    callers that write use may_manage_organization."""
    if actor.is_system:
        return Membership.Role.OWNER
    if _disabled(actor) or actor.user is None:
        return None
    if actor.is_staff:
        return Membership.Role.OWNER
    return (
        Membership.objects.filter(organization_id=organization_id, user=actor.user)
        .values_list("role", flat=True)
        .first()
    )


def may_manage_organization(actor: Actor, organization: Organization, *, level: Level = Level.ADMIN) -> bool:
    """Members, teams, rules, robots and settings of an organization: its owners and staff,
    within the credential's cap (a read-only token changes nothing) and limits."""
    if organization_role(actor, organization.pk) != Membership.Role.OWNER:
        return False
    cap, _ = actor.cap
    if cap < level:
        return False
    limits = actor.token.limits if actor.token is not None else None
    return not limits or organization.name in limits


def may_see_organization_internals(actor: Actor, organization: Organization) -> bool:
    """Members, teams and rules are visible to the organization's members."""
    return organization_role(actor, organization.pk) is not None


def credential_allows(actor: Actor, level: Level) -> bool:
    """Whether the credential itself may act at this level (for writes that are not about a
    repository, e.g. creating a token or an organization)."""
    return not _disabled(actor) and not actor.is_anonymous and actor.cap[0] >= level


# --- reverse: who has access -----------------------------------------------------------------


def principals_with_access(repository: Repository) -> list[tuple[str, str, Decision]]:
    """Every user and robot with more than what the public gets on this repository, with the
    policy's decision for each: (kind, name, decision). Candidates are everyone a rule of this
    module could favour: staff, the personal owner, the organization's members, users with a
    grant, and the organization's robots; the policy itself decides each one."""
    namespace = repository.namespace
    users = (
        User.objects.filter(is_active=True)
        .filter(
            Q(is_staff=True)
            | Q(pk=namespace.user_id or 0)
            | Q(memberships__organization_id=namespace.organization_id or 0)
            | Q(grants__repository=repository)
        )
        .distinct()
        .order_by("username")
    )
    rows: list[tuple[str, str, Decision]] = []
    baseline = Level.READ if repository.visibility == Visibility.PUBLIC else Level.NONE
    for user in users:
        decision = decide(Actor(kind="user", user=user), namespace, repository.name, repository)
        if decision.level > baseline:
            rows.append(("user", user.username, decision))
    if namespace.organization_id:
        for robot in Robot.objects.filter(organization_id=namespace.organization_id, is_active=True).select_related(
            "organization"
        ):
            decision = decide(Actor(kind="robot", robot=robot), namespace, repository.name, repository)
            if decision.level > baseline:
                rows.append(("robot", robot.username, decision))
    return sorted(rows, key=lambda row: (-row[2].level, row[0], row[1]))
