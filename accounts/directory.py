"""Company accounts: people who sign in through an LDAP directory or an OpenID Connect provider,
and the group mappings that make their groups into organization teams.

Plain functions; the LDAP backend (accounts/ldap.py), the allauth adapter (accounts/adapter.py)
and the periodic check (accounts/tasks.py) call them."""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.db import transaction

from accounts.models import NAMESPACE_RE, GroupMapping, Membership, Organization, Team, TeamMembership, User
from audit.services import audit_record

log = logging.getLogger(__name__)

LDAP = "ldap"


def oidc_source(provider_id: str) -> str:
    return f"oidc:{provider_id}"


def normalize_group(source: str, group: str) -> str:
    """LDAP DNs compare without case (and without spaces after commas); provider group names
    are compared as sent."""
    group = group.strip()
    if source == LDAP:
        return re.sub(r"\s*,\s*", ",", group).lower()
    return group


def mapped_team_refusal(team: Team) -> str | None:
    """Why a team's members cannot be changed by hand: they come from a group mapping."""
    groups = [m.group for m in GroupMapping.objects.filter(team=team).order_by("source", "group")[:3]]
    if not groups:
        return None
    return (
        f"The members of {team.organization.name}/{team.name} come from the group "
        f"{', '.join(groups)} (a group mapping): change the group in your identity provider instead."
    )


@transaction.atomic
def groups_sync(*, user: User, source: str, groups: Iterable[str]) -> list[str]:
    """Make the user's teams and organization memberships follow their groups at `source`.
    What a mapping gave is marked (Membership.managed, Membership.owner_from_mapping,
    TeamMembership.managed) and only that is taken back: joining the mapped teams of their
    groups (and the organization, as a member), leaving the mapped teams of groups they left,
    an ownership given by a mapping going back to member with its group. Memberships and
    ownerships made by hand are never touched, nor the last owner. Returns what changed."""
    have = {normalize_group(source, g) for g in groups if isinstance(g, str) and g.strip()}
    mappings = list(GroupMapping.objects.filter(source=source).select_related("organization", "team"))
    if not mappings:
        return []
    actor_name = f"{source} groups"
    wanted_teams = {m.team_id for m in mappings if m.team_id and m.group in have}
    wanted_owner = {m.organization_id for m in mappings if m.owner and m.group in have}
    wanted_orgs = wanted_owner | {m.organization_id for m in mappings if m.team_id and m.group in have}
    mapped_teams = {m.team_id: m.team for m in mappings if m.team_id}
    mapped_orgs = {m.organization_id: m.organization for m in mappings}
    changes: list[str] = []

    # The owners of every organization this may touch are locked first, in a fixed order (as
    # services' own ownership changes do), so two syncs cannot each leave the other as owner.
    list(
        Membership.objects.select_for_update()
        .filter(organization_id__in=mapped_orgs, role=Membership.Role.OWNER)
        .order_by("organization_id", "pk")
        .values_list("pk", flat=True)
    )
    memberships = {
        m.organization_id: m
        for m in Membership.objects.select_for_update().filter(user=user, organization_id__in=mapped_orgs)
    }
    for org_id in sorted(mapped_orgs):
        org, current = mapped_orgs[org_id], memberships.get(org_id)
        if org_id in wanted_orgs:
            owner = org_id in wanted_owner
            role = Membership.Role.OWNER if owner else Membership.Role.MEMBER
            if current is None:
                memberships[org_id] = Membership.objects.create(
                    organization=org, user=user, role=role, managed=True, owner_from_mapping=owner
                )
                changes.append(f"joined {org.name} as {role}")
                _audit("membership.add", actor_name, org, user, {"role": role, "managed": True})
            elif owner and current.role != Membership.Role.OWNER:
                current.role, current.owner_from_mapping = Membership.Role.OWNER, True
                current.save(update_fields=["role", "owner_from_mapping"])
                changes.append(f"owner of {org.name}")
                _audit("membership.change", actor_name, org, user, {"role": "owner", "managed": True})
            elif not owner and current.owner_from_mapping:
                changes += _demote(current, org, user, actor_name)
        elif current is not None and current.managed:
            if current.role == Membership.Role.OWNER and not _other_owners(org_id, user):
                continue  # never the last owner, by a sync either
            TeamMembership.objects.filter(team__organization_id=org_id, user=user).delete()
            current.delete()
            changes.append(f"left {org.name}")
            _audit("membership.remove", actor_name, org, user, {"managed": True})
        elif current is not None and current.owner_from_mapping:
            changes += _demote(current, org, user, actor_name)

    current_teams = dict(
        TeamMembership.objects.filter(user=user, team_id__in=mapped_teams).values_list("team_id", "managed")
    )
    for team_id in sorted(wanted_teams - set(current_teams)):
        if mapped_teams[team_id].organization_id not in {m.organization_id for m in memberships.values()}:
            continue
        team = mapped_teams[team_id]
        TeamMembership.objects.create(team=team, user=user, managed=True)
        changes.append(f"joined {team}")
        _audit("team.member_add", actor_name, team.organization, user, {"team": team.name, "managed": True})
    for team_id, managed in sorted(current_teams.items()):
        if team_id in wanted_teams or not managed:
            continue
        team = mapped_teams[team_id]
        TeamMembership.objects.filter(team=team, user=user).delete()
        changes.append(f"left {team}")
        _audit("team.member_remove", actor_name, team.organization, user, {"team": team.name, "managed": True})
    if changes:
        log.info("groups of %s at %s: %s", user.username, source, "; ".join(changes))
    return changes


