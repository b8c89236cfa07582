from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import F, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from distribution import picking
from distribution.eligibility import STRATEGIES
from distribution.shifts import WEEKDAYS, is_time_zone
from leads.models import Lead


def counted_load(operator_ref: str) -> Coalesce:
    """An annotation: the load units of the open and offered contacts of the operator in
    the row's `operator_ref` column, summed from the contacts (on the partial index
    contact_load_by_operator). What Operator.open_load must equal: loads.check_loads
    compares the two."""
    open_contacts = (
        Contact.objects.filter(operator_id=OuterRef(operator_ref), status__in=Contact.LOAD_STATUSES)
        .order_by()
        .values("operator_id")
        .annotate(units=Sum("load_units"))
        .values("units")
    )
    return Coalesce(Subquery(open_contacts), 0)


class OperatorQuerySet(QuerySet):
    def with_load(self) -> "OperatorQuerySet":
        """Each operator with its load (Operator.open_load) as `load`, as the rules read it."""
        return self.annotate(load=F("open_load"))

    def at_limit(self, at_limit: bool = True) -> "OperatorQuerySet":
        """Those `with_load` at their limit (or, False, with room): the SQL twin of
        eligibility.is_at_limit."""
        full = Q(load__gte=F("max_open_contacts"))
        return self.filter(full if at_limit else ~full)

    def over_limit(self) -> "OperatorQuerySet":
        """Operators holding more than their limit: never, unless an invariant broke."""
        return self.filter(load__gt=F("max_open_contacts"))


class OperatorSourceWeightQuerySet(QuerySet):
    def with_load(self) -> "OperatorSourceWeightQuerySet":
        """Each weight with its operator's load as `load`."""
        return self.annotate(load=F("operator__open_load"))


# Counts and durations that must be at least 1: a field message for forms and the API,
# before the table's check constraint would refuse the row.
POSITIVE = MinValueValidator(1, _("Must be at least 1."))


def default_time_zone() -> str:
    return settings.TIME_ZONE


def validate_time_zone(name: str) -> None:
    if not is_time_zone(name):
        raise ValidationError(
            gettext("Unknown time zone %(name)s: use an IANA name, e.g. Europe/Moscow."),
            code="unknown_time_zone",
            params={"name": repr(name)},
        )


