"""The operator's desk and the supervisors' board: thin views over distribution's flows.

Both pages refresh a live part of themselves every few seconds with htmx. The live part
carries a fingerprint of what it shows; while that is unchanged the server answers 204,
htmx swaps nothing, and a selection or focus in the page survives the refresh.
"""

import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render, resolve_url
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect

from core.errors import Conflict
from desk.board import assignment_reason, read_board
from desk.queue import read_queue
from desk.timeline import operator_timeline
from distribution import contacts, offers, operators, queries
from distribution.api.authentication import signed_in_operator
from distribution.models import Contact, OfferMiss, Operator, OperatorStatusChange

# How often the live parts of the desk and the board ask for news.
REFRESH_SECONDS = 5
# The session remembers when the operator last looked, to count what came since.
SEEN_AT = "desk_seen_at"


def _signed_in(request: HttpRequest) -> HttpResponse | None:
    """The way to the login page for an anonymous request; None when signed in. A live
    part's poll after the session ended sends the whole page there."""
    if request.user.is_authenticated:
        return None
    if request.htmx:
        return HttpResponseClientRedirect(resolve_url(settings.LOGIN_URL))
    return redirect_to_login(request.get_full_path())


def operator_view(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """For an operator's login: the view gets the operator, and times show in its zone.
    Staff without an operator's login are sent to the board; other users get 403."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        if response := _signed_in(request):
            return response
        operator = signed_in_operator(request)
        if operator is None:
            if request.user.is_staff:
                return redirect("desk:board")
            raise PermissionDenied(_("The desk is for operators."))
        with timezone.override(operator.time_zone):
            return view(request, operator, *args, **kwargs)

    return wrapped


def staff_view(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        if response := _signed_in(request):
            return response
        if not request.user.is_staff:
            raise PermissionDenied(_("The board is for staff."))
        return view(request, *args, **kwargs)

    return wrapped


def home(request: HttpRequest) -> HttpResponse:
    """Where `/` leads: the desk for operators, the admin for staff, else a few links."""
    if request.user.is_authenticated:
        if request.user.is_staff:
            return redirect("admin:index")
        if signed_in_operator(request) is not None:
            return redirect("desk:desk")
    return render(request, "desk/home.html")


@require_GET
@operator_view
def desk(request: HttpRequest, operator: Operator) -> HttpResponse:
    """The operator's page: loading it is a look, so what came before is no longer new."""
    request.session[SEEN_AT] = timezone.now().isoformat()
    operators.note_desk_seen(operator=operator)
    return render(request, "desk/desk.html", _desk_context(request, operator))


@require_GET
@operator_view
def desk_live(request: HttpRequest, operator: Operator) -> HttpResponse:
    """The desk's poll, and its heartbeat: while it comes, the operator is at the desk."""
    operators.note_desk_seen(operator=operator)
    return _live(request, "desk/_desk_live.html", _desk_context(request, operator))


@require_POST
@operator_view
def mark_seen(request: HttpRequest, operator: Operator) -> HttpResponse:
    request.session[SEEN_AT] = timezone.now().isoformat()
    return redirect("desk:desk")


class StatusForm(forms.Form):
    status = forms.ChoiceField(choices=Operator.Status.choices)


@require_POST
@operator_view
def set_status(request: HttpRequest, operator: Operator) -> HttpResponse:
    form = StatusForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Choose available, away or offline."))
        return redirect("desk:desk")
    operator = operators.set_operator_status(operator=operator, status=form.cleaned_data["status"])
    messages.success(request, _status_set(operator.status))
    return redirect("desk:desk")


def _status_set(status: str) -> str:
    """What the desk says after the operator chose a status: a whole sentence for each."""
    if status == Operator.Status.AWAY:
        return _("You are away.")
    if status == Operator.Status.OFFLINE:
        return _("You are offline.")
    return _("You are available.")


@require_GET
@operator_view
def contact(request: HttpRequest, operator: Operator, contact_id: int) -> HttpResponse:
    """One of the operator's contacts with its steps so far, and every contact of its
    lead, from every source."""
    contact = get_object_or_404(
        Contact.objects.select_related("lead", "source"), pk=contact_id, operator=operator
    )
    history = (
        Contact.objects.filter(lead=contact.lead)
        .select_related("source", "operator")
        .order_by("-created_at", "-id")
    )
    details = {key: value for key, value in contact.payload.items() if key != "text"}
    steps = operator_timeline(contact, operator)
    return render(
        request,
        "desk/contact.html",
        {
            "operator": operator,
            "contact": contact,
            "steps": steps,
            # A column for the operator's own reasons only where there is one to show.
            "step_notes": any(step.note for step in steps),
            "history": history,
            "details": details,
        },
    )


@require_POST
@operator_view
def close(request: HttpRequest, operator: Operator, contact_id: int) -> HttpResponse:
    contact = get_object_or_404(Contact, pk=contact_id, operator=operator)
    try:
        contacts.close_contact(contact=contact, by_operator=operator)
    except Conflict as refusal:
        messages.error(request, _("Not closed: %(reason)s") % {"reason": refusal})
    else:
        messages.success(request, _("Contact #%(id)d closed.") % {"id": contact.pk})
    return redirect("desk:desk")


@require_POST
@operator_view
def accept(request: HttpRequest, operator: Operator, contact_id: int) -> HttpResponse:
    contact = get_object_or_404(Contact, pk=contact_id, operator=operator)
    try:
        offers.accept_offer(contact=contact, by_operator=operator)
    except Conflict as refusal:
        messages.error(request, _("Not accepted: %(reason)s") % {"reason": refusal})
    else:
        messages.success(request, _("Contact #%(id)d is yours.") % {"id": contact.pk})
    return redirect("desk:desk")


class DeclineForm(forms.Form):
    reason = forms.CharField(
        max_length=OfferMiss._meta.get_field("reason").max_length, required=False, strip=True
    )


@require_POST
@operator_view
def decline(request: HttpRequest, operator: Operator, contact_id: int) -> HttpResponse:
    """Pass on an offer: it goes to someone else (never back to this operator by the rules)."""
    contact = get_object_or_404(Contact, pk=contact_id, operator=operator)
    form = DeclineForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    try:
        offers.decline_offer(contact=contact, by_operator=operator, reason=reason)
    except Conflict as refusal:
        messages.error(request, _("Not declined: %(reason)s") % {"reason": refusal})
    else:
        messages.success(request, _("Contact #%(id)d declined.") % {"id": contact.pk})
    return redirect("desk:desk")


@require_POST
@operator_view
def hand_back(request: HttpRequest, operator: Operator, contact_id: int) -> HttpResponse:
    """Give the contact back: the source's rule picks someone else, or says why nobody."""
    contact = get_object_or_404(Contact, pk=contact_id, operator=operator)
    try:
        contact = contacts.reassign_contact(contact=contact, by_operator=operator)
    except Conflict as refusal:
        messages.error(request, _("Not handed back: %(reason)s") % {"reason": refusal})
        return redirect("desk:contact", contact_id=contact.pk)
    messages.success(
        request,
        _("Contact #%(id)d handed back; the source's rule gave it to %(operator)s.")
        % {"id": contact.pk, "operator": contact.operator.name},
    )
    return redirect("desk:desk")


@require_GET
@staff_view
def board(request: HttpRequest) -> HttpResponse:
    return render(request, "desk/board.html", _board_context())


@require_GET
@staff_view
def board_live(request: HttpRequest) -> HttpResponse:
    return _live(request, "desk/_board_live.html", _board_context())


def _desk_context(request: HttpRequest, operator: Operator) -> dict:
    now = timezone.now()
    [state] = queries.operator_states(source_id=None, operator_ids=[operator.pk], now=now)
    seen_at = parse_datetime(request.session.get(SEEN_AT, "")) or now
    held = (
        Contact.objects.filter(operator=operator, status__in=Contact.LOAD_STATUSES)
        .select_related("lead", "source")
        .order_by("created_at", "id")
    )
    offers, open_contacts = [], []
    for contact in held:
        if contact.status == Contact.Status.OFFERED:
            offers.append(Offer(contact, seconds_left=_seconds_left(contact, now)))
        else:
            open_contacts.append(OpenContact(contact, is_new=contact.assigned_at > seen_at))
    set_away = _set_away_by_service(operator) if state.status != Operator.Status.AVAILABLE else None
    shown = (
        state,
        [(row.contact.pk, row.is_new) for row in open_contacts],
        # The time left shows in steps of a refresh.
        [(offer.contact.pk, offer.seconds_left // REFRESH_SECONDS) for offer in offers],
        set_away,
    )
    return {
        "operator": operator,
        "state": state,
        "offers": offers,
        "contacts": open_contacts,
        "new": sum(row.is_new for row in open_contacts),
        "set_away": set_away,
        "statuses": Operator.Status.choices,
        "now": now,
        "refresh_seconds": REFRESH_SECONDS,
        "version": _version(shown, now),
    }


@dataclass(frozen=True)
class Offer:
    contact: Contact
    seconds_left: int  # until the offer expires (0: it is about to go)


def _seconds_left(contact: Contact, now: datetime) -> int:
    return max(0, int((contact.offer_expires_at - now).total_seconds()))


def _set_away_by_service(operator: Operator) -> OperatorStatusChange | None:
    """The last status change, if the service made it (why the operator is away)."""
    last = operator.status_changes.order_by("-changed_at", "-id").first()
    return last if last is not None and last.reason else None


@dataclass(frozen=True)
class OpenContact:
    contact: Contact
    is_new: bool  # assigned since the operator last looked


def _board_context() -> dict:
    now = timezone.now()
    board = read_board(now)
    shown = (
        [
            (row.state, row.oldest_open_at, row.offered, row.status_reason)
            for row in board.operators
        ],
        [(row.source.pk, row.waiting, row.oldest_waiting_at) for row in board.sources],
        [contact.pk for contact in board.assignments],
        [(contact.pk, contact.status, contact.operator_id) for contact in board.flagged],
    )
    return {
        "board": board,
        "assignments": [(contact, assignment_reason(contact)) for contact in board.assignments],
        "now": now,
        "refresh_seconds": REFRESH_SECONDS,
        "version": _version(shown, now),
    }


def _version(shown: object, now: datetime) -> str:
    """A fingerprint of what a live part shows; the minute is in it because ages are."""
    minute = now.replace(second=0, microsecond=0)
    return hashlib.blake2b(repr((shown, minute)).encode(), digest_size=8).hexdigest()


def _live(request: HttpRequest, template: str, context: dict) -> HttpResponse:
    """The live part of a page, or 204 if it shows the same as the copy the page holds."""
    if request.GET.get("version") == context["version"]:
        return HttpResponse(status=204)
    return render(request, template, context)


@require_GET
@staff_view
def queue(request: HttpRequest) -> HttpResponse:
    """Every source's waiting contacts, oldest first, why nobody took them, and who could."""
    now = timezone.now()
    return render(request, "desk/queue.html", {"queue": read_queue(now), "now": now})


class AssignForm(forms.Form):
    operator = forms.ModelChoiceField(queryset=Operator.objects.all())


@require_POST
@staff_view
def queue_assign(request: HttpRequest, contact_id: int) -> HttpResponse:
    """Give a waiting contact to the operator staff chose: the flow says if it cannot be."""
    contact = get_object_or_404(Contact.objects.select_related("operator"), pk=contact_id)
    form = AssignForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Choose who takes contact #%(id)d.") % {"id": contact.pk})
    elif refusal := _no_longer_waiting(contact):
        messages.error(request, refusal)
    else:
        try:
            contact = contacts.reassign_contact(
                contact=contact, operator=form.cleaned_data["operator"]
            )
        except Conflict as refusal:
            messages.error(request, _("Not assigned: %(reason)s") % {"reason": refusal})
        else:
            messages.success(
                request,
                _("Contact #%(id)d assigned to %(operator)s.")
                % {"id": contact.pk, "operator": contact.operator.name},
            )
    return redirect("desk:queue")


@require_POST
@staff_view
def queue_close(request: HttpRequest, contact_id: int) -> HttpResponse:
    contact = get_object_or_404(Contact.objects.select_related("operator"), pk=contact_id)
    if refusal := _no_longer_waiting(contact):
        messages.error(request, refusal)
        return redirect("desk:queue")
    try:
        contacts.close_contact(contact=contact)
    except Conflict as refusal:
        messages.error(request, _("Not closed: %(reason)s") % {"reason": refusal})
    else:
        messages.success(request, _("Contact #%(id)d closed.") % {"id": contact.pk})
    return redirect("desk:queue")


def _no_longer_waiting(contact: Contact) -> str:
    """Why an action from the queue page no longer applies: the contact was given to
    someone or closed since the page was drawn ("" while it still waits). The flows
    would move or close it anyway; staff asked about a waiting contact."""
    if contact.status == Contact.Status.WAITING:
        return ""
    if contact.status == Contact.Status.CLOSED:
        return _("Contact #%(id)d is no longer waiting: it was closed.") % {"id": contact.pk}
    return _("Contact #%(id)d is no longer waiting: it went to %(operator)s.") % {
        "id": contact.pk,
        "operator": contact.operator.name,
    }
