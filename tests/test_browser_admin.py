"""The back office in a real headless Chromium, driven by Selenium against a live server.

Each test leaves a screenshot under artifacts/ (git-ignored) for a person to look at.
Skipped only when Debian's chromium and chromium-driver are not installed; CI installs
them and forbids skips.
"""

from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import Select, WebDriverWait

from distribution.contacts import register_contact
from distribution.offers import accept_offer, decline_offer
from leads.identity import build_identity
from tests.conftest import ARTIFACTS, CHROMEDRIVER, CHROMIUM
from tests.factories import ContactFactory, OperatorSourceWeightFactory, SourceFactory

pytestmark = [
    pytest.mark.skipif(
        not (CHROMIUM and CHROMEDRIVER), reason="chromium and chromedriver are not installed"
    ),
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def admin_browser(browser: WebDriver, live_server, django_user_model) -> WebDriver:
    """The browser, logged in to the admin as a superuser through the login form."""
    django_user_model.objects.create_superuser("boss", "boss@example.com", "boss-password")
    browser.get(f"{live_server.url}/admin/login/")
    browser.find_element(By.NAME, "username").send_keys("boss")
    browser.find_element(By.NAME, "password").send_keys("boss-password")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    WebDriverWait(browser, 10).until(
        expected_conditions.title_contains("Administration | Leads CRM")
    )
    return browser


def screenshot(browser: WebDriver, name: str) -> Path:
    """The whole page, as tall as its content."""
    ARTIFACTS.mkdir(exist_ok=True)
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1400, max(600, min(height, 3000)))
    path = ARTIFACTS / f"{name}.png"
    assert browser.save_screenshot(str(path))
    return path


def test_distribution_page_draws_target_against_actual_shares(admin_browser: WebDriver):
    source = SourceFactory(code="telegram-bot", name="Telegram bot")
    ivan = OperatorSourceWeightFactory(source=source, operator__name="Ivan", weight=3).operator
    maria = OperatorSourceWeightFactory(source=source, operator__name="Maria", weight=1).operator
    ContactFactory.create_batch(3, closed=True, source=source, operator=ivan)
    ContactFactory.create_batch(3, closed=True, source=source, operator=maria)
    ContactFactory(source=source)

    admin_browser.find_element(By.LINK_TEXT, "Distribution page").click()
    card = WebDriverWait(admin_browser, 10).until(
        expected_conditions.visibility_of_element_located((By.ID, "source-telegram-bot"))
    )

    rows = card.find_elements(By.CSS_SELECTOR, "tbody tr")
    cells = [[cell.text for cell in row.find_elements(By.TAG_NAME, "td")] for row in rows]
    assert [row[0].splitlines()[0] for row in cells] == ["Ivan", "Maria"]
    assert [row[3:6] for row in cells] == [["75.0%", "50.0%", "-25.0"], ["25.0%", "50.0%", "+25.0"]]
    targets = [bar.size["width"] for bar in card.find_elements(By.CSS_SELECTOR, ".bar.target")]
    actuals = [bar.size["width"] for bar in card.find_elements(By.CSS_SELECTOR, ".bar.actual")]
    assert targets[0] == pytest.approx(3 * targets[1], rel=0.05)
    assert actuals[0] == pytest.approx(actuals[1], rel=0.05)
    assert "1 waiting" in card.text
    assert screenshot(admin_browser, "browser-distribution").stat().st_size > 10_000


def test_activating_an_operator_hands_it_the_waiting_contacts(admin_browser: WebDriver):
    weight = OperatorSourceWeightFactory(
        operator__name="Oleg", operator__is_active=False, operator__max_open_contacts=4
    )
    ContactFactory.create_batch(2, source=weight.source)
    admin_browser.find_element(By.LINK_TEXT, "Operators").click()

    row = admin_browser.find_element(By.XPATH, "//tr[.//a[text()='Oleg']]")
    row.find_element(By.NAME, "_selected_action").click()
    Select(admin_browser.find_element(By.NAME, "action")).select_by_visible_text(
        "Activate selected operators"
    )
    admin_browser.find_element(By.CSS_SELECTOR, "button[name=index]").click()
    message = WebDriverWait(admin_browser, 10).until(
        expected_conditions.visibility_of_element_located((By.CSS_SELECTOR, ".messagelist"))
    )

    assert message.text == "1 operator(s) activated. 2 waiting contact(s) were assigned to them."
    load = admin_browser.find_element(
        By.XPATH, "//tr[.//a[text()='Oleg']]//td[@class='field-load']"
    )
    assert load.text == "2 / 4"
    screenshot(admin_browser, "browser-operators")

    admin_browser.find_element(By.LINK_TEXT, "Oleg").click()
    WebDriverWait(admin_browser, 10).until(expected_conditions.title_contains("Oleg"))
    assert admin_browser.find_element(By.NAME, "is_active").is_selected()
    assert weight.source.code in admin_browser.find_element(By.ID, "weights-group").text
    assert "2 / 4" in admin_browser.find_element(By.CSS_SELECTOR, ".field-load").text
    screenshot(admin_browser, "browser-operator")


