"""The API's serializers: shapes and field checks only; rules live in the services."""

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from distribution.events import contact_data
from distribution.models import (
    MAX_IDEMPOTENCY_KEY_LENGTH,
    Contact,
    ContactHistory,
    OfferMiss,
    Operator,
    OperatorSourceWeight,
    OverflowWeight,
    Source,
)
from distribution.shifts import ShiftInterval, overlaps
from leads.identity import (
    MAX_EMAIL_LENGTH,
    MAX_EXTERNAL_ID_LENGTH,
    MAX_NAME_LENGTH,
    InvalidIdentity,
    LeadIdentity,
    build_identity,
)
from leads.models import Lead

# Weights and limits live in PostgreSQL `integer` columns.
MAX_INTEGER = 2**31 - 1
MAX_ID = 2**63 - 1


# When an operator joined a source (OperatorSourceWeight.since): set when the pair is
# made, kept through weight changes; the distribution report measures its share from then.
WEIGHT_SINCE_HELP = gettext_lazy(
    "When the operator joined the source; a change of its weight keeps it. Its shares in "
    "the distribution report count from then."
)


class OperatorSourceSerializer(serializers.ModelSerializer):
    """One of an operator's sources, with the operator's weight there and since when."""

    source = serializers.IntegerField(source="source_id", read_only=True)
    code = serializers.CharField(source="source.code", read_only=True)
    since = serializers.DateTimeField(read_only=True, help_text=WEIGHT_SINCE_HELP)

    class Meta:
        model = OperatorSourceWeight
        fields = ["source", "code", "weight", "since"]
        read_only_fields = fields


class OperatorSerializer(serializers.ModelSerializer):
    open_contacts = serializers.IntegerField(
        source="open_load",
        read_only=True,
        help_text=gettext_lazy("Its load now: the load units of its open and offered contacts."),
    )
    sources = OperatorSourceSerializer(source="weights", many=True, read_only=True)
    user = serializers.PrimaryKeyRelatedField(
        queryset=get_user_model().objects.all(),
        required=False,
        allow_null=True,
        help_text=gettext_lazy(
            "The login (a user id) the operator signs in to the desk with; never staff."
        ),
    )

    class Meta:
        model = Operator
        fields = [
            "id",
            "name",
            "is_active",
            "status",
            "status_changed_at",
            "max_open_contacts",
            "open_contacts",
            "burst_limit",
            "burst_window_minutes",
            "time_zone",
            "user",
            "sources",
            "created_at",
        ]
        read_only_fields = ["id", "status_changed_at", "created_at"]
        extra_kwargs = {
            "max_open_contacts": {"max_value": MAX_INTEGER},
            "burst_limit": {"min_value": 1, "max_value": 10_000},
            "burst_window_minutes": {"min_value": 1, "max_value": 10_080},
        }

    def validate_user(self, user: AbstractBaseUser | None) -> AbstractBaseUser | None:
        if user is not None and user.is_staff:
            raise serializers.ValidationError(_("A staff login cannot be an operator's login."))
        taken = Operator.objects.filter(user=user).exclude(pk=getattr(self.instance, "pk", None))
        if user is not None and taken.exists():
            raise serializers.ValidationError(_("This login already belongs to another operator."))
        return user


class MeSerializer(serializers.ModelSerializer):
    """The signed-in operator as it sees itself; only its status can be changed."""

    open_contacts = serializers.IntegerField(source="open_load", read_only=True)
    on_shift = serializers.BooleanField(
        read_only=True, help_text=gettext_lazy("By its shifts, now.")
    )

    class Meta:
        model = Operator
        fields = [
            "id",
            "name",
            "status",
            "status_changed_at",
            "on_shift",
            "open_contacts",
            "max_open_contacts",
            "time_zone",
        ]
        read_only_fields = [field for field in fields if field != "status"]