class Operator(models.Model):
    class Status(models.TextChoices):
        AVAILABLE = "available", _("Available")
        AWAY = "away", _("Away")
        OFFLINE = "offline", _("Offline")

    name = models.CharField(_("name"), max_length=200)
    is_active = models.BooleanField(
        _("active"),
        default=True,
        help_text=_("On the team at all; staff's switch, unlike the status."),
    )
    max_open_contacts = models.PositiveIntegerField(
        _("max open contacts"),
        default=10,
        help_text=_(
            "How much open work this operator may hold at once, in load units: a "
            "contact costs its source's load units (1 unless the source says otherwise)."
        ),
    )
    # The load units of its open and offered contacts, kept by the engine's one path
    # that changes a contact's status (engine.store_change, queries.insert_contact),
    # always under this row's lock: the intake reads it instead of counting contacts.
    # loads.check_loads compares it with the contacts and repairs any drift.
    open_load = models.PositiveIntegerField(_("open load"), default=0, editable=False)
    # When the rules last gave it a contact: round robin's ties go to the one given
    # least recently.
    last_assigned_at = models.DateTimeField(
        _("last assigned at"), null=True, blank=True, editable=False
    )
    burst_limit = models.PositiveSmallIntegerField(
        _("burst limit"),
        validators=[POSITIVE],
        null=True,
        blank=True,
        help_text=_(
            "At most this many new contacts per burst window, however much room "
            "the operator has. Empty: the project's default (BURST_LIMIT, off unless set)."
        ),
    )
    burst_window_minutes = models.PositiveSmallIntegerField(
        _("burst window minutes"),
        validators=[POSITIVE],
        null=True,
        blank=True,
        help_text=_(
            "The burst window in minutes. Empty: the project's default (BURST_WINDOW_MINUTES)."
        ),
    )
    # The login the operator signs in to the desk with; never a staff login.
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="operator",
        verbose_name=_("user"),
    )
    status = models.CharField(
        _("status"),
        max_length=16,
        choices=Status.choices,
        default=Status.AVAILABLE,
        help_text=_("Only an available operator gets new contacts; away and offline keep theirs."),
    )
    status_changed_at = models.DateTimeField(_("status changed at"), default=timezone.now)
    # Offers let expire since the last one accepted or declined: at
    # OFFER_MISSES_BEFORE_AWAY the operator is set away. Kept under the operator's lock.
    missed_offers_in_row = models.PositiveSmallIntegerField(
        _("missed offers in row"), default=0, editable=False
    )
    # The desk's heartbeat: when a signed-in operator's desk last reached the server.
    # None until the desk is opened; the worker sets away those whose heartbeat stopped.
    seen_at = models.DateTimeField(_("seen at"), null=True, blank=True, editable=False)
    time_zone = models.CharField(
        _("time zone"),
        max_length=64,
        default=default_time_zone,
        validators=[validate_time_zone],
        help_text=_("Shifts are in this zone (an IANA name, e.g. Europe/Moscow)."),
    )
    # Its shifts and days off as one line (shifts.hours_text), kept by set_operator_shifts
    # and set_operator_days_off: the intake reads them with the operator's row instead
    # of two subqueries per candidate, which cost PostgreSQL about 0.09 ms per intake.
    hours = models.TextField(_("hours"), blank=True, default="", editable=False)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    objects = OperatorQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        verbose_name = _("operator")
        verbose_name_plural = _("operators")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(max_open_contacts__gte=0),
                name="operator_max_open_contacts_non_negative",
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=["available", "away", "offline"]),
                name="operator_status_known",
            ),
            models.CheckConstraint(
                condition=Q(burst_limit__isnull=True) | Q(burst_limit__gt=0),
                name="operator_burst_limit_positive",
            ),
            models.CheckConstraint(
                condition=Q(burst_window_minutes__isnull=True) | Q(burst_window_minutes__gt=0),
                name="operator_burst_window_positive",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Shift(models.Model):
    """A weekly working interval in the operator's time zone; an end before the start
    runs past midnight. An operator with no shifts is always on shift."""

    operator = models.ForeignKey(
        Operator, on_delete=models.CASCADE, related_name="shifts", verbose_name=_("operator")
    )
    weekday = models.PositiveSmallIntegerField(_("weekday"), choices=list(enumerate(WEEKDAYS)))
    start = models.TimeField(_("start"))
    end = models.TimeField(_("end"), help_text=_("Before the start: the shift ends the next day."))

    class Meta:
        ordering = ["operator_id", "weekday", "start"]
        verbose_name = _("shift")
        verbose_name_plural = _("shifts")
        constraints = [
            models.CheckConstraint(condition=Q(weekday__lte=6), name="shift_weekday_known"),
            models.CheckConstraint(condition=~Q(start=models.F("end")), name="shift_not_empty"),
        ]

    def __str__(self) -> str:
        return f"{WEEKDAYS[self.weekday]} {self.start:%H:%M}-{self.end:%H:%M}"


class DayOff(models.Model):
    """Dates (in the operator's zone, both included) when the operator is off shift."""

    operator = models.ForeignKey(
        Operator, on_delete=models.CASCADE, related_name="days_off", verbose_name=_("operator")
    )
    first_day = models.DateField(_("first day"))
    last_day = models.DateField(_("last day"))
    note = models.CharField(_("note"), max_length=200, blank=True)

    class Meta:
        ordering = ["operator_id", "first_day"]
        verbose_name = _("day off")
        verbose_name_plural = _("days off")
        constraints = [
            models.CheckConstraint(
                condition=Q(last_day__gte=models.F("first_day")), name="day_off_in_order"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.first_day} - {self.last_day}"


class StatusReason(models.TextChoices):
    """Why the service, not a person, changed an operator's status."""

    MISSED_OFFERS = "missed_offers", _("Offers went unanswered")
    NO_HEARTBEAT = "no_heartbeat", _("The desk stopped answering")


class OperatorStatusChange(models.Model):
    """Every status an operator took, and when: who was available when."""

    operator = models.ForeignKey(
        Operator,
        on_delete=models.CASCADE,
        related_name="status_changes",
        verbose_name=_("operator"),
    )
    status = models.CharField(_("status"), max_length=16, choices=Operator.Status.choices)
    changed_at = models.DateTimeField(_("changed at"), default=timezone.now)
    # Why, when the service changed it rather than a person; empty when a person did.
    reason = models.CharField(_("reason"), max_length=32, blank=True, choices=StatusReason.choices)

    class Meta:
        ordering = ["operator_id", "changed_at", "id"]
        verbose_name = _("operator status change")
        verbose_name_plural = _("operator status changes")
        # An operator's history in order (the board, the availability test).
        indexes = [models.Index(fields=["operator", "changed_at"], name="status_change_by_time")]

    def __str__(self) -> str:
        return gettext("%(operator)s %(status)s at %(at)s") % {
            "operator": self.operator,
            "status": self.get_status_display().lower(),
            "at": self.changed_at,
        }


class Source(models.Model):
    class Strategy(models.TextChoices):
        WEIGHTED_RANDOM = picking.WEIGHTED_RANDOM, STRATEGIES[picking.WEIGHTED_RANDOM]
        ROUND_ROBIN = picking.ROUND_ROBIN, STRATEGIES[picking.ROUND_ROBIN]

    class Sticky(models.TextChoices):
        OFF = "off", _("Off: by the weights only")
        PREFER = "prefer", _("Prefer the lead's own operator")
        REQUIRE = "require", _("Require the lead's own operator")

    code = models.SlugField(_("code"), max_length=64, unique=True, help_text=_("What a bot sends."))
    name = models.CharField(_("name"), max_length=200)
    is_active = models.BooleanField(_("active"), default=True)
    strategy = models.CharField(
        _("strategy"), max_length=32, choices=Strategy.choices, default=Strategy.WEIGHTED_RANDOM
    )
    accept_timeout_seconds = models.PositiveIntegerField(
        _("accept timeout seconds"),
        validators=[POSITIVE],
        null=True,
        blank=True,
        help_text=_(
            "Empty: a contact is the operator's at once. Set: the operator is offered "
            "it and has this many seconds to accept, or it goes to someone else."
        ),
    )
    max_offers = models.PositiveSmallIntegerField(
        _("max offers"),
        validators=[POSITIVE],
        default=3,
        help_text=_(
            "After this many declined or expired offers the contact is flagged for supervisors."
        ),
    )
    load_units = models.PositiveSmallIntegerField(
        _("load units"),
        validators=[POSITIVE],
        default=1,
        help_text=_(
            "What one open contact of this source costs an operator, against the "
            "operator's limit: e.g. 1 for a chat, 3 for a phone call."
        ),
    )
    sticky = models.CharField(
        _("sticky"),
        max_length=16,
        choices=Sticky.choices,
        default=Sticky.PREFER,
        help_text=_(
            "A returning lead's own operator is the one its last contact went to "
            "within the sticky days. Prefer: that operator takes it if they can now, else "
            "the weights decide. Require: it waits for them a while first."
        ),
    )
    sticky_days = models.PositiveSmallIntegerField(
        _("sticky days"),
        validators=[POSITIVE],
        default=30,
        help_text=_("How long a lead stays its operator's after its last contact."),
    )
    sticky_wait_seconds = models.PositiveIntegerField(
        _("sticky wait seconds"),
        validators=[POSITIVE],
        default=300,
        help_text=_(
            "With sticky 'require': how long a contact waits for its lead's own "
            "operator before it goes by the weights."
        ),
    )
    priority = models.IntegerField(
        _("priority"),
        default=0,
        help_text=_(
            "Operators take waiting contacts of higher-priority sources first, then the oldest."
        ),
    )
    overflow_after_seconds = models.PositiveIntegerField(
        _("overflow after seconds"),
        validators=[POSITIVE],
        null=True,
        blank=True,
        help_text=_(
            "Empty: off. Set: a contact waiting longer than this may also go to the "
            "source's overflow operators."
        ),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        ordering = ["id"]
        verbose_name = _("source")
        verbose_name_plural = _("sources")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(strategy__in=["weighted_random", "round_robin"]),
                name="source_strategy_known",
            ),
            models.CheckConstraint(
                condition=Q(accept_timeout_seconds__isnull=True) | Q(accept_timeout_seconds__gt=0),
                name="source_accept_timeout_positive",
            ),
            models.CheckConstraint(
                condition=Q(max_offers__gt=0), name="source_max_offers_positive"
            ),
            models.CheckConstraint(
                condition=Q(load_units__gt=0), name="source_load_units_positive"
            ),
            models.CheckConstraint(
                condition=Q(sticky__in=["off", "prefer", "require"]), name="source_sticky_known"
            ),
            models.CheckConstraint(
                condition=Q(sticky_days__gt=0), name="source_sticky_days_positive"
            ),
            models.CheckConstraint(
                condition=Q(sticky_wait_seconds__gt=0), name="source_sticky_wait_positive"
            ),
            models.CheckConstraint(
                condition=Q(overflow_after_seconds__isnull=True) | Q(overflow_after_seconds__gt=0),
                name="source_overflow_after_positive",
            ),
        ]

    def __str__(self) -> str:
        return self.code


class OperatorSourceWeight(models.Model):
    operator = models.ForeignKey(
        Operator, on_delete=models.CASCADE, related_name="weights", verbose_name=_("operator")
    )
    source = models.ForeignKey(
        Source, on_delete=models.CASCADE, related_name="weights", verbose_name=_("source")
    )
    weight = models.PositiveIntegerField(_("weight"), validators=[POSITIVE])
    # Smooth weighted round-robin state of this operator on this source; only the
    # engine writes it, while holding the operator's row lock.
    round_robin_credit = models.BigIntegerField(_("round robin credit"), default=0, editable=False)
    # When the operator joined the source: set once, when the pair is created (a weight
    # change keeps it). The distribution report measures its share from then on.
    since = models.DateTimeField(_("since"), default=timezone.now, editable=False)

    objects = OperatorSourceWeightQuerySet.as_manager()

    class Meta:
        ordering = ["source_id", "operator_id"]
        verbose_name = _("operator source weight")
        verbose_name_plural = _("operator source weights")
        constraints = [
            models.UniqueConstraint(fields=["operator", "source"], name="weight_unique_pair"),
            models.CheckConstraint(condition=models.Q(weight__gt=0), name="weight_positive"),
        ]
        # The engine reads a source's weights joined to their operators.
        indexes = [models.Index(fields=["source", "operator"], name="weight_by_source")]

    def __str__(self) -> str:
        return gettext("%(operator)s on %(source)s: %(weight)s") % {
            "operator": self.operator,
            "source": self.source,
            "weight": self.weight,
        }


class OverflowWeight(models.Model):
    """An operator who may also take a source's contacts once they have waited past
    Source.overflow_after_seconds, by this weight: the source's second weight list."""

    operator = models.ForeignKey(
        Operator,
        on_delete=models.CASCADE,
        related_name="overflow_weights",
        verbose_name=_("operator"),
    )
    source = models.ForeignKey(
        Source, on_delete=models.CASCADE, related_name="overflow_weights", verbose_name=_("source")
    )
    weight = models.PositiveIntegerField(_("weight"), validators=[POSITIVE])

    class Meta:
        ordering = ["source_id", "operator_id"]
        verbose_name = _("overflow operator")
        verbose_name_plural = _("overflow operators")
        constraints = [
            models.UniqueConstraint(fields=["operator", "source"], name="overflow_unique_pair"),
            models.CheckConstraint(condition=Q(weight__gt=0), name="overflow_weight_positive"),
        ]

    def __str__(self) -> str:
        return gettext("%(operator)s overflows %(source)s: %(weight)s") % {
            "operator": self.operator,
            "source": self.source,
            "weight": self.weight,
        }


class SourceApiKey(models.Model):
    """A bot's credential for one source. Only a hash is stored; the key is shown once.

    A key reads `<prefix>.<secret>`: the prefix finds the row, the hash of the whole key
    is compared in constant time. A source has several keys so one can be rotated while
    the other still works.
    """

    source = models.ForeignKey(
        Source, on_delete=models.CASCADE, related_name="api_keys", verbose_name=_("source")
    )
    name = models.CharField(
        _("name"),
        max_length=200,
        blank=True,
        help_text=_("What the key is for, e.g. the bot's host."),
    )
    prefix = models.CharField(_("prefix"), max_length=16, unique=True, editable=False)
    key_hash = models.CharField(_("key hash"), max_length=64, editable=False)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True, editable=False)
    # When a bot last authenticated with it, to the minute: stored at most once a minute
    # per key (distribution.api.authentication.note_key_use), not on every request.
    last_used_at = models.DateTimeField(
        _("last used"),
        null=True,
        blank=True,
        editable=False,
        help_text=_("When a bot last sent this key, to the minute; empty if never."),
    )

    class Meta:
        ordering = ["source_id", "id"]
        verbose_name = _("source API key")
        verbose_name_plural = _("source API keys")

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.source})"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


