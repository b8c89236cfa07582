"""`/health/`: the database, and when the background worker last finished a pass."""

from datetime import timedelta

import pytest
from django.db import OperationalError
from django.utils import timezone
from rest_framework.test import APIClient

import core.health
from core.health import WORKER, beat

pytestmark = pytest.mark.django_db


def get(path: str = "/health/"):
    return APIClient().get(path)


def test_health_checks_the_database_and_says_when_the_worker_last_passed():
    at = timezone.now() - timedelta(seconds=12)
    beat(WORKER, at)

    response = get()

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["database"]) == ("ok", "ok")
    assert body["worker"]["last_pass_at"] == at.isoformat()
    assert 12 <= body["worker"]["seconds_ago"] < 20


def test_without_a_worker_health_is_still_200_but_the_worker_probe_is_503():
    assert get().json()["worker"] == {"last_pass_at": None, "seconds_ago": None}
    assert get().status_code == 200

    probe = get("/health/?worker=1")

    assert probe.status_code == 503
    assert probe.json()["status"] == "worker stale"


@pytest.mark.parametrize(("seconds_ago", "status"), [(30, 200), (61, 503)])
def test_the_worker_probe_fails_after_a_minute_without_a_pass(seconds_ago, status):
    beat(WORKER, timezone.now() - timedelta(seconds=seconds_ago))

    assert get("/health/?worker=1").status_code == status


class UnreachableDatabase:
    class objects:
        @staticmethod
        def filter(**lookups):
            raise OperationalError("connection refused")


def test_health_is_503_when_the_database_is_unreachable(monkeypatch):
    monkeypatch.setattr(core.health, "Heartbeat", UnreachableDatabase)

    response = get()

    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "database": "unreachable"}
