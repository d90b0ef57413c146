"""Organization, team, member, access-rule, robot, token, user and audit endpoints.

Thin: repositories.access decides (may_manage_organization, may_see_organization_internals,
token_creation_refusal, robot_secret_refusal), services write. An organization is public (its
name and description); members, teams and rules are for its members; managing it is for its
owners with the admin cap (a session, or a token of scope delete), whatever the HTTP method."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Count, QuerySet
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import services
from accounts.api.authentication import api_actor
from accounts.models import (
    GroupMapping,
    Level,
    Membership,
    Organization,
    PersonalAccessToken,
    Robot,
    Team,
    TokenScope,
    User,
)
from audit import selectors as audit_selectors
from audit.models import AuditEvent
from portal.net import client_address
from repositories import access
from repositories import services as repository_services
from repositories.models import AccessRule

LEVELS = {"read": Level.READ, "write": Level.WRITE, "admin": Level.ADMIN}


# --- serializers ---------------------------------------------------------------------------


class OrganizationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Organization
        fields = ["name", "display_name", "description", "email", "created_at"]
        read_only_fields = ["created_at"]


class MemberSerializer(serializers.Serializer):
    username = serializers.CharField(source="user.username")
    full_name = serializers.CharField(source="user.full_name", read_only=True)
    role = serializers.ChoiceField(choices=Membership.Role.choices)


class RoleSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Membership.Role.choices)


class TeamSerializer(serializers.ModelSerializer):
    member_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Team
        fields = ["name", "description", "member_count"]


class UsernameSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)


class AccessRuleSerializer(serializers.ModelSerializer):
    team = serializers.CharField(required=False, source="team.name", allow_null=True)
    robot = serializers.CharField(required=False, source="robot.name", allow_null=True)
    level = serializers.ChoiceField(choices=list(LEVELS))

    class Meta:
        model = AccessRule
        fields = ["id", "team", "robot", "pattern", "level"]
        read_only_fields = ["id"]

    def to_representation(self, instance: AccessRule) -> dict:
        return {
            "id": instance.pk,
            "team": instance.team.name if instance.team_id else None,
            "robot": instance.robot.name if instance.robot_id else None,
            "pattern": instance.pattern,
            "level": Level(instance.level).label,
        }


class GroupMappingSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    source = serializers.CharField(max_length=100, help_text='"ldap", or "oidc:<provider id>"')
    group = serializers.CharField(max_length=500, help_text="the group's name as the provider sends it, or its DN")
    team = serializers.CharField(required=False, allow_null=True, max_length=64, help_text="a team of the organization")
    owner = serializers.BooleanField(
        required=False, default=False, help_text="members of the group own the organization"
    )
    created_at = serializers.DateTimeField(read_only=True)

    def to_representation(self, instance) -> dict:
        return {
            "id": instance.pk,
            "source": instance.source,
            "group": instance.group,
            "team": instance.team.name if instance.team_id else None,
            "owner": instance.owner,
            "created_at": serializers.DateTimeField().to_representation(instance.created_at),
        }


class RobotSerializer(serializers.ModelSerializer):
    username = serializers.CharField(read_only=True)

    class Meta:
        model = Robot
        fields = ["name", "username", "description", "is_active", "created_at", "last_used_at"]
        read_only_fields = ["username", "is_active", "created_at", "last_used_at"]


class RobotSecretSerializer(RobotSerializer):
    secret = serializers.CharField(read_only=True, help_text="shown once")

    class Meta(RobotSerializer.Meta):
        fields = [*RobotSerializer.Meta.fields, "secret"]


class AccessTokenSerializer(serializers.ModelSerializer):
    is_active = serializers.SerializerMethodField()

    class Meta:
        model = PersonalAccessToken
        fields = ["id", "name", "prefix", "scope", "limits", "created_at", "expires_at", "last_used_at", "is_active"]
        read_only_fields = ["id", "prefix", "created_at", "last_used_at", "is_active"]

    def get_is_active(self, obj: PersonalAccessToken) -> bool:
        return obj.is_usable()

    def validate_limits(self, value) -> list[str]:
        try:
            return access.validate_limits(value)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from None


class AccessTokenSecretSerializer(AccessTokenSerializer):
    token = serializers.CharField(read_only=True, help_text="shown once")
    docker_login = serializers.CharField(read_only=True)

    class Meta(AccessTokenSerializer.Meta):
        fields = [*AccessTokenSerializer.Meta.fields, "token", "docker_login"]


class UserProfileSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ["username", "full_name", "company", "location", "date_joined"]


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = ["created_at", "actor_name", "action", "target_type", "target_name", "namespace", "data"]


# --- helpers -------------------------------------------------------------------------------


def _organization(request: Request, org: str, *, manage: bool = False, internals: bool = False) -> Organization:
    organization = Organization.objects.filter(name=org).first()
    if organization is None:
        raise exceptions.NotFound("No such organization.")
    actor = api_actor(request)
    if internals and not access.may_see_organization_internals(actor, organization):
        raise exceptions.NotFound("No such organization, or you are not a member.")
    if manage and actor.is_anonymous:
        raise exceptions.NotAuthenticated()
    if manage and not access.may_manage_organization(actor, organization):
        raise exceptions.PermissionDenied(
            "Managing an organization is for its owners, signed in or with a token of scope delete "
            "(read, write and delete) that reaches the organization."
        )
    return organization


def _user(username: str) -> User:
    user = User.objects.filter(username=username.lower(), is_active=True).first()
    if user is None:
        raise exceptions.ValidationError({"username": ["No such user."]})
    return user


def _require_credential(request: Request, level: Level) -> None:
    if not access.credential_allows(api_actor(request), level):
        raise exceptions.PermissionDenied(
            f"Sign in, or use a token whose scope allows {Level(level).label} actions."
            if level < Level.ADMIN
            else "Sign in, or use a token of scope delete (read, write and delete)."
        )


# --- organizations ---------------------------------------------------------------------------


class OrganizationListView(generics.ListCreateAPIView):
    serializer_class = OrganizationSerializer

    def get_queryset(self) -> QuerySet[Organization]:
        qs = Organization.objects.order_by("name")
        if self.request.query_params.get("member", "").lower() in ("1", "true", "yes"):
            user = self.request.user
            return qs.filter(memberships__user=user) if user.is_authenticated else qs.none()
        return qs

    def perform_create(self, serializer) -> None:
        if not self.request.user.is_authenticated:
            raise exceptions.NotAuthenticated()
        refusal = access.organization_creation_refusal(api_actor(self.request))
        if refusal:
            raise exceptions.PermissionDenied(refusal)
        data = serializer.validated_data
        organization = services.organization_create(
            name=data["name"], owner=self.request.user, display_name=data.get("display_name", "")
        )
        serializer.instance = services.organization_update(
            organization=organization,
            actor=self.request.user,
            description=data.get("description", ""),
            email=data.get("email", ""),
        )


class OrganizationDetailView(APIView):
    @extend_schema(responses=OrganizationSerializer)
    def get(self, request: Request, org: str) -> Response:
        return Response(OrganizationSerializer(_organization(request, org)).data)

    @extend_schema(request=OrganizationSerializer, responses=OrganizationSerializer)
    def patch(self, request: Request, org: str) -> Response:
        organization = _organization(request, org, manage=True)
        data = OrganizationSerializer(organization, data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        changes = {k: v for k, v in data.validated_data.items() if k in ("display_name", "description", "email")}
        if "name" in data.validated_data and data.validated_data["name"] != organization.name:
            raise exceptions.ValidationError({"name": ["Organizations cannot be renamed."]})
        return Response(
            OrganizationSerializer(
                services.organization_update(organization=organization, actor=request.user, **changes)
            ).data
        )

    @extend_schema(responses={204: None})
    def delete(self, request: Request, org: str) -> Response:
        organization = _organization(request, org, manage=True)
        services.organization_delete(organization=organization, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MemberListView(generics.ListAPIView):
    serializer_class = MemberSerializer

    def get_queryset(self) -> QuerySet[Membership]:
        organization = _organization(self.request, self.kwargs["org"], internals=True)
        return Membership.objects.filter(organization=organization).select_related("user").order_by("user__username")

    @extend_schema(request=MemberSerializer, responses={201: MemberSerializer})
    def post(self, request: Request, org: str) -> Response:
        organization = _organization(request, org, manage=True)
        data = MemberSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = _user(data.validated_data["user"]["username"])
        membership = services.membership_set(
            organization=organization, user=user, role=data.validated_data["role"], actor=request.user
        )
        return Response(MemberSerializer(membership).data, status=status.HTTP_201_CREATED)


class MemberDetailView(APIView):
    @extend_schema(request=RoleSerializer, responses=MemberSerializer)
    def patch(self, request: Request, org: str, username: str) -> Response:
        organization = _organization(request, org, manage=True)
        data = RoleSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = _user(username)
        if not Membership.objects.filter(organization=organization, user=user).exists():
            raise exceptions.NotFound("Not a member.")
        membership = services.membership_change_role(
            organization=organization, user=user, role=data.validated_data["role"], actor=request.user
        )
        return Response(MemberSerializer(membership).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, org: str, username: str) -> Response:
        organization = _organization(request, org, manage=True)
        services.membership_remove(organization=organization, user=_user(username), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- teams ---------------------------------------------------------------------------------


def _team(request: Request, org: str, team: str, **kwargs) -> Team:
    organization = _organization(request, org, internals=True, **kwargs)
    found = Team.objects.filter(organization=organization, name=team).select_related("organization").first()
    if found is None:
        raise exceptions.NotFound("No such team.")
    return found


class TeamListView(generics.ListCreateAPIView):
    serializer_class = TeamSerializer

    def get_queryset(self) -> QuerySet[Team]:
        organization = _organization(self.request, self.kwargs["org"], internals=True)
        return (
            Team.objects.filter(organization=organization).annotate(member_count=Count("memberships")).order_by("name")
        )

    def perform_create(self, serializer) -> None:
        organization = _organization(self.request, self.kwargs["org"], manage=True)
        team = services.team_create(
            organization=organization,
            name=serializer.validated_data["name"],
            description=serializer.validated_data.get("description", ""),
            actor=self.request.user,
        )
        team.member_count = 0
        serializer.instance = team


class TeamDetailView(APIView):
    @extend_schema(responses=TeamSerializer)
    def get(self, request: Request, org: str, team: str) -> Response:
        found = _team(request, org, team)
        found.member_count = found.memberships.count()
        return Response(TeamSerializer(found).data)

    @extend_schema(request=TeamSerializer, responses=TeamSerializer)
    def patch(self, request: Request, org: str, team: str) -> Response:
        found = _team(request, org, team, manage=True)
        data = TeamSerializer(found, data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        found = services.team_update(team=found, actor=request.user, **data.validated_data)
        found.member_count = found.memberships.count()
        return Response(TeamSerializer(found).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, org: str, team: str) -> Response:
        services.team_delete(team=_team(request, org, team, manage=True), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TeamMemberListView(APIView):
    @extend_schema(responses=UsernameSerializer(many=True))
    def get(self, request: Request, org: str, team: str) -> Response:
        found = _team(request, org, team)
        names = found.memberships.order_by("user__username").values_list("user__username", flat=True)
        return Response([{"username": name} for name in names])

    @extend_schema(request=UsernameSerializer, responses={201: UsernameSerializer})
    def post(self, request: Request, org: str, team: str) -> Response:
        found = _team(request, org, team, manage=True)
        data = UsernameSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = _user(data.validated_data["username"])
        services.team_member_add(team=found, user=user, actor=request.user)
        return Response({"username": user.username}, status=status.HTTP_201_CREATED)


class TeamMemberDetailView(APIView):
    @extend_schema(responses={204: None})
    def delete(self, request: Request, org: str, team: str, username: str) -> Response:
        found = _team(request, org, team, manage=True)
        services.team_member_remove(team=found, user=_user(username), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- access rules and robots ---------------------------------------------------------------


class AccessRuleListView(APIView):
    @extend_schema(responses=AccessRuleSerializer(many=True))
    def get(self, request: Request, org: str) -> Response:
        organization = _organization(request, org, internals=True)
        rules = AccessRule.objects.filter(organization=organization).select_related("team", "robot").order_by("pk")
        return Response(AccessRuleSerializer(rules, many=True).data)

    @extend_schema(request=AccessRuleSerializer, responses={201: AccessRuleSerializer})
    def post(self, request: Request, org: str) -> Response:
        organization = _organization(request, org, manage=True)
        data = AccessRuleSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        team_name = (values.get("team") or {}).get("name")
        robot_name = (values.get("robot") or {}).get("name")
        if bool(team_name) == bool(robot_name):
            raise exceptions.ValidationError({"team": ["Name exactly one of team or robot."]})
        team = Team.objects.filter(organization=organization, name=team_name).first() if team_name else None
        robot = Robot.objects.filter(organization=organization, name=robot_name).first() if robot_name else None
        if not (team or robot):
            raise exceptions.ValidationError({"team" if team_name else "robot": ["No such team or robot here."]})
        rule = repository_services.access_rule_create(
            organization=organization,
            pattern=values["pattern"],
            level=LEVELS[values["level"]],
            actor=request.user,
            team=team,
            robot=robot,
        )
        return Response(AccessRuleSerializer(rule).data, status=status.HTTP_201_CREATED)


class AccessRuleDetailView(APIView):
    @extend_schema(responses={204: None})
    def delete(self, request: Request, org: str, rule_id: int) -> Response:
        organization = _organization(request, org, manage=True)
        rule = AccessRule.objects.filter(organization=organization, pk=rule_id).first()
        if rule is None:
            raise exceptions.NotFound("No such rule.")
        repository_services.access_rule_delete(rule=rule, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class GroupMappingListView(APIView):
    """Identity-provider groups (or LDAP group DNs) whose members are members of a team of the
    organization, or its owners. Owners of the organization and staff; every change audited."""

    @extend_schema(responses=GroupMappingSerializer(many=True))
    def get(self, request: Request, org: str) -> Response:
        organization = _organization(request, org, manage=True)
        mappings = GroupMapping.objects.filter(organization=organization).select_related("team").order_by("pk")
        return Response(GroupMappingSerializer(mappings, many=True).data)

    @extend_schema(request=GroupMappingSerializer, responses={201: GroupMappingSerializer})
    def post(self, request: Request, org: str) -> Response:
        from accounts.directory import group_mapping_create

        organization = _organization(request, org, manage=True)
        data = GroupMappingSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        team = None
        if values.get("team"):
            team = Team.objects.filter(organization=organization, name=values["team"]).first()
            if team is None:
                raise exceptions.ValidationError({"team": ["No such team here."]})
        if "\x00" in values["group"] or "\x00" in values["source"]:
            raise exceptions.ValidationError({"group": ["No control or direction characters in a group's name."]})
        if GroupMapping.objects.filter(
            source=values["source"].strip(), organization=organization, team=team, group=values["group"].strip()
        ).exists():
            raise exceptions.ValidationError({"group": ["This mapping exists."]})
        mapping = group_mapping_create(
            actor=request.user,
            source=values["source"],
            group=values["group"],
            organization=organization,
            team=team,
            owner=values.get("owner", False),
        )
        return Response(GroupMappingSerializer(mapping).data, status=status.HTTP_201_CREATED)


class GroupMappingDetailView(APIView):
    @extend_schema(responses={204: None})
    def delete(self, request: Request, org: str, mapping_id: int) -> Response:
        from accounts.directory import group_mapping_delete

        organization = _organization(request, org, manage=True)
        mapping = GroupMapping.objects.filter(organization=organization, pk=mapping_id).select_related("team").first()
        if mapping is None:
            raise exceptions.NotFound("No such group mapping.")
        group_mapping_delete(actor=request.user, mapping=mapping)
        return Response(status=status.HTTP_204_NO_CONTENT)


class RobotListView(APIView):
    @extend_schema(responses=RobotSerializer(many=True))
    def get(self, request: Request, org: str) -> Response:
        organization = _organization(request, org, manage=True)
        robots = Robot.objects.filter(organization=organization).select_related("organization").order_by("name")
        return Response(RobotSerializer(robots, many=True).data)

    @extend_schema(request=RobotSerializer, responses={201: RobotSecretSerializer})
    def post(self, request: Request, org: str) -> Response:
        organization = _organization(request, org, manage=True)
        _require_robot_secret(request, organization)
        data = RobotSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if Robot.objects.filter(organization=organization, name=data.validated_data["name"]).exists():
            raise exceptions.ValidationError({"name": ["A robot with this name exists."]})
        robot, secret = services.robot_create(
            organization=organization,
            name=data.validated_data["name"],
            description=data.validated_data.get("description", ""),
            actor=request.user,
        )
        robot.secret = secret
        return Response(RobotSecretSerializer(robot).data, status=status.HTTP_201_CREATED)


def _require_robot_secret(request: Request, organization: Organization) -> None:
    refusal = access.robot_secret_refusal(api_actor(request), organization)
    if refusal:
        raise exceptions.PermissionDenied(refusal)


def _robot(request: Request, org: str, name: str) -> Robot:
    organization = _organization(request, org, manage=True)
    robot = Robot.objects.filter(organization=organization, name=name).select_related("organization").first()
    if robot is None:
        raise exceptions.NotFound("No such robot.")
    return robot


class RobotDetailView(APIView):
    @extend_schema(responses={204: None})
    def delete(self, request: Request, org: str, name: str) -> Response:
        services.robot_delete(robot=_robot(request, org, name), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class RobotRotateView(APIView):
    @extend_schema(request=None, responses=RobotSecretSerializer)
    def post(self, request: Request, org: str, name: str) -> Response:
        robot = _robot(request, org, name)
        _require_robot_secret(request, robot.organization)
        robot.secret = services.robot_rotate(robot=robot, actor=request.user)
        return Response(RobotSecretSerializer(robot).data)


# --- access tokens, users, audit -----------------------------------------------------------


class AccessTokenListView(generics.ListAPIView):
    """Your personal access tokens. Creating one is the only thing a password over Basic may do."""

    serializer_class = AccessTokenSerializer
    accepts_password = True

    def get_queryset(self) -> QuerySet[PersonalAccessToken]:
        if not self.request.user.is_authenticated:
            raise exceptions.NotAuthenticated()
        return PersonalAccessToken.objects.filter(user=self.request.user).order_by("-created_at")

    @extend_schema(request=AccessTokenSerializer, responses={201: AccessTokenSecretSerializer})
    def post(self, request: Request) -> Response:
        if not request.user.is_authenticated:
            raise exceptions.NotAuthenticated()
        actor = api_actor(request)
        data = AccessTokenSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        scope = data.validated_data.get("scope", TokenScope.READ)
        limits = data.validated_data.get("limits") or []
        expires_at = data.validated_data.get("expires_at")
        if expires_at is not None and expires_at <= timezone.now():
            raise exceptions.ValidationError({"expires_at": ["A token that has already expired would be of no use."]})
        refusal = access.token_creation_refusal(actor, scope=scope, limits=limits, expires_at=expires_at)
        if refusal:
            raise exceptions.PermissionDenied(refusal)
        token, secret = services.access_token_create(
            user=request.user,
            name=data.validated_data["name"],
            scope=scope,
            expires_at=expires_at,
            limits=limits,
            address=client_address(request),
        )
        token.token = secret
        host, name = settings.REGISTRY_PUBLIC_HOST, request.user.username
        token.docker_login = f"docker login {host} -u {name} --password-stdin  # paste the token"
        return Response(AccessTokenSecretSerializer(token).data, status=status.HTTP_201_CREATED)


class AccessTokenDetailView(APIView):
    @extend_schema(responses={204: None})
    def delete(self, request: Request, token_id: int) -> Response:
        """Revoke: the token stops working at once, at the registry too. Any credential that
        may act (not a read-only token) may revoke the owner's tokens: revoking only narrows."""
        if not request.user.is_authenticated:
            raise exceptions.NotAuthenticated()
        _require_credential(request, Level.WRITE)
        token = PersonalAccessToken.objects.filter(user=request.user, pk=token_id).first()
        if token is None:
            raise exceptions.NotFound("No such token.")
        services.access_token_revoke(token=token, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class UserProfileView(APIView):
    @extend_schema(responses=UserProfileSerializer)
    def get(self, request: Request, username: str) -> Response:
        user = User.objects.filter(username=username.lower(), is_active=True).first()
        if user is None:
            raise exceptions.NotFound("No such user.")
        return Response(UserProfileSerializer(user).data)


class AuditListView(generics.ListAPIView):
    """Staff see every event; organization owners see their organizations' events; everyone
    their own namespace's. An admin read: a session or a token of scope delete, within its
    limits."""

    serializer_class = AuditEventSerializer

    def get_queryset(self) -> QuerySet[AuditEvent]:
        actor = api_actor(self.request)
        if actor.is_anonymous:
            raise exceptions.NotAuthenticated()
        if actor.cap[0] < Level.ADMIN:
            raise exceptions.PermissionDenied(
                "The audit log is an admin read: sign in, or use a token of scope delete (read, write and delete)."
            )
        return audit_selectors.audit_log(actor=actor, namespace=self.request.query_params.get("namespace", "")[:64])