class Contact(models.Model):
    class Status(models.TextChoices):
        WAITING = "waiting", _("Waiting for an operator")
        OFFERED = "offered", _("Offered, not yet accepted")
        OPEN = "open", _("Open")
        CLOSED = "closed", _("Closed")

    # What counts toward an operator's limit: an offer holds its place until answered.
    LOAD_STATUSES = (Status.OPEN, Status.OFFERED)

    lead = models.ForeignKey(
        Lead, on_delete=models.PROTECT, related_name="contacts", verbose_name=_("lead")
    )
    source = models.ForeignKey(
        Source, on_delete=models.PROTECT, related_name="contacts", verbose_name=_("source")
    )
    # SET_NULL keeps closed history when an operator is deleted; the check constraints
    # below make deleting an operator with open contacts fail in the database.
    operator = models.ForeignKey(
        Operator,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="contacts",
        verbose_name=_("operator"),
    )
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.WAITING
    )
    payload = models.JSONField(_("payload"), default=dict, blank=True)
    # The engine's reasoning when the operator was chosen: a Decision (eligibility.py)
    # as JSON.
    decision = models.JSONField(_("decision"), default=dict, blank=True)
    # Identifiers sent with this contact that were not attached to its lead, and why.
    lead_conflicts = models.JSONField(_("lead conflicts"), default=list, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    # When the operator got it (offered or, without offers, opened).
    assigned_at = models.DateTimeField(_("assigned at"), null=True, blank=True)
    # An offer's deadline, by the database's clock; set only while `offered`.
    offer_expires_at = models.DateTimeField(_("offer expires at"), null=True, blank=True)
    # When it had been declined or let expire Source.max_offers times: for supervisors.
    flagged_at = models.DateTimeField(_("flagged at"), null=True, blank=True)
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)
    # What it costs its operator while open or offered: its source's load units when it
    # was given (a later change of the source's units applies to later contacts).
    load_units = models.PositiveSmallIntegerField(_("load units"), default=1)
    # Given to its lead's own operator (Source.sticky): counted as load, not in the
    # weights' shares.
    by_owner = models.BooleanField(_("by owner"), default=False)
    # Sticky 'require': waiting for the lead's own operator until `waits_until`, first in
    # line for that operator's next free place; then by the source's rule.
    waits_for = models.ForeignKey(
        Operator,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("waits for"),
    )
    waits_until = models.DateTimeField(_("waits until"), null=True, blank=True)

    class Meta:
        # The table kept its name when the model moved here from leads (migration
        # distribution.0003): an existing database keeps its rows where they are.
        db_table = "leads_contact"
        ordering = ["-created_at", "-id"]
        verbose_name = _("contact")
        verbose_name_plural = _("contacts")
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["waiting", "offered", "open", "closed"]),
                name="contact_status_known",
            ),
            models.CheckConstraint(
                condition=~Q(status="waiting") | Q(operator__isnull=True, assigned_at__isnull=True),
                name="contact_waiting_has_no_operator",
            ),
            models.CheckConstraint(
                condition=~Q(status="open") | Q(operator__isnull=False, assigned_at__isnull=False),
                name="contact_open_has_operator",
            ),
            models.CheckConstraint(
                condition=~Q(status="offered")
                | Q(
                    operator__isnull=False,
                    assigned_at__isnull=False,
                    offer_expires_at__isnull=False,
                ),
                name="contact_offered_has_deadline",
            ),
            models.CheckConstraint(
                condition=Q(status="offered") | Q(offer_expires_at__isnull=True),
                name="contact_deadline_only_offered",
            ),
            models.CheckConstraint(
                condition=~Q(status="closed") | Q(closed_at__isnull=False),
                name="contact_closed_has_closed_at",
            ),
            models.CheckConstraint(
                condition=Q(status="waiting") | Q(waits_for__isnull=True, waits_until__isnull=True),
                name="contact_waits_for_owner_only_waiting",
            ),
            models.CheckConstraint(
                condition=Q(load_units__gt=0), name="contact_load_units_positive"
            ),
        ]
        indexes = [
            # Load: count of an operator's open and offered contacts, read under its
            # row lock.
            models.Index(
                fields=["operator"],
                condition=Q(status__in=["open", "offered"]),
                name="contact_load_by_operator",
            ),
            # The worker's expiry pass: offers past their deadline, soonest first.
            models.Index(
                fields=["offer_expires_at"],
                condition=Q(status="offered"),
                name="contact_offer_deadline",
            ),
            # Sticky: a lead's last assigned contact, read by queries.lead_owner.
            models.Index(
                "lead",
                models.F("assigned_at").desc(),
                condition=Q(operator__isnull=False),
                name="contact_owner_by_lead",
            ),
            # The worker's pass for sticky waits past their time.
            models.Index(
                fields=["waits_until"],
                condition=Q(status="waiting", waits_until__isnull=False),
                name="contact_owner_wait",
            ),
            # The waiting queue: oldest waiting contacts of a source first.
            models.Index(
                fields=["source", "created_at", "id"],
                condition=Q(status="waiting"),
                name="contact_waiting_by_source",
            ),
            # Reports and filters: contacts assigned per source and operator over a period.
            models.Index(
                fields=["source", "assigned_at", "operator"],
                name="contact_assigned_by_source",
            ),
            models.Index(fields=["created_at"], name="contact_created_at"),
            # The distribution report: contacts assigned since a moment, counted per source
            # and operator, read from this index alone (id is the counted column).
            models.Index(
                fields=["assigned_at", "source", "operator", "by_owner", "id"],
                condition=Q(operator__isnull=False),
                name="contact_assigned_at",
            ),
        ]

    def __str__(self) -> str:
        return gettext("Contact %(id)s (%(status)s)") % {
            "id": self.pk,
            "status": self.get_status_display().lower(),
        }

    @property
    def message(self) -> str:
        """What the lead wrote, as bots send it (`payload.text`); empty if they sent none."""
        text = self.payload.get("text") if isinstance(self.payload, dict) else None
        return text if isinstance(text, str) else ""