class ShiftListSerializer(serializers.ListSerializer):
    def validate(self, rows: list[ShiftInterval]) -> list[ShiftInterval]:
        """No two shifts share a minute; errors keyed by the later item's index."""
        errors = {
            str(later): {"non_field_errors": [_("Overlaps shift %(index)s.") % {"index": earlier}]}
            for earlier, later in overlaps(rows)
        }
        if errors:
            raise serializers.ValidationError(errors)
        return rows


@extend_schema_field(
    {"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$", "example": "09:00"}
)
class ClockTimeField(serializers.TimeField):
    """A wall-clock time as HH:MM, in and out: no seconds, no offset (the operator's
    time zone says where the clock hangs)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(format="%H:%M", input_formats=["%H:%M"], **kwargs)


class ShiftSerializer(serializers.Serializer):
    """A weekly shift in the operator's time zone; an end before the start runs past
    midnight."""

    weekday = serializers.IntegerField(
        min_value=0, max_value=6, help_text=gettext_lazy("Monday = 0.")
    )
    start = ClockTimeField(help_text=gettext_lazy("HH:MM"))
    end = ClockTimeField(help_text=gettext_lazy("HH:MM; before start: the next day."))

    class Meta:
        list_serializer_class = ShiftListSerializer

    def validate(self, attrs: dict) -> ShiftInterval:
        if attrs["start"] == attrs["end"]:
            raise serializers.ValidationError({"end": [_("Must differ from start.")]})
        return ShiftInterval(attrs["weekday"], attrs["start"], attrs["end"])


class SourceOperatorSerializer(serializers.ModelSerializer):
    """One operator of a source, with its weight there and since when."""

    operator = serializers.IntegerField(source="operator_id", read_only=True)
    name = serializers.CharField(source="operator.name", read_only=True)
    since = serializers.DateTimeField(read_only=True, help_text=WEIGHT_SINCE_HELP)

    class Meta:
        model = OperatorSourceWeight
        fields = ["operator", "name", "weight", "since"]
        read_only_fields = fields


class SourceOverflowOperatorSerializer(serializers.ModelSerializer):
    """One overflow operator of a source, with its weight there."""

    operator = serializers.IntegerField(source="operator_id", read_only=True)
    name = serializers.CharField(source="operator.name", read_only=True)

    class Meta:
        model = OverflowWeight
        fields = ["operator", "name", "weight"]
        read_only_fields = fields


class SourceSerializer(serializers.ModelSerializer):
    operators = SourceOperatorSerializer(source="weights", many=True, read_only=True)
    overflow_operators = SourceOverflowOperatorSerializer(
        source="overflow_weights",
        many=True,
        read_only=True,
        help_text=gettext_lazy(
            "Who may also take contacts that waited past overflow_after_seconds."
        ),
    )

    class Meta:
        model = Source
        fields = [
            "id",
            "code",
            "name",
            "is_active",
            "strategy",
            "accept_timeout_seconds",
            "max_offers",
            "load_units",
            "sticky",
            "sticky_days",
            "sticky_wait_seconds",
            "priority",
            "overflow_after_seconds",
            "operators",
            "overflow_operators",
            "created_at",
        ]
        read_only_fields = ["id", "created_at"]
        extra_kwargs = {
            "accept_timeout_seconds": {"min_value": 1},
            "max_offers": {"min_value": 1, "max_value": 100},
            "load_units": {"min_value": 1, "max_value": 1000},
            "sticky_days": {"min_value": 1, "max_value": 3650},
            "sticky_wait_seconds": {"min_value": 1, "max_value": 86_400},
            "priority": {"min_value": -1000, "max_value": 1000},
            "overflow_after_seconds": {"min_value": 1, "max_value": 604_800},
        }


class WeightListSerializer(serializers.ListSerializer):
    def validate(self, rows: list[dict]) -> list[dict]:
        """Every operator known and listed once; errors keyed by the item's index."""
        operator_ids = [row["operator"] for row in rows]
        known = set(Operator.objects.filter(id__in=operator_ids).values_list("id", flat=True))
        errors: dict[str, dict[str, list[str]]] = {}
        seen: set[int] = set()
        for index, operator_id in enumerate(operator_ids):
            if operator_id not in known:
                errors[str(index)] = {
                    "operator": [_("No operator has the id %(id)s.") % {"id": operator_id}]
                }
            elif operator_id in seen:
                errors[str(index)] = {
                    "operator": [_("Operator %(id)s is listed twice.") % {"id": operator_id}]
                }
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

    since = serializers.DateTimeField(
        required=False, help_text=gettext_lazy("From this time, inclusive.")
    )
    until = serializers.DateTimeField(
        required=False, help_text=gettext_lazy("Up to this time, exclusive.")
    )

    def validate(self, attrs: dict) -> dict:
        since, until = attrs.get("since"), attrs.get("until")
        if since is not None and until is not None and since >= until:
            raise serializers.ValidationError({"until": [_("Must be later than since.")]})
        return attrs


