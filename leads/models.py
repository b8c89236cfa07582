from django.contrib.postgres.indexes import GinIndex, OpClass
from django.db import models
from django.db.models import Q
from django.db.models.functions import Upper
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from leads.identity import MAX_EMAIL_LENGTH, MAX_EXTERNAL_ID_LENGTH, MAX_NAME_LENGTH


class Lead(models.Model):
    """One end customer. Absent identifiers are NULL, so uniqueness applies to present ones."""

    external_id = models.CharField(
        _("external id"), max_length=MAX_EXTERNAL_ID_LENGTH, unique=True, null=True, blank=True
    )
    phone = models.CharField(_("phone"), max_length=32, unique=True, null=True, blank=True)
    email = models.EmailField(
        _("email"), max_length=MAX_EMAIL_LENGTH, unique=True, null=True, blank=True
    )
    name = models.CharField(_("name"), max_length=MAX_NAME_LENGTH, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        ordering = ["id"]
        verbose_name = _("lead")
        verbose_name_plural = _("leads")
        constraints = [
            models.CheckConstraint(
                condition=Q(external_id__isnull=False)
                | Q(phone__isnull=False)
                | Q(email__isnull=False),
                name="lead_has_an_identifier",
                violation_error_message=_(
                    "Give the lead at least one of an external id, a phone or an email."
                ),
            ),
        ]
        indexes = [
            # Lead search (distribution.api.filters.search_leads): `icontains` on
            # PostgreSQL is UPPER(column) LIKE UPPER('%term%'), which a trigram index on
            # that expression answers. Every column the search ORs is in it, or the OR
            # would read every lead. PostgreSQL only (migration 0007): SQLite scans.
            GinIndex(
                OpClass(Upper("external_id"), name="gin_trgm_ops"),
                OpClass(Upper("phone"), name="gin_trgm_ops"),
                OpClass(Upper("email"), name="gin_trgm_ops"),
                OpClass(Upper("name"), name="gin_trgm_ops"),
                name="lead_search_trigram",
            ),
        ]

    def __str__(self) -> str:
        return (
            self.name
            or self.external_id
            or self.phone
            or self.email
            or gettext("Lead %(id)s") % {"id": self.pk}
        )