class OfferMiss(models.Model):
    """An offer of a contact that its operator declined or let expire: that operator is
    not offered the contact again by the rules (staff may still give it)."""

    class Kind(models.TextChoices):
        DECLINED = "declined", _("Declined")
        EXPIRED = "expired", _("Expired")

    contact = models.ForeignKey(
        Contact, on_delete=models.CASCADE, related_name="offer_misses", verbose_name=_("contact")
    )
    operator = models.ForeignKey(
        Operator, on_delete=models.CASCADE, related_name="+", verbose_name=_("operator")
    )
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    reason = models.CharField(
        _("reason"), max_length=500, blank=True, help_text=_("The operator's, if given.")
    )
    at = models.DateTimeField(_("at"))

    class Meta:
        ordering = ["contact_id", "at", "id"]
        verbose_name = _("offer miss")
        verbose_name_plural = _("offer misses")
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=["declined", "expired"]), name="offer_miss_kind_known"
            ),
        ]

    def __str__(self) -> str:
        return gettext("%(operator)s %(kind)s contact %(contact)s") % {
            "operator": self.operator_id,
            "kind": self.get_kind_display().lower(),
            "contact": self.contact_id,
        }


class ContactHistory(models.Model):
    """One step of a contact's life, with the decision at that moment: append-only (the
    contact's own `decision` is the latest, for quick reads). Written by the same code
    that changes the contact (engine.store_change, queries.insert_contact)."""

    class Action(models.TextChoices):
        QUEUED = "queued", _("Waiting for an operator")
        WAITS_FOR_OWNER = "waits_for_owner", _("Waiting for the lead's own operator")
        ASSIGNED = "assigned", _("Assigned")
        OFFERED = "offered", _("Offered")
        ACCEPTED = "accepted", _("Accepted")
        DECLINED = "declined", _("Declined")
        EXPIRED = "expired", _("Offer expired")
        WITHDRAWN = "withdrawn", _("Offer withdrawn")
        REQUEUED = "requeued", _("Back in the queue")
        REASSIGNED = "reassigned", _("Reassigned")
        CLOSED = "closed", _("Closed")

    # The steps that give a contact to an operator: what a burst limit counts.
    GIVEN = (Action.ASSIGNED, Action.OFFERED, Action.REASSIGNED)

    contact = models.ForeignKey(
        Contact, on_delete=models.CASCADE, related_name="history", verbose_name=_("contact")
    )
    at = models.DateTimeField(_("at"))
    action = models.CharField(_("action"), max_length=32, choices=Action.choices)
    status = models.CharField(_("status"), max_length=16, choices=Contact.Status.choices)
    # Who has the contact after the step; for declined, expired and withdrawn, who had it.
    operator = models.ForeignKey(
        Operator,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("operator"),
    )
    decision = models.JSONField(_("decision"), default=dict, blank=True)
    # A decline's reason, a drain's trigger, and the like.
    detail = models.CharField(_("detail"), max_length=500, blank=True)

    class Meta:
        # The order the steps were written in, under the contact's lock: the order
        # they happened in, also where two share a moment.
        ordering = ["contact_id", "id"]
        verbose_name = _("history step")
        verbose_name_plural = _("history")
        indexes = [
            # A contact's timeline, in order.
            models.Index(fields=["contact", "id"], name="history_by_contact"),
            # Burst limits: the contacts given to an operator within its window.
            models.Index(
                fields=["operator", "at"],
                condition=Q(action__in=["assigned", "offered", "reassigned"]),
                name="history_given_by_operator",
            ),
        ]

    def __str__(self) -> str:
        return gettext("%(contact)s %(action)s at %(at)s") % {
            "contact": self.contact_id,
            "action": self.get_action_display().lower(),
            "at": self.at,
        }