class OperatorShareSerializer(serializers.Serializer):
    operator_id = serializers.IntegerField()
    name = serializers.CharField()
    is_active = serializers.BooleanField()
    weight = serializers.IntegerField(help_text=gettext_lazy("0: no longer on the source."))
    target_share = serializers.FloatField(
        help_text=gettext_lazy("Weight / sum of the active operators' weights on the source now.")
    )
    joined_at = serializers.DateTimeField(
        allow_null=True,
        help_text=gettext_lazy(
            "When it joined the source; null when no longer on it. Its shares count "
            "only the contacts assigned from the later of this and the period's start."
        ),
    )
    share_base = serializers.IntegerField(
        help_text=gettext_lazy(
            "Contacts the source assigned by its rule while the operator was on it "
            "in the period: what both shares are of."
        )
    )
    expected_share = serializers.FloatField(
        help_text=gettext_lazy(
            "The share its weight gave it of those: for each, its weight / the active "
            "weights of the operators on the source then, averaged. target_share unless "
            "someone joined meanwhile (or none were assigned)."
        )
    )
    assigned = serializers.IntegerField(
        help_text=gettext_lazy(
            "Contacts assigned to it in the period by the source's rule (the weights)."
        )
    )
    actual_share = serializers.FloatField(
        allow_null=True,
        help_text=gettext_lazy("Its own of share_base / share_base; null when share_base is 0."),
    )
    returning = serializers.IntegerField(
        help_text=gettext_lazy(
            "Contacts given as the lead's own operator (sticky): load, not in shares."
        )
    )
    open_contacts = serializers.IntegerField(source="load")
    max_open_contacts = serializers.IntegerField(source="limit")


class BucketSerializer(serializers.Serializer):
    start = serializers.DateTimeField(
        help_text=gettext_lazy("Where the hour (day, week, month) begins.")
    )
    assigned = serializers.IntegerField(
        help_text=gettext_lazy("Contacts assigned by the source's rule.")
    )
    returning = serializers.IntegerField(
        help_text=gettext_lazy("Contacts given to their lead's own operator.")
    )


class SourceReportSerializer(serializers.Serializer):
    source_id = serializers.IntegerField()
    code = serializers.CharField()
    name = serializers.CharField()
    strategy = serializers.ChoiceField(choices=Source.Strategy.choices)
    is_active = serializers.BooleanField()
    waiting = serializers.IntegerField(
        help_text=gettext_lazy("Contacts waiting for an operator now.")
    )
    assigned = serializers.IntegerField(
        help_text=gettext_lazy("Contacts assigned in the period by the rule.")
    )
    returning = serializers.IntegerField(
        help_text=gettext_lazy("Contacts given to their lead's own operator in the period.")
    )
    operators = OperatorShareSerializer(many=True)
    timeline_unit = serializers.ChoiceField(
        choices=["hour", "day", "week", "month"],
        help_text=gettext_lazy(
            "The timeline's buckets: hours up to 7 days, then days, weeks, months."
        ),
    )
    timeline = BucketSerializer(
        many=True,
        source="busy_buckets",
        help_text=gettext_lazy(
            "Contacts given to operators per bucket, oldest first; a bucket not listed had none."
        ),
    )


