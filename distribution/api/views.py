"""The API's viewsets: scope what a caller sees, validate, call a flow, answer."""

from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db.models import Prefetch, QuerySet
from django.utils import timezone
from django.utils.translation import gettext_lazy
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.generics import ListAPIView
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import Serializer
from rest_framework.views import APIView

from core.api import THROTTLED, error_response
from core.middleware import log_ids
from distribution import contacts, offers, operators, queries, sources
from distribution.api.authentication import (
    IsOperator,
    IsStaffOrOperator,
    IsStaffOrSourceBot,
    NamesOwnSource,
    bot_source,
    signed_in_operator,
)
from distribution.api.filters import ContactFilter, LeadFilter
from distribution.api.serializers import (
    ContactCreateSerializer,
    ContactDeclineSerializer,
    ContactHistorySerializer,
    ContactReassignSerializer,
    ContactSerializer,
    DistributionReportSerializer,
    EventFeedQuerySerializer,
    EventFeedSerializer,
    LeadDetailSerializer,
    LeadSerializer,
    MeSerializer,
    OperatorSerializer,
    PeriodSerializer,
    ShiftSerializer,
    SourceOperatorSerializer,
    SourceOverflowOperatorSerializer,
    SourceSerializer,
    WeightInputSerializer,
)
from distribution.models import Contact, Operator, OperatorSourceWeight, OverflowWeight, Source
from distribution.reports import distribution_report
from events.models import Event
from leads.models import Lead


class LeadViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Leads; one lead shows its contacts from every source."""

    filterset_class = LeadFilter

    def get_queryset(self) -> QuerySet[Lead]:
        if self.action != "retrieve":
            return Lead.objects.all()
        with_operators = Contact.objects.select_related("source", "operator")
        return Lead.objects.prefetch_related(Prefetch("contacts", queryset=with_operators))

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
        if self.action in ("close", "history"):
            return [IsStaffOrOperator()]
        if self.action in ("accept", "decline"):
            return [IsOperator()]
        return super().get_permissions()

    def get_queryset(self) -> QuerySet[Contact]:
        rows = Contact.objects.select_related("lead", "source", "operator")
        source = bot_source(self.request)
        if source is not None:
            return rows.filter(source=source)
        if self.request.user.is_staff:
            return rows
        # An operator's login: its own contacts only, so another's id is a 404.
        return rows.filter(operator=signed_in_operator(self.request))

    @extend_schema(
        request=ContactCreateSerializer,
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                location=OpenApiParameter.HEADER,
                required=False,
                description=gettext_lazy(
                    "Up to 255 printable characters, unique per source: a retry with the "
                    "same key and body returns the first contact (200); the same key with "
                    "another body is a 409. Remembered for IDEMPOTENCY_KEY_TTL_HOURS."
                ),
            )
        ],
        responses={
            201: ContactSerializer,
            200: OpenApiResponse(
                ContactSerializer, description=gettext_lazy("A retry: the first contact.")
            ),
            409: error_response(
                gettext_lazy("The idempotency key was used for a different request.")
            ),
            429: THROTTLED,
        },
        examples=[
            OpenApiExample(
                gettext_lazy("From a bot"),
                request_only=True,
                value={
                    "source": "telegram-bot",
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
            contact = contacts.register_contact(
                source=data["source"], identity=data["lead"], payload=data["payload"]
            )
        else:
            contact, created = contacts.register_contact_once(
                source=data["source"],
                key=data["idempotency_key"],
                identity=data["lead"],
                payload=data["payload"],
            )
        log_ids(request, source=contact.source.code, contact=contact.pk)
        answer = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(self.get_serializer(contact).data, status=answer)

    @extend_schema(
        request=None,
        responses={200: ContactSerializer, 409: error_response(gettext_lazy("Already closed."))},
    )
    @action(detail=True, methods=["post"])
    def close(self, request: Request, pk: str) -> Response:
        contact = contacts.close_contact(
            contact=self.get_object(), by_operator=signed_in_operator(request)
        )
        return Response(self.get_serializer(contact).data)

    @extend_schema(
        request=None,
        responses={
            200: ContactSerializer,
            409: error_response(
                gettext_lazy("The offer expired, was withdrawn or moved, and why.")
            ),
        },
    )
    @action(detail=True, methods=["post"])
    def accept(self, request: Request, pk: str) -> Response:
        """The signed-in operator accepts the contact it was offered: it opens."""
        contact = offers.accept_offer(
            contact=self.get_object(), by_operator=signed_in_operator(request)
        )
        return Response(self.get_serializer(contact).data)

    @extend_schema(
        request=ContactDeclineSerializer,
        responses={
            200: ContactSerializer,
            409: error_response(
                gettext_lazy("The contact is not offered to this operator, and why.")
            ),
        },
    )
    @action(detail=True, methods=["post"])
    def decline(self, request: Request, pk: str) -> Response:
        """The signed-in operator passes on the contact it was offered: it goes back to
        the queue (at its first-arrival place) and on to someone else."""
        contact = self.get_object()
        serializer = ContactDeclineSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        contact = offers.decline_offer(
            contact=contact,
            by_operator=signed_in_operator(request),
            reason=serializer.validated_data["reason"],
        )
        return Response(self.get_serializer(contact).data)

    @extend_schema(responses={200: ContactHistorySerializer(many=True)})
    # A contact's few steps, all at once and whatever the list's filters say.
    @action(detail=True, methods=["get"], pagination_class=None, filterset_class=None)
    def history(self, request: Request, pk: str) -> Response:
        """The contact's steps, oldest first. Staff see each step's decision; an operator
        reads only its own contacts' steps, without decisions or other operators."""
        contact = self.get_object()
        # In the order they were written, under the contact's lock: the order they
        # happened in, also where two steps share a moment (the index history_by_contact).
        steps = contact.history.select_related("operator").order_by("id")
        viewer = None if request.user.is_staff else signed_in_operator(request)
        serializer = ContactHistorySerializer(steps, many=True, context={"viewer": viewer})
        return Response(serializer.data)

    @extend_schema(
        request=ContactReassignSerializer,
        responses={
            200: ContactSerializer,
            409: error_response(
                gettext_lazy("The operator cannot take it, and why; or nobody else can.")
            ),
        },
    )
    @action(detail=True, methods=["post"])
    def reassign(self, request: Request, pk: str) -> Response:
        contact = self.get_object()
        serializer = ContactReassignSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        contact = contacts.reassign_contact(
            contact=contact, operator=serializer.validated_data.get("operator")
        )
        return Response(self.get_serializer(contact).data)


class OperatorViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Operators with their load and sources. Changes go through the services, so a
    raised limit or a reactivation hands out waiting contacts at once."""

    serializer_class = OperatorSerializer

    def get_queryset(self) -> QuerySet[Operator]:
        weights = OperatorSourceWeight.objects.select_related("source").order_by("source__code")
        return Operator.objects.with_load().prefetch_related(Prefetch("weights", queryset=weights))

    def create(self, request: Request) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        operator = operators.create_operator(**serializer.validated_data)
        return Response(self._read(operator), status=status.HTTP_201_CREATED)

    def update(self, request: Request, pk: str, partial: bool = False) -> Response:
        operator = self.get_object()
        serializer = self.get_serializer(operator, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        operator = operators.update_operator(operator=operator, **serializer.validated_data)
        return Response(self._read(operator))

    def partial_update(self, request: Request, pk: str) -> Response:
        return self.update(request, pk, partial=True)

    @extend_schema(
        responses={
            204: None,
            409: error_response(gettext_lazy("The operator still has open contacts.")),
        }
    )
    def destroy(self, request: Request, pk: str) -> Response:
        operators.delete_operator(operator=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(methods=["GET"], responses=ShiftSerializer(many=True))
    @extend_schema(
        methods=["PUT"],
        request=ShiftSerializer(many=True),
        responses={200: ShiftSerializer(many=True)},
    )
    # The whole week, read and replaced as one: not a page of a list.
    @action(detail=True, methods=["get", "put"], pagination_class=None)
    def shifts(self, request: Request, pk: str) -> Response:
        """The operator's weekly shifts, Monday = 0, in its time zone; none: always on shift."""
        operator = self.get_object()
        if request.method == "GET":
            return Response(ShiftSerializer(operator.shifts.all(), many=True).data)
        serializer = ShiftSerializer(data=request.data, many=True)
        serializer.is_valid(raise_exception=True)
        rows = operators.set_operator_shifts(operator=operator, shifts=serializer.validated_data)
        return Response(ShiftSerializer(rows, many=True).data)

    def _read(self, operator: Operator) -> dict:
        """The operator as a list shows it, load and sources included."""
        return self.get_serializer(self.get_queryset().get(pk=operator.pk)).data


