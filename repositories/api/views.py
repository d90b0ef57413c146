"""Repository endpoints under /api/v1/repositories/ and the Docker CLI's /v1/search.

Thin: the policy module decides (through `_repository`), selectors read, services write.
Private repositories the caller cannot read answer 404, exactly like missing ones."""

from __future__ import annotations

import math

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import exceptions, generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api.authentication import api_actor
from accounts.models import Level, Namespace, Robot, Team, User, Visibility
from portal.pagination import WindowCountPagination
from portal.params import query_param
from repositories import access, selectors, services, trust
from repositories.api.serializers import (
    LEVEL_NAMES,
    DailyPullsSerializer,
    DockerSearchSerializer,
    GcRunSerializer,
    GrantSerializer,
    GrantWriteSerializer,
    ImmutableTagRuleSerializer,
    QuotaSerializer,
    RepositoryDetailSerializer,
    RepositorySerializer,
    RepositoryWriteSerializer,
    RetentionRuleSerializer,
    RetentionRunRequestSerializer,
    RetentionRunSerializer,
    SigningKeySerializer,
    StorageSerializer,
    TagDeleteResultSerializer,
    TagDetailSerializer,
    TagSerializer,
)
from repositories.models import Repository, RepositoryGrant, SigningKey
from repositories.policies import TagImmutable


def _param(request: Request, name: str, limit: int = 100, default: str = "") -> str:
    return query_param(request.query_params, name, limit, default)


def _repository(request: Request, namespace: str, name: str, level: Level = Level.READ) -> Repository:
    """The repository if the caller may act on it at `level` (access.access_repository decides:
    unreadable is missing, 404; readable but not enough is 403 with the reason)."""
    return access.access_repository(api_actor(request), f"{namespace}/{name}", level)[0]


LIST_PARAMETERS = [
    OpenApiParameter("q", str, description="search words: names, then descriptions"),
    OpenApiParameter("visibility", str, enum=["public", "private"]),
    OpenApiParameter("is_starred", bool, description="only repositories you starred"),
    OpenApiParameter("architecture", str, description="only repositories with a tag for this architecture"),
    OpenApiParameter("ordering", str, enum=list(selectors.REPOSITORY_ORDERINGS)),
]


class RepositoryListView(generics.ListAPIView):
    """Search and list the repositories you can see."""

    serializer_class = RepositorySerializer
    pagination_class = WindowCountPagination

    def get_queryset(self) -> QuerySet[Repository]:
        request = self.request
        actor = api_actor(request)
        starred = _param(request, "is_starred").lower() in ("1", "true", "yes")
        if starred and actor.user is None:
            return selectors.repository_search(actor=actor).none()
        # Lists never show the full description: leave it out of the rows the ranking sorts.
        return selectors.repository_search(
            actor=actor,
            q=_param(request, "q"),
            namespace=self.kwargs.get("namespace") or _param(request, "namespace", 64),
            visibility=_param(request, "visibility"),
            starred_by=actor.user if starred else None,
            architecture=_param(request, "architecture", 32),
            ordering=_param(request, "ordering").strip(),
        ).defer("full_description", "sync_error")

    @extend_schema(parameters=[*LIST_PARAMETERS, OpenApiParameter("namespace", str)])
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)


class NamespaceRepositoryListView(RepositoryListView):
    """The repositories of one namespace you can see; POST creates one."""

    @extend_schema(parameters=LIST_PARAMETERS, operation_id="api_v1_namespace_repositories_list")
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(request=RepositoryWriteSerializer, responses={201: RepositoryDetailSerializer})
    def post(self, request: Request, namespace: str) -> Response:
        data = RepositoryWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        name = data.validated_data.get("name")
        if not name:
            raise exceptions.ValidationError({"name": ["This field is required."]})
        ns = Namespace.objects.filter(name=namespace).first()
        actor = api_actor(request)
        private = data.validated_data.get("is_private")
        visibility = None if private is None else (Visibility.PRIVATE if private else Visibility.PUBLIC)
        refusal = access.repository_creation_refusal(actor, ns, name, visibility)
        if refusal and (ns is None or not access.decide(actor, ns, name).allows(Level.WRITE)):
            raise exceptions.NotFound(refusal)  # a namespace you cannot write to looks missing
        if refusal:
            raise exceptions.PermissionDenied(refusal)
        repository = services.repository_create(
            namespace=ns,
            name=name,
            actor=request.user,
            actor_name=actor.name,
            visibility=visibility,
            short_description=data.validated_data.get("description", ""),
            full_description=data.validated_data.get("full_description", ""),
        )
        return Response(RepositoryDetailSerializer(repository).data, status=status.HTTP_201_CREATED)


