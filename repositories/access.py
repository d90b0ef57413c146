"""THE access policy. Every surface (UI, API, admin, token endpoint) asks this module what an
actor may do to a repository or namespace; none derives a rule of its own (DESIGN.md section 4).

Levels: read (view, pull) < write (+ push) < admin (+ delete, settings, permissions).
Each answer carries the reason that decided it, for the admin's effective-access page and the
audit log.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from functools import lru_cache

from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q, QuerySet
from django.http import Http404

from accounts.actors import ANONYMOUS, SYSTEM, TOKEN_SCOPE_CAP, Actor, Via, actor_for_user
from accounts.models import (
    Level,
    Membership,
    Namespace,
    Organization,
    Robot,
    TokenScope,
    User,
    Visibility,
)
from repositories.models import AccessRule, Repository, RepositoryGrant
from repositories.registry.token import Scope

__all__ = ["ANONYMOUS", "SYSTEM", "TOKEN_SCOPE_CAP", "Actor", "actor_for_user"]

# Registry actions → the level they need (DESIGN.md section 4, token mapping).
ACTION_LEVEL = {"pull": Level.READ, "push": Level.WRITE, "delete": Level.ADMIN, "*": Level.ADMIN}


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
    return actor.disabled_reason()


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
    limits = actor.limits
    if not limits:
        return False
    full_name = f"{namespace_name}/{name}"
    return not any(limit in (namespace_name, full_name) for limit in limits)


MAX_LIMITS = 50


def validate_limits(limits: list[str]) -> list[str]:
    """A token's limits as stored: each a namespace (`acme`) or a repository (`acme/api`,
    `acme/team/app`) in the registry's name grammar, at most MAX_LIMITS, no repeats. Anything
    else (patterns, upper case, `..`, a tag) is refused rather than stored as a limit that
    reaches nothing."""
    from repositories.models import REPOSITORY_NAME_RE

    if not isinstance(limits, list) or len(limits) > MAX_LIMITS:
        raise ValidationError(f"A list of at most {MAX_LIMITS} namespace or namespace/repository names.")
    cleaned: list[str] = []
    for limit in limits:
        if not isinstance(limit, str) or len(limit) > 255 or not re.fullmatch(REPOSITORY_NAME_RE, limit):
            raise ValidationError(
                f"{str(limit)[:80]!r} is not a namespace or repository name (lowercase, e.g. acme or acme/api)."
            )
        if limit not in cleaned:
            cleaned.append(limit)
    return cleaned


def limits_within(limits: list[str], outer: list[str]) -> bool:
    """Whether every entry of `limits` lies inside `outer`: the same entry, or a repository
    inside a namespace that `outer` names. An empty `outer` holds everything; an empty
    `limits` (no limit at all) lies inside nothing but that."""
    if not outer:
        return True
    if not limits:
        return False
    for limit in limits:
        namespace, _, rest = limit.partition("/")
        if limit not in outer and not (rest and namespace in outer):
            return False
    return True


def _user_sources(user: User, namespace: Namespace, name: str, repository: Repository | None):
    if namespace.user_id == user.pk:
        yield Level.ADMIN, "owner of personal namespace"
        return
    role = None
    if namespace.organization_id is not None:
        role = (
            Membership.objects.filter(organization_id=namespace.organization_id, user=user)
            .values_list("role", flat=True)
            .first()
        )
    if role == Membership.Role.OWNER:
        yield Level.ADMIN, f"owner of organization {namespace.name}"
        return
    if repository is not None:  # grants: also collaborators on a personal repository
        grants = (
            RepositoryGrant.objects.filter(repository=repository)
            .filter(Q(user=user) | Q(team__memberships__user=user))
            .select_related("team")
        )
        for grant in grants:
            holder = f"team {grant.team.name}" if grant.team_id else "user"
            yield Level(grant.level), f"{holder} grant ({Level(grant.level).label})"
    if role is None:
        return  # rules name teams of an organization; non-members (and personal namespaces) hold none
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


# --- one pattern matcher: access rules (here and in SQL) and webhook tag filters -------------

PATTERN_HELP = (
    "Shell-style: * matches anything (also across /), ? one character, [abc] or [a-z] one of a set, "
    "[!abc] one not in it."
)


class InvalidPattern(ValueError):
    """A pattern that is not in the grammar PATTERN_HELP describes."""


def pattern_regex(pattern: str) -> str:
    """The pattern as an anchored regular expression that PostgreSQL (ARE) and SQLite/Python
    read alike, so a rule matches the same names in decide() and in visible_repositories().
    Raises InvalidPattern for anything outside the grammar (an unclosed or empty set, a
    reversed range), so a bad pattern is refused when saved instead of breaking every list."""
    out, i = ["^"], 0
    while i < len(pattern):
        char = pattern[i]
        if char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        elif char == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                raise InvalidPattern(f"{pattern!r}: a [ without its ]")
            out.append(_pattern_class(pattern, pattern[i + 1 : end]))
            i = end
        elif char == "]":
            raise InvalidPattern(f"{pattern!r}: a ] without its [")
        else:
            out.append(_literal(char))
        i += 1
    return "".join(out) + "$"


def _literal(char: str) -> str:
    # A backslash before a character that is not a letter or digit makes it literal in both
    # dialects; letters and digits stand for themselves (a backslash would make them escapes).
    if char == "\\" or ord(char) < 32 or ord(char) > 126:
        raise InvalidPattern(f"{char!r} is not allowed in a pattern")
    return char if char.isalnum() else "\\" + char


def _pattern_class(pattern: str, body: str) -> str:
    negate = body.startswith("!")
    if negate:
        body = body[1:]
    if not body:
        raise InvalidPattern(f"{pattern!r}: an empty [] set")
    items, i = [], 0
    while i < len(body):
        if i + 2 < len(body) and body[i + 1] == "-":
            low, high = body[i], body[i + 2]
            if not (low.isalnum() and high.isalnum()) or low > high:
                raise InvalidPattern(f"{pattern!r}: [{low}-{high}] is not a range (use [a-z] or [0-9])")
            items.append(f"{low}-{high}")
            i += 3
        else:
            items.append(_literal(body[i]))
            i += 1
    return "[" + ("^" if negate else "") + "".join(items) + "]"


@lru_cache(maxsize=4096)
def _compiled(pattern: str) -> re.Pattern | None:
    try:
        return re.compile(pattern_regex(pattern))
    except (InvalidPattern, re.error):
        return None


def pattern_matches(pattern: str, name: str) -> bool:
    """Shell-style, case-sensitive; `*` also crosses `/` so `base/*` covers `base/a/b`. A pattern
    that is not valid (stored before validation existed) matches nothing, here as in SQL."""
    compiled = _compiled(pattern)
    return compiled is not None and compiled.match(name) is not None


def validate_pattern(pattern: str) -> None:
    """Django validator for stored patterns."""
    try:
        pattern_regex(pattern)
    except InvalidPattern as exc:
        raise ValidationError(f"{exc}. {PATTERN_HELP}") from None


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
    """`registry:catalog:*` exposes every name, private ones included: staff and system only,
    and only with a credential that reaches everything (no limits) at the admin level (`*` is
    admin, as on repositories)."""
    if actor.is_system:
        return True
    return actor.is_staff and not _disabled(actor) and not actor.limits and actor.cap[0] >= Level.ADMIN


def visible_repositories(actor: Actor) -> QuerySet[Repository]:
    """Every repository the actor may read, as one SQL query (for lists, search and counts)."""
    return repositories_with_level(actor, Level.READ)


def repositories_with_level(actor: Actor, level: Level) -> QuerySet[Repository]:
    """Every repository on which decide() gives the actor at least `level`, as one SQL query:
    subqueries rather than joins, so no DISTINCT is needed and the planner can use indexes.
    The same sources as decide(), within the credential's cap and limits; the property test
    holds the two to the same answers."""
    repositories = Repository.objects.all()
    everyone = Q(visibility=Visibility.PUBLIC) if level <= Level.READ else Q(pk__in=[])
    if actor.is_system:
        return repositories
    if _disabled(actor):
        return repositories.none()  # as decide(): inactive users and dead tokens get nothing at all
    if actor.is_anonymous or actor.cap[0] < level:
        return repositories.filter(everyone)
    # Outside its limits a credential still reads what anyone may, and nothing more.
    reach = Q(pk__in=Repository.objects.filter(_limits_q(actor.limits)).values("pk")) if actor.limits else None
    if actor.is_staff:
        return repositories if reach is None else repositories.filter(everyone | reach)
    if actor.user is not None:
        user = actor.user
        owned_orgs = Membership.objects.filter(user=user, role=Membership.Role.OWNER).values("organization_id")
        member_orgs = Membership.objects.filter(user=user).values("organization_id")
        granted = (
            RepositoryGrant.objects.filter(level__gte=level)
            .filter(Q(user=user) | Q(team__memberships__user=user))
            .values("repository_id")
        )
        # Rules name teams of the organization; a member who left holds none (as decide()).
        rules = AccessRule.objects.filter(team__memberships__user=user, organization_id__in=member_orgs)
        # By namespace key, not through a join with the namespaces: a search visits thousands
        # of rows, and these small sets are hashed once.
        held = (
            Q(namespace_id__in=Namespace.objects.filter(user=user).values("pk"))
            | Q(namespace_id__in=Namespace.objects.filter(organization_id__in=owned_orgs).values("pk"))
            | Q(pk__in=granted)
            | _rules_q(rules, level)
        )
    else:
        robot = actor.robot
        granted = RepositoryGrant.objects.filter(robot=robot, level__gte=level).values("repository_id")
        held = Q(namespace_id__in=Namespace.objects.filter(organization_id=robot.organization_id).values("pk")) & (
            Q(pk__in=granted) | _rules_q(AccessRule.objects.filter(robot=robot), level)
        )
    return repositories.filter(everyone | (held if reach is None else reach & held))


def _limits_q(limits: list[str]) -> Q:
    q = Q(pk__in=[])
    for limit in limits:
        q |= Q(full_name=limit) | Q(namespace__name=limit)
    return q


def _rules_q(rules: QuerySet[AccessRule], level: Level = Level.READ) -> Q:
    """Repositories matched by these rules' patterns (at `level` or above), evaluated by the
    database with the same regular expression pattern_matches uses."""
    by_org: dict[int, list[str]] = {}
    found = rules.filter(level__gte=level).values_list("organization__namespace__id", "pattern").distinct()
    for namespace_id, pattern in found:
        if _compiled(pattern) is None or namespace_id is None:
            continue  # matches nothing, as in decide()
        by_org.setdefault(namespace_id, []).append(pattern_regex(pattern)[1:-1])  # without its anchors
    q = Q(pk__in=[])
    for namespace_id, bodies in sorted(by_org.items()):
        # The organization's namespace first (cheap, and false for most rows), then one
        # alternation of every pattern of that organization: one regular expression per row
        # rather than one per rule.
        combined = "^(?:" + "|".join(f"(?:{body})" for body in sorted(set(bodies))) + ")$"
        q |= Q(namespace_id=namespace_id) & Q(name__regex=combined)
    return q


# --- the registry's token: a pure function of the policy -------------------------------------


def registry_grants(actor: Actor, scopes: list[Scope]) -> list[dict]:
    """What a registry token grants: for each requested scope the subset of its actions the
    policy allows (DESIGN.md section 4), and an empty list for the rest; never an error for a
    scope. It reads and decides, and writes nothing: a repository pushed to for the first time
    is created when the registry reports the push, not when a token is asked for."""
    grants = []
    for scope in scopes:
        if scope.type == "registry":
            actions = ["*"] if may_list_catalog(actor) else []
        else:
            decision, _, _ = decide_by_name(actor, scope.name)
            actions = [a for a in scope.actions if decision.allows(ACTION_LEVEL[a])]
        grants.append({"type": scope.type, "name": scope.name, "actions": actions})
    return grants


# --- namespaces and organizations ------------------------------------------------------------


def organization_role(actor: Actor, organization_id: int) -> str | None:
    """'owner', 'member' or None; staff count as owners. Caps and limits are not applied here:
    callers that change anything use may_manage_organization."""
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


def may_manage_organization(actor: Actor, organization: Organization) -> bool:
    """Members, teams, access rules, robots, webhooks, settings and the audit log of an
    organization: its owners and staff, with a credential that holds the admin cap (a token of
    scope delete; what a session or a password holds) and reaches the organization's namespace.
    An admin act whatever the HTTP method: reading robots or webhooks shows what only an owner
    may see."""
    if organization_role(actor, organization.pk) != Membership.Role.OWNER:
        return False
    if actor.cap[0] < Level.ADMIN:
        return False
    return not actor.limits or organization.name in actor.limits


def may_manage_repository_policies(actor: Actor, namespace: Namespace, repository_name: str) -> bool:
    """Immutable-tag and retention rules for one repository (named literally, not a pattern):
    the namespace's managers, and whoever holds admin on that repository (a grant or a rule of
    level admin), with a credential that holds the admin cap. The repository must exist."""
    if may_manage_namespace(actor, namespace):
        return True
    from repositories.models import REPOSITORY_NAME_RE

    if not isinstance(repository_name, str) or not re.fullmatch(REPOSITORY_NAME_RE, repository_name):
        return False  # a pattern, or not a name at all
    repository = Repository.objects.filter(namespace=namespace, name=repository_name).first()
    if repository is None:
        return False
    return decide(actor, namespace, repository_name, repository).allows(Level.ADMIN)


def may_manage_namespace(actor: Actor, namespace: Namespace) -> bool:
    """Namespace-wide settings, such as the signing keys its images are checked against: an
    organization's managers (may_manage_organization); for a personal namespace its user (or
    staff), with a credential that holds the admin cap and reaches the namespace."""
    if namespace.organization_id:
        return may_manage_organization(actor, namespace.organization)
    if _disabled(actor) or actor.user is None:
        return False
    if not (actor.is_staff or actor.user.pk == namespace.user_id):
        return False
    if actor.cap[0] < Level.ADMIN:
        return False
    return not actor.limits or namespace.name in actor.limits


def may_see_organization_internals(actor: Actor, organization: Organization) -> bool:
    """Members, teams and rules are visible to the organization's members."""
    if organization_role(actor, organization.pk) is None:
        return False
    return not actor.limits or organization.name in actor.limits


