from django.db import models
from django.db.models import Q

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
                violation_error_message=(
                    "Give the lead at least one of an external id, a phone or an email."
                ),
            ),
        ]

    def __str__(self) -> str:
        return self.name or self.external_id or self.phone or self.email or f"Lead {self.pk}"
