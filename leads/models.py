from django.db import models
from django.db.models import Q
from django.utils import timezone

from distribution.models import Operator, Source
from leads.identity import MAX_EMAIL_LENGTH, MAX_EXTERNAL_ID_LENGTH, MAX_NAME_LENGTH


class Lead(models.Model):
    """One end customer. Absent identifiers are NULL, so uniqueness applies to present ones."""

    external_id = models.CharField(
        max_length=MAX_EXTERNAL_ID_LENGTH, unique=True, null=True, blank=True
    )
    phone = models.CharField(max_length=32, unique=True, null=True, blank=True)
    email = models.EmailField(max_length=MAX_EMAIL_LENGTH, unique=True, null=True, blank=True)
    name = models.CharField(max_length=MAX_NAME_LENGTH, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(external_id__isnull=False)
                | Q(phone__isnull=False)
                | Q(email__isnull=False),
                name="lead_has_an_identifier",
            ),
        ]

    def __str__(self) -> str:
        return self.name or self.external_id or self.phone or self.email or f"Lead {self.pk}"


class Contact(models.Model):
    class Status(models.TextChoices):
        WAITING = "waiting", "Waiting for an operator"
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"

    lead = models.ForeignKey(Lead, on_delete=models.PROTECT, related_name="contacts")
    source = models.ForeignKey(Source, on_delete=models.PROTECT, related_name="contacts")
    # SET_NULL keeps closed history when an operator is deleted; the check constraints
    # below make deleting an operator with open contacts fail in the database.
    operator = models.ForeignKey(
        Operator,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="contacts",
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.WAITING)
    payload = models.JSONField(default=dict, blank=True)
    # The engine's reasoning when the operator was chosen (see distribution.services).
    decision = models.JSONField(default=dict, blank=True)
    # Identifiers sent with this contact that were not attached to its lead, and why.
    lead_conflicts = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    assigned_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["waiting", "open", "closed"]),
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
                condition=~Q(status="closed") | Q(closed_at__isnull=False),
                name="contact_closed_has_closed_at",
            ),
        ]
        indexes = [
            # Load: count of an operator's open contacts, read under its row lock.
            models.Index(
                fields=["operator"],
                condition=Q(status="open"),
                name="contact_open_by_operator",
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
                fields=["assigned_at", "source", "operator", "id"],
                condition=Q(operator__isnull=False),
                name="contact_assigned_at",
            ),
        ]

    def __str__(self) -> str:
        return f"Contact {self.pk} ({self.status})"


# Stripe's limit for the same header: room for a UUID, a hash or a bot's message id.
MAX_IDEMPOTENCY_KEY_LENGTH = 255


class IdempotencyKey(models.Model):
    """A key a bot sent with an intake request (`Idempotency-Key` or `client_message_id`):
    a retry with the same key finds the contact the first request made."""

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=MAX_IDEMPOTENCY_KEY_LENGTH)
    # SHA-256 of the request as validated, to tell a retry from another request that
    # reuses the key.
    fingerprint = models.CharField(max_length=64)
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
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