class DistributionReportSerializer(serializers.Serializer):
    since = serializers.DateTimeField(allow_null=True)
    until = serializers.DateTimeField(allow_null=True)
    sources = SourceReportSerializer(many=True)


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


class SourceCodeField(serializers.SlugRelatedField):
    """A source by its code. Text no code can be is refused before the lookup, where
    PostgreSQL would answer a NUL character with an error rather than a miss. A bot
    naming its own source (context `bot_source`) gets the row its key came with,
    without another query."""

    def to_internal_value(self, data: object) -> Source:
        if not isinstance(data, str) or "\x00" in data:
            self.fail("invalid")
        bot_source = self.context.get("bot_source")
        if bot_source is not None and data == bot_source.code:
            return bot_source
        return super().to_internal_value(data)


class ContactCreateSerializer(serializers.Serializer):
    """The intake. A bot may leave out `source`: its key's source is used (context
    `bot_source`); naming another one is refused before this runs. The idempotency key
    comes from the `Idempotency-Key` header (context `idempotency_key`) or from
    `client_message_id`; validated data carry it as `idempotency_key` (None without)."""

    source = SourceCodeField(
        slug_field="code",
        queryset=Source.objects.all(),
        required=False,
        help_text=gettext_lazy(
            "The source's code. Required with a staff login; a bot may omit it."
        ),
    )
    lead = LeadIdentitySerializer()
    payload = serializers.DictField(
        required=False, default=dict, help_text=gettext_lazy("Any JSON object.")
    )
    client_message_id = serializers.CharField(
        required=False,
        max_length=MAX_IDEMPOTENCY_KEY_LENGTH,
        help_text=gettext_lazy(
            "The bot's id for this message, unique per source: a retry with it returns "
            "the first contact (200) instead of making another. Or send it as the "
            "Idempotency-Key header."
        ),
    )

    def validate_client_message_id(self, value: str) -> str:
        if not value.isprintable():
            raise serializers.ValidationError(_("Use printable characters only."))
        return value

    def validate_payload(self, payload: dict) -> dict:
        if _contains_nul(payload):
            # PostgreSQL's jsonb cannot store it.
            raise serializers.ValidationError(
                _("Text in the payload may not contain NUL (\\u0000).")
            )
        return payload

    def validate(self, attrs: dict) -> dict:
        source = attrs.get("source") or self.context.get("bot_source")
        if source is None:
            raise serializers.ValidationError({"source": [_("This field is required.")]})
        if not source.is_active:
            raise serializers.ValidationError(
                {"source": [_("Source %(code)r is inactive.") % {"code": source.code}]}
            )
        header = self.context.get("idempotency_key")
        message_id = attrs.pop("client_message_id", None)
        if header is not None and not _is_idempotency_key(header):
            message = _("Give 1 to %(max)d printable characters.") % {
                "max": MAX_IDEMPOTENCY_KEY_LENGTH
            }
            raise serializers.ValidationError({"Idempotency-Key": [message]})
        if header is not None and message_id is not None and header != message_id:
            raise serializers.ValidationError(
                {"client_message_id": [_("Differs from the Idempotency-Key header.")]}
            )
        return {**attrs, "source": source, "idempotency_key": header or message_id}


def _is_idempotency_key(value: str) -> bool:
    return 0 < len(value) <= MAX_IDEMPOTENCY_KEY_LENGTH and value.isprintable()


def _contains_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_contains_nul(k) or _contains_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_contains_nul(item) for item in value)
    return False


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
    """A contact with its lead, source and operator. The declared fields are what the
    API schema shows; `to_representation` writes the same out directly (events.py).

    The engine's decision names every candidate operator with its load: only staff read
    it. Bots and operators get null (a bot sees its own contact and its operator's name).
    """

    lead = LeadBriefSerializer()
    source = SourceBriefSerializer()
    operator = OperatorBriefSerializer(allow_null=True)
    decision = serializers.JSONField(
        allow_null=True,
        read_only=True,
        help_text=gettext_lazy(
            "Why the contact went to whom: staff only; null for bots and operators."
        ),
    )

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
            "offer_expires_at",
            "flagged_at",
            "closed_at",
        ]
        read_only_fields = fields

    def to_representation(self, contact: Contact) -> dict[str, Any]:
        data = contact_data(contact, decision=True)
        request = self.context.get("request")
        if request is None or not request.user.is_staff:
            data["decision"] = None
        return data