def credential_allows(actor: Actor, level: Level) -> bool:
    """Whether the credential itself may act at this level (for writes that are not about a
    repository or an organization, e.g. starring)."""
    return not _disabled(actor) and not actor.is_anonymous and actor.cap[0] >= level


# --- credentials that make credentials ---------------------------------------------------------
# A credential never widens itself (DESIGN.md section 4): whatever it creates lies within its own
# scope, limits and expiry, and a read-only credential creates nothing. Every path that makes a
# credential asks one of these; each answers '' (allowed) or why not, for the caller to show.


def token_creation_refusal(actor: Actor, *, scope: str, limits: list[str], expires_at: dt.datetime | None) -> str:
    """May `actor` create a personal access token (for itself) with this scope, limits and
    expiry?"""
    if actor.is_anonymous or actor.user is None or actor.robot is not None:
        return "Only a signed-in user creates personal access tokens."
    if _disabled(actor):
        return f"This credential is not valid ({_disabled(actor)})."
    if actor.via in (Via.SESSION, Via.PASSWORD):
        return ""  # the user themself (2FA, where set up, was already passed or enforced)
    cap, cap_reason = actor.cap
    if cap < Level.WRITE:
        return "A read-only token changes nothing, and creates no tokens."
    wanted = TOKEN_SCOPE_CAP[TokenScope(scope)]
    if wanted > cap:
        return f"A token cannot create a token with a wider scope than its own ({cap_reason})."
    if not limits_within(limits, actor.limits):
        return (
            "A limited token can only create tokens limited to the same namespaces and repositories "
            f"(or repositories inside its namespaces): {', '.join(actor.limits)}."
        )
    if actor.expires_at is not None and (expires_at is None or expires_at > actor.expires_at):
        return (
            f"A token that expires ({actor.expires_at:%Y-%m-%d %H:%M} UTC) can only create tokens that expire "
            "no later than it does."
        )
    return ""


