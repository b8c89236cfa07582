"""Operators' desk logins: creating one, and the one-time link that sets its password.

A login is a plain Django user, never staff: it may use the desk and the operator API
and nothing else. Staff never see or send a password: the link (Django's password
reset token, valid for PASSWORD_RESET_TIMEOUT and spent once the password is set) goes
to the operator, who chooses one.
"""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.auth.tokens import default_token_generator
from django.db import transaction
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django.utils.text import slugify
from django.utils.translation import gettext

from core.errors import Conflict
from distribution.engine import lock_operators
from distribution.models import Operator


@transaction.atomic
def ensure_operator_login(*, operator: Operator, username: str | None = None) -> AbstractBaseUser:
    """The operator's login, created (without a usable password) if it has none yet.

    `username` defaults to one made from the operator's name; a name that is taken gets
    a number. Naming a username for an operator that already has a different one is a
    Conflict.
    """
    lock_operators(operator_ids=[operator.pk])
    locked = Operator.objects.select_related("user").get(pk=operator.pk)
    if locked.user is not None:
        if username and locked.user.get_username() != username:
            raise Conflict(
                gettext("%(name)s already signs in as %(username)s.")
                % {"name": locked.name, "username": repr(locked.user.get_username())}
            )
        return locked.user
    users = get_user_model()
    if username and users.objects.filter(username=username).exists():
        raise Conflict(
            gettext("The username %(username)s is taken.") % {"username": repr(username)}
        )
    user = users(username=username or _free_username(locked))
    user.set_unusable_password()
    user.save()
    locked.user = user
    locked.save(update_fields=["user"])
    return user


def _free_username(operator: Operator) -> str:
    base = slugify(operator.name, allow_unicode=True)[:140] or f"operator-{operator.pk}"
    taken = set(
        get_user_model()
        .objects.filter(username__startswith=base)
        .values_list("username", flat=True)
    )
    candidates = (base, *(f"{base}-{number}" for number in range(2, len(taken) + 2)))
    return next(candidate for candidate in candidates if candidate not in taken)


def set_password_path(user: AbstractBaseUser) -> str:
    """The desk's one-time set-password page for `user` (a path: the caller adds the host)."""
    return reverse(
        "desk:set-password",
        kwargs={
            "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
            "token": default_token_generator.make_token(user),
        },
    )