class RepositoryDetailView(APIView):
    @extend_schema(responses=RepositoryDetailSerializer)
    def get(self, request: Request, namespace: str, name: str) -> Response:
        return Response(RepositoryDetailSerializer(_repository(request, namespace, name)).data)

    @extend_schema(request=RepositoryWriteSerializer, responses=RepositoryDetailSerializer)
    def patch(self, request: Request, namespace: str, name: str) -> Response:
        repository = _repository(request, namespace, name, Level.ADMIN)
        data = RepositoryWriteSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        if "name" in values:
            raise exceptions.ValidationError({"name": ["Repositories cannot be renamed."]})
        private = values.get("is_private")
        services.repository_update(
            repository=repository,
            actor=request.user,
            short_description=values.get("description"),
            full_description=values.get("full_description"),
            visibility=None if private is None else (Visibility.PRIVATE if private else Visibility.PUBLIC),
        )
        return Response(RepositoryDetailSerializer(repository).data)

    @extend_schema(responses={200: inline_serializer("RepositoryDeleted", {"deleted_tags": serializers.ListField()})})
    def delete(self, request: Request, namespace: str, name: str) -> Response:
        repository = _repository(request, namespace, name, Level.ADMIN)
        try:
            deleted = services.repository_delete(repository=repository, actor=request.user)
        except TagImmutable as exc:
            raise exceptions.PermissionDenied(f"Nothing was deleted: {exc}.") from None
        return Response({"deleted_tags": deleted})


class TagListView(generics.ListAPIView):
    """Tags, newest first by default. Signature, attestation and SBOM tags are hidden unless
    `artifacts=true`."""

    serializer_class = TagSerializer

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "ordering",
                str,
                enum=["newest", "oldest", "name", "version"],
                description="version: highest version first; a leading v ignored, numbers as numbers, "
                "pre-releases below their release, suffixed builds (-alpine) after the plain version, "
                "names that are not versions (latest, main) last",
            ),
            OpenApiParameter("name", str, description="tags whose name contains this"),
            OpenApiParameter("artifacts", bool, description="include cosign .sig/.att/.sbom tags"),
            OpenApiParameter(
                "platform", str, description="only tags with an image for os/arch[/variant]; another form answers 400"
            ),
        ]
    )
    def get(self, request: Request, namespace: str, name: str) -> Response:
        repository = _repository(request, namespace, name)
        platform = _param(request, "platform").lower()
        if platform and not selectors.PLATFORM_RE.match(platform):
            raise exceptions.ValidationError(
                {"platform": "Give a platform as os/architecture[/variant], e.g. linux/arm64/v8."}
            )
        tags = selectors.tag_list(
            repository=repository,
            ordering=_param(request, "ordering", default="newest"),
            name_filter=_param(request, "name", 128),
            artifacts=_param(request, "artifacts").lower() in ("1", "true", "yes"),
            platform=platform,
        )
        page = self.paginate_queryset(tags)
        return self.get_paginated_response(TagSerializer(page, many=True).data)


def _attachment_url(request: Request, repository: Repository, item: dict) -> str:
    path = reverse(
        "api-attachment-separated",
        kwargs={
            "namespace": repository.namespace.name,
            "name": repository.name,
            "artifact": item["artifact"],
            "layer": item["layer"],
        },
    )
    return request.build_absolute_uri(path)


