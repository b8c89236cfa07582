from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from crm.health import health
from distribution.views import DistributionStatsView, OperatorViewSet, SourceViewSet
from leads.views import ContactViewSet, LeadViewSet

router = DefaultRouter()
router.register("operators", OperatorViewSet, basename="operator")
router.register("sources", SourceViewSet, basename="source")
router.register("leads", LeadViewSet, basename="lead")
router.register("contacts", ContactViewSet, basename="contact")

urlpatterns = [
    path("admin/", admin.site.urls),
    path("health/", health, name="health"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path(
        "api/stats/distribution/",
        DistributionStatsView.as_view(),
        name="distribution-stats",
    ),
    path("api/", include(router.urls)),
]

handler404 = "crm.api.not_found"
