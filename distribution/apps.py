from django.apps import AppConfig
from django.utils.translation import gettext_lazy


class DistributionConfig(AppConfig):
    name = "distribution"
    verbose_name = gettext_lazy("Distribution")
