"""Reads of the audit log, each taking the actor: every feed is the policy's feed.

A row about a repository is shown only to those the policy lets see that repository, and rows
that tell more than a reader may know (grants, webhooks, admin edits) only to the repository's
admins. Rows about an organization itself (members, teams, rules, robots) are for its members;
its webhooks and anything else only for those who manage it. Filtering "by namespace" alone is
the bug class that leaked private names (issue 12): nothing here does.
"""

from __future__ import annotations

from django.db.models import Q, QuerySet

from accounts.actors import Actor
from accounts.models import Level, Membership, Organization, User
from audit.models import AuditEvent
from repositories import access

# What a reader of a repository may see happen to it; every other repository row (grants,
# webhooks, admin edits) is for its admins.
READER_ACTIONS = frozenset({"tag.push", "tag.delete", "repository.create", "repository.update", "repository.delete"})
# Rows about an organization (no repository) that its members may see: they can list the members,
# teams, rules and robots anyway.
MEMBER_ACTION_PREFIXES = ("membership.", "team.", "access_rule.", "robot.")


def _ordered(qs: QuerySet[AuditEvent]) -> QuerySet[AuditEvent]:
    return qs.order_by("-created_at", "-pk")


def repository_rows_q(actor: Actor) -> Q:
    """Rows about repositories this actor may see, at the level each row needs."""
    readable = access.visible_repositories(actor).values("full_name")
    administered = access.repositories_with_level(actor, Level.ADMIN).values("full_name")
    return Q(repository__in=readable, action__in=READER_ACTIONS) | Q(repository__in=administered)


def _member_actions_q() -> Q:
    q = Q(pk__in=[])
    for prefix in MEMBER_ACTION_PREFIXES:
        q |= Q(action__startswith=prefix)
    return q


def repository_activity(*, actor: Actor, repository, limit: int | None = None) -> QuerySet[AuditEvent]:
    """A repository's feed; the caller already checked that the actor may read it."""
    qs = AuditEvent.objects.filter(repository=repository.full_name)
    decision = access.decide(actor, repository.namespace, repository.name, repository)
    if not decision.allows(Level.ADMIN):
        qs = qs.filter(action__in=READER_ACTIONS)
    qs = _ordered(qs)
    return qs[:limit] if limit else qs


def organization_activity(*, actor: Actor, organization: Organization, limit: int | None = None):
    """An organization's feed for one of its members (the caller checked membership)."""
    own_rows = Q(namespace=organization.name, repository="")
    manager = access.may_manage_organization(actor, organization)
    visible_own = own_rows if manager else own_rows & _member_actions_q()
    qs = AuditEvent.objects.filter(namespace=organization.name).filter(visible_own | repository_rows_q(actor))
    qs = _ordered(qs)
    return qs[:limit] if limit else qs


def user_activity(*, actor: Actor, user: User, limit: int | None = None):
    """What `user` did to repositories the actor may see."""
    qs = AuditEvent.objects.filter(Q(actor=user) | Q(actor_name=user.username)).filter(repository_rows_q(actor))
    qs = _ordered(qs)
    return qs[:limit] if limit else qs


def audit_log(*, actor: Actor, namespace: str = "") -> QuerySet[AuditEvent]:
    """The audit API, an admin read: staff see everything their credential reaches,
    organization owners the organizations they may manage, everyone their own namespace's rows;
    always with the admin cap (a session, or a token of scope delete) and within a token's
    limits."""
    qs = AuditEvent.objects.all()
    if actor.is_system:
        pass
    elif actor.user is None or actor.disabled_reason() or actor.cap[0] < Level.ADMIN:
        return AuditEvent.objects.none()
    elif actor.is_staff:
        if actor.limits:
            qs = qs.filter(Q(namespace__in=actor.limits) | Q(repository__in=actor.limits))
    else:
        owned = Organization.objects.filter(memberships__user=actor.user, memberships__role=Membership.Role.OWNER)
        managed = [org.name for org in owned if access.may_manage_organization(actor, org)]
        username = actor.user.username
        own = Q(namespace=username) if not actor.limits or username in actor.limits else Q(pk__in=[])
        # And the repositories the actor administers (within a token's limits): a token limited
        # to acme/api sees acme/api's rows, not the rest of acme.
        administered = access.repositories_with_level(actor, Level.ADMIN).values("full_name")
        qs = qs.filter(Q(namespace__in=managed) | own | Q(repository__in=administered))
    if namespace:
        qs = qs.filter(namespace=namespace)
    return _ordered(qs)