def tag_detail_data(request: Request, repository: Repository, detail: selectors.TagDetail) -> dict:
    tag, manifest = detail.tag, detail.manifest
    reference = f"{settings.REGISTRY_PUBLIC_HOST}/{repository.full_name}"
    return {
        "name": tag.name,
        "digest": manifest.digest,
        "media_type": manifest.media_type,
        "platforms": [
            {**p, "layers": [{**layer, "created_by": layer.get("created_by", "")} for layer in p["layers"]]}
            for p in detail.platforms
        ],
        "tags_sharing_digest": detail.sharing,
        "pushed_at": tag.pushed_at,
        "pushed_by": tag.pushed_by,
        "last_pulled_at": detail.last_pulled_at,
        "pull_commands": {
            "tag": f"docker pull {reference}:{tag.name}",
            "digest": f"docker pull {reference}@{manifest.digest}",
        },
        "signature": trust.verdict(manifest),
        "attestations": [
            {
                "type": item.get("type", ""),
                "kind": item.get("kind", "attestation"),
                "format": item.get("format", ""),
                "platform": item.get("platform", ""),
                "builder": item.get("builder", ""),
                "source_repository": item.get("source", ""),
                "digest": item["layer"],
                "size": item.get("size", 0),
                "download_url": _attachment_url(request, repository, item),
            }
            for item in detail.attachments
        ],
        "full_size": manifest.total_size,
        "last_pushed": tag.pushed_at,
        "last_pusher_username": tag.pushed_by,
        "is_signed": manifest.is_signed,
        "artifact": tag.artifact,
        "images": [{k: p[k] for k in ("os", "architecture", "variant", "digest", "size")} for p in detail.platforms],
    }


class TagDetailView(APIView):
    @extend_schema(responses=TagDetailSerializer)
    def get(self, request: Request, namespace: str, name: str, tag: str) -> Response:
        """The tag, fully described: per platform its digest, size, creation time, layers (with
        the history line that made each), labels, entrypoint, cmd, exposed ports and environment
        variable names; the tags sharing its digest; who pushed it, when, when it was last
        pulled; pull commands; the signature verdict against the namespace's trusted keys; its
        attestations and SBOMs, each with a download URL."""
        repository = _repository(request, namespace, name)
        detail = selectors.tag_detail(repository=repository, tag_name=tag)
        if detail is None:
            raise exceptions.NotFound("No such tag.")
        return Response(TagDetailSerializer(tag_detail_data(request, repository, detail)).data)

    @extend_schema(
        parameters=[
            OpenApiParameter("confirm", bool, description="also delete the other tags of this digest"),
            OpenApiParameter("digest", str, description="only if the tag still points at this digest"),
        ],
        responses={200: TagDeleteResultSerializer, 409: OpenApiTypes.OBJECT},
    )
    def delete(self, request: Request, namespace: str, name: str, tag: str) -> Response:
        """Deletes the digest the tag points at in the registry now (read from the registry, not
        from the portal), with every tag on it; 409 lists them until `confirm=true`. 409 with
        `used_by` (never deleted, confirmed or not) when an index other tags point at lists it."""
        repository = _repository(request, namespace, name, Level.ADMIN)
        confirm = request.query_params.get("confirm", "").lower() in ("1", "true", "yes")
        try:
            digest, deleted = services.tag_delete(
                repository=repository,
                tag_name=tag,
                actor=request.user,
                confirm=confirm,
                expected_digest=_param(request, "digest", 150),
            )
        except services.TagNotInRegistry:
            raise exceptions.NotFound("The registry has no such tag.") from None
        except TagImmutable as exc:
            raise exceptions.PermissionDenied(f"Nothing was deleted: {exc}.") from None
        except services.UsedByIndex as exc:
            return Response(
                {"detail": f"Nothing was deleted: {exc}.", "digest": exc.digest, "used_by": exc.tags},
                status=status.HTTP_409_CONFLICT,
            )
        except services.ConfirmationRequired as exc:
            return Response(
                {
                    "detail": "The registry deletes by digest: these tags go together. Repeat with confirm=true "
                    "(and digest=, to delete only if nothing moved meanwhile).",
                    "digest": exc.digest,
                    "tags": exc.tags,
                },
                status=status.HTTP_409_CONFLICT,
            )
        return Response({"digest": digest, "deleted_tags": deleted})


