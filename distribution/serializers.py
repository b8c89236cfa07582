from rest_framework import serializers

from distribution.models import Operator, OperatorSourceWeight, Source

# Weights and limits live in PostgreSQL `integer` columns.
MAX_INTEGER = 2**31 - 1
MAX_ID = 2**63 - 1


class OperatorSourceSerializer(serializers.ModelSerializer):
    """One of an operator's sources, with the operator's weight there."""

    source = serializers.IntegerField(source="source_id", read_only=True)
    code = serializers.CharField(source="source.code", read_only=True)

    class Meta:
        model = OperatorSourceWeight
        fields = ["source", "code", "weight"]
        read_only_fields = fields


class OperatorSerializer(serializers.ModelSerializer):
    open_contacts = serializers.IntegerField(read_only=True, help_text="Its load now.")
    sources = OperatorSourceSerializer(source="weights", many=True, read_only=True)

    class Meta:
        model = Operator
        fields = [
            "id",
            "name",
            "is_active",
            "max_open_contacts",
            "open_contacts",
            "sources",
            "created_at",
        ]
        read_only_fields = ["id", "created_at"]
        extra_kwargs = {"max_open_contacts": {"max_value": MAX_INTEGER}}


class SourceOperatorSerializer(serializers.ModelSerializer):
    """One operator of a source, with its weight there."""

    operator = serializers.IntegerField(source="operator_id", read_only=True)
    name = serializers.CharField(source="operator.name", read_only=True)

    class Meta:
        model = OperatorSourceWeight
        fields = ["operator", "name", "weight"]
        read_only_fields = fields


class SourceSerializer(serializers.ModelSerializer):
    operators = SourceOperatorSerializer(source="weights", many=True, read_only=True)

    class Meta:
        model = Source
        fields = ["id", "code", "name", "is_active", "strategy", "operators", "created_at"]
        read_only_fields = ["id", "created_at"]


class WeightListSerializer(serializers.ListSerializer):
    def validate(self, rows: list[dict]) -> list[dict]:
        """Every operator known and listed once; errors keyed by the item's index."""
        operator_ids = [row["operator"] for row in rows]
        known = set(Operator.objects.filter(id__in=operator_ids).values_list("id", flat=True))
        errors: dict[str, dict[str, list[str]]] = {}
        seen: set[int] = set()
        for index, operator_id in enumerate(operator_ids):
            if operator_id not in known:
                errors[str(index)] = {"operator": [f"No operator has the id {operator_id}."]}
            elif operator_id in seen:
                errors[str(index)] = {"operator": [f"Operator {operator_id} is listed twice."]}
            seen.add(operator_id)
        if errors:
            raise serializers.ValidationError(errors)
        return rows


class WeightInputSerializer(serializers.Serializer):
    """An item of the weight list a PUT replaces a source's with."""

    operator = serializers.IntegerField(min_value=1, max_value=MAX_ID)
    weight = serializers.IntegerField(min_value=1, max_value=MAX_INTEGER)

    class Meta:
        list_serializer_class = WeightListSerializer


class PeriodSerializer(serializers.Serializer):
    """A report's period, [since, until); either end may be left open."""

    since = serializers.DateTimeField(required=False, help_text="From this time, inclusive.")
    until = serializers.DateTimeField(required=False, help_text="Up to this time, exclusive.")

    def validate(self, attrs: dict) -> dict:
        since, until = attrs.get("since"), attrs.get("until")
        if since is not None and until is not None and since >= until:
            raise serializers.ValidationError({"until": ["Must be later than since."]})
        return attrs


class OperatorShareSerializer(serializers.Serializer):
    operator_id = serializers.IntegerField()
    name = serializers.CharField()
    is_active = serializers.BooleanField()
    weight = serializers.IntegerField(help_text="0: no longer on the source.")
    target_share = serializers.FloatField(help_text="Weight / sum of active weights.")
    assigned = serializers.IntegerField(help_text="Contacts assigned in the period.")
    actual_share = serializers.FloatField(
        allow_null=True, help_text="Null when the source assigned nothing in the period."
    )
    open_contacts = serializers.IntegerField()
    max_open_contacts = serializers.IntegerField()


class SourceReportSerializer(serializers.Serializer):
    source_id = serializers.IntegerField()
    code = serializers.CharField()
    name = serializers.CharField()
    strategy = serializers.ChoiceField(choices=Source.Strategy.choices)
    is_active = serializers.BooleanField()
    waiting = serializers.IntegerField(help_text="Contacts waiting for an operator now.")
    assigned = serializers.IntegerField(help_text="Contacts assigned in the period.")
    operators = OperatorShareSerializer(many=True)


class DistributionReportSerializer(serializers.Serializer):
    since = serializers.DateTimeField(allow_null=True)
    until = serializers.DateTimeField(allow_null=True)
    sources = SourceReportSerializer(many=True)
