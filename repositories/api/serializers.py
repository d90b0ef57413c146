"""API shapes. Field names follow Docker Hub's API where Hub has one (description,
full_description, is_private, star_count, pull_count, last_updated, date_registered)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
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


class SignatureVerdictSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["verified", "untrusted", "invalid", "unsigned"])
    key = serializers.CharField(allow_null=True, help_text="the trusted key that verified it")


class TagSerializer(serializers.ModelSerializer):
    digest = serializers.CharField(source="manifest.digest")
    media_type = serializers.CharField(source="manifest.media_type")
    full_size = serializers.IntegerField(source="manifest.total_size")
    last_pushed = serializers.DateTimeField(source="pushed_at")
    last_pusher_username = serializers.CharField(source="pushed_by")
    is_signed = serializers.BooleanField(source="manifest.is_signed")
    signature = serializers.SerializerMethodField()
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
            "signature",
            "artifact",
            "images",
        ]
        read_only_fields = fields

    @extend_schema_field(SignatureVerdictSerializer)
    def get_signature(self, obj: Tag) -> dict:
        return {"status": obj.manifest.signature_status, "key": obj.manifest.signature_key or None}

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
                if e.os != "unknown"  # buildx attestation manifests are not platforms
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


class LayerSerializer(serializers.Serializer):
    digest = serializers.CharField()
    size = serializers.IntegerField()
    created_by = serializers.CharField(help_text="the config history's line that made the layer; may be empty")


class PlatformDetailSerializer(serializers.Serializer):
    os = serializers.CharField()
    architecture = serializers.CharField()
    variant = serializers.CharField(allow_blank=True)
    digest = serializers.CharField()
    size = serializers.IntegerField(help_text="compressed: config and layers")
    created = serializers.DateTimeField(allow_null=True)
    layers = LayerSerializer(many=True)
    labels = serializers.DictField(child=serializers.CharField())
    entrypoint = serializers.ListField(child=serializers.CharField())
    cmd = serializers.ListField(child=serializers.CharField())
    exposed_ports = serializers.ListField(child=serializers.CharField())
    env_names = serializers.ListField(child=serializers.CharField(), help_text="names only: values may be secrets")


class PullCommandsSerializer(serializers.Serializer):
    tag = serializers.CharField()
    digest = serializers.CharField()


class AttestationSerializer(serializers.Serializer):
    type = serializers.CharField(help_text="an in-toto predicate type, or an SBOM's media type")
    kind = serializers.ChoiceField(choices=["attestation", "sbom"])
    format = serializers.CharField()
    platform = serializers.CharField(allow_blank=True, help_text="the platform it is about; empty: the image")
    builder = serializers.CharField(allow_blank=True, help_text="SLSA provenance: the builder id")
    source_repository = serializers.CharField(allow_blank=True, help_text="SLSA provenance: the source")
    digest = serializers.CharField()
    size = serializers.IntegerField()
    download_url = serializers.CharField()


class TagDetailSerializer(serializers.Serializer):
    """One tag, fully described (the tag page's data)."""

    name = serializers.CharField()
    digest = serializers.CharField()
    media_type = serializers.CharField()
    platforms = PlatformDetailSerializer(many=True)
    tags_sharing_digest = serializers.ListField(child=serializers.CharField())
    pushed_at = serializers.DateTimeField()
    pushed_by = serializers.CharField(allow_blank=True)
    last_pulled_at = serializers.DateTimeField(allow_null=True)
    pull_commands = PullCommandsSerializer()
    signature = SignatureVerdictSerializer()
    attestations = AttestationSerializer(many=True)
    # As in the tag list, for scripts written against it:
    full_size = serializers.IntegerField()
    last_pushed = serializers.DateTimeField()
    last_pusher_username = serializers.CharField(allow_blank=True)
    is_signed = serializers.BooleanField()
    artifact = serializers.CharField(allow_blank=True)
    images = PlatformSerializer(many=True)


class SigningKeySerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(max_length=100)
    public_key = serializers.CharField(help_text="PEM: ECDSA (P-256, P-384, P-521), RSA (2048 bits or more), Ed25519")
    fingerprint = serializers.CharField(read_only=True, help_text="SHA-256 of the DER public key, hex")
    algorithm = serializers.CharField(read_only=True)
    added_by = serializers.CharField(read_only=True, allow_null=True)
    created_at = serializers.DateTimeField(read_only=True)


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


class ImmutableTagRuleSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    pattern = serializers.CharField(max_length=128, help_text="tag pattern, e.g. v* or release-*")
    repository = serializers.CharField(
        max_length=200, required=False, default="*", help_text="repository name pattern within the namespace"
    )
    created_by = serializers.CharField(read_only=True, allow_null=True)
    created_at = serializers.DateTimeField(read_only=True)


class RepositoryStorageSerializer(serializers.Serializer):
    name = serializers.CharField()
    used_bytes = serializers.IntegerField()


class StorageSerializer(serializers.Serializer):
    namespace = serializers.CharField()
    used_bytes = serializers.IntegerField(help_text="each blob counted once in the namespace")
    quota_bytes = serializers.IntegerField(allow_null=True)
    warning = serializers.BooleanField(help_text="usage at 80 % of the quota or more")
    over_quota = serializers.BooleanField(help_text="uploads are refused")
    repositories = RepositoryStorageSerializer(many=True)
    computed_at = serializers.DateTimeField(allow_null=True)


class QuotaSerializer(serializers.Serializer):
    quota_bytes = serializers.IntegerField(
        allow_null=True, min_value=0, max_value=2**62, help_text="null: no quota (at most 2^62 bytes)"
    )


class GcRunSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=["holding", "collecting", "ok", "failed"])
    started_at = serializers.DateTimeField(help_text="the write hold began")
    collect_started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    freed_bytes = serializers.IntegerField(allow_null=True, help_text="null: not filesystem storage")
    requested_by = serializers.CharField()
    output = serializers.CharField(help_text="the end of garbage-collect's output")


class RetentionRuleSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    repository = serializers.CharField(max_length=200, required=False, help_text="repository name pattern; default *")
    tag_pattern = serializers.CharField(max_length=128, required=False, help_text="default *")
    keep_most_recent = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=1_000_000)
    keep_pushed_within_days = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=36_500)
    keep_pulled_within_days = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=36_500)
    untagged = serializers.BooleanField(required=False, help_text="also remove manifests no tag points at")
    protect_immutable = serializers.BooleanField(required=False, help_text="default true")
    protect_verified = serializers.BooleanField(required=False, help_text="default true")
    created_by = serializers.CharField(read_only=True, allow_null=True)
    created_at = serializers.DateTimeField(read_only=True)


class RetentionRunRequestSerializer(serializers.Serializer):
    dry_run = serializers.BooleanField(default=True)
    wait = serializers.BooleanField(
        default=True,
        help_text="false: an applied run goes on in the background (202); GET lists it when it is done",
    )


class RetentionRunSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    dry_run = serializers.BooleanField()
    tags = serializers.ListField(child=serializers.CharField(), help_text="repository:tag, removed or to remove")
    digests = serializers.ListField(child=serializers.CharField(), help_text="repository@digest")
    bytes = serializers.IntegerField(help_text="storage the removed images alone held")
    skipped = serializers.ListField(child=serializers.CharField(), help_text="planned but kept, and why")
    started_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    requested_by = serializers.CharField()