class PermissionListView(APIView):
    """Who holds a grant on this repository (repository admins only)."""

    @extend_schema(responses=GrantSerializer(many=True))
    def get(self, request: Request, namespace: str, name: str) -> Response:
        repository = _repository(request, namespace, name, Level.ADMIN)
        return Response(GrantSerializer(selectors.repository_grants(repository=repository), many=True).data)

    @extend_schema(request=GrantWriteSerializer, responses={201: GrantSerializer})
    def post(self, request: Request, namespace: str, name: str) -> Response:
        repository = _repository(request, namespace, name, Level.ADMIN)
        data = GrantWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        holder = {}
        org_id = repository.namespace.organization_id
        if values.get("team"):
            holder["team"] = Team.objects.filter(organization_id=org_id, name=values["team"]).first()
        elif values.get("robot"):
            holder["robot"] = Robot.objects.filter(organization_id=org_id, name=values["robot"]).first()
        else:
            holder["user"] = User.objects.filter(username=values["user"].lower(), is_active=True).first()
        if not any(holder.values()):
            raise exceptions.ValidationError({next(iter(holder)): ["No such holder in this namespace."]})
        grant = services.grant_set(
            repository=repository, level=LEVEL_NAMES[values["level"]], actor=request.user, **holder
        )
        return Response(GrantSerializer(grant).data, status=status.HTTP_201_CREATED)


class PermissionDetailView(APIView):
    @extend_schema(responses={204: None})
    def delete(self, request: Request, namespace: str, name: str, grant_id: int) -> Response:
        repository = _repository(request, namespace, name, Level.ADMIN)
        grant = RepositoryGrant.objects.filter(repository=repository, pk=grant_id).first()
        if grant is None:
            raise exceptions.NotFound("No such grant.")
        services.grant_delete(grant=grant, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class StarView(APIView):
    @extend_schema(request=None, responses={200: RepositorySerializer})
    def post(self, request: Request, namespace: str, name: str) -> Response:
        return self._star(request, namespace, name, True)

    @extend_schema(responses={200: RepositorySerializer})
    def delete(self, request: Request, namespace: str, name: str) -> Response:
        return self._star(request, namespace, name, False)

    def _star(self, request: Request, namespace: str, name: str, starred: bool) -> Response:
        repository = _repository(request, namespace, name)
        actor = api_actor(request)
        if not access.credential_allows(actor, Level.WRITE):
            raise exceptions.PermissionDenied("Starring needs a signed-in user or a token with write scope.")
        services.star_set(repository=repository, user=request.user, starred=starred)
        repository.refresh_from_db()
        repository.is_starred = starred
        return Response(RepositorySerializer(repository).data)


class PullsView(APIView):
    @extend_schema(parameters=[OpenApiParameter("days", int)], responses=DailyPullsSerializer(many=True))
    def get(self, request: Request, namespace: str, name: str) -> Response:
        repository = _repository(request, namespace, name)
        try:
            days = min(max(int(request.query_params.get("days", 30)), 1), 366)
        except ValueError:
            raise exceptions.ValidationError({"days": ["A whole number of days, 1 to 366."]}) from None
        return Response(DailyPullsSerializer(selectors.daily_pulls(repository=repository, days=days), many=True).data)


class DockerSearchView(APIView):
    """`docker search <portal-host>/<term>` asks this (the registry v1 search API)."""

    @extend_schema(
        parameters=[
            OpenApiParameter("q", str, required=True),
            OpenApiParameter("n", int),
            OpenApiParameter("page", int),
        ],
        responses=DockerSearchSerializer,
    )
    def get(self, request: Request) -> Response:
        params = request.query_params
        try:
            page_size = min(max(int(params.get("n", 25)), 1), 100)
            page = max(int(params.get("page", 1)), 1)
        except ValueError:
            raise exceptions.ValidationError({"n": ["n and page must be whole numbers."]}) from None
        query = _param(request, "q")
        qs = selectors.repository_search(actor=api_actor(request), q=query)
        total = qs.count()
        # Past the last page there is nothing to read (and a huge OFFSET would overflow SQL).
        rows = qs[(page - 1) * page_size : page * page_size] if (page - 1) * page_size < total else []
        return Response(
            {
                "num_pages": max(1, math.ceil(total / page_size)),
                "num_results": total,
                "page": page,
                "page_size": page_size,
                "query": query,
                "results": [
                    {
                        "name": r.full_name,
                        "description": r.short_description,
                        "star_count": r.star_count,
                        "is_official": False,
                        "is_automated": False,
                    }
                    for r in rows
                ],
            }
        )


class AttachmentView(APIView):
    """An attestation or SBOM of the repository, streamed from the registry (its download_url)."""

    @extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY})
    def get(self, request: Request, namespace: str, name: str, artifact: str, layer: str):
        from repositories.registry.client import RegistryError
        from repositories.views import attachment_response

        repository = _repository(request, namespace, name)
        try:
            item, chunks, length = services.attachment_open(
                repository=repository, artifact_digest=artifact, layer_digest=layer
            )
        except services.AttachmentNotFound:
            raise exceptions.NotFound("No such attestation or SBOM.") from None
        except RegistryError:
            return Response(
                {"detail": "The registry could not be reached."}, status=status.HTTP_503_SERVICE_UNAVAILABLE
            )
        return attachment_response(item, chunks, f"{repository.name.replace('/', '-')}-{layer[7:19]}", length)


