from django.db.models import Prefetch, QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from crm.api import error_response
from distribution import services
from distribution.models import Operator, OperatorSourceWeight, Source
from distribution.reports import distribution_report
from distribution.serializers import (
    DistributionReportSerializer,
    OperatorSerializer,
    PeriodSerializer,
    SourceOperatorSerializer,
    SourceSerializer,
    WeightInputSerializer,
)


class OperatorViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Operators with their load and sources. Changes go through the services, so a
    raised limit or a reactivation hands out waiting contacts at once."""

    serializer_class = OperatorSerializer

    def get_queryset(self) -> QuerySet[Operator]:
        weights = OperatorSourceWeight.objects.select_related("source").order_by("source__code")
        return Operator.objects.annotate(open_contacts=services.operator_load()).prefetch_related(
            Prefetch("weights", queryset=weights)
        )

    def create(self, request: Request) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        operator = services.create_operator(**serializer.validated_data)
        return Response(self._read(operator), status=status.HTTP_201_CREATED)

    def update(self, request: Request, pk: str, partial: bool = False) -> Response:
        operator = self.get_object()
        serializer = self.get_serializer(operator, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        operator = services.update_operator(operator=operator, **serializer.validated_data)
        return Response(self._read(operator))

    def partial_update(self, request: Request, pk: str) -> Response:
        return self.update(request, pk, partial=True)

    @extend_schema(
        responses={
            204: None,
            409: error_response("The operator still has open contacts."),
        }
    )
    def destroy(self, request: Request, pk: str) -> Response:
        services.delete_operator(operator=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _read(self, operator: Operator) -> dict:
        """The operator as a list shows it, load and sources included."""
        return self.get_serializer(self.get_queryset().get(pk=operator.pk)).data


class SourceViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Sources (the bots' channels) with their operators' weights."""

    serializer_class = SourceSerializer

    def get_queryset(self) -> QuerySet[Source]:
        weights = OperatorSourceWeight.objects.select_related("operator").order_by("operator_id")
        return Source.objects.prefetch_related(Prefetch("weights", queryset=weights))

    @extend_schema(responses={201: SourceSerializer, 409: error_response("The code is taken.")})
    def create(self, request: Request) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        source = services.create_source(**serializer.validated_data)
        return Response(self._read(source), status=status.HTTP_201_CREATED)

    @extend_schema(responses={200: SourceSerializer, 409: error_response("The code is taken.")})
    def update(self, request: Request, pk: str, partial: bool = False) -> Response:
        source = self.get_object()
        serializer = self.get_serializer(source, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        source = services.update_source(source=source, **serializer.validated_data)
        return Response(self._read(source))

    @extend_schema(responses={200: SourceSerializer, 409: error_response("The code is taken.")})
    def partial_update(self, request: Request, pk: str) -> Response:
        return self.update(request, pk, partial=True)

    @extend_schema(
        responses={204: None, 409: error_response("The source has contacts: deactivate it.")}
    )
    def destroy(self, request: Request, pk: str) -> Response:
        services.delete_source(source=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(methods=["GET"], responses=SourceOperatorSerializer(many=True))
    @extend_schema(
        methods=["PUT"],
        request=WeightInputSerializer(many=True),
        responses={
            200: SourceOperatorSerializer(many=True),
            409: error_response("An operator was deleted meanwhile."),
        },
    )
    # The whole weight list, read and replaced as one: not a page of a list.
    @action(detail=True, methods=["get", "put"], pagination_class=None)
    def operators(self, request: Request, pk: str) -> Response:
        source = self.get_object()
        if request.method == "GET":
            return Response(SourceOperatorSerializer(source.weights.all(), many=True).data)
        serializer = WeightInputSerializer(data=request.data, many=True)
        serializer.is_valid(raise_exception=True)
        weights = {row["operator"]: row["weight"] for row in serializer.validated_data}
        rows = services.set_source_weights(source=source, weights=weights)
        return Response(SourceOperatorSerializer(rows, many=True).data)

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