def organization_creation_refusal(actor: Actor) -> str:
    """May `actor` create an organization (and own it)? A signed-in user, or a token of scope
    delete with no limits: a limited token would make a namespace outside its own limits."""
    if actor.is_anonymous or actor.user is None or _disabled(actor):
        return "Sign in to create an organization."
    if actor.cap[0] < Level.ADMIN:
        return "Creating an organization needs a session or a token of scope delete (read, write and delete)."
    if actor.limits:
        return "A token limited to some namespaces or repositories cannot create an organization."
    return ""


def robot_secret_refusal(actor: Actor, organization: Organization) -> str:
    """May `actor` create a robot of this organization, or rotate one (and so read its secret)?
    An organization owner's admin act; a robot's secret does not expire, so a credential that
    does (or that is limited to less than the organization) cannot make one."""
    if not may_manage_organization(actor, organization):
        return "Only the organization's owners may manage robots, with a token of scope delete."
    if actor.expires_at is not None:
        return (
            "This token expires, and a robot's secret does not: create or rotate robots in the browser, "
            "or with a token that does not expire."
        )
    return ""


def repository_creation_refusal(actor: Actor, namespace: Namespace | None, name: str, visibility: str | None) -> str:
    """May `actor` create repository `name` in `namespace` with this visibility (None: the
    namespace's default)? Write on the namespace creates; making it public, when the namespace's
    default is private, is an admin setting."""
    if namespace is None:
        return "No such namespace, or you may not create repositories in it."
    decision = decide(actor, namespace, name)
    if not decision.allows(Level.WRITE):
        return f"You may not create repositories in {namespace.name}."
    public = visibility == Visibility.PUBLIC and namespace.default_visibility != Visibility.PUBLIC
    if public and not decision.allows(Level.ADMIN):
        return (
            f"Making a repository public needs admin rights in {namespace.name} ({decision.reason}): "
            "create it private, and ask an owner to publish it."
        )
    return ""


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
