"""Webhook and activity endpoints. Repository webhooks are for the repository's admins,
organization webhooks for its owners; the policy module decides both."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api.authentication import api_actor
from accounts.api.views import _organization
from accounts.models import Level, Organization, User
from audit import selectors as audit_selectors
from audit.models import AuditEvent
from repositories.api.views import _repository
from webhooks import services
from webhooks.models import Attempt, Delivery, Event, Webhook


class WebhookSerializer(serializers.ModelSerializer):
    events = serializers.ListField(child=serializers.ChoiceField(choices=Event.choices), required=False)

    class Meta:
        model = Webhook
        fields = ["id", "name", "url", "events", "tag_pattern", "is_active", "created_at"]
        read_only_fields = ["id", "created_at"]


class WebhookCreatedSerializer(WebhookSerializer):
    secret = serializers.CharField(
        read_only=True,
        help_text="shown once (whsec_…): verify the webhook-signature header with it (Standard Webhooks)",
    )

    class Meta(WebhookSerializer.Meta):
        fields = [*WebhookSerializer.Meta.fields, "secret"]


class AttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = Attempt
        fields = ["number", "started_at", "duration_ms", "status_code", "error", "response_body"]


class DeliverySerializer(serializers.ModelSerializer):
    attempts = AttemptSerializer(many=True, read_only=True)

    class Meta:
        model = Delivery
        fields = ["id", "delivery_id", "event", "status", "created_at", "payload", "attempts"]


class ActivitySerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = ["created_at", "actor_name", "action", "target_name", "repository", "data"]


def _webhooks(request: Request, kwargs: dict) -> tuple[dict, QuerySet[Webhook]]:
    """The scope (repository or organization) named in the URL, checked, and its webhooks."""
    if "org" in kwargs:
        organization = _organization(request, kwargs["org"], manage=True)
        return {"organization": organization}, Webhook.objects.filter(organization=organization)
    repository = _repository(request, kwargs["namespace"], kwargs["name"], Level.ADMIN)
    return {"repository": repository}, Webhook.objects.filter(repository=repository)


class WebhookListView(APIView):
    @extend_schema(responses=WebhookSerializer(many=True))
    def get(self, request: Request, **kwargs) -> Response:
        _, hooks = _webhooks(request, kwargs)
        return Response(WebhookSerializer(hooks.order_by("pk"), many=True).data)

    @extend_schema(request=WebhookSerializer, responses={201: WebhookCreatedSerializer})
    def post(self, request: Request, **kwargs) -> Response:
        scope, _ = _webhooks(request, kwargs)
        data = WebhookSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        hook = services.webhook_create(actor=request.user, **scope, **data.validated_data)
        return Response(WebhookCreatedSerializer(hook).data, status=status.HTTP_201_CREATED)


def _hook(request: Request, kwargs: dict) -> Webhook:
    _, hooks = _webhooks(request, kwargs)
    hook = hooks.filter(pk=kwargs["hook_id"]).first()
    if hook is None:
        raise exceptions.NotFound("No such webhook.")
    return hook


class WebhookDetailView(APIView):
    @extend_schema(responses=WebhookSerializer)
    def get(self, request: Request, **kwargs) -> Response:
        return Response(WebhookSerializer(_hook(request, kwargs)).data)

    @extend_schema(request=WebhookSerializer, responses=WebhookSerializer)
    def patch(self, request: Request, **kwargs) -> Response:
        hook = _hook(request, kwargs)
        data = WebhookSerializer(hook, data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        return Response(
            WebhookSerializer(services.webhook_update(webhook=hook, actor=request.user, **data.validated_data)).data
        )

    @extend_schema(responses={204: None})
    def delete(self, request: Request, **kwargs) -> Response:
        services.webhook_delete(webhook=_hook(request, kwargs), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class DeliveryListView(generics.ListAPIView):
    serializer_class = DeliverySerializer

    def get_queryset(self) -> QuerySet[Delivery]:
        return _hook(self.request, self.kwargs).deliveries.prefetch_related("attempts").order_by("-created_at")


class WebhookTestView(APIView):
    @extend_schema(request=None, responses={202: DeliverySerializer})
    def post(self, request: Request, **kwargs) -> Response:
        delivery = services.send_test(webhook=_hook(request, kwargs), actor=request.user)
        return Response(DeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)


class RedeliverView(APIView):
    @extend_schema(request=None, responses={202: DeliverySerializer})
    def post(self, request: Request, delivery_id: int, **kwargs) -> Response:
        delivery = _hook(request, kwargs).deliveries.filter(pk=delivery_id).first()
        if delivery is None:
            raise exceptions.NotFound("No such delivery.")
        again = services.redeliver(delivery=delivery, actor=request.user)
        return Response(DeliverySerializer(again).data, status=status.HTTP_202_ACCEPTED)


# --- activity ------------------------------------------------------------------------------


class RepositoryActivityView(generics.ListAPIView):
    """Pushes, deletes, creation, visibility and description changes of one repository, for
    anyone who can read it; permission and webhook changes too, for its admins."""

    serializer_class = ActivitySerializer

    def get_queryset(self) -> QuerySet[AuditEvent]:
        repository = _repository(self.request, self.kwargs["namespace"], self.kwargs["name"])
        return audit_selectors.repository_activity(actor=api_actor(self.request), repository=repository)


class OrganizationActivityView(generics.ListAPIView):
    """An organization's activity, for its members: what happened to the repositories each may
    see, and to the organization's members, teams, rules and robots."""

    serializer_class = ActivitySerializer

    def get_queryset(self) -> QuerySet[AuditEvent]:
        organization: Organization = _organization(self.request, self.kwargs["org"], internals=True)
        return audit_selectors.organization_activity(actor=api_actor(self.request), organization=organization)


class UserActivityView(generics.ListAPIView):
    """What a user did to repositories the caller can see."""

    serializer_class = ActivitySerializer

    def get_queryset(self) -> QuerySet[AuditEvent]:
        user = User.objects.filter(username=self.kwargs["username"].lower(), is_active=True).first()
        if user is None:
            raise exceptions.NotFound("No such user.")
        return audit_selectors.user_activity(actor=api_actor(self.request), user=user)
