"""Writes for accounts: each a function with keyword-only arguments, in a transaction, with
its audit row written in the same transaction."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.actors import Actor, Via
from accounts.credentials import PAT_MARK, REFRESH_MARK, ROBOT_MARK, credential_fingerprint, hash_secret, new_secret
from accounts.models import (
    Membership,
    Namespace,
    Organization,
    PersonalAccessToken,
    RefreshToken,
    Robot,
    Team,
    TeamMembership,
    TokenScope,
    User,
)
from audit.services import audit_record


def namespace_name_available(name: str) -> bool:
    return not Namespace.objects.filter(name=name).exists()


@transaction.atomic
def user_create(
    *, username: str, email: str = "", password: str | None = None, is_staff: bool = False, is_superuser: bool = False
) -> User:
    username = username.lower()
    if not namespace_name_available(username):
        raise ValidationError({"username": "This name is taken by a user or an organization."})
    user = User(username=username, email=email, is_staff=is_staff, is_superuser=is_superuser)
    if password:
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.full_clean()
    user.save()
    user_namespace_ensure(user=user)
    audit_record(action="user.create", actor=user, target=user, namespace=username)
    return user


def user_namespace_ensure(*, user: User) -> Namespace:
    """Every user owns the namespace of their name. Users made outside our services
    (createsuperuser, allauth's sign-up) get it on first need."""
    namespace = Namespace.objects.filter(user=user).first()
    if namespace is None:
        if not namespace_name_available(user.username):
            raise ValidationError({"username": "This name is taken by an organization."})
        namespace = Namespace.objects.create(name=user.username, kind=Namespace.Kind.USER, user=user)
    return namespace


@transaction.atomic
def organization_create(*, name: str, owner: User, display_name: str = "") -> Organization:
    name = name.lower()
    if not namespace_name_available(name):
        raise ValidationError({"name": "This name is taken by a user or an organization."})
    org = Organization(name=name, display_name=display_name)
    org.full_clean()
    org.save()
    Namespace.objects.create(name=name, kind=Namespace.Kind.ORGANIZATION, organization=org)
    Membership.objects.create(organization=org, user=owner, role=Membership.Role.OWNER)
    audit_record(action="organization.create", actor=owner, target=org, namespace=name)
    return org


@transaction.atomic
def membership_set(*, organization: Organization, user: User, role: str, actor: User | None) -> Membership:
    """Add a member or change a member's role; never demotes the last owner."""
    owners = _lock_ownership(organization)
    if role != Membership.Role.OWNER and owners == [user.pk]:
        raise ValidationError({"role": "An organization needs at least one owner."})
    # Set by hand: the membership and its role are a person's decision now, which no group
    # mapping takes back (accounts/directory.py).
    membership, created = Membership.objects.update_or_create(
        organization=organization, user=user, defaults={"role": role, "managed": False, "owner_from_mapping": False}
    )
    audit_record(
        action="membership.add" if created else "membership.change",
        actor=actor,
        target=membership,
        target_name=f"{user.username} in {organization.name}",
        namespace=organization.name,
        data={"role": role},
    )
    return membership


def _refuse_if_mapped(team: Team) -> None:
    from accounts.directory import mapped_team_refusal

    refusal = mapped_team_refusal(team)
    if refusal:
        raise ValidationError({"user": refusal})


@transaction.atomic
def team_create(*, organization: Organization, name: str, actor: User | None, description: str = "") -> Team:
    team = Team(organization=organization, name=name, description=description)
    team.full_clean()
    team.save()
    audit_record(action="team.create", actor=actor, target=team, namespace=organization.name)
    return team


@transaction.atomic
def team_member_add(*, team: Team, user: User, actor: User | None) -> TeamMembership:
    _refuse_if_mapped(team)
    if not Membership.objects.filter(organization=team.organization_id, user=user).exists():
        raise ValidationError({"user": f"{user.username} is not a member of {team.organization.name}."})
    membership, _ = TeamMembership.objects.get_or_create(team=team, user=user)
    audit_record(
        action="team.member_add",
        actor=actor,
        target=team,
        namespace=team.organization.name,
        data={"user": user.username},
    )
    return membership


@transaction.atomic
def access_token_create(
    *,
    user: User,
    name: str,
    scope: str = TokenScope.READ,
    expires_at: dt.datetime | None = None,
    limits: list[str] | None = None,
    address: str | None = None,
) -> tuple[PersonalAccessToken, str]:
    """Returns the token row and its secret, which is shown once and never stored. Whether the
    credential asking may create it is the policy's question (access.token_creation_refusal),
    asked by the caller."""
    secret, prefix, digest = new_secret(PAT_MARK)
    token = PersonalAccessToken(
        user=user,
        name=name,
        prefix=prefix,
        token_hash=digest,
        scope=scope,
        expires_at=expires_at,
        limits=list(limits or []),
    )
    token.full_clean()
    token.save()
    audit_record(
        action="access_token.create",
        actor=user,
        target=token,
        namespace=user.username,
        data={
            "scope": scope,
            "limits": token.limits,
            "expires_at": expires_at.isoformat() if expires_at else None,
        },
        address=address,
    )
    return token, secret


@transaction.atomic
def robot_create(
    *, organization: Organization, name: str, actor: User | None, description: str = ""
) -> tuple[Robot, str]:
    secret, prefix, digest = new_secret(ROBOT_MARK)
    robot = Robot(
        organization=organization, name=name, description=description, secret_prefix=prefix, secret_hash=digest
    )
    robot.full_clean()
    robot.save()
    audit_record(action="robot.create", actor=actor, target=robot, namespace=organization.name)
    return robot, secret


@transaction.atomic
def refresh_token_create(*, actor: Actor, client_id: str, address: str | None = None) -> str:
    """Issue a refresh token standing for the credential `actor` authenticated with (password,
    personal access token or robot), for the client `client_id` only. It expires after
    REFRESH_TOKEN_DAYS, or with the access token it stands for if that expires first. Returns
    the secret, which is never stored."""
    if actor.via not in (Via.PASSWORD, Via.TOKEN, Via.ROBOT) or not client_id:
        raise ValueError("refresh tokens are issued for a password, an access token or a robot, to a named client")
    secret, prefix, digest = new_secret(REFRESH_MARK)
    expires_at = timezone.now() + dt.timedelta(days=settings.REFRESH_TOKEN_DAYS)
    if actor.token is not None and actor.token.expires_at is not None:
        expires_at = min(expires_at, actor.token.expires_at)
    user = actor.user if actor.robot is None else None
    refresh = RefreshToken.objects.create(
        user=user,
        robot=actor.robot,
        access_token=actor.token,
        client_id=client_id[:100],
        prefix=prefix,
        token_hash=digest,
        expires_at=expires_at,
        password_fingerprint=credential_fingerprint(user) if actor.via == Via.PASSWORD else "",
    )
    audit_record(
        action="refresh_token.create",
        actor=actor.user,
        actor_name=actor.name,
        target=refresh,
        namespace=actor.robot.organization.name if actor.robot else actor.name,
        data={"client_id": refresh.client_id},
        address=address,
    )
    return secret


@transaction.atomic
def refresh_token_revoke(*, refresh: RefreshToken, actor_name: str) -> None:
    if refresh.revoked_at is None:
        refresh.revoked_at = timezone.now()
        refresh.save(update_fields=["revoked_at"])
        audit_record(action="refresh_token.revoke", actor_name=actor_name, target=refresh)


@transaction.atomic
def access_token_revoke(*, token: PersonalAccessToken, actor: User | None) -> None:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit_record(action="access_token.revoke", actor=actor, target=token, namespace=token.user.username)


def refresh_token_by_secret(secret: str) -> RefreshToken | None:
    return RefreshToken.objects.filter(token_hash=hash_secret(secret)).first()


@transaction.atomic
def organization_update(*, organization: Organization, actor: User, **changes) -> Organization:
    before = {key: getattr(organization, key) for key in changes}
    for key, value in changes.items():
        setattr(organization, key, value)
    organization.full_clean()
    organization.save()
    audit_record(
        action="organization.update",
        actor=actor,
        target=organization,
        namespace=organization.name,
        data={key: {"before": before[key], "after": value} for key, value in changes.items() if before[key] != value},
    )
    return organization


@transaction.atomic
def namespace_default_visibility_set(*, namespace: Namespace, visibility: str, actor: User) -> Namespace:
    """What a repository created by its first push gets in this namespace."""
    if namespace.default_visibility != visibility:
        before = namespace.default_visibility
        namespace.default_visibility = visibility
        namespace.full_clean()
        namespace.save(update_fields=["default_visibility"])
        audit_record(
            action="namespace.default_visibility",
            actor=actor,
            target=namespace,
            namespace=namespace.name,
            data={"before": before, "after": visibility},
        )
    return namespace


@transaction.atomic
def organization_delete(*, organization: Organization, actor: User) -> None:
    """The organization with its members, teams, rules, robots and webhooks. Its repositories
    must be deleted first (their images are in the registry: that is a decision per repository)."""
    count = organization.namespace.repositories.count()
    if count:
        noun = "repository" if count == 1 else "repositories"
        raise ValidationError({"organization": f"{organization.name} still has {count} {noun}: delete them first."})
    audit_record(action="organization.delete", actor=actor, target=organization, namespace=organization.name)
    organization.namespace.delete()
    organization.delete()


def _lock_ownership(organization: Organization) -> list[int]:
    """Serialise every change that could remove an owner: lock the organization's row, then
    read its owners. Two owners removed at once would otherwise each see the other still there
    and leave the organization with none."""
    Organization.objects.select_for_update().filter(pk=organization.pk).first()
    return list(
        Membership.objects.filter(organization=organization, role=Membership.Role.OWNER).values_list(
            "user_id", flat=True
        )
    )


@transaction.atomic
def membership_remove(*, organization: Organization, user: User, actor: User) -> None:
    owners = _lock_ownership(organization)
    membership = Membership.objects.filter(organization=organization, user=user).first()
    if membership is None:
        return
    if membership.role == Membership.Role.OWNER and owners == [user.pk]:
        raise ValidationError({"user": "An organization needs at least one owner."})
    TeamMembership.objects.filter(team__organization=organization, user=user).delete()
    membership.delete()
    audit_record(
        action="membership.remove",
        actor=actor,
        target=organization,
        namespace=organization.name,
        data={"user": user.username},
    )


def membership_change_role(*, organization: Organization, user: User, role: str, actor: User) -> Membership:
    return membership_set(organization=organization, user=user, role=role, actor=actor)


@transaction.atomic
def team_update(*, team: Team, actor: User, **changes) -> Team:
    for key, value in changes.items():
        setattr(team, key, value)
    team.full_clean()
    team.save()
    audit_record(action="team.update", actor=actor, target=team, namespace=team.organization.name, data=changes)
    return team


@transaction.atomic
def team_delete(*, team: Team, actor: User) -> None:
    from accounts.directory import group_mapping_delete

    for mapping in team.group_mappings.select_related("organization", "team"):
        group_mapping_delete(actor=actor, mapping=mapping)  # each audited, and what it gave taken back
    audit_record(action="team.delete", actor=actor, target=team, namespace=team.organization.name)
    team.delete()


@transaction.atomic
def team_member_remove(*, team: Team, user: User, actor: User) -> None:
    # Only what a mapping gave is the mapping's: a member added by hand (before the team had a
    # mapping) can still be removed by hand.
    if TeamMembership.objects.filter(team=team, user=user, managed=True).exists():
        _refuse_if_mapped(team)
    TeamMembership.objects.filter(team=team, user=user).delete()
    audit_record(
        action="team.member_remove",
        actor=actor,
        target=team,
        namespace=team.organization.name,
        data={"user": user.username},
    )


@transaction.atomic
def robot_delete(*, robot: Robot, actor: User) -> None:
    audit_record(action="robot.delete", actor=actor, target=robot, namespace=robot.organization.name)
    robot.delete()


@transaction.atomic
def robot_rotate(*, robot: Robot, actor: User) -> str:
    """A new secret; the old one stops working at once. Returns the secret (shown once)."""
    secret, prefix, digest = new_secret(ROBOT_MARK)
    robot.secret_prefix, robot.secret_hash = prefix, digest
    robot.save(update_fields=["secret_prefix", "secret_hash"])
    RefreshToken.objects.filter(robot=robot, revoked_at__isnull=True).update(revoked_at=timezone.now())
    audit_record(action="robot.rotate", actor=actor, target=robot, namespace=robot.organization.name)
    return secret


PROFILE_FIELDS = ("full_name", "bio", "company", "location")


@transaction.atomic
def user_profile_update(*, user: User, actor: User, **changes) -> User:
    """A person's public profile: display name, bio, company, location."""
    unknown = set(changes) - set(PROFILE_FIELDS)
    if unknown:
        raise ValueError(f"not profile fields: {', '.join(sorted(unknown))}")
    before = {key: getattr(user, key) for key in changes}
    for key, value in changes.items():
        setattr(user, key, value)
    user.full_clean()
    user.save(update_fields=list(changes))
    changed = {key: {"before": before[key], "after": value} for key, value in changes.items() if before[key] != value}
    if changed:
        audit_record(action="user.profile", actor=actor, target=user, namespace=user.username, data=changed)
    return user
