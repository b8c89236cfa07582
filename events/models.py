from django.db import models


class Event(models.Model):
    """A change, written in the same transaction as the change (a transactional outbox).

    This app knows nothing of contacts: it keeps the JSON it is given. `scope` is the
    code of the source whose bot may read the event; empty for events no bot may read.
    """

    id = models.BigAutoField(primary_key=True)
    type = models.CharField(max_length=64)
    occurred_at = models.DateTimeField()
    scope = models.CharField(max_length=64, blank=True)
    data = models.JSONField()

    class Meta:
        ordering = ["id"]
        indexes = [
            # A bot's feed: its source's events after a cursor.
            models.Index(fields=["scope", "id"], name="event_by_scope"),
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
