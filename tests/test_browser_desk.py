"""The operator's desk and the supervisors' board in a real headless Chromium.

Both pages refresh a live part of themselves with htmx every 5 seconds, so what the
database gets while a page is open must show up there without a reload. Each test
leaves screenshots under artifacts/ at 1400 and 400 px wide, and at 400 px nothing may
stick out sideways. Skipped only when chromium and chromedriver are not installed.
"""

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from django.utils import timezone
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import Select, WebDriverWait

from distribution import operators
from distribution.contacts import register_contact
from distribution.models import Contact, Operator
from distribution.offers import accept_offer, decline_offer
from leads.identity import build_identity
from tests.conftest import ARTIFACTS, CHROMEDRIVER, CHROMIUM
from tests.factories import (
    ContactFactory,
    LeadFactory,
    OperatorFactory,
    OperatorSourceWeightFactory,
    SourceFactory,
    StaffUserFactory,
    UserFactory,
)

# Two polls of the live part (every 5 s) and some slack.
LIVE_TIMEOUT = 15
DESKTOP_WIDTH = 1400
PHONE_WIDTH = 400

T = TypeVar("T")

pytestmark = [
    pytest.mark.skipif(
        not (CHROMIUM and CHROMEDRIVER), reason="chromium and chromedriver are not installed"
    ),
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def telegram():
    return SourceFactory(code="telegram-bot", name="Telegram bot")


@pytest.fixture
def ivan(telegram) -> Operator:
    """An operator with a desk login, on the Telegram bot, room for 3."""
    operator = OperatorFactory(name="Ivan", user=UserFactory(username="ivan"), max_open_contacts=3)
    OperatorSourceWeightFactory(operator=operator, source=telegram)
    return operator


def screenshots(browser: WebDriver, name: str) -> list[Path]:
    """The whole page at desktop width, then at a phone's, where it must not scroll sideways."""
    ARTIFACTS.mkdir(exist_ok=True)
    paths = []
    for width in (DESKTOP_WIDTH, PHONE_WIDTH):
        browser.set_window_size(width, 600)
        # The window's own bars take part of its height: the viewport is what is left.
        bars = 600 - browser.execute_script("return window.innerHeight")
        # As tall as the content at this width, so no vertical scrollbar eats the width.
        height = browser.execute_script("return document.documentElement.scrollHeight")
        browser.set_window_size(width, max(600, min(height, 3000)) + bars)
        assert browser.execute_script("return window.innerWidth") == width
        path = ARTIFACTS / f"{name}-{width}.png"
        assert browser.save_screenshot(str(path))
        paths.append(path)
        # Checked after the shot is taken, so that a failure leaves the picture of it.
        overflow = browser.execute_script("return document.documentElement.scrollWidth")
        assert overflow <= width, f"{path.name}: the page is {overflow} px wide"
    browser.set_window_size(DESKTOP_WIDTH, 1000)
    return paths


def wait_for(
    browser: WebDriver,
    condition: Callable[[WebDriver], object],
    timeout: float = 10,
    message: str = "",
):
    """Until `condition` holds; an element the live part replaced meanwhile is looked up anew."""
    return WebDriverWait(
        browser, timeout, ignored_exceptions=[StaleElementReferenceException]
    ).until(condition, message)


def text_of(css: str) -> Callable[[WebDriver], str]:
    return lambda browser: browser.find_element(By.CSS_SELECTOR, css).text


# How Chromium sometimes reports a node whose document is gone (a poll swapped the live
# part, or the page was navigated away from), instead of a stale element.
DETACHED = "does not belong to the document"


def gone(element: WebElement) -> bool:
    """Whether the element has left the page, however Chromium says so."""
    try:
        element.is_enabled()
    except StaleElementReferenceException:
        return True
    except WebDriverException as error:
        if DETACHED not in error.msg:
            raise
        return True
    return False


def click_through(browser: WebDriver, css: str) -> None:
    """Click what leads to another page, and wait for that page, so nothing is read off the
    old one; the element is looked up again if a poll swapped the live part under it."""
    old_page = browser.find_element(By.TAG_NAME, "html")

    def clicked(browser: WebDriver) -> bool:
        try:
            browser.find_element(By.CSS_SELECTOR, css).click()
        except WebDriverException as error:
            if DETACHED not in error.msg:
                raise
            return gone(old_page)
        return True

    wait_for(browser, clicked)
    wait_for(browser, lambda browser: gone(old_page))


def settled(browser: WebDriver, read: Callable[[WebDriver], T]) -> T:
    """`read(browser)`, read again if a poll replaced the live part while it ran (the
    live part is redrawn at least once a minute, for its ages)."""
    for _ in range(3):
        try:
            return read(browser)
        except StaleElementReferenceException:
            continue
    return read(browser)


def message(browser: WebDriver) -> str:
    return wait_for(browser, text_of("ul.messages li"))


def sign_in_to_desk(browser: WebDriver, live_server, username: str) -> None:
    browser.get(f"{live_server.url}/desk/login/")
    browser.find_element(By.NAME, "username").send_keys(username)
    browser.find_element(By.NAME, "password").send_keys("user-password")
    browser.find_element(By.CSS_SELECTOR, "button[type=submit].primary").click()
    wait_for(browser, expected_conditions.title_contains("· Desk"))


def test_operator_sees_a_new_contact_arrive_closes_it_and_goes_away(
    browser: WebDriver, live_server, ivan: Operator, telegram
):
    sign_in_to_desk(browser, live_server, "ivan")
    assert browser.title == "Ivan · Desk"
    assert "No open contacts" in settled(browser, text_of("#live"))
    screenshots(browser, "desk-empty")

    # Registered while the page is open, the way a bot's request is: the engine picks Ivan.
    contact = register_contact(
        source=telegram,
        identity=build_identity(phone="+79161234567", name="Anna Lead"),
        payload={"text": "Please call me back, it is <b>bold</b> of me to ask."},
    )
    assert contact.operator == ivan

    wait_for(
        browser,
        expected_conditions.visibility_of_element_located((By.ID, f"contact-{contact.pk}")),
        timeout=LIVE_TIMEOUT,
    )

    def read_card(browser: WebDriver) -> dict:
        card = browser.find_element(By.ID, f"contact-{contact.pk}")
        text = card.find_element(By.CSS_SELECTOR, "p.message")
        return {
            "classes": card.get_attribute("class").split(),
            "lead": card.find_element(By.CSS_SELECTOR, ".lead-name").text,
            "message": text.text,
            "tags in message": [tag.tag_name for tag in text.find_elements(By.XPATH, ".//*")],
            "badge": browser.find_element(By.CSS_SELECTOR, ".list-head .badge-new").text,
        }

    card = settled(browser, read_card)
    assert "is-new" in card["classes"]
    assert card["lead"] == "Anna Lead"
    assert card["badge"] == "1 new since you last looked"
    # What the lead wrote is text, never markup.
    assert "<b>bold</b>" in card["message"]
    assert card["tags in message"] == []
    # The tab says so too, for an operator looking at another tab.
    wait_for(
        browser,
        lambda browser: browser.title.startswith("(1) "),
        message="the document title never got the count of new contacts",
    )
    assert browser.title == "(1) Ivan · Desk"
    screenshots(browser, "desk-new-contact")

    click_through(browser, f"#contact-{contact.pk} .actions button.primary")

    assert message(browser) == f"Contact #{contact.pk} closed."
    assert browser.find_elements(By.ID, f"contact-{contact.pk}") == []
    contact.refresh_from_db()
    assert contact.status == Contact.Status.CLOSED
    assert contact.closed_at is not None

    click_through(browser, "button[name=status][value=away]")

    assert message(browser) == "You are away."
    pressed = settled(
        browser,
        lambda browser: {
            button.get_attribute("value"): button.get_attribute("aria-pressed")
            for button in browser.find_elements(By.CSS_SELECTOR, "button[name=status]")
        },
    )
    assert pressed == {"available": "false", "away": "true", "offline": "false"}
    ivan.refresh_from_db()
    assert ivan.status == Operator.Status.AWAY
    screenshots(browser, "desk-away")


def test_staff_follow_the_board_from_the_admin_and_watch_a_queue_grow(
    browser: WebDriver, live_server, telegram
):
    oleg = OperatorFactory(name="Oleg", max_open_contacts=3)
    OperatorSourceWeightFactory(operator=oleg, source=telegram)
    ContactFactory(open=True, operator=oleg, source=telegram)
    # No operator works this source: what it gets waits.
    web_form = SourceFactory(code="web-form", name="Web form")
    ContactFactory(source=web_form)
    StaffUserFactory(username="supervisor")

    browser.get(f"{live_server.url}/admin/login/")
    browser.find_element(By.NAME, "username").send_keys("supervisor")
    browser.find_element(By.NAME, "password").send_keys("staff-password")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    wait_for(browser, expected_conditions.title_contains("Administration | Leads CRM"))
    browser.find_element(By.LINK_TEXT, "Board").click()

    wait_for(
        browser, expected_conditions.visibility_of_element_located((By.ID, f"operator-{oleg.pk}"))
    )
    assert browser.title.startswith("Board")
    assert settled(browser, text_of(f"#operator-{oleg.pk} .pill")) == "Available"
    assert settled(browser, text_of(f"#operator-{oleg.pk} .meter-text")) == "1 / 3"
    assert settled(browser, text_of("#source-web-form .waiting-count")) == "1"
    screenshots(browser, "board")

    contact = register_contact(
        source=web_form,
        identity=build_identity(email="boris@example.com", name="Boris Lead"),
        payload={"text": "Is anyone there?"},
    )
    assert contact.status == Contact.Status.WAITING

    # The page is not reloaded: the live part's poll brings the new count.
    wait_for(
        browser,
        lambda browser: text_of("#source-web-form .waiting-count")(browser) == "2",
        timeout=LIVE_TIMEOUT,
    )
    queue = settled(
        browser,
        lambda browser: browser.find_element(By.ID, "source-web-form").get_attribute("class"),
    )
    assert queue == "has-waiting"
    screenshots(browser, "board-queue-grew")


def test_operator_reads_the_leads_history_from_every_source(
    browser: WebDriver, live_server, ivan: Operator, telegram
):
    lead = LeadFactory(name="Anna Lead", phone="+79161234567")
    ContactFactory(
        closed=True,
        lead=lead,
        source=SourceFactory(code="web-form", name="Web form"),
        operator=OperatorFactory(name="Maria"),
        payload={"text": "I would like a quote for 40 chairs."},
    )
    own = ContactFactory(
        open=True,
        lead=lead,
        source=telegram,
        operator=ivan,
        payload={"text": "Any news about the chairs?", "order": "A-1042"},
    )
    # Another lead's contact stays out of this lead's history.
    ContactFactory(closed=True, source=telegram, operator=ivan, payload={"text": "Unrelated"})

    sign_in_to_desk(browser, live_server, "ivan")
    click_through(browser, f"#contact-{own.pk} .lead-name")
    wait_for(browser, expected_conditions.title_contains("Anna Lead"))

    assert browser.find_element(By.TAG_NAME, "h1").text == "Anna Lead"
    assert browser.find_element(By.CSS_SELECTOR, ".contact-detail p.message").text == (
        "Any news about the chairs?"
    )
    rows = browser.find_elements(By.CSS_SELECTOR, ".history tbody tr")
    seen = [
        {
            label: row.find_element(By.CSS_SELECTOR, f"td[data-label={label}]").text
            for label in ("Source", "Status", "Operator", "Message")
        }
        for row in rows
    ]
    # Newest first: Ivan's open one came after Maria's closed one.
    assert seen == [
        {
            "Source": "Telegram bot",
            "Status": "Open",
            "Operator": "you",
            "Message": "Any news about the chairs?",
        },
        {
            "Source": "Web form",
            "Status": "Closed",
            "Operator": "Maria",
            "Message": "I would like a quote for 40 chairs.",
        },
    ]
    assert rows[0].get_attribute("class") == "current"
    screenshots(browser, "desk-lead-history")


def test_operator_sees_an_offer_arrive_with_its_time_left_and_accepts_it(
    browser: WebDriver, live_server, ivan: Operator, telegram
):
    telegram.accept_timeout_seconds = 120
    telegram.save()
    sign_in_to_desk(browser, live_server, "ivan")
    open_one = ContactFactory(
        open=True, operator=ivan, source=telegram, lead=LeadFactory(name="Vera Lead")
    )

    offer = register_contact(
        source=telegram,
        identity=build_identity(phone="+79161234568", name="Oleg Lead"),
        payload={"text": "Do you deliver to Kazan?"},
    )
    assert offer.status == Contact.Status.OFFERED

    wait_for(
        browser,
        expected_conditions.visibility_of_element_located((By.ID, f"contact-{offer.pk}")),
        timeout=LIVE_TIMEOUT,
    )
    card = settled(browser, text_of(f"#contact-{offer.pk}"))
    assert "Oleg Lead" in card and "seconds left" in card
    headings = settled(
        browser, lambda browser: [h.text for h in browser.find_elements(By.TAG_NAME, "h2")]
    )
    assert headings[0].startswith("Offered to you")
    screenshots(browser, "desk-offer")

    click_through(browser, f"#contact-{offer.pk} .actions button.primary")

    assert message(browser) == f"Contact #{offer.pk} is yours."
    offer.refresh_from_db()
    assert offer.status == Contact.Status.OPEN
    assert browser.find_elements(By.CSS_SELECTOR, ".offers") == []
    assert browser.find_element(By.ID, f"contact-{open_one.pk}")


def test_the_board_shows_flagged_contacts_and_why_the_service_set_someone_away(
    browser: WebDriver, live_server, telegram
):
    oleg = OperatorFactory(name="Oleg", max_open_contacts=3)
    OperatorSourceWeightFactory(operator=oleg, source=telegram)
    operators.set_operator_status(operator=oleg, status="away", reason="missed_offers")
    flagged = ContactFactory(source=telegram, lead=LeadFactory(name="Pavel Lead"))
    Contact.objects.filter(pk=flagged.pk).update(flagged_at=flagged.created_at)
    StaffUserFactory(username="supervisor")
    browser.get(f"{live_server.url}/admin/login/?next=/desk/board/")
    browser.find_element(By.NAME, "username").send_keys("supervisor")
    browser.find_element(By.NAME, "password").send_keys("staff-password")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()

    wait_for(
        browser, expected_conditions.visibility_of_element_located((By.ID, f"flagged-{flagged.pk}"))
    )
    assert "Pavel Lead" in settled(browser, text_of(f"#flagged-{flagged.pk}"))
    assert "offers went unanswered" in settled(browser, text_of(f"#operator-{oleg.pk}"))
    screenshots(browser, "board-flagged")


def test_operator_reads_the_steps_of_a_contact_passed_on_to_it(
    browser: WebDriver, live_server, ivan: Operator, telegram
):
    telegram.accept_timeout_seconds = 120
    telegram.strategy = "round_robin"
    telegram.save()
    maria = OperatorFactory(name="Maria", user=UserFactory(username="maria"))
    OperatorSourceWeightFactory(operator=maria, source=telegram)
    contact = register_contact(
        source=telegram,
        identity=build_identity(phone="+79161234567", name="Anna Lead"),
        payload={"text": "Do you deliver to Kazan?"},
    )
    assert contact.operator == ivan  # round robin goes in operator-id order
    decline_offer(contact=contact, by_operator=ivan, reason="Wrong city, I only do Moscow")
    accept_offer(contact=contact, by_operator=maria)

    sign_in_to_desk(browser, live_server, "maria")
    click_through(browser, f"#contact-{contact.pk} .lead-name")
    wait_for(browser, expected_conditions.title_contains("Anna Lead"))

    rows = browser.find_elements(By.CSS_SELECTOR, ".timeline tbody tr")
    seen = [
        {
            label: row.find_element(By.CSS_SELECTOR, f"td[data-label={label}]").text
            for label in ("Step", "Status", "Operator")
        }
        for row in rows
    ]
    assert seen == [
        {"Step": "Offered", "Status": "Offered, not yet accepted", "Operator": "another operator"},
        {"Step": "Declined", "Status": "Waiting for an operator", "Operator": "another operator"},
        {"Step": "Offered", "Status": "Offered, not yet accepted", "Operator": "you"},
        {"Step": "Accepted", "Status": "Open", "Operator": "you"},
    ]
    page = browser.find_element(By.TAG_NAME, "main").text
    # Another operator's name, its reason and the engine's decision stay off the desk.
    assert "Ivan" not in page and "Moscow" not in page and "round_robin" not in page
    screenshots(browser, "desk-contact-timeline")


def test_staff_give_a_waiting_contact_to_someone_who_can_take_it_and_close_another(
    browser: WebDriver, live_server, telegram
):
    """The queue page: sources by priority, why each contact waits, who could take it,
    and the two actions, at a desktop's width and a phone's."""
    telegram.sticky, telegram.priority = "require", 1
    telegram.save()
    ivan = OperatorFactory(name="Ivan Petrov", max_open_contacts=1)
    OperatorSourceWeightFactory(operator=ivan, source=telegram)
    anna = build_identity(phone="+79161234567", name="Anna Lead")
    register_contact(source=telegram, identity=anna)  # Ivan's: Anna is his lead now
    maria = OperatorFactory(name="Maria", max_open_contacts=5)
    OperatorSourceWeightFactory(operator=maria, source=telegram)
    oleg = OperatorFactory(name="Oleg", status=Operator.Status.AWAY)
    OperatorSourceWeightFactory(operator=oleg, source=telegram)
    # Anna writes again: the source waits for Ivan, who is full, though Maria has room.
    sticky = register_contact(source=telegram, identity=anna, payload={"text": "Hello again"})
    assert sticky.waits_for == ivan
    # Nobody works the web form: its contact waits for anyone at all.
    lonely = register_contact(
        source=SourceFactory(code="web-form", name="Web form"),
        identity=build_identity(email="konstantin.konstantinopolsky@example.com"),
        payload={"text": "Prices for 40 chairs, delivered to Kazan, " * 6},
    )
    SourceFactory(code="quiet-bot", name="Quiet bot")
    StaffUserFactory(username="supervisor")

    browser.get(f"{live_server.url}/admin/login/")
    browser.find_element(By.NAME, "username").send_keys("supervisor")
    browser.find_element(By.NAME, "password").send_keys("staff-password")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    wait_for(browser, expected_conditions.title_contains("Administration | Leads CRM"))
    click_through(browser, "#distribution-module a[href='/desk/queue/']")

    assert browser.title == "Waiting queue · Leads CRM"
    assert browser.find_element(By.ID, "queue-total").text == "2 contacts waiting"
    sections = browser.find_elements(By.CSS_SELECTOR, "section.queue-source")
    assert [section.get_attribute("id") for section in sections] == [
        "queue-telegram-bot",  # priority 1
        "queue-quiet-bot",
        "queue-web-form",
    ]
    assert text_of("#queue-quiet-bot")(browser).endswith(
        "Nobody is waiting. A contact queues here only when none of this source's operators "
        "can take it."
    )
    card = browser.find_element(By.ID, f"waiting-{sticky.pk}")
    assert card.find_element(By.CSS_SELECTOR, ".waits-for").text.startswith(
        "Waits for Ivan Petrov, the lead's own operator, until "
    )
    assert card.find_element(By.CSS_SELECTOR, ".reasons").text == (
        "The lead's own operator: Ivan Petrov is at the limit (1 / 1 open)."
    )
    choices = [
        (option.text, option.is_enabled())
        for option in card.find_elements(By.CSS_SELECTOR, "select[name=operator] option")
    ]
    assert choices == [
        ("Assign to…", True),
        ("Maria — 0 / 5", True),
        ("Ivan Petrov — no room (1 / 1)", False),
        ("Oleg — away (0 / 10)", False),
    ]
    assert browser.find_element(By.CSS_SELECTOR, f"#waiting-{lonely.pk} .reasons").text == (
        "No operator served the source."
    )
    screenshots(browser, "queue")

    Select(card.find_element(By.NAME, "operator")).select_by_visible_text("Maria — 0 / 5")
    click_through(browser, f"#waiting-{sticky.pk} button.primary")

    assert message(browser) == f"Contact #{sticky.pk} assigned to Maria."
    assert browser.find_elements(By.ID, f"waiting-{sticky.pk}") == []
    assert text_of("#queue-telegram-bot .waiting-count")(browser) == "0"
    sticky.refresh_from_db()
    assert (sticky.status, sticky.operator) == (Contact.Status.OPEN, maria)

    click_through(browser, f"#waiting-{lonely.pk} .actions form:last-child button")

    assert message(browser) == f"Contact #{lonely.pk} closed."
    assert browser.find_element(By.ID, "queue-total").text == "Nobody is waiting."
    lonely.refresh_from_db()
    assert lonely.status == Contact.Status.CLOSED
    screenshots(browser, "queue-empty")


def test_operator_switches_the_desk_to_russian_and_it_stays_so(
    browser: WebDriver, live_server, ivan: Operator, telegram
):
    contact = ContactFactory(
        open=True,
        operator=ivan,
        source=telegram,
        lead=LeadFactory(name="Анна"),
        payload={"text": "Перезвоните"},
    )
    Contact.objects.filter(pk=contact.pk).update(created_at=timezone.now() - timedelta(minutes=21))
    sign_in_to_desk(browser, live_server, "ivan")
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en"

    click_through(browser, ".language-switch button[value=ru]")

    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "ru"
    assert browser.title == "Ivan · Рабочее место"
    card = settled(browser, text_of(f"#contact-{contact.pk}"))
    assert "Анна" in card
    assert "21 минуту назад" in card  # the no-break space, as WebDriver reads it
    assert "Закрыть" in card
    screenshots(browser, "desk-russian")

    # The choice outlives the page: the next one, and the service's own messages, are Russian.
    click_through(browser, "button[name=status][value=away]")
    assert message(browser) == "У вас перерыв."
    assert browser.find_element(By.CSS_SELECTOR, ".language-switch button").text == "English"
