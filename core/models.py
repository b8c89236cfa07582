from django.db import models


class Heartbeat(models.Model):
    """When a background process last finished a pass (`/health/` reads the worker's)."""

    name = models.CharField(max_length=64, primary_key=True)
    beat_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} at {self.beat_at:%Y-%m-%d %H:%M:%S}"