def test_a_contacts_page_shows_its_timeline_with_the_decision_at_each_step(
    admin_browser: WebDriver, live_server
):
    source = SourceFactory(
        code="shop-bot", name="Shop bot", accept_timeout_seconds=60, strategy="round_robin"
    )
    ivan = OperatorSourceWeightFactory(source=source, operator__name="Ivan").operator
    maria = OperatorSourceWeightFactory(source=source, operator__name="Maria").operator
    contact = register_contact(
        source=source, identity=build_identity(phone="+79161234567", name="Anna Lead")
    )
    decline_offer(contact=contact, by_operator=ivan, reason="Wrong city, asks for Kazan")
    accept_offer(contact=contact, by_operator=maria)

    admin_browser.get(f"{live_server.url}/admin/distribution/contact/{contact.pk}/change/")
    timeline = WebDriverWait(admin_browser, 10).until(
        expected_conditions.visibility_of_element_located((By.ID, "history-group"))
    )

    rows = timeline.find_elements(By.CSS_SELECTOR, "tbody tr.form-row")
    cells = [
        {
            field: row.find_element(By.CSS_SELECTOR, f"td.field-{field}").text
            for field in ("action", "operator", "step_detail")
        }
        for row in rows
    ]
    assert cells == [
        {"action": "Offered", "operator": "Ivan", "step_detail": "-"},
        {"action": "Declined", "operator": "Ivan", "step_detail": "Wrong city, asks for Kazan"},
        {"action": "Offered", "operator": "Maria", "step_detail": "-"},
        {"action": "Accepted", "operator": "Maria", "step_detail": "-"},
    ]
    second_offer = rows[2].find_element(By.CSS_SELECTOR, "td.field-decision_at_step").text
    assert "Strategy: Round robin (smooth, by weight)" in second_offer
    assert "missed the offer" in second_offer and "chosen" in second_offer
    # Append-only: nothing to add, delete or save.
    controls = timeline.find_elements(By.CSS_SELECTOR, ".add-row a, input:not([type=hidden])")
    assert [control for control in controls if control.is_displayed()] == []
    assert screenshot(admin_browser, "browser-contact-timeline").stat().st_size > 10_000
    # On a phone each step is a block of its own: nothing to scroll sideways for.
    admin_browser.set_window_size(400, 1000)
    height = admin_browser.execute_script("return document.documentElement.scrollHeight")
    admin_browser.set_window_size(400, max(600, min(height, 3000)))
    assert admin_browser.save_screenshot(str(ARTIFACTS / "browser-contact-timeline-400.png"))
    sideways = admin_browser.execute_script(
        "const box = arguments[0].querySelector('.tabular');"
        "return box.scrollWidth - box.clientWidth;",
        timeline,
    )
    assert sideways <= 0


def test_staff_reassign_a_contact_to_one_of_its_sources_operators(
    admin_browser: WebDriver, live_server
):
    """The contact's page names each operator of the source with its load, says who
    cannot take it and why, and gives it to the one clicked; the list's action offers
    only operators on a source, labelled with their load."""
    from tests.test_browser_desk import screenshots

    source = SourceFactory(code="telegram-bot", name="Telegram bot")
    ivan = OperatorSourceWeightFactory(
        source=source, operator__name="Ivan Petrov", operator__max_open_contacts=5
    ).operator
    maria = OperatorSourceWeightFactory(
        source=source, operator__name="Maria", operator__max_open_contacts=3
    ).operator
    OperatorSourceWeightFactory(
        source=source, operator__name="Oleg", operator__status="away", operator__max_open_contacts=4
    )
    OperatorSourceWeightFactory(operator__name="Vera")  # another source's
    contact = ContactFactory(open=True, source=source, operator=ivan)
    ContactFactory(open=True, source=source, operator=maria)

    admin_browser.get(f"{live_server.url}/admin/distribution/contact/{contact.pk}/change/")
    block = WebDriverWait(admin_browser, 10).until(
        expected_conditions.visibility_of_element_located((By.ID, "reassign"))
    )

    rows = [row.text.split("\n") for row in block.find_elements(By.CSS_SELECTOR, ".reassign-row")]
    assert rows == [
        ["Maria", "1 / 3", "Give it to Maria"],
        ["Ivan Petrov", "1 / 5", "The contact is already with Ivan Petrov."],
        ["Oleg", "0 / 4", "Oleg is away."],
    ]
    screenshots(admin_browser, "admin-contact-reassign")

    block.find_element(By.XPATH, ".//button[text()='Give it to Maria']").click()
    message = WebDriverWait(admin_browser, 10).until(
        expected_conditions.visibility_of_element_located((By.CSS_SELECTOR, ".messagelist"))
    )

    assert message.text == f"Contact #{contact.pk} reassigned to Maria."
    contact.refresh_from_db()
    assert contact.operator == maria
    assert (
        "The contact is already with Maria."
        in admin_browser.find_element(By.ID, f"reassign-{maria.pk}").text
    )

    admin_browser.get(f"{live_server.url}/admin/distribution/contact/")
    choices = [
        (option.text, option.is_enabled())
        for option in admin_browser.find_elements(By.CSS_SELECTOR, "select[name=operator] option")
    ]
    assert choices == [
        ("whoever the source's rule picks", True),
        ("Ivan Petrov — 0 / 5", True),
        ("Maria — 2 / 3", True),
        ("Oleg — away (0 / 4)", False),
        ("Vera — 0 / 10", True),
    ]
    screenshots(admin_browser, "admin-contacts-reassign-action")