# --- trusted signing keys ----------------------------------------------------------------------


def _signed_in_for(request: Request, namespace: str) -> tuple[Namespace, access.Actor]:
    """The namespace and who asks: 404 for no such namespace, 401 for nobody signed in."""
    found = Namespace.objects.filter(name=namespace).select_related("organization").first()
    actor = api_actor(request)
    if found is None:
        raise exceptions.NotFound("No such namespace.")
    if actor.is_anonymous:
        raise exceptions.NotAuthenticated()
    return found, actor


def _managed_namespace(request: Request, namespace: str) -> Namespace:
    found, actor = _signed_in_for(request, namespace)
    if not access.may_manage_namespace(actor, found):
        raise exceptions.PermissionDenied(
            "A namespace's settings (signing keys, storage, retention runs) are for its admins (an organization's "
            "owners, a user for their own), "
            "signed in or with a token of scope delete that reaches the namespace."
        )
    return found


def _key_data(key: SigningKey) -> dict:
    return {
        "id": key.pk,
        "name": key.name,
        "public_key": key.public_key,
        "fingerprint": key.fingerprint,
        "algorithm": key.algorithm,
        "added_by": key.added_by.username if key.added_by_id else None,
        "created_at": key.created_at,
    }


class SigningKeyListView(APIView):
    """The public keys whose cosign signatures this namespace trusts. Adding or removing one
    checks every signed image of the namespace again."""

    @extend_schema(responses=SigningKeySerializer(many=True))
    def get(self, request: Request, namespace: str) -> Response:
        found = _managed_namespace(request, namespace)
        keys = SigningKey.objects.filter(namespace=found).select_related("added_by").order_by("name")
        return Response([_key_data(key) for key in keys])

    @extend_schema(request=SigningKeySerializer, responses={201: SigningKeySerializer})
    def post(self, request: Request, namespace: str) -> Response:
        found = _managed_namespace(request, namespace)
        data = SigningKeySerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            key = trust.signing_key_add(
                namespace=found,
                name=data.validated_data["name"],
                public_key=data.validated_data["public_key"],
                actor=request.user,
            )
        except ValidationError as exc:
            raise exceptions.ValidationError(exc.message_dict) from None
        return Response(_key_data(key), status=status.HTTP_201_CREATED)


