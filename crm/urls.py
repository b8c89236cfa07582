from django.contrib import admin
from django.urls import include, path, re_path
from django.utils.translation import gettext_lazy
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from core.health import health
from desk.views import home
from distribution.api.views import (
    ContactViewSet,
    DistributionStatsView,
    EventFeedView,
    LeadViewSet,
    MeView,
    MyContactsView,
    OperatorViewSet,
    SourceViewSet,
)
from distribution.api.webhooks import WebhookEndpointViewSet

# The product's name in the admin's header and tab titles, as on the desk.
admin.site.site_header = admin.site.site_title = gettext_lazy("Leads CRM")
admin.site.index_title = gettext_lazy("Administration")

router = DefaultRouter()
router.register("operators", OperatorViewSet, basename="operator")
router.register("sources", SourceViewSet, basename="source")
router.register("leads", LeadViewSet, basename="lead")
router.register("contacts", ContactViewSet, basename="contact")
router.register("webhooks", WebhookEndpointViewSet, basename="webhook")

urlpatterns = [
    path("", home, name="home"),
    path("desk/", include("desk.urls")),
    # Contacts moved from the leads app to distribution: old bookmarks still lead there.
    re_path(
        r"^admin/leads/contact/(?P<rest>.*)$",
        RedirectView.as_view(url="/admin/distribution/contact/%(rest)s", query_string=True),
    ),
    path("admin/", admin.site.urls),
    path("health/", health, name="health"),
    # set_language: the language switch in the desk's and the admin's header.
    path("i18n/", include("django.conf.urls.i18n")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path(
        "api/stats/distribution/",
        DistributionStatsView.as_view(),
        name="distribution-stats",
    ),
    path("api/events/", EventFeedView.as_view(), name="events"),
    path("api/me/", MeView.as_view(), name="me"),
    path("api/me/contacts/", MyContactsView.as_view(), name="my-contacts"),
    path("api/", include(router.urls)),
]

handler404 = "core.api.not_found"
