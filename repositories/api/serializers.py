"""API shapes. Field names follow Docker Hub's API where Hub has one (description,
full_description, is_private, star_count, pull_count, last_updated, date_registered)."""

from __future__ import annotations

from rest_framework import serializers

from accounts.models import Level
from repositories.models import DailyPulls, Repository, RepositoryGrant, Tag


class RepositorySerializer(serializers.ModelSerializer):
    namespace = serializers.CharField(source="namespace.name", read_only=True)
    description = serializers.CharField(source="short_description", read_only=True)
    is_private = serializers.SerializerMethodField()
    last_updated = serializers.DateTimeField(source="last_pushed_at", read_only=True, allow_null=True)
    date_registered = serializers.DateTimeField(source="created_at", read_only=True)
    is_starred = serializers.SerializerMethodField()

    class Meta:
        model = Repository
        fields = [
            "namespace",
            "name",
            "full_name",
            "description",
            "is_private",
            "star_count",
            "pull_count",
            "last_updated",
            "date_registered",
            "is_starred",
        ]
        read_only_fields = fields

    def get_is_private(self, obj: Repository) -> bool:
        return not obj.is_public

    def get_is_starred(self, obj: Repository) -> bool:
        return bool(getattr(obj, "is_starred", False))


class RepositoryDetailSerializer(RepositorySerializer):
    full_description = serializers.CharField(read_only=True)
    description_from_image = serializers.BooleanField(read_only=True)

    class Meta(RepositorySerializer.Meta):
        fields = [*RepositorySerializer.Meta.fields, "full_description", "description_from_image"]
        read_only_fields = fields


class RepositoryWriteSerializer(serializers.Serializer):
    """Create (with name) and update (descriptions, visibility)."""

    name = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(max_length=100, required=False, allow_blank=True)
    full_description = serializers.CharField(max_length=25000, required=False, allow_blank=True)
    is_private = serializers.BooleanField(required=False)


class PlatformSerializer(serializers.Serializer):
    os = serializers.CharField()
    architecture = serializers.CharField()
    variant = serializers.CharField(allow_blank=True)
    digest = serializers.CharField()
    size = serializers.IntegerField()


class TagSerializer(serializers.ModelSerializer):
    digest = serializers.CharField(source="manifest.digest")
    media_type = serializers.CharField(source="manifest.media_type")
    full_size = serializers.IntegerField(source="manifest.total_size")
    last_pushed = serializers.DateTimeField(source="pushed_at")
    last_pusher_username = serializers.CharField(source="pushed_by")
    is_signed = serializers.BooleanField(source="manifest.is_signed")
    images = serializers.SerializerMethodField()

    class Meta:
        model = Tag
        fields = [
            "name",
            "digest",
            "media_type",
            "full_size",
            "last_pushed",
            "last_pusher_username",
            "is_signed",
            "artifact",
            "images",
        ]
        read_only_fields = fields

    def get_images(self, obj: Tag) -> list[dict]:
        manifest = obj.manifest
        if manifest.is_index:
            return [
                {
                    "os": e.os,
                    "architecture": e.architecture,
                    "variant": e.variant,
                    "digest": e.child.digest,
                    "size": e.child.total_size,
                }
                for e in manifest.entries.all()
            ]
        return [
            {
                "os": manifest.os,
                "architecture": manifest.architecture,
                "variant": manifest.variant,
                "digest": manifest.digest,
                "size": manifest.total_size,
            }
        ]


class TagDeleteResultSerializer(serializers.Serializer):
    digest = serializers.CharField()
    deleted_tags = serializers.ListField(child=serializers.CharField())


LEVEL_NAMES = {"read": Level.READ, "write": Level.WRITE, "admin": Level.ADMIN}


class GrantSerializer(serializers.ModelSerializer):
    kind = serializers.SerializerMethodField()
    holder = serializers.SerializerMethodField()
    level = serializers.SerializerMethodField()

    class Meta:
        model = RepositoryGrant
        fields = ["id", "kind", "holder", "level"]
        read_only_fields = fields

    def get_kind(self, obj: RepositoryGrant) -> str:
        return "team" if obj.team_id else "user" if obj.user_id else "robot"

    def get_holder(self, obj: RepositoryGrant) -> str:
        if obj.team_id:
            return obj.team.name
        return obj.user.username if obj.user_id else obj.robot.username

    def get_level(self, obj: RepositoryGrant) -> str:
        return Level(obj.level).label


class GrantWriteSerializer(serializers.Serializer):
    team = serializers.CharField(required=False, help_text="a team of the repository's organization")
    user = serializers.CharField(required=False, help_text="a username")
    robot = serializers.CharField(required=False, help_text="a robot of the organization, by name")
    level = serializers.ChoiceField(choices=list(LEVEL_NAMES))

    def validate(self, attrs: dict) -> dict:
        if sum(1 for key in ("team", "user", "robot") if attrs.get(key)) != 1:
            raise serializers.ValidationError("Name exactly one of team, user or robot.")
        return attrs


class DailyPullsSerializer(serializers.ModelSerializer):
    class Meta:
        model = DailyPulls
        fields = ["day", "count"]


class DockerSearchResultSerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    star_count = serializers.IntegerField()
    is_official = serializers.BooleanField()
    is_automated = serializers.BooleanField()


class DockerSearchSerializer(serializers.Serializer):
    num_pages = serializers.IntegerField()
    num_results = serializers.IntegerField()
    page = serializers.IntegerField()
    page_size = serializers.IntegerField()
    query = serializers.CharField()
    results = DockerSearchResultSerializer(many=True)