class ContactDeclineSerializer(serializers.Serializer):
    reason = serializers.CharField(
        max_length=OfferMiss._meta.get_field("reason").max_length,
        required=False,
        allow_blank=True,
        default="",
        help_text=gettext_lazy("Why, for supervisors (optional)."),
    )


class ContactReassignSerializer(serializers.Serializer):
    operator = serializers.PrimaryKeyRelatedField(
        queryset=Operator.objects.all(),
        required=False,
        allow_null=True,
        help_text=gettext_lazy("Give it to this operator; omitted or null: by the source's rule."),
    )


class LeadSerializer(serializers.ModelSerializer):
    class Meta:
        model = Lead
        fields = ["id", "external_id", "phone", "email", "name", "created_at"]
        read_only_fields = fields


class LeadContactSerializer(serializers.ModelSerializer):
    """A contact as seen from its lead: where it came from and who has it."""

    source = SourceBriefSerializer()
    operator = OperatorBriefSerializer(allow_null=True)

    class Meta:
        model = Contact
        fields = ["id", "status", "source", "operator", "created_at", "assigned_at", "closed_at"]
        read_only_fields = fields


class LeadDetailSerializer(LeadSerializer):
    contacts = LeadContactSerializer(many=True, read_only=True)

    class Meta(LeadSerializer.Meta):
        fields = [*LeadSerializer.Meta.fields, "contacts"]
        read_only_fields = fields


class EventFeedQuerySerializer(serializers.Serializer):
    after = serializers.IntegerField(
        min_value=0,
        default=0,
        help_text=gettext_lazy("The `after` of the previous answer; 0 from the start."),
    )


class EventSerializer(serializers.Serializer):
    """An event in the Standard Webhooks shape, with its id."""

    id = serializers.IntegerField()
    type = serializers.CharField(
        help_text=gettext_lazy("e.g. contact.assigned, operator.status_changed")
    )
    timestamp = serializers.DateTimeField()
    data = serializers.JSONField(
        help_text=gettext_lazy('{"contact": {...}} or {"operator": {...}}')
    )


class EventFeedSerializer(serializers.Serializer):
    results = EventSerializer(many=True)
    after = serializers.IntegerField(help_text=gettext_lazy("Send it as `after` to read on."))


class ContactHistorySerializer(serializers.ModelSerializer):
    """One step of a contact's life. Staff see every step whole. An operator's login sees
    only its own work: no decision (it names other operators and their loads), another
    operator as null, and no detail on another operator's step (its decline reason)."""

    action_label = serializers.CharField(source="get_action_display", read_only=True)
    operator = OperatorBriefSerializer(
        allow_null=True,
        help_text=gettext_lazy(
            "Who has the contact after the step; for declined, expired and withdrawn, who "
            "had it. Null for nobody and, for an operator's login, for another operator."
        ),
    )
    decision = serializers.JSONField(
        allow_null=True,
        help_text=gettext_lazy(
            "The engine's decision at this step: every candidate, its load and why it was "
            "left out; {} where none was made. Null for an operator's login."
        ),
    )

    class Meta:
        model = ContactHistory
        fields = ["id", "at", "action", "action_label", "status", "operator", "decision", "detail"]
        read_only_fields = fields

    def to_representation(self, step: ContactHistory) -> dict[str, Any]:
        """The step as context `viewer` may see it: the operator whose login reads it, or
        None for staff."""
        data = super().to_representation(step)
        viewer = self.context.get("viewer")
        if viewer is None:
            return data
        data["decision"] = None
        if step.operator_id is not None and step.operator_id != viewer.pk:
            data["operator"], data["detail"] = None, ""
        return data
