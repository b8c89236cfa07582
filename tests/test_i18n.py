"""Russian and English: the catalogues are whole, and pages, API messages and command
output come in the language the browser asks for, or the one picked in the header."""

import io
from datetime import UTC, datetime, timedelta

import pytest
from babel.messages.pofile import read_po
from django.conf import settings
from django.core.management import call_command
from django.utils import translation

from desk.templatetags.desk import ago
from distribution.admin.common import percent, signed
from tests.factories import ContactFactory, OperatorFactory, SourceFactory, StaffUserFactory

LANGUAGES = [code for code, _ in settings.LANGUAGES]


def catalogue(language: str):
    path = settings.LOCALE_PATHS[0] / language / "LC_MESSAGES" / "django.po"
    with path.open("rb") as po:
        return read_po(po, locale=language)


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_message_is_translated_with_its_placeholders(language):
    messages = [message for message in catalogue(language) if message.id]
    assert len(messages) > 500

    def translated(message) -> bool:
        strings = message.string if message.pluralizable else (message.string,)
        return all(strings)

    assert [message.id for message in messages if not translated(message)] == []
    assert [message.id for message in messages if message.fuzzy] == []
    # Babel's checks: the same %(name)s placeholders and as many plural forms as Russian has.
    assert [(message.id, errors) for message, errors in catalogue(language).check()] == []


def test_the_compiled_catalogue_is_the_one_the_app_reads():
    with translation.override("ru"):
        assert translation.gettext("Sign in") == "Войти"
    with translation.override("en"):
        assert translation.gettext("Sign in") == "Sign in"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("accept_language", "expected", "absent"),
    [
        ("ru-RU,ru;q=0.9,en;q=0.5", "Войти", "Sign in"),
        ("en-GB,en;q=0.9", "Sign in", "Войти"),
        # Neither: LANGUAGE_CODE.
        ("de-DE", "Sign in", "Войти"),
    ],
)
def test_a_page_speaks_the_browsers_language(client, accept_language, expected, absent):
    page = client.get("/desk/login/", HTTP_ACCEPT_LANGUAGE=accept_language).content.decode()
    assert expected in page
    assert absent not in page


@pytest.mark.django_db
def test_the_switch_in_the_header_keeps_the_language_over_the_browsers(client):
    page = client.get("/desk/login/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    # The switch offers the other language, named in its own.
    assert 'name="language" value="ru"' in page
    assert ">Русский</button>" in page

    answer = client.post("/i18n/setlang/", {"language": "ru", "next": "/desk/login/"})

    assert answer.status_code == 302
    assert answer["Location"] == "/desk/login/"
    page = client.get("/desk/login/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert '<html lang="ru">' in page
    assert "Войти" in page
    assert ">English</button>" in page


@pytest.mark.django_db
def test_the_admin_in_russian_names_our_models_and_fields(client):
    client.force_login(StaffUserFactory(is_superuser=True))
    OperatorFactory(name="Иван")

    index = client.get("/admin/", HTTP_ACCEPT_LANGUAGE="ru").content.decode()
    operators = client.get(
        "/admin/distribution/operator/", HTTP_ACCEPT_LANGUAGE="ru"
    ).content.decode()

    assert "Обращения" in index
    assert "Операторы" in index
    assert "Иван" in operators
    assert "Нагрузка" in operators
    # Not "1 операторы": the count after the noun, whose case then does not depend on it.
    assert "Операторы: 1" in operators


@pytest.mark.django_db
def test_an_api_error_comes_in_the_clients_language(bot_client):
    bot = bot_client(SourceFactory(code="telegram-bot"))

    body = {"lead": {}, "payload": {}}
    english = bot.post("/api/contacts/", body, format="json")
    russian = bot.post("/api/contacts/", body, format="json", HTTP_ACCEPT_LANGUAGE="ru")

    assert english.status_code == russian.status_code == 400
    assert english.json().keys() == russian.json().keys()
    assert english.json() != russian.json()
    assert "Укажите" in str(russian.json())


@pytest.mark.django_db
def test_a_command_prints_in_the_active_language():
    out = io.StringIO()
    with translation.override("ru"):
        call_command("check_loads", stdout=out)
    assert "нагрузк" in out.getvalue().lower()


@pytest.mark.parametrize(
    ("minutes", "english", "russian"),
    [
        (1, "1\xa0minute ago", "1\xa0минуту назад"),
        (3, "3\xa0minutes ago", "3\xa0минуты назад"),
        (21, "21\xa0minutes ago", "21\xa0минуту назад"),
        (60 * 24 * 7, "1\xa0week ago", "1\xa0неделю назад"),
    ],
)
def test_how_long_ago_is_declined_as_russian_says_it(minutes, english, russian):
    now = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    moment = now - timedelta(minutes=minutes)
    with translation.override("en"):
        assert ago(moment, now) == english
    with translation.override("ru"):
        assert ago(moment, now) == russian


@pytest.mark.django_db
def test_a_contacts_admin_page_in_russian_names_its_status_and_app_in_russian(client):
    client.force_login(StaffUserFactory(is_superuser=True))
    contact = ContactFactory(open=True)

    page = client.get(
        f"/admin/distribution/contact/{contact.pk}/change/", HTTP_ACCEPT_LANGUAGE="ru"
    ).content.decode()

    assert f"Обращение {contact.pk} (открыто)" in page
    assert "Распределение" in page
    assert "Distribution" not in page


def test_shares_use_the_languages_decimal_mark():
    with translation.override("en"):
        assert (percent(1 / 6), signed(-0.04), signed(-2.55)) == ("16.7%", "+0.0", "-2.5")
    with translation.override("ru"):
        assert (percent(1 / 6), signed(-0.04), signed(-2.55)) == ("16,7%", "+0,0", "-2,5")