def weight_list_schema(rows: type[Serializer]) -> Callable[[Callable], Callable]:
    """The schema of a source's weight list endpoints (GET reads, PUT replaces), whose
    rows are shown by `rows`."""

    def decorate(view: Callable) -> Callable:
        view = extend_schema(
            methods=["PUT"],
            request=WeightInputSerializer(many=True),
            responses={
                200: rows(many=True),
                409: error_response(gettext_lazy("An operator was deleted meanwhile.")),
            },
        )(view)
        return extend_schema(methods=["GET"], responses=rows(many=True))(view)

    return decorate


class SourceViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Sources (the bots' channels) with their operators' weights."""

    serializer_class = SourceSerializer

    def get_queryset(self) -> QuerySet[Source]:
        weights = OperatorSourceWeight.objects.select_related("operator").order_by("operator_id")
        overflow = OverflowWeight.objects.select_related("operator").order_by("operator_id")
        return Source.objects.prefetch_related(
            Prefetch("weights", queryset=weights),
            Prefetch("overflow_weights", queryset=overflow),
        )

    @extend_schema(
        responses={201: SourceSerializer, 409: error_response(gettext_lazy("The code is taken."))}
    )
    def create(self, request: Request) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        source = sources.create_source(**serializer.validated_data)
        return Response(self._read(source), status=status.HTTP_201_CREATED)

    @extend_schema(
        responses={200: SourceSerializer, 409: error_response(gettext_lazy("The code is taken."))}
    )
    def update(self, request: Request, pk: str, partial: bool = False) -> Response:
        source = self.get_object()
        serializer = self.get_serializer(source, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        source = sources.update_source(source=source, **serializer.validated_data)
        return Response(self._read(source))

    @extend_schema(
        responses={200: SourceSerializer, 409: error_response(gettext_lazy("The code is taken."))}
    )
    def partial_update(self, request: Request, pk: str) -> Response:
        return self.update(request, pk, partial=True)

    @extend_schema(
        responses={
            204: None,
            409: error_response(gettext_lazy("The source has contacts: deactivate it.")),
        }
    )
    def destroy(self, request: Request, pk: str) -> Response:
        sources.delete_source(source=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    # The whole weight list (and the overflow list), read and replaced as one: not a
    # page of a list.
    @weight_list_schema(SourceOperatorSerializer)
    @action(detail=True, methods=["get", "put"], pagination_class=None)
    def operators(self, request: Request, pk: str) -> Response:
        return self._weight_list(
            request, "weights", sources.set_source_weights, SourceOperatorSerializer
        )

    @weight_list_schema(SourceOverflowOperatorSerializer)
    @action(detail=True, methods=["get", "put"], pagination_class=None)
    def overflow(self, request: Request, pk: str) -> Response:
        return self._weight_list(
            request,
            "overflow_weights",
            sources.set_source_overflow,
            SourceOverflowOperatorSerializer,
        )

    def _weight_list(
        self, request: Request, rows: str, replace: Callable, shown_as: type[Serializer]
    ) -> Response:
        """GET reads the source's `rows`; PUT replaces them through `replace`. Both answer
        the rows as `shown_as` shows them."""
        source = self.get_object()
        if request.method == "GET":
            return Response(shown_as(getattr(source, rows).all(), many=True).data)
        serializer = WeightInputSerializer(data=request.data, many=True)
        serializer.is_valid(raise_exception=True)
        weights = {row["operator"]: row["weight"] for row in serializer.validated_data}
        stored = replace(source=source, weights=weights)
        return Response(shown_as(stored, many=True).data)

    def _read(self, source: Source) -> dict:
        return self.get_serializer(self.get_queryset().get(pk=source.pk)).data


class DistributionStatsView(APIView):
    """Per source and operator: weight, target share, assigned and actual share over a
    period, open load and limit; the waiting count per source."""

    @extend_schema(parameters=[PeriodSerializer], responses=DistributionReportSerializer)
    def get(self, request: Request) -> Response:
        period = PeriodSerializer(data=request.query_params)
        period.is_valid(raise_exception=True)
        since = period.validated_data.get("since")
        until = period.validated_data.get("until")
        report = {
            "since": since,
            "until": until,
            "sources": distribution_report(since=since, until=until),
        }
        return Response(DistributionReportSerializer(report).data)


class EventFeedView(APIView):
    """Events after a cursor, oldest first, a page at a time: staff read every event, a
    bot only its own source's contacts (nothing about operators)."""

    permission_classes = [IsStaffOrSourceBot]

    @extend_schema(parameters=[EventFeedQuerySerializer], responses=EventFeedSerializer)
    def get(self, request: Request) -> Response:
        query = EventFeedQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        after = query.validated_data["after"]
        # Ids are taken when a transaction writes, and a slower one may commit a smaller
        # id later: events younger than the settling time wait for the next read.
        settled = timezone.now() - timedelta(seconds=settings.EVENT_FEED_SETTLE_SECONDS)
        feed = Event.objects.filter(id__gt=after, occurred_at__lte=settled)
        if source := bot_source(request):
            feed = feed.filter(scope=source.code)
        page = list(feed.order_by("id")[: settings.REST_FRAMEWORK["PAGE_SIZE"]])
        return Response(
            {
                "results": [event.as_body() for event in page],
                "after": page[-1].pk if page else after,
            }
        )


class MeView(APIView):
    """The signed-in operator: its profile, and its status (available, away, offline)."""

    permission_classes = [IsOperator]

    @extend_schema(responses=MeSerializer)
    def get(self, request: Request) -> Response:
        return Response(self._read(signed_in_operator(request)))

    @extend_schema(request=MeSerializer, responses=MeSerializer)
    def patch(self, request: Request) -> Response:
        operator = signed_in_operator(request)
        serializer = MeSerializer(operator, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        if "status" in serializer.validated_data:
            operator = operators.set_operator_status(
                operator=operator, status=serializer.validated_data["status"]
            )
        return Response(self._read(operator))

    def _read(self, operator: Operator) -> dict:
        [state] = queries.operator_states(
            source_id=None, operator_ids=[operator.pk], now=timezone.now()
        )
        operator.open_load, operator.on_shift = state.load, state.on_shift
        return MeSerializer(operator).data


class MyContactsView(ListAPIView):
    """The signed-in operator's own contacts, newest first; filters as /api/contacts/."""

    permission_classes = [IsOperator]
    serializer_class = ContactSerializer
    filterset_class = ContactFilter

    def get_queryset(self) -> QuerySet[Contact]:
        return Contact.objects.select_related("lead", "source", "operator").filter(
            operator=signed_in_operator(self.request)
        )