def _demote(membership: Membership, org: Organization, user: User, actor_name: str) -> list[str]:
    """An ownership a mapping gave, taken back: a member again (never the last owner)."""
    if membership.role == Membership.Role.OWNER and not _other_owners(org.pk, user):
        return []
    membership.role, membership.owner_from_mapping = Membership.Role.MEMBER, False
    membership.save(update_fields=["role", "owner_from_mapping"])
    _audit("membership.change", actor_name, org, user, {"role": "member", "managed": True})
    return [f"no longer owner of {org.name}"]


def _other_owners(org_id: int, user: User) -> bool:
    return Membership.objects.filter(organization_id=org_id, role=Membership.Role.OWNER).exclude(user=user).exists()


def _audit(action: str, actor_name: str, org: Organization, user: User, data: dict) -> None:
    audit_record(
        action=action,
        actor_name=actor_name,
        target=org,
        target_name=f"{user.username} in {org.name}",
        namespace=org.name,
        data={"user": user.username, **data},
    )


MAX_MAPPINGS_PER_ORGANIZATION = 500


@transaction.atomic
def group_mapping_create(
    *, actor: User | None, source: str, group: str, organization: Organization, team: Team | None, owner: bool
) -> GroupMapping:
    if GroupMapping.objects.filter(organization=organization).count() >= MAX_MAPPINGS_PER_ORGANIZATION:
        # Bounded like the other per-organization rules, so the list (not paginated) stays small.
        raise ValidationError({"group": f"An organization has at most {MAX_MAPPINGS_PER_ORGANIZATION} group mappings."})
    mapping = GroupMapping(
        source=source.strip(), group=normalize_group(source.strip(), group), organization=organization, team=team
    )
    mapping.owner = owner
    mapping.full_clean()
    mapping.save()
    audit_record(
        action="group_mapping.create",
        actor=actor,
        target=organization,
        target_name=str(mapping),
        namespace=organization.name,
        data={"source": mapping.source, "group": mapping.group, "team": team.name if team else None, "owner": owner},
    )
    return mapping


@transaction.atomic
def group_mapping_delete(*, actor: User | None, mapping: GroupMapping) -> None:
    """Remove a mapping and, at once, what it alone gave: its team's members that mappings
    made (when no other mapping feeds the team), ownerships mappings of its source gave to
    that source's people (when no other mapping of the source gives ownership of the
    organization; never the last owner), and the memberships of the organization that mappings
    made for that source's people, when no mapping of the source is left for it."""
    org = mapping.organization
    audit_record(
        action="group_mapping.delete",
        actor=actor,
        target=org,
        target_name=str(mapping),
        namespace=org.name,
        data={"source": mapping.source, "group": mapping.group},
    )
    team_id, owner, source = mapping.team_id, mapping.owner, mapping.source
    mapping.delete()
    if team_id and not GroupMapping.objects.filter(team_id=team_id).exists():
        TeamMembership.objects.filter(team_id=team_id, managed=True).delete()
    left = GroupMapping.objects.filter(organization=org, source=source)
    theirs = Membership.objects.select_for_update().filter(organization=org, user__directory=source)
    if owner and not left.filter(owner=True).exists():
        for membership in theirs.filter(owner_from_mapping=True):
            _demote(membership, org, membership.user, "group mapping removed")
    if not left.exists():
        for membership in theirs.filter(managed=True):
            if membership.role == Membership.Role.OWNER and not _other_owners(org.pk, membership.user):
                continue
            TeamMembership.objects.filter(team__organization=org, user=membership.user).delete()
            membership.delete()
            _audit("membership.remove", "group mapping removed", org, membership.user, {"managed": True})


# --- usernames -------------------------------------------------------------------------------


def username_from_claim(value: str) -> str:
    """A provider's claim (`preferred_username`, an email …) as a namespace name: lowercase ASCII
    letters, digits and single separators, 2 to 64 characters; the part before an @."""
    value = unicodedata.normalize("NFKD", str(value or "")).encode("ascii", "ignore").decode().lower()
    value = value.split("@", 1)[0]
    value = re.sub(r"[^a-z0-9._-]+", "-", value)
    value = re.sub(r"[._-]{2,}", "-", value).strip("._-")[:64].strip("._-")
    if len(value) < 2:
        value = f"user-{value}" if value else "user"
    return value


def username_available(name: str) -> str:
    """`name`, or `name-2`, `name-3` … the first that no user or organization holds (one query
    for the names taken); past 1,000 of them, a random suffix."""
    import secrets

    from accounts.models import Namespace

    stem = name[:58].rstrip("._-") or "user"
    taken = set(Namespace.objects.filter(name__startswith=stem).values_list("name", flat=True))
    for n in range(1, 1001):
        candidate = name if n == 1 else f"{stem}-{n}"
        if candidate not in taken and re.fullmatch(NAMESPACE_RE, candidate):
            return candidate
    return f"{stem}-{secrets.token_hex(3)}"
