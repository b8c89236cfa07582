"""Operators' desk logins: the command, the admin action, the one-time link, the demo's."""

import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from distribution.models import Operator
from tests.factories import OperatorFactory, StaffUserFactory, UserFactory

pytestmark = pytest.mark.django_db


def create_login(*args: str) -> str:
    out = StringIO()
    call_command("create_operator_login", *args, stdout=out)
    return out.getvalue()


def link_in(text: str) -> str:
    """The path of the set-password link printed or shown."""
    return re.search(r"https?://[^/\s]+(/desk/password/[^\s\"<]+)", text).group(1)


def sign_in(client, username: str, password: str):
    """Through the desk's login form, which lands an operator on the desk."""
    return client.post(
        reverse("desk:login"), {"username": username, "password": password}, follow=True
    )


def test_the_command_gives_an_operator_a_login_that_is_not_staff_and_prints_a_link():
    operator = OperatorFactory(name="Ivan Petrov")

    output = create_login("Ivan Petrov")

    operator.refresh_from_db()
    assert operator.user.get_username() == "ivan-petrov"
    assert not operator.user.is_staff and not operator.user.has_usable_password()
    assert "Ivan Petrov signs in to the desk as 'ivan-petrov'." in output
    assert output.strip().splitlines()[-1].startswith("http://127.0.0.1:8000/desk/password/")


def test_the_link_sets_the_password_signs_the_operator_in_and_works_once(client):
    operator = OperatorFactory(name="Ivan")
    link = link_in(create_login(str(operator.pk)))

    form = client.get(link, follow=True)
    assert form.context["validlink"]
    response = client.post(
        form.request["PATH_INFO"],
        {"new_password1": "a-long-new-secret-7", "new_password2": "a-long-new-secret-7"},
        follow=True,
    )

    assert response.request["PATH_INFO"] == reverse("desk:desk")
    assert response.context["operator"] == operator
    client.logout()
    assert sign_in(client, "ivan", "a-long-new-secret-7").context["operator"] == operator
    assert not client.get(link, follow=True).context["validlink"]


def test_the_command_gives_a_fresh_link_to_an_operator_that_has_a_login():
    operator = OperatorFactory(user=UserFactory(username="maria"))

    output = create_login(str(operator.pk), "--username", "maria")

    assert "signs in to the desk as 'maria'" in output
    assert Operator.objects.get(pk=operator.pk).user.get_username() == "maria"


def test_a_second_operator_of_the_same_name_gets_a_numbered_username():
    first, second = OperatorFactory(name="Anna"), OperatorFactory(name="Anna")

    create_login(str(first.pk))
    create_login(str(second.pk))

    names = [Operator.objects.get(pk=op.pk).user.get_username() for op in (first, second)]
    assert names == ["anna", "anna-2"]


def test_the_command_refuses_an_unknown_operator_an_ambiguous_name_and_a_taken_username():
    OperatorFactory(name="Oleg")
    OperatorFactory(name="Oleg")
    pavel = OperatorFactory(name="Pavel")
    UserFactory(username="taken")

    with pytest.raises(CommandError, match="No operator has the id or name 'Nobody'"):
        create_login("Nobody")
    with pytest.raises(CommandError, match="Several operators are named 'Oleg'"):
        create_login("Oleg")
    with pytest.raises(CommandError, match="The username 'taken' is taken"):
        create_login("Pavel", "--username", "taken")
    pavel.refresh_from_db()
    assert pavel.user is None


def test_the_admin_action_gives_desk_logins_and_shows_each_link(client):
    client.force_login(StaffUserFactory(is_superuser=True))
    operators = [OperatorFactory(name="Ivan"), OperatorFactory(name="Maria")]

    response = client.post(
        reverse("admin:distribution_operator_changelist"),
        {"action": "give_desk_login", "_selected_action": [op.pk for op in operators]},
        follow=True,
    )

    page = response.content.decode()
    for operator in operators:
        operator.refresh_from_db()
        assert f"{operator.name} signs in to the desk as <b>{operator.user.username}</b>" in page
    assert page.count("/desk/password/") == 4  # each link is the href and the text


def test_the_demo_prints_an_operator_login_that_opens_the_desk(client):
    out = StringIO()
    call_command("demo", stdout=out)

    assert "login ivan / ivan-password  (operator Ivan Petrov)" in out.getvalue()
    assert sign_in(client, "ivan", "ivan-password").context["operator"].name == "Ivan Petrov"