# Stripe's limit for the same header: room for a UUID, a hash or a bot's message id.
MAX_IDEMPOTENCY_KEY_LENGTH = 255


class IdempotencyKey(models.Model):
    """A key a bot sent with an intake request (`Idempotency-Key` or `client_message_id`):
    a retry with the same key finds the contact the first request made."""

    source = models.ForeignKey(
        Source, on_delete=models.CASCADE, related_name="+", verbose_name=_("source")
    )
    key = models.CharField(_("key"), max_length=MAX_IDEMPOTENCY_KEY_LENGTH)
    # SHA-256 of the request as validated, to tell a retry from another request that
    # reuses the key.
    fingerprint = models.CharField(_("fingerprint"), max_length=64)
    contact = models.ForeignKey(
        Contact, on_delete=models.CASCADE, related_name="+", verbose_name=_("contact")
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        db_table = "leads_idempotencykey"  # as for Contact
        verbose_name = _("idempotency key")
        verbose_name_plural = _("idempotency keys")
        constraints = [
            # Also the index the intake looks a key up by; concurrent retries of one key
            # meet here, and only the first to commit keeps its contact.
            models.UniqueConstraint(fields=["source", "key"], name="idempotency_key_per_source"),
        ]
        indexes = [
            # purge_idempotency_keys: the keys older than the time to live.
            models.Index(fields=["created_at"], name="idempotency_key_created_at"),
        ]

    def __str__(self) -> str:
        return f"{self.key} ({self.source_id})"
