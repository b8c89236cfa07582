from datetime import timedelta

import factory
from django.contrib.auth import get_user_model
from django.db.models import F
from django.utils import timezone

from distribution.keys import hash_key, new_key, prefix_of
from distribution.models import Contact, Operator, OperatorSourceWeight, Source, SourceApiKey
from events.models import Event, WebhookDelivery, WebhookEndpoint
from leads.models import Lead


class OperatorFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Operator

    name = factory.Sequence(lambda n: f"Operator {n}")
    is_active = True
    max_open_contacts = 10


class SourceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Source
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"bot-{n}")
    name = factory.LazyAttribute(lambda source: f"Bot {source.code}")
    is_active = True
    strategy = Source.Strategy.WEIGHTED_RANDOM


class OperatorSourceWeightFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = OperatorSourceWeight

    operator = factory.SubFactory(OperatorFactory)
    source = factory.SubFactory(SourceFactory)
    weight = 1


class SourceApiKeyFactory(factory.django.DjangoModelFactory):
    """A source's API key; the `key` parameter (not stored) is what a bot would send."""

    class Meta:
        model = SourceApiKey

    class Params:
        key = factory.LazyFunction(new_key)

    source = factory.SubFactory(SourceFactory)
    prefix = factory.LazyAttribute(lambda api_key: prefix_of(api_key.key))
    key_hash = factory.LazyAttribute(lambda api_key: hash_key(api_key.key))


class LeadFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Lead

    external_id = factory.Sequence(lambda n: f"ext-{n}")
    phone = None
    email = None
    name = factory.Faker("name")


class ContactFactory(factory.django.DjangoModelFactory):
    """A waiting contact by default; `open=True` gives it an operator and counts as load,
    `closed=True` gives it an operator and a closing time. An open or offered contact
    adds its units to its operator's stored load, as the engine would."""

    class Meta:
        model = Contact

    @classmethod
    def _create(cls, model_class: type, *args: object, **kwargs: object) -> Contact:
        contact = super()._create(model_class, *args, **kwargs)
        if contact.operator_id is not None and contact.status in Contact.LOAD_STATUSES:
            Operator.objects.filter(pk=contact.operator_id).update(
                open_load=F("open_load") + contact.load_units
            )
            contact.operator.refresh_from_db(fields=["open_load"])
        return contact

    lead = factory.SubFactory(LeadFactory)
    source = factory.SubFactory(SourceFactory)
    operator = None
    status = Contact.Status.WAITING
    payload = factory.LazyFunction(dict)
    load_units = factory.SelfAttribute("source.load_units")

    class Params:
        open = factory.Trait(
            status=Contact.Status.OPEN,
            operator=factory.SubFactory(OperatorFactory),
            assigned_at=factory.LazyFunction(timezone.now),
        )
        closed = factory.Trait(
            status=Contact.Status.CLOSED,
            operator=factory.SubFactory(OperatorFactory),
            assigned_at=factory.LazyFunction(timezone.now),
            closed_at=factory.LazyFunction(timezone.now),
        )


class StaffUserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"staff{n}")
    is_staff = True
    password = factory.django.Password("staff-password")


class UserFactory(factory.django.DjangoModelFactory):
    """A login that is not staff: an operator's, once linked (OperatorFactory(user=...))."""

    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("user-password")


class EventFactory(factory.django.DjangoModelFactory):
    """An event row as the outbox writes it (tests of the webhooks need no real change)."""

    class Meta:
        model = Event

    type = "contact.created"
    occurred_at = factory.LazyFunction(timezone.now)
    scope = "bot"
    data = factory.LazyFunction(lambda: {"contact": {"id": 1}})


class WebhookEndpointFactory(factory.django.DjangoModelFactory):
    """Made an hour ago, so it wants events of the last hour."""

    class Meta:
        model = WebhookEndpoint

    url = factory.Sequence(lambda n: f"https://hooks.example.com/{n}")
    created_at = factory.LazyFunction(lambda: timezone.now() - timedelta(hours=1))


class WebhookDeliveryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = WebhookDelivery

    endpoint = factory.SubFactory(WebhookEndpointFactory)
    # Deliveries are made as their event is dispatched.
    event = factory.SubFactory(EventFactory, dispatched_at=factory.LazyFunction(timezone.now))
    created_at = factory.LazyFunction(timezone.now)
