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
    WebDriverWait(browser, 10).until(expected_conditions.title_contains("Site administration"))
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
