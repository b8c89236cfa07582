from rest_framework import serializers

from distribution.models import Operator, Source
from leads.identity import (
    MAX_EMAIL_LENGTH,
    MAX_EXTERNAL_ID_LENGTH,
    MAX_NAME_LENGTH,
    InvalidIdentity,
    LeadIdentity,
    build_identity,
)
from leads.models import Contact, Lead


class LeadIdentitySerializer(serializers.Serializer):
    """A lead as a bot describes it; validates into a normalised LeadIdentity."""

    external_id = serializers.CharField(
        required=False,
        allow_null=True,
        allow_blank=True,
        max_length=MAX_EXTERNAL_ID_LENGTH,
    )
    phone = serializers.CharField(required=False, allow_null=True, allow_blank=True, max_length=64)
    email = serializers.CharField(
        required=False, allow_null=True, allow_blank=True, max_length=MAX_EMAIL_LENGTH
    )
    name = serializers.CharField(
        required=False, allow_null=True, allow_blank=True, max_length=MAX_NAME_LENGTH
    )

    def validate(self, attrs: dict) -> LeadIdentity:
        try:
            return build_identity(**attrs)
        except InvalidIdentity as exc:
            raise serializers.ValidationError(exc.errors) from None


class ContactCreateSerializer(serializers.Serializer):
    source = serializers.SlugRelatedField(slug_field="code", queryset=Source.objects.all())
    lead = LeadIdentitySerializer()
    payload = serializers.JSONField(required=False, default=dict)

    def validate_source(self, source: Source) -> Source:
        if not source.is_active:
            raise serializers.ValidationError(f"Source {source.code!r} is inactive.")
        return source

    def validate_payload(self, payload: object) -> dict:
        if not isinstance(payload, dict):
            raise serializers.ValidationError("Must be a JSON object.")
        return payload


class LeadBriefSerializer(serializers.ModelSerializer):
    class Meta:
        model = Lead
        fields = ["id", "external_id", "phone", "email", "name"]


class SourceBriefSerializer(serializers.ModelSerializer):
    class Meta:
        model = Source
        fields = ["id", "code"]


class OperatorBriefSerializer(serializers.ModelSerializer):
    class Meta:
        model = Operator
        fields = ["id", "name"]


class ContactSerializer(serializers.ModelSerializer):
    lead = LeadBriefSerializer()
    source = SourceBriefSerializer()
    operator = OperatorBriefSerializer(allow_null=True)

    class Meta:
        model = Contact
        fields = [
            "id",
            "status",
            "lead",
            "source",
            "operator",
            "payload",
            "decision",
            "lead_conflicts",
            "created_at",
            "assigned_at",
            "closed_at",
        ]
        read_only_fields = fields