def test_the_distribution_page_measures_a_late_joiner_and_fits_a_phone(
    admin_browser: WebDriver, live_server
):
    """Maria joined the Telegram bot yesterday: her share is of the contacts since, on
    target; the chart and its table show the contacts per hour; at 400 px the page
    does not scroll sideways (each operator a card, the period's fields wrapped)."""
    from datetime import timedelta

    from django.utils import timezone

    from tests.test_browser_desk import screenshots

    now = timezone.now()
    source = SourceFactory(code="telegram-bot", name="Telegram bot")
    ivan = OperatorSourceWeightFactory(
        source=source, operator__name="Ivan Petrov", since=now - timedelta(days=30)
    ).operator
    for hours in range(30, 150, 7):
        ContactFactory(
            closed=True, source=source, operator=ivan, assigned_at=now - timedelta(hours=hours)
        )
    maria = OperatorSourceWeightFactory(
        source=source, operator__name="Maria Sokolova", since=now - timedelta(hours=20)
    ).operator
    for hours in (2, 5, 9, 14):
        for operator in (ivan, maria):
            ContactFactory(
                closed=True,
                source=source,
                operator=operator,
                assigned_at=now - timedelta(hours=hours),
            )
    ContactFactory(closed=True, source=source, operator=ivan, by_owner=True)
    ContactFactory(source=source)
    OperatorSourceWeightFactory(source__code="site-form", operator=maria)

    admin_browser.get(f"{live_server.url}/admin/distribution/source/distribution/")
    card = WebDriverWait(admin_browser, 10).until(
        expected_conditions.visibility_of_element_located((By.ID, "source-telegram-bot"))
    )

    cells = [
        [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
        for row in card.find_elements(By.CSS_SELECTOR, ".dist-table tbody tr")
    ]
    assert [row[0].splitlines()[0] for row in cells] == ["Ivan Petrov", "Maria Sokolova"]
    assert cells[1][3:6] == ["50.0%", "50.0%", "+0.0"]
    assert "on this source since" in cells[1][0]
    figure = admin_browser.find_element(By.ID, "chart-telegram-bot")
    chart = figure.find_element(By.CSS_SELECTOR, "svg.chart-bars")
    assert chart.size["width"] > 1000 and chart.size["height"] == 120
    assert "27 in all, at most 2 in an hour" in figure.text
    figure.find_element(By.CSS_SELECTOR, ".chart-numbers summary").click()
    numbers = [row.text for row in figure.find_elements(By.CSS_SELECTOR, ".chart-numbers tbody tr")]
    assert len(numbers) == 18 + 4 + 1  # Ivan alone, then the two of them, the returning
    assert numbers[-2].endswith(" 2 0") and numbers[-1].endswith(" 0 1")
    assert figure.find_element(By.CSS_SELECTOR, ".chart-numbers tfoot").text == "In all 26 1"
    quiet = admin_browser.find_element(By.ID, "chart-site-form")
    assert "No contact was given to an operator in this period." in quiet.text

    desktop, phone = screenshots(admin_browser, "admin-distribution")

    assert desktop.stat().st_size > 10_000 and phone.stat().st_size > 10_000
    admin_browser.set_window_size(400, 1000)
    for element in admin_browser.find_elements(
        By.CSS_SELECTOR, "input[type=date], svg.chart-bars, .dist-table tbody tr"
    ):
        assert element.rect["x"] + element.rect["width"] <= 400, element.tag_name