class SigningKeyDetailView(APIView):
    @extend_schema(responses={204: None})
    def delete(self, request: Request, namespace: str, key_id: int) -> Response:
        found = _managed_namespace(request, namespace)
        key = SigningKey.objects.filter(namespace=found, pk=key_id).first()
        if key is None:
            raise exceptions.NotFound("No such key.")
        trust.signing_key_delete(key=key, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- immutable tags (issue 16) -------------------------------------------------------------------

POLICY_REFUSAL = (
    "A namespace's policies are for its admins (an organization's owners, a user for their own); "
    "a repository's admins may manage rules for that repository alone (give its exact name as "
    "`repository`). Signed in, or with a token of scope delete that reaches it."
)


def _policy_namespace(request: Request, namespace: str, repository: str | None = None) -> tuple[Namespace, bool]:
    """The namespace, and whether the actor manages all of it (True) or only the one repository
    `repository` as its admin (False; access.may_manage_repository_policies). Otherwise 401, 403
    or 404."""
    found, actor = _signed_in_for(request, namespace)
    if access.may_manage_namespace(actor, found):
        return found, True
    if repository and access.may_manage_repository_policies(actor, found, repository):
        return found, False
    raise exceptions.PermissionDenied(POLICY_REFUSAL)


def _rules_for(rules, repository: str | None):
    """A namespace's rules, or those that cover one repository (`?repository=`)."""
    from repositories.policies import covering

    return covering(rules, repository) if repository else list(rules)


def _rule_data(rule) -> dict:
    return {
        "id": rule.pk,
        "pattern": rule.tag_pattern,
        "repository": rule.repository_pattern,
        "created_by": rule.created_by.username if rule.created_by_id else None,
        "created_at": rule.created_at,
    }


class ImmutableTagListView(APIView):
    """Tag patterns that cannot be pushed again once a tag exists, nor deleted; enforced by the
    front (nginx asks the portal before a manifest PUT or DELETE reaches the registry) and by
    the portal's own deletes."""

    @extend_schema(
        parameters=[OpenApiParameter("repository", str, description="only the rules that cover this repository")],
        responses=ImmutableTagRuleSerializer(many=True),
    )
    def get(self, request: Request, namespace: str) -> Response:
        from repositories.models import ImmutableTagRule

        repository = _param(request, "repository", 255)
        found, _ = _policy_namespace(request, namespace, repository)
        rules = ImmutableTagRule.objects.filter(namespace=found).select_related("created_by")
        return Response([_rule_data(rule) for rule in _rules_for(rules, repository)])

    @extend_schema(request=ImmutableTagRuleSerializer, responses={201: ImmutableTagRuleSerializer})
    def post(self, request: Request, namespace: str) -> Response:
        from repositories import policies

        data = ImmutableTagRuleSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        found, whole = _policy_namespace(request, namespace, data.validated_data.get("repository"))
        try:
            rule = policies.immutable_rule_create(
                namespace=found,
                tag_pattern=data.validated_data["pattern"],
                repository_pattern=data.validated_data.get("repository") or "*",
                actor=request.user,
                repository_admin=not whole,
            )
        except ValidationError as exc:
            errors = exc.message_dict
            raise exceptions.ValidationError(
                {{"tag_pattern": "pattern", "repository_pattern": "repository"}.get(k, k): v for k, v in errors.items()}
            ) from None
        return Response(_rule_data(rule), status=status.HTTP_201_CREATED)


class ImmutableTagDetailView(APIView):
    @extend_schema(responses={204: None})
    def delete(self, request: Request, namespace: str, rule_id: int) -> Response:
        from repositories import policies
        from repositories.models import ImmutableTagRule

        found = Namespace.objects.filter(name=namespace).first()
        rule = ImmutableTagRule.objects.filter(namespace=found, pk=rule_id).first() if found else None
        found, _ = _policy_namespace(request, namespace, rule.repository_pattern if rule else None)
        if rule is None:
            raise exceptions.NotFound("No such rule.")
        policies.immutable_rule_delete(rule=rule, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- storage and quotas (issue 16) ----------------------------------------------------------------


class StorageView(APIView):
    """What the namespace stores (each blob once, however many repositories share it), per
    repository, and its quota. Uploads are refused at the front once usage reaches the quota;
    `warning` is set from 80 %."""

    @extend_schema(responses=StorageSerializer)
    def get(self, request: Request, namespace: str) -> Response:
        from repositories import storage

        found = _managed_namespace(request, namespace)
        return Response(storage.as_data(found, storage.usage(found)))

    @extend_schema(request=QuotaSerializer, responses=StorageSerializer)
    def put(self, request: Request, namespace: str) -> Response:
        from repositories import storage

        found = _managed_namespace(request, namespace)
        data = QuotaSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            row = storage.quota_set(namespace=found, quota_bytes=data.validated_data["quota_bytes"], actor=request.user)
        except ValidationError as exc:
            raise exceptions.ValidationError(exc.message_dict) from None
        return Response(storage.as_data(found, row))


# --- garbage collection (issue 16) ---------------------------------------------------------------


def _gc_data(run) -> dict:
    return {
        "id": run.pk,
        "status": run.status,
        "started_at": run.started_at,
        "collect_started_at": run.collect_started_at,
        "finished_at": run.finished_at,
        "freed_bytes": run.freed_bytes,
        "requested_by": run.requested_by,
        "output": run.output,
    }


def _staff(request: Request):
    actor = api_actor(request)
    if actor.is_anonymous:
        raise exceptions.NotAuthenticated()
    if not (actor.is_staff and access.credential_allows(actor, Level.ADMIN) and not actor.limits):
        raise exceptions.PermissionDenied(
            "Garbage collection is for staff, signed in or with a token of scope delete and no limits."
        )
    return actor


class GcView(APIView):
    """Garbage collection of the registry under a write hold: POST starts a run (202; the hold
    begins at once, collection after REGISTRY_GC_HOLD_SECONDS), GET lists past runs with their
    status and the space freed."""

    @extend_schema(responses=GcRunSerializer(many=True))
    def get(self, request: Request) -> Response:
        from repositories.models import GcRun

        _staff(request)
        return Response([_gc_data(run) for run in GcRun.objects.all()[:50]])

    @extend_schema(request=None, responses={202: GcRunSerializer, 409: OpenApiTypes.OBJECT})
    def post(self, request: Request) -> Response:
        from django.db import transaction

        from repositories import gc
        from repositories.tasks import registry_gc

        actor = _staff(request)
        try:
            run = gc.start(actor_name=actor.name)
        except gc.GcAlreadyRunning:
            return Response({"detail": "A garbage collection is running."}, status=status.HTTP_409_CONFLICT)

        def enqueue() -> None:
            try:
                registry_gc.delay(run.pk)
            except Exception:  # no broker: release the hold rather than hold for ever
                from repositories.models import GcRun

                GcRun.objects.filter(pk=run.pk).update(status=GcRun.Status.FAILED, output="could not be queued")

        transaction.on_commit(enqueue)
        return Response(_gc_data(run), status=status.HTTP_202_ACCEPTED)


# --- retention (issue 16) ------------------------------------------------------------------------

RULE_API_FIELDS = {
    "repository": "repository_pattern",
    "tag_pattern": "tag_pattern",
    "keep_most_recent": "keep_most_recent",
    "keep_pushed_within_days": "keep_pushed_within_days",
    "keep_pulled_within_days": "keep_pulled_within_days",
    "untagged": "untagged",
    "protect_immutable": "protect_immutable",
    "protect_verified": "protect_verified",
}


def _retention_rule_data(rule) -> dict:
    data = {api: getattr(rule, field) for api, field in RULE_API_FIELDS.items()}
    return {
        "id": rule.pk,
        **data,
        "created_by": rule.created_by.username if rule.created_by_id else None,
        "created_at": rule.created_at,
    }


def _retention_save(request: Request, namespace, rule=None, *, whole: bool = True):
    from repositories import retention

    data = RetentionRuleSerializer(data=request.data, partial=rule is not None)
    data.is_valid(raise_exception=True)
    values = {RULE_API_FIELDS[k]: v for k, v in data.validated_data.items() if k in RULE_API_FIELDS}
    try:
        return retention.rule_save(
            namespace=namespace, actor=request.user, rule=rule, repository_admin=not whole, **values
        )
    except ValidationError as exc:
        fields = {v: k for k, v in RULE_API_FIELDS.items()}
        raise exceptions.ValidationError({fields.get(k, k): v for k, v in exc.message_dict.items()}) from None


class RetentionRuleListView(APIView):
    """Which tags to keep; the rest of the tags a rule covers go when retention runs."""

    @extend_schema(
        parameters=[OpenApiParameter("repository", str, description="only the rules that cover this repository")],
        responses=RetentionRuleSerializer(many=True),
    )
    def get(self, request: Request, namespace: str) -> Response:
        from repositories.models import RetentionRule

        repository = _param(request, "repository", 255)
        found, _ = _policy_namespace(request, namespace, repository)
        rules = RetentionRule.objects.filter(namespace=found).select_related("created_by")
        return Response([_retention_rule_data(rule) for rule in _rules_for(rules, repository)])

    @extend_schema(request=RetentionRuleSerializer, responses={201: RetentionRuleSerializer})
    def post(self, request: Request, namespace: str) -> Response:
        RetentionRuleSerializer(data=request.data).is_valid(raise_exception=True)  # bad input: 400 first
        repository = request.data.get("repository") if hasattr(request.data, "get") else None
        found, whole = _policy_namespace(request, namespace, repository if isinstance(repository, str) else None)
        rule = _retention_save(request, found, whole=whole)
        return Response(_retention_rule_data(rule), status=status.HTTP_201_CREATED)


class RetentionRuleDetailView(APIView):
    def _rule(self, request: Request, namespace: str, rule_id: int):
        from repositories.models import RetentionRule

        found = Namespace.objects.filter(name=namespace).first()
        rule = RetentionRule.objects.filter(namespace=found, pk=rule_id).first() if found else None
        found, whole = _policy_namespace(request, namespace, rule.repository_pattern if rule else None)
        if rule is None:
            raise exceptions.NotFound("No such rule.")
        return found, rule, whole

    @extend_schema(request=RetentionRuleSerializer, responses=RetentionRuleSerializer)
    def patch(self, request: Request, namespace: str, rule_id: int) -> Response:
        found, rule, whole = self._rule(request, namespace, rule_id)
        moved = request.data.get("repository") if isinstance(request.data, dict) else None
        if not whole and moved is not None and moved != rule.repository_pattern:
            raise exceptions.PermissionDenied(POLICY_REFUSAL)  # a repository's admin keeps it to that one
        return Response(_retention_rule_data(_retention_save(request, found, rule)))

    @extend_schema(responses={204: None})
    def delete(self, request: Request, namespace: str, rule_id: int) -> Response:
        from repositories import retention

        _, rule, _ = self._rule(request, namespace, rule_id)
        retention.rule_delete(rule=rule, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _retention_run_data(run) -> dict:
    return {
        "id": run.pk,
        "dry_run": run.dry_run,
        "tags": run.tags,
        "digests": run.digests,
        "bytes": run.bytes,
        "skipped": run.skipped,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "requested_by": run.requested_by,
    }


class RetentionRunView(APIView):
    """POST runs the namespace's rules now, or with `dry_run` (the default) previews exactly
    what a run would remove; GET lists past runs and previews."""

    @extend_schema(responses=RetentionRunSerializer(many=True))
    def get(self, request: Request, namespace: str) -> Response:
        from repositories.models import RetentionRun

        found = _managed_namespace(request, namespace)
        return Response([_retention_run_data(r) for r in RetentionRun.objects.filter(namespace=found)[:50]])

    @extend_schema(
        request=RetentionRunRequestSerializer,
        responses={200: RetentionRunSerializer, 202: OpenApiTypes.OBJECT, 409: OpenApiTypes.OBJECT},
    )
    def post(self, request: Request, namespace: str) -> Response:
        from repositories import retention

        found = _managed_namespace(request, namespace)
        data = RetentionRunRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        dry_run, wait = data.validated_data["dry_run"], data.validated_data["wait"]
        try:  # gc.WritesHeld answers 503 (portal/pagination.py), waiting or not
            if not dry_run and not wait:
                from repositories.tasks import retention_run

                retention.check_can_start(found)
                retention_run.delay(found.pk, request.user.pk)
                return Response(
                    {"status": "started", "detail": "The run goes on in the background; GET retention-runs/ lists it."},
                    status=status.HTTP_202_ACCEPTED,
                )
            run = retention.run(namespace=found, dry_run=dry_run, actor=request.user)
        except retention.RunUnderWay as exc:
            return Response({"detail": f"Nothing was started: {exc}."}, status=status.HTTP_409_CONFLICT)
        return Response(_retention_run_data(run))
