"""Times on pages are shown in the viewer's zone: an operator's own, else the one the
browser reported (the `tz` cookie), else TIME_ZONE."""

from datetime import UTC, datetime

import pytest
from django.urls import reverse

from tests.factories import ContactFactory, OperatorFactory, UserFactory

pytestmark = pytest.mark.django_db

NOON_UTC = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def contact_page(contact) -> str:
    return reverse("admin:distribution_contact_change", args=[contact.pk])


def test_staff_see_admin_times_in_their_browsers_zone(admin_client, settings):
    settings.TIME_ZONE = "UTC"
    contact = ContactFactory(created_at=NOON_UTC)

    in_utc = admin_client.get(contact_page(contact)).content.decode()
    admin_client.cookies["tz"] = "Asia/Vladivostok"  # UTC+10
    local = admin_client.get(contact_page(contact)).content.decode()

    assert "noon" in in_utc
    assert "10 p.m." in local


def test_an_unknown_zone_in_the_cookie_is_ignored(admin_client, settings):
    settings.TIME_ZONE = "UTC"
    contact = ContactFactory(created_at=NOON_UTC)
    admin_client.cookies["tz"] = "Mars/Olympus_Mons"

    page = admin_client.get(contact_page(contact))

    assert page.status_code == 200
    assert "noon" in page.content.decode()


def test_an_operator_sees_its_own_zone_whatever_the_browser_says(client, settings):
    settings.TIME_ZONE = "UTC"
    operator = OperatorFactory(user=UserFactory(), time_zone="Europe/Moscow")  # UTC+3
    contact = ContactFactory(open=True, operator=operator, created_at=NOON_UTC)
    client.force_login(operator.user)
    client.cookies["tz"] = "Asia/Vladivostok"

    page = client.get(reverse("desk:contact", args=[contact.pk])).content.decode()

    assert "3 p.m." in page
