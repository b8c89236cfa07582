import base64
import secrets

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from events.addresses import validate_webhook_url


class Event(models.Model):
    """A change, written in the same transaction as the change (a transactional outbox).

    This app knows nothing of contacts: it keeps the JSON it is given. `scope` is the
    code of the source whose bot may read the event; empty for events no bot may read.
    """

    id = models.BigAutoField(_("id"), primary_key=True)
    type = models.CharField(_("type"), max_length=64)
    occurred_at = models.DateTimeField(_("occurred at"))
    scope = models.CharField(_("scope"), max_length=64, blank=True)
    data = models.JSONField(_("data"))
    # When the webhook fan-out made the event's deliveries. The outbox's INSERTs leave it
    # out, so every event starts undispatched, whenever its transaction commits.
    dispatched_at = models.DateTimeField(_("dispatched at"), null=True, blank=True)

    class Meta:
        ordering = ["id"]
        verbose_name = _("event")
        verbose_name_plural = _("events")
        indexes = [
            # A bot's feed: its source's events after a cursor.
            models.Index(fields=["scope", "id"], name="event_by_scope"),
            # The fan-out's look for new events: holds only those, so it stays small.
            models.Index(
                fields=["id"], condition=Q(dispatched_at__isnull=True), name="event_undispatched"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type} #{self.pk}"

    def as_body(self) -> dict:
        """The Standard Webhooks body, with the event's id as the feed gives it."""
        return {
            "id": self.pk,
            "type": self.type,
            "timestamp": self.occurred_at.isoformat(),
            "data": self.data,
        }


def new_secret() -> str:
    """`whsec_` and 32 random bytes in base64: the form Standard Webhooks' libraries read."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class WebhookEndpoint(models.Model):
    """Where the worker sends events (events/webhooks.py), signed with `secret`.

    Its deliveries go one at a time in event order, so they share one schedule, kept
    here: after a failed attempt the endpoint waits (`next_attempt_at`, longer with each
    of its `failures` in a row), and a worker sending to it holds `leased_until`.
    """

    url = models.URLField(_("url"), max_length=500, validators=[validate_webhook_url])
    secret = models.CharField(_("secret"), max_length=100, default=new_secret, editable=False)
    sources = models.JSONField(
        _("sources"),
        default=list,
        blank=True,
        help_text=_("Source codes whose events it gets; none: all."),
    )
    event_types = models.JSONField(
        _("event types"), default=list, blank=True, help_text=_("Event types it gets; none: all.")
    )
    is_active = models.BooleanField(_("active"), default=True)
    description = models.CharField(_("description"), max_length=200, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)
    next_attempt_at = models.DateTimeField(
        _("next attempt at"), default=timezone.now, editable=False
    )
    failures = models.PositiveIntegerField(_("failures"), default=0, editable=False)
    leased_until = models.DateTimeField(_("leased until"), null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("webhook endpoint")
        verbose_name_plural = _("webhook endpoints")

    def __str__(self) -> str:
        return self.url

    def wants(self, event: Event) -> bool:
        """Whether the event goes here: made after it, and through its filters."""
        return (
            self.created_at <= event.occurred_at
            and (not self.sources or event.scope in self.sources)
            and (not self.event_types or event.type in self.event_types)
        )


class WebhookDelivery(models.Model):
    """One event for one endpoint, until it is delivered or given up."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        DELIVERED = "delivered", _("Delivered")
        FAILED = "failed", _("Failed")

    endpoint = models.ForeignKey(
        WebhookEndpoint,
        on_delete=models.CASCADE,
        related_name="deliveries",
        verbose_name=_("endpoint"),
    )
    event = models.ForeignKey(
        Event, on_delete=models.CASCADE, related_name="deliveries", verbose_name=_("event")
    )
    status = models.CharField(_("status"), max_length=16, choices=Status, default=Status.PENDING)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    created_at = models.DateTimeField(_("created at"))
    delivered_at = models.DateTimeField(_("delivered at"), null=True, blank=True)

    class Meta:
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "event"], name="one_delivery_per_event"),
        ]
        indexes = [
            # An endpoint's next delivery (its oldest pending event), and whether it has one.
            models.Index(
                fields=["endpoint", "event"],
                condition=Q(status="pending"),
                name="delivery_pending",
            ),
        ]

    def __str__(self) -> str:
        return gettext("%(event)s to %(endpoint)s") % {
            "event": self.event,
            "endpoint": self.endpoint,
        }

    @property
    def webhook_id(self) -> str:
        """The `webhook-id` header: the same on every attempt, so a receiver can drop a repeat."""
        return f"msg_{self.pk}"


class WebhookAttempt(models.Model):
    """One HTTP request of a delivery, and how it went."""

    delivery = models.ForeignKey(
        WebhookDelivery, on_delete=models.CASCADE, related_name="tries", verbose_name=_("delivery")
    )
    at = models.DateTimeField(_("at"))
    status_code = models.PositiveSmallIntegerField(_("status code"), null=True, blank=True)
    duration_ms = models.PositiveIntegerField(_("duration ms"))
    error = models.TextField(_("error"), blank=True)

    class Meta:
        ordering = ["id"]
        verbose_name = _("webhook attempt")
        verbose_name_plural = _("webhook attempts")

    def __str__(self) -> str:
        return f"{self.delivery}: {self.status_code or self.error}"
