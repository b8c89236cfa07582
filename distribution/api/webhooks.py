"""/api/webhooks/ (staff): webhook endpoints. The secret is in the answer to a create
only; lists and reads never show it."""

from django.db.models import QuerySet
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from distribution import events
from distribution.models import Source
from events import webhooks
from events.models import WebhookEndpoint


class WebhookEndpointSerializer(serializers.ModelSerializer):
    sources = serializers.ListField(
        child=serializers.CharField(max_length=64),
        required=False,
        help_text=gettext_lazy("Codes of the sources whose events it gets; none: every source's."),
    )
    event_types = serializers.ListField(
        child=serializers.ChoiceField(choices=events.TYPES),
        required=False,
        help_text=gettext_lazy("The event types it gets; none: all."),
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["id", "url", "description", "sources", "event_types", "is_active", "created_at"]
        read_only_fields = ["id", "created_at"]

    def validate_sources(self, codes: list[str]) -> list[str]:
        known = set(Source.objects.filter(code__in=codes).values_list("code", flat=True))
        if unknown := sorted(set(codes) - known):
            raise serializers.ValidationError(
                _("No such source: %(codes)s.") % {"codes": ", ".join(unknown)}
            )
        return list(dict.fromkeys(codes))

    def validate_event_types(self, types: list[str]) -> list[str]:
        return list(dict.fromkeys(types))


class WebhookEndpointCreatedSerializer(WebhookEndpointSerializer):
    secret = serializers.CharField(
        read_only=True,
        help_text=gettext_lazy(
            "Verifies the `webhook-signature` header (Standard Webhooks). Shown only now."
        ),
    )

    class Meta(WebhookEndpointSerializer.Meta):
        fields = [*WebhookEndpointSerializer.Meta.fields, "secret"]


class WebhookEndpointViewSet(
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Where the worker sends events, signed following Standard Webhooks."""

    serializer_class = WebhookEndpointSerializer

    def get_queryset(self) -> QuerySet[WebhookEndpoint]:
        return WebhookEndpoint.objects.order_by("id")

    @extend_schema(responses={201: WebhookEndpointCreatedSerializer})
    def create(self, request: Request) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        endpoint = webhooks.create_endpoint(**serializer.validated_data)
        return Response(
            WebhookEndpointCreatedSerializer(endpoint).data, status=status.HTTP_201_CREATED
        )

    def perform_update(self, serializer: WebhookEndpointSerializer) -> None:
        webhooks.update_endpoint(endpoint=serializer.instance, **serializer.validated_data)
