from django.db.models import Prefetch, QuerySet
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import Serializer

from crm.api import THROTTLED, error_response
from crm.middleware import log_ids
from distribution.authentication import IsStaffOrSourceBot, NamesOwnSource, bot_source
from leads import services
from leads.filters import ContactFilter, LeadFilter
from leads.models import Contact, Lead
from leads.serializers import (
    ContactCreateSerializer,
    ContactReassignSerializer,
    ContactSerializer,
    LeadDetailSerializer,
    LeadSerializer,
)


class LeadViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Leads; one lead shows its contacts from every source."""

    filterset_class = LeadFilter

    def get_queryset(self) -> QuerySet[Lead]:
        if self.action != "retrieve":
            return Lead.objects.all()
        contacts = Contact.objects.select_related("source", "operator")
        return Lead.objects.prefetch_related(Prefetch("contacts", queryset=contacts))

    def get_serializer_class(self) -> type[Serializer]:
        return LeadDetailSerializer if self.action == "retrieve" else LeadSerializer


@extend_schema_view(
    list=extend_schema(responses={200: ContactSerializer(many=True), 429: THROTTLED}),
    retrieve=extend_schema(responses={200: ContactSerializer, 429: THROTTLED}),
)
class ContactViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Contacts: the bots' intake, reading them back, closing and reassigning."""

    serializer_class = ContactSerializer
    filterset_class = ContactFilter
    # A bot sends contacts and reads its own source's back; the rest is staff's.
    bot_actions = ("create", "list", "retrieve")

    def get_permissions(self) -> list[BasePermission]:
        if self.action in self.bot_actions:
            return [IsStaffOrSourceBot(), NamesOwnSource()]
        return super().get_permissions()

    def get_queryset(self) -> QuerySet[Contact]:
        contacts = Contact.objects.select_related("lead", "source", "operator")
        source = bot_source(self.request)
        return contacts if source is None else contacts.filter(source=source)

    @extend_schema(
        request=ContactCreateSerializer,
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                location=OpenApiParameter.HEADER,
                required=False,
                description=(
                    "Up to 255 printable characters, unique per source: a retry with the "
                    "same key and body returns the first contact (200); the same key with "
                    "another body is a 409. Remembered for IDEMPOTENCY_KEY_TTL_HOURS."
                ),
            )
        ],
        responses={
            201: ContactSerializer,
            200: OpenApiResponse(ContactSerializer, description="A retry: the first contact."),
            409: error_response("The idempotency key was used for a different request."),
            429: THROTTLED,
        },
        examples=[
            OpenApiExample(
                "From a bot",
                request_only=True,
                value={
                    "source": "telegram",
                    "lead": {"external_id": "tg-1001", "phone": "+79161234567", "name": "Anna"},
                    "payload": {"text": "Hello, how much is delivery?"},
                },
            )
        ],
    )
    def create(self, request: Request) -> Response:
        serializer = ContactCreateSerializer(
            data=request.data,
            context={
                "bot_source": bot_source(request),
                "idempotency_key": request.headers.get("Idempotency-Key"),
            },
        )
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if data["idempotency_key"] is None:
            created = True
            contact = services.register_contact(
                source=data["source"], identity=data["lead"], payload=data["payload"]
            )
        else:
            contact, created = services.register_contact_once(
                source=data["source"],
                key=data["idempotency_key"],
                identity=data["lead"],
                payload=data["payload"],
            )
        log_ids(request, source=contact.source.code, contact=contact.pk)
        answer = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(ContactSerializer(contact).data, status=answer)

    @extend_schema(
        request=None,
        responses={200: ContactSerializer, 409: error_response("Already closed.")},
    )
    @action(detail=True, methods=["post"])
    def close(self, request: Request, pk: str) -> Response:
        contact = services.close_contact(contact=self.get_object())
        return Response(ContactSerializer(contact).data)

    @extend_schema(
        request=ContactReassignSerializer,
        responses={
            200: ContactSerializer,
            409: error_response("The operator cannot take it, and why; or nobody else can."),
        },
    )
    @action(detail=True, methods=["post"])
    def reassign(self, request: Request, pk: str) -> Response:
        contact = self.get_object()
        serializer = ContactReassignSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        contact = services.reassign_contact(
            contact=contact, operator=serializer.validated_data.get("operator")
        )
        return Response(ContactSerializer(contact).data)
