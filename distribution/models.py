from django.db import models


class Operator(models.Model):
    name = models.CharField(max_length=200)
    is_active = models.BooleanField(default=True)
    max_open_contacts = models.PositiveIntegerField(
        default=10, help_text="How many open contacts this operator may hold at once."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(max_open_contacts__gte=0),
                name="operator_max_open_contacts_non_negative",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Source(models.Model):
    class Strategy(models.TextChoices):
        WEIGHTED_RANDOM = "weighted_random", "Weighted random"
        ROUND_ROBIN = "round_robin", "Round robin (smooth, by weight)"

    code = models.SlugField(max_length=64, unique=True, help_text="What a bot sends.")
    name = models.CharField(max_length=200)
    is_active = models.BooleanField(default=True)
    strategy = models.CharField(
        max_length=32, choices=Strategy.choices, default=Strategy.WEIGHTED_RANDOM
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(strategy__in=["weighted_random", "round_robin"]),
                name="source_strategy_known",
            ),
        ]

    def __str__(self) -> str:
        return self.code


class OperatorSourceWeight(models.Model):
    operator = models.ForeignKey(Operator, on_delete=models.CASCADE, related_name="weights")
    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="weights")
    weight = models.PositiveIntegerField()
    # Smooth weighted round-robin state of this operator on this source; only the
    # engine writes it, while holding the operator's row lock.
    round_robin_credit = models.BigIntegerField(default=0, editable=False)

    class Meta:
        ordering = ["source_id", "operator_id"]
        constraints = [
            models.UniqueConstraint(fields=["operator", "source"], name="weight_unique_pair"),
            models.CheckConstraint(condition=models.Q(weight__gt=0), name="weight_positive"),
        ]
        # The engine reads a source's weights joined to their operators.
        indexes = [models.Index(fields=["source", "operator"], name="weight_by_source")]

    def __str__(self) -> str:
        return f"{self.operator} on {self.source}: {self.weight}"


class SourceApiKey(models.Model):
    """A bot's credential for one source. Only a hash is stored; the key is shown once.

    A key reads `<prefix>.<secret>`: the prefix finds the row, the hash of the whole key
    is compared in constant time. A source has several keys so one can be rotated while
    the other still works.
    """

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(
        max_length=200, blank=True, help_text="What the key is for, e.g. the bot's host."
    )
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["source_id", "id"]
        verbose_name = "source API key"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.source})"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None
